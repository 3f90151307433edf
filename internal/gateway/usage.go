package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// clientRoutes are the gateway's own endpoints for client tools, beside the providers' routes.
func (g *Gateway) clientRoutes(mux *http.ServeMux) {
	// Any key of any protocol: the answer's error shape is chosen as on a shared route.
	all := route{pattern: "GET /v1/usage"}
	for i := range g.routes {
		for _, p := range g.routes[i].provs {
			if !slices.Contains(all.provs, p) {
				all.provs = append(all.provs, p)
			}
		}
		for _, k := range g.routes[i].keys {
			if !slices.Contains(all.keys, k) {
				all.keys = append(all.keys, k)
			}
		}
	}
	mux.HandleFunc(all.pattern, func(w http.ResponseWriter, r *http.Request) { g.serveUsage(w, r, &all) })
	mux.HandleFunc("POST /api/event_logging/batch", serveTelemetry)
}

// usageAnswer is GET /v1/usage: what balance tools (CC-Switch and the like) read from a key.
// Remaining is in USD: the balance for a balance group; for a subscription group, what is
// left in its tightest window (Unlimited when no window has a limit).
type usageAnswer struct {
	IsValid   bool       `json:"isValid"`
	PlanName  string     `json:"planName"`
	Mode      string     `json:"mode"` // "balance" | "subscription"
	Remaining float64    `json:"remaining"`
	Unlimited bool       `json:"unlimited,omitempty"`
	Unit      string     `json:"unit"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"` // the subscription's end
}

// serveUsage answers the key's remaining allowance. A refused key is refused like on any
// relay route (in the protocol of the key's place, X-Fluxcode-Reject: key).
func (g *Gateway) serveUsage(w http.ResponseWriter, r *http.Request, rt *route) {
	c := g.newCall(w, r, rt)
	defer c.finish()
	if !c.authenticate() {
		return
	}
	a, now := c.auth, g.now()
	ans := usageAnswer{IsValid: true, PlanName: a.Group.Name, Mode: "balance", Unit: "USD"}
	pending := g.biller.pendingFor(a.User.ID)
	switch a.Group.BillingType {
	case store.BillingSubscription:
		ans.Mode = "subscription"
		s := a.Subscription
		if s == nil || s.Status != store.StatusActive || !now.Before(s.ExpiresAt) {
			ans.IsValid = false
			break
		}
		ans.ExpiresAt = &s.ExpiresAt
		left, limited := subscriptionLeft(a.Group, s, pending, now)
		ans.Remaining, ans.Unlimited = usd(left), !limited
	default:
		ans.Remaining = usd(a.User.Balance - pending)
		ans.IsValid = ans.Remaining > 0
	}
	c.committed = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// subscriptionLeft is what is left in the tightest limited window of s (a window whose time
// is over counts as empty), and whether any window is limited.
func subscriptionLeft(g store.Group, s *store.Subscription, pending store.Nanos, now time.Time) (store.Nanos, bool) {
	var left store.Nanos
	limited := false
	for _, w := range []struct {
		limit, used store.Nanos
		start       time.Time
		length      time.Duration
	}{
		{g.DailyLimit, s.DailyUsed, s.DailyStart, dailyWindow},
		{g.WeeklyLimit, s.WeeklyUsed, s.WeeklyStart, weeklyWindow},
		{g.MonthlyLimit, s.MonthlyUsed, s.MonthlyStart, monthlyWindow},
	} {
		if w.limit <= 0 {
			continue
		}
		used := w.used + pending
		if !now.Before(w.start.Add(w.length)) {
			used = pending
		}
		if l := max(w.limit-used, 0); !limited || l < left {
			left = l
		}
		limited = true
	}
	return left, limited
}

// usd is an amount in dollars.
func usd(n store.Nanos) float64 { return float64(n) / 1e9 }

// telemetryLimit bounds how much of a telemetry batch is read (and dropped).
const telemetryLimit = 1 << 20

// serveTelemetry answers Claude Code's telemetry batches (POST /api/event_logging/batch),
// which it sends to its base URL, with 200 and stores nothing: without an answer the client
// retries and logs errors.
func serveTelemetry(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, telemetryLimit))
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}\n")
}
