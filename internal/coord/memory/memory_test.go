package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/coordtest"
)

func TestContract(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) coord.Coordinator { return New() })
}

func TestLoss(t *testing.T) {
	coordtest.RunLoss(t, func(t *testing.T) (coord.Coordinator, coord.Coordinator, func()) {
		c := New()
		t.Cleanup(func() { _ = c.Close() })
		return c, c, c.Reset
	})
}

func TestClosedFailsUnavailable(t *testing.T) {
	c := New()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	_, _, err := c.AcquireSlots(ctx, "h", time.Minute, coord.SlotReq{Key: "k", Limit: 1})
	if !coordtest.IsUnavailable(err) {
		t.Fatalf("AcquireSlots after Close: err = %v, want ErrUnavailable", err)
	}
	if err := c.Publish(ctx, "ch", "m"); !coordtest.IsUnavailable(err) {
		t.Fatalf("Publish after Close: err = %v, want ErrUnavailable", err)
	}
}

// A reader that stops reading must not block Publish; once it falls too far behind it is
// told to drop its caches with "" instead of receiving an unbounded backlog.
func TestSlowSubscriberGetsFlushSignal(t *testing.T) {
	c := New()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := c.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	const sent = 3 * maxQueued
	for i := range sent {
		if err := c.Publish(ctx, "ch", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	var got []string
	for {
		m := coordtest.Receive(t, sub)
		got = append(got, m)
		if m == fmt.Sprintf("m%d", sent-1) {
			break
		}
	}
	if len(got) >= sent {
		t.Fatalf("received all %d messages; the queue was not bounded", len(got))
	}
	flush := false
	for _, m := range got {
		flush = flush || m == ""
	}
	if !flush {
		t.Fatalf("messages were dropped without a flush signal")
	}
}

// Entries nobody touches again are dropped by the periodic sweep.
func TestSweepDropsUntouchedEntries(t *testing.T) {
	c := New()
	defer c.Close()
	base := time.Now()
	now := base
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for i := range 100 {
		if err := c.StickySet(ctx, fmt.Sprintf("s%d", i), 1, time.Second); err != nil {
			t.Fatalf("StickySet: %v", err)
		}
		if _, err := c.Incr(ctx, fmt.Sprintf("c%d", i), 1, time.Second); err != nil {
			t.Fatalf("Incr: %v", err)
		}
		if ok, _, err := c.AcquireSlots(ctx, "h", time.Second, coord.SlotReq{Key: fmt.Sprintf("k%d", i), Limit: 1}); err != nil || !ok {
			t.Fatalf("AcquireSlots: %v %v", ok, err)
		}
	}
	now = base.Add(2 * sweepEvery)
	if err := c.StickySet(ctx, "fresh", 1, time.Second); err != nil {
		t.Fatalf("StickySet: %v", err)
	}
	if _, err := c.Incr(ctx, "fresh", 1, time.Second); err != nil {
		t.Fatalf("Incr: %v", err)
	}
	if _, _, err := c.AcquireSlots(ctx, "h", time.Second, coord.SlotReq{Key: "fresh", Limit: 1}); err != nil {
		t.Fatalf("AcquireSlots: %v", err)
	}
	if n := len(c.sticky.m); n != 1 {
		t.Errorf("sticky entries after sweep = %d, want 1", n)
	}
	if n := len(c.counters.m); n != 1 {
		t.Errorf("counter entries after sweep = %d, want 1", n)
	}
	if n := len(c.slots.sets); n != 1 {
		t.Errorf("slot sets after sweep = %d, want 1", n)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	c := New()
	defer c.Close()
	ctx := context.Background()
	reqs := []coord.SlotReq{{Key: "account:1", Limit: 1 << 30}, {Key: "user:1", Limit: 1 << 30}, {Key: "key:1", Limit: 1 << 30}}
	keys := []string{"account:1", "user:1", "key:1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		holder := fmt.Sprintf("h%p", &pb)
		for pb.Next() {
			ok, _, err := c.AcquireSlots(ctx, holder, time.Minute, reqs...)
			if err != nil || !ok {
				b.Fatalf("AcquireSlots: %v %v", ok, err)
			}
			if err := c.ReleaseSlots(ctx, holder, keys...); err != nil {
				b.Fatalf("ReleaseSlots: %v", err)
			}
		}
	})
}

func BenchmarkAcquireAccountRelease(b *testing.B) {
	c := New()
	defer c.Close()
	ctx := context.Background()
	req := coord.AccountReq{
		Base: []coord.SlotReq{{Key: "user:1", Limit: 1 << 30}, {Key: "key:1", Limit: 1 << 30}},
		Accounts: []coord.AccountSlot{
			{ID: 1, Slot: coord.SlotReq{Key: "account:1", Limit: 1 << 30}},
			{ID: 2, Slot: coord.SlotReq{Key: "account:2", Limit: 1 << 30}},
		},
		SessionTTL: time.Hour,
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		holder := fmt.Sprintf("h%p", &pb)
		req := req
		req.Session = "session-" + holder
		for pb.Next() {
			g, err := c.AcquireAccount(ctx, holder, time.Minute, req)
			if err != nil || g.Index < 0 {
				b.Fatalf("AcquireAccount: %+v %v", g, err)
			}
			if err := c.ReleaseSlots(ctx, holder, "user:1", "key:1", req.Accounts[g.Index].Slot.Key); err != nil {
				b.Fatalf("ReleaseSlots: %v", err)
			}
		}
	})
}
