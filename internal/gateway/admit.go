package gateway

import (
	"fmt"
	"net/http"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Subscription window lengths, as the store rolls them: a window restarts when its start is
// at least this old.
const (
	dailyWindow   = 24 * time.Hour
	weeklyWindow  = 7 * dailyWindow
	monthlyWindow = 30 * dailyWindow
)

// admit checks that the key's owner may spend: a positive balance for a balance group, an
// active subscription with room in every window for a subscription group. Concurrency is
// admitted together with the account (schedule.go), in one atomic acquire.
//
// The balance read is the node's cached copy (AuthCacheTTL), less the charges of this
// node's rows not yet in the ledger (the database is slow or down: the copy is the last
// known one then, and those charges are not in it). The ledger may go a little negative
// when many requests start at once, never the other way round. Charges are never skipped
// for lack of balance: an unbilled request would be a free one.
//
// A billed request is refused while the node's ledger queue is full (BillQueueMax): served,
// its row could not be kept.
func (c *call) admit() bool {
	a := c.auth
	now := c.g.now()
	if c.op == provider.OpMessages && c.g.biller.full() {
		c.reject(RejectDatabase, provider.KindOverloaded, http.StatusServiceUnavailable,
			"the gateway cannot record usage right now; retry shortly", retryShortly)
		return false
	}
	pending := c.g.biller.pendingFor(a.User.ID)
	switch a.Group.BillingType {
	case store.BillingSubscription:
		s := a.Subscription
		if s == nil || s.Status != store.StatusActive || now.Before(s.StartsAt) || !now.Before(s.ExpiresAt) {
			c.reject(RejectSubscription, provider.KindPermission, 0, "FluxCode: no active subscription for this key's group", 0)
			return false
		}
		if name, wait := fullWindow(a.Group, s, pending, now); name != "" {
			c.reject(RejectSubscription, provider.KindRateLimit, 0,
				fmt.Sprintf("FluxCode: the %s usage limit of your subscription is reached", name), wait)
			return false
		}
	default:
		if a.User.Balance-pending <= 0 {
			c.reject(RejectBalance, provider.KindBilling, 0, "FluxCode: your balance is used up; top it up to continue", 0)
			return false
		}
	}
	return true
}

// fullWindow returns the name of the first window whose limit is reached, counting pending
// charges not yet in s, and how long until it restarts; "" when every window has room.
func fullWindow(g store.Group, s *store.Subscription, pending store.Nanos, now time.Time) (string, time.Duration) {
	windows := []struct {
		name  string
		limit store.Nanos
		used  store.Nanos
		start time.Time
		len   time.Duration
	}{
		{"daily", g.DailyLimit, s.DailyUsed, s.DailyStart, dailyWindow},
		{"weekly", g.WeeklyLimit, s.WeeklyUsed, s.WeeklyStart, weeklyWindow},
		{"monthly", g.MonthlyLimit, s.MonthlyUsed, s.MonthlyStart, monthlyWindow},
	}
	for _, w := range windows {
		if w.limit <= 0 {
			continue
		}
		end := w.start.Add(w.len)
		if !now.Before(end) {
			continue // the window restarts with the next charge
		}
		if w.used+pending >= w.limit {
			return w.name, end.Sub(now)
		}
	}
	return "", 0
}
