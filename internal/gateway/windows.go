package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// windowBook remembers, per account, what this node last recorded of its usage windows, so
// that the store is written when they change (a status, a whole percent, a reset) and not
// on every answer.
type windowBook struct {
	mu   sync.Mutex
	last map[int64]string
}

// changed records w's fingerprint for the account and reports whether it differs from the last.
func (b *windowBook) changed(id int64, w store.UsageWindows) bool {
	var fp strings.Builder
	fp.WriteString(w.Status)
	for _, x := range w.Windows {
		fmt.Fprintf(&fp, "|%s:%d:%d:%s", x.Name, int(x.Utilization*100), x.ResetsAt.Unix(), x.Status)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.last = make(map[int64]string)
	}
	if b.last[id] == fp.String() {
		return false
	}
	b.last[id] = fp.String()
	return true
}

// observeWindows reads a subscription account's usage windows from an upstream answer. When
// they changed, they are recorded (for the admin API), and when one has reached the
// configured utilisation, the account is paused until that window resets: every node skips
// it from then on. Both writes happen in the background; the answer does not wait.
func (c *call) observeWindows(acct *store.Account, h http.Header) {
	wr, ok := c.prov.(provider.WindowReader)
	if !ok || acct.Type != store.AccountTypeOAuth {
		return
	}
	now := c.g.now()
	w, ok := wr.Windows(h, now)
	if !ok || !c.g.windows.changed(acct.ID, w) {
		return
	}
	var pause *store.AccountMark
	if pct := c.g.cfg.SubscriptionPausePercent; pct > 0 {
		at := float64(pct) / 100
		for _, x := range w.Windows {
			if x.Utilization >= at && x.ResetsAt.After(now) {
				until := x.ResetsAt
				reason := fmt.Sprintf("subscription %s window at %.0f%% (pause at %.0f%%) until it resets",
					x.Name, x.Utilization*100, at*100)
				pause = &store.AccountMark{TempUnschedUntil: &until, TempUnschedReason: &reason}
				break
			}
		}
	}
	g, id := c.g, acct.ID
	if !g.claimBackground() {
		return
	}
	go func() {
		defer g.bg.Done()
		ctx, cancel := context.WithTimeout(g.life, storeTimeout)
		defer cancel()
		if err := g.store.SetAccountWindows(ctx, id, w); err != nil {
			g.log.Warn("recording an account's usage windows failed", "account", id, "err", err)
		}
		if pause != nil {
			g.recordMark(id, *pause)
		}
	}()
}

// claimBackground admits one piece of background work into g.bg; false once Close began.
func (g *Gateway) claimBackground() bool {
	g.verifyMu.Lock()
	defer g.verifyMu.Unlock()
	if g.closing {
		return false
	}
	g.bg.Add(1)
	return true
}
