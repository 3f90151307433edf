package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
)

// A release that overlaps the heartbeat's registration of this node's slots must stand:
// the registration snapshots the slot, the release reaches the coordinator first, the
// registration (under a new epoch: "live or not") writes the slot again. Without a second
// release the slot would stay taken for its whole TTL. Both orders of the release's end and
// the registration's end are covered.
func TestReleaseOverlappingARegistrationStands(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Hour
	for _, c := range []struct {
		name string
		// releaseEndsFirst: the request's release returns while the registration is still
		// under way (the heartbeat sends it again); otherwise the registration ends first
		// (the request sends it again itself).
		releaseEndsFirst bool
	}{{"release ends during the registration", true}, {"registration ends during the release", false}} {
		t.Run(c.name, func(t *testing.T) {
			co := memory.New()
			g := &Gateway{coord: co, slots: newSlotBook(), log: slog.New(slog.DiscardHandler)}
			keys := []string{"slot:user:1", "slot:key:1"}
			reqs := []coord.SlotReq{{Key: keys[0], Limit: 1}, {Key: keys[1], Limit: 1}}
			if ok, _, err := co.AcquireSlots(ctx, "req-1", ttl, reqs...); !ok || err != nil {
				t.Fatalf("acquire: %v %v", ok, err)
			}
			g.slots.add("req-1", keys)

			held := g.slots.beginRegistration() // the heartbeat's snapshot holds req-1
			seq, registering := g.slots.releaseMark()
			if err := co.ReleaseSlots(ctx, "req-1", keys...); err != nil { // reaches the coordinator first
				t.Fatal(err)
			}
			var resend bool
			if c.releaseEndsFirst {
				resend = g.slots.removeAfter("req-1", keys, seq, registering)
			}
			if _, err := co.RefreshSlots(ctx, ttl, "", held); err != nil { // writes req-1 again
				t.Fatal(err)
			}
			if n, _ := co.SlotCount(ctx, keys[0]); n != 1 {
				t.Fatalf("the registration did not write the released slot again (%d): the race is not reproduced", n)
			}
			for holder, again := range g.slots.endRegistration("") {
				g.releaseAgain(holder, again)
			}
			if !c.releaseEndsFirst {
				resend = g.slots.removeAfter("req-1", keys, seq, registering)
			}
			if resend {
				g.releaseAgain("req-1", keys)
			}
			if resend == c.releaseEndsFirst {
				t.Errorf("resend = %v: the second release went to the wrong party", resend)
			}
			for _, k := range keys {
				if n, err := co.SlotCount(ctx, k); err != nil || n != 0 {
					t.Errorf("%s holds %d slots after the release (%v)", k, n, err)
				}
			}
		})
	}
}
