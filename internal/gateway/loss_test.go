package gateway_test

import (
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestLimitHoldsAcrossCoordinationLoss (issue 16): requests in flight on an account at its
// limit, then the coordination state is lost (memory.Reset stands for a Redis restart
// without its data). The node registers its running requests again and nothing new is
// admitted before the recovery window closes, so the upstream never sees more than the
// limit; the requests that arrived meanwhile wait instead of failing.
func TestLimitHoldsAcrossCoordinationLoss(t *testing.T) {
	co := memory.New()
	t.Cleanup(func() { _ = co.Close() })
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Coord: co})
	e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	e.node = gatewaytest.Start(t, d, testConfig(), "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	const limit = 3
	e.account(t, "up-loss", func(a *store.Account) { a.Concurrency = limit })
	if err := e.Mock.SetScript("up-loss", mockupstream.Script{Events: 15, Interval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	running := make(chan map[int]int)
	go func() { running <- concurrently(t, e, limit) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.Mock.Stats("up-loss").InFlight < limit {
		if time.Now().After(deadline) {
			t.Fatalf("the first %d requests never ran together: %+v", limit, e.Mock.Stats("up-loss"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	co.Reset()
	statuses := concurrently(t, e, 2*limit) // fails on any non-200 answer
	first := <-running
	if st := e.Mock.Stats("up-loss"); st.PeakInFlight > limit || st.Requests != 3*limit {
		t.Fatalf("peak in flight %d (limit %d), requests %d (want %d)", st.PeakInFlight, limit, st.Requests, 3*limit)
	}
	if first[200] != limit || statuses[200] != 2*limit {
		t.Fatalf("statuses %v and %v, want all 200", first, statuses)
	}
}
