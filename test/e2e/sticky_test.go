package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestStickiness is must-show 5 on two nodes sharing PostgreSQL and Redis: a session lands
// on the same account whichever node serves it, even after the ranking alone would choose
// another account; and a different group never shares the binding, even for the same
// session id and overlapping accounts.
func TestStickiness(t *testing.T) {
	c := shared(t, 2, config())
	ctx := context.Background()
	tenA := c.tenant(t, gatewaytest.TenantOptions{})
	tenB := c.tenant(t, gatewaytest.TenantOptions{})
	a, b := tenA.Group.ID, tenB.Group.ID
	// P only in A, Q in both, R only in B. By priority, A starts on P and B on Q.
	p := c.account(t, "up-p", []int64{a}, func(x *store.Account) { x.Priority = 10 })
	q := c.account(t, "up-q", []int64{a, b}, func(x *store.Account) { x.Priority = 20 })
	r := c.account(t, "up-r", []int64{b}, func(x *store.Account) { x.Priority = 30 })

	// served sends one message of session (Claude Code's header) through node n and returns
	// the upstream key of the account that answered it.
	served := func(ten *gatewaytest.Tenant, n int, session, text string) string {
		t.Helper()
		client := sdk(c.nodes[n], ten.Secret, option.WithHeader("X-Claude-Code-Session-Id", session))
		before := len(c.tap.Exchanges())
		if _, err := client.Messages.New(ctx, params(text)); err != nil {
			t.Fatalf("node %d: %v", n+1, err)
		}
		ex := c.tap.Exchanges()
		if len(ex) != before+1 {
			t.Fatalf("%d upstream requests for one message", len(ex)-before)
		}
		return ex[len(ex)-1].UpstreamK
	}

	const session = "232ebeca-eecb-4308-b9ff-a3fe2280574c"
	if got := served(tenA, 0, session, "turn 1"); got != "up-p" {
		t.Fatalf("group A's first turn went to %s, want up-p (priority)", got)
	}
	if got := served(tenB, 1, session, "turn 1"); got != "up-q" {
		t.Fatalf("group B's first turn (same session id) went to %s, want up-q: B must not follow A's binding", got)
	}

	// Reverse the priorities: ranking alone now prefers Q for A and R for B.
	for acct, prio := range map[*store.Account]int{p: 90, q: 50, r: 10} {
		acct.Priority = prio
		if err := c.Store.UpdateAccount(ctx, acct); err != nil {
			t.Fatal(err)
		}
		if err := invalidate.Publish(ctx, c.Coord, invalidate.Account, acct.ID); err != nil {
			t.Fatal(err)
		}
	}
	// New conversations show that both nodes see the new ranking.
	for n := range c.nodes {
		waitUntil(t, func() bool { return served(tenA, n, "", "fresh A "+time.Now().String()) == "up-q" })
		waitUntil(t, func() bool { return served(tenB, n, "", "fresh B "+time.Now().String()) == "up-r" })
	}

	// The bound session stays where it was, on either node, turn after turn.
	for turn := range 6 {
		n := turn % 2
		if got := served(tenA, n, session, "turn n"); got != "up-p" {
			t.Fatalf("group A turn %d on node %d went to %s, want its bound up-p", turn+2, n+1, got)
		}
		if got := served(tenB, 1-n, session, "turn n"); got != "up-q" {
			t.Fatalf("group B turn %d on node %d went to %s, want its bound up-q", turn+2, 2-n, got)
		}
	}
}

// waitUntil polls cond (each call may send a request) until it holds, for at most 10 s: an
// invalidation reaches the other node through Redis a moment after it is published.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("not reached within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
