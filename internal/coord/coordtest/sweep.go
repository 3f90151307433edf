package coordtest

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// testJanitor: SweepLeases forgets the fences of free, old leases only, and a lease granted
// again after the sweep still gets a larger fence.
func testJanitor(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()
	c := fresh(t)
	ok, heldFence, err := c.AcquireLease(ctx, "held", "a", longTTL)
	mustOK(t, "a takes held", ok, err)
	ok, freeFence, err := c.AcquireLease(ctx, "free", "a", longTTL)
	mustOK(t, "a takes free", ok, err)
	if err := c.ReleaseLease(ctx, "free", "a"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}

	if n, err := c.SweepLeases(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep of leases older than an hour: %d, %v; want none", n, err)
	}
	time.Sleep(20 * time.Millisecond)
	if n, err := c.SweepLeases(ctx, 5*time.Millisecond); err != nil || n != 1 {
		t.Fatalf("sweep of the released lease: %d, %v; want 1", n, err)
	}
	ok, f, err := c.AcquireLease(ctx, "free", "b", longTTL)
	mustOK(t, "b takes free after the sweep", ok, err)
	if f <= freeFence {
		t.Fatalf("fence after the sweep %d, want above the forgotten %d", f, freeFence)
	}
	ok, f, err = c.AcquireLease(ctx, "held", "a", longTTL)
	mustOK(t, "a extends held", ok, err)
	if f != heldFence {
		t.Fatalf("the sweep changed a held lease's fence: %d -> %d", heldFence, f)
	}
	if ok, _, err := c.AcquireLease(ctx, "held", "b", longTTL); err != nil || ok {
		t.Fatalf("b took a held lease after the sweep: ok=%v err=%v", ok, err)
	}
	if _, err := c.SweepLeases(ctx, 0); err == nil {
		t.Fatal("SweepLeases with no idle time: no error")
	}
}
