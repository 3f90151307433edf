package app

import (
	"context"
	"time"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/jobs"
)

// startMaintenance starts the maintenance jobs, each on one node of the cluster at a time
// (package jobs): ledger retention (LEDGER_RETENTION_DAYS), subscription expiry, and the
// clean-up of coordination state that does not expire on its own. They stop when the node
// closes.
func (m *Main) startMaintenance() {
	every := m.cfg.JobsInterval
	expired := func(ctx context.Context, userID int64) {
		if err := invalidate.Publish(ctx, m.coord, invalidate.User, userID); err != nil {
			m.logger.WarnContext(ctx, "telling the nodes about an expired subscription failed; their caches expire on their own", "err", err)
		}
	}
	runner := jobs.New(m.coord, m.store, m.nodeName, m.logger)
	runner.Start(
		jobs.LedgerRetention(m.store, m.cfg.LedgerRetentionDays, every, time.Now),
		jobs.SubscriptionExpiry(m.store, expired, every, time.Now),
		jobs.CoordCleanup(m.coord, jobs.LeaseIdle, every),
	)
	m.closers = append(m.closers, func(context.Context) error { runner.Close(); return nil })
}
