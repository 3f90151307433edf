package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Names of the maintenance jobs, as the admin API lists their runs.
const (
	LedgerRetentionJob    = "ledger-retention"
	SubscriptionExpiryJob = "subscription-expiry"
	CoordCleanupJob       = "coord-cleanup"
)

// RetentionBatch is how many ledger rows one statement of the retention job deletes: small
// enough that a batch holds SQLite's writer, or PostgreSQL's locks on the old rows, for
// milliseconds, so the request path's ledger writes slip in between batches.
const RetentionBatch = 1000

// retentionPause separates two batches, leaving the database to the request path a moment.
const retentionPause = 20 * time.Millisecond

// LeaseIdle is how long a free lease's fence is kept before the clean-up forgets it.
const LeaseIdle = time.Hour

// UsagePruner deletes old ledger rows (store.Billing).
type UsagePruner interface {
	DeleteUsageBefore(ctx context.Context, before time.Time, limit int) (int64, error)
}

// LedgerRetention deletes, in batches of RetentionBatch, the ledger rows older than days
// days; days 0 keeps every row and the job only says so. Balances and subscription windows
// are kept apart from the ledger and do not change; usage figures of the deleted period are
// gone with its rows.
func LedgerRetention(p UsagePruner, days int, every time.Duration, now func() time.Time) Job {
	return Job{Name: LedgerRetentionJob, Every: every, Run: func(ctx context.Context) (string, error) {
		if days <= 0 {
			return "retention off: every ledger row is kept", nil
		}
		before := now().AddDate(0, 0, -days)
		var total int64
		for {
			n, err := p.DeleteUsageBefore(ctx, before, RetentionBatch)
			total += n
			if err != nil {
				return fmt.Sprintf("%d ledger rows deleted", total), err
			}
			if n < RetentionBatch {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Sprintf("%d ledger rows deleted, stopped early", total), ctx.Err()
			case <-time.After(retentionPause):
			}
		}
		return fmt.Sprintf("%d ledger rows older than %s deleted", total, before.UTC().Format(time.RFC3339)), nil
	}}
}

// SubscriptionExpirer marks ended subscriptions expired (store.Subscriptions).
type SubscriptionExpirer interface {
	ExpireSubscriptions(ctx context.Context, now time.Time) ([]store.Subscription, error)
}

// SubscriptionExpiry marks expired every active subscription whose end has come, and calls
// changed for each owner so every node drops what it caches of them. Admission already
// refuses a subscription from its end on; the mark makes the API say so too.
func SubscriptionExpiry(e SubscriptionExpirer, changed func(ctx context.Context, userID int64), every time.Duration, now func() time.Time) Job {
	return Job{Name: SubscriptionExpiryJob, Every: every, Run: func(ctx context.Context) (string, error) {
		subs, err := e.ExpireSubscriptions(ctx, now())
		if err != nil {
			return "", err
		}
		for _, s := range subs {
			changed(ctx, s.UserID)
		}
		return fmt.Sprintf("%d subscriptions expired", len(subs)), nil
	}}
}

// CoordCleanup forgets the fences of leases free for more than idle: the only coordination
// state that does not expire on its own (coord.Janitor).
func CoordCleanup(j coord.Janitor, idle, every time.Duration) Job {
	return Job{Name: CoordCleanupJob, Every: every, Run: func(ctx context.Context) (string, error) {
		n, err := j.SweepLeases(ctx, idle)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d idle lease fences removed", n), nil
	}}
}
