package sqlstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/storetest"
)

// Deleting old ledger rows batch after batch does not stand in the way of the request path:
// ledger writes made meanwhile all succeed, and only the old rows go.
func TestRetentionBatchesLetLedgerWritesThrough(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			db := MustOpen(t, d.dsn(t))
			u := storetest.MustUser(t, db, func(u *store.User) { u.Balance = 1 << 40 })
			row := func(id string, at time.Time) store.Usage {
				return store.Usage{RequestID: id, UserID: u.ID, APIKeyID: 1, AccountID: 1, GroupID: 1,
					Platform: store.PlatformAnthropic, Model: "m", Cost: 1, RateMultiplierPPM: 1_000_000, Charged: 1,
					BillingType: store.BillingBalance, StatusCode: 200, CreatedAt: at}
			}
			const old, batch = 5000, 250
			longAgo := time.Now().AddDate(0, 0, -100)
			var rows []store.Usage
			for i := range old {
				rows = append(rows, row(fmt.Sprintf("old-%d", i), longAgo.Add(time.Duration(i)*time.Millisecond)))
			}
			if _, err := db.RecordUsage(ctx, rows); err != nil {
				t.Fatal(err)
			}

			var wg sync.WaitGroup
			const writers, writes = 4, 25
			errs := make(chan error, writers*writes)
			for w := range writers {
				wg.Go(func() {
					for i := range writes {
						if _, err := db.RecordUsage(ctx, []store.Usage{row(fmt.Sprintf("new-%d-%d", w, i), time.Now())}); err != nil {
							errs <- err
						}
					}
				})
			}
			var deleted int64
			for {
				n, err := db.DeleteUsageBefore(ctx, time.Now().AddDate(0, 0, -30), batch)
				if err != nil {
					t.Fatalf("DeleteUsageBefore: %v", err)
				}
				deleted += n
				if n < batch {
					break
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("a ledger write during the retention failed: %v", err)
			}
			_, total, err := db.ListUsage(ctx, store.UsageFilter{UserID: u.ID}, store.Page{})
			if err != nil || deleted != old || total != writers*writes {
				t.Fatalf("deleted %d of %d old rows; %d rows left (%v), want the %d new ones", deleted, old, total, err, writers*writes)
			}
		})
	}
}
