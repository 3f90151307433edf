package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// RecordJobRun writes the job's last run unless a run under a newer lease is recorded: the
// fence arbitrates in the statement itself, so an owner whose lease lapsed mid-run (paused,
// partitioned) cannot overwrite its successor's record.
func (d *DB) RecordJobRun(ctx context.Context, r store.JobRun) error {
	res, err := d.w.ExecContext(ctx, `INSERT INTO job_runs (name, fence, node, started_at, finished_at, result, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name) DO UPDATE SET fence = excluded.fence, node = excluded.node, started_at = excluded.started_at,
			finished_at = excluded.finished_at, result = excluded.result, error = excluded.error
		WHERE job_runs.fence <= excluded.fence`,
		r.Name, r.Fence, r.Node, d.tv(r.StartedAt), d.tv(r.FinishedAt), r.Result, r.Error)
	if err != nil {
		return wrap(fmt.Sprintf("record run of job %q", r.Name), err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap(fmt.Sprintf("record run of job %q", r.Name), err)
	} else if n == 0 {
		return fmt.Errorf("sqlstore: record run of job %q: %w: fence %d is older than the recorded one", r.Name, store.ErrConflict, r.Fence)
	}
	return nil
}

// ListJobRuns returns the last run of every job that ran, by name.
func (d *DB) ListJobRuns(ctx context.Context) ([]store.JobRun, error) {
	return queryAll(ctx, d, "list job runs", `SELECT name, fence, node, started_at, finished_at, result, error
		FROM job_runs ORDER BY name`, nil, func(s scanner, r *store.JobRun) error {
		return s.Scan(&r.Name, &r.Fence, &r.Node, timeDst{&r.StartedAt}, timeDst{&r.FinishedAt}, &r.Result, &r.Error)
	})
}

// ExpireSubscriptions marks expired every active subscription whose end has come, in one
// statement, and returns the rows it changed.
func (d *DB) ExpireSubscriptions(ctx context.Context, now time.Time) ([]store.Subscription, error) {
	const op = "expire subscriptions"
	rows, err := d.w.QueryContext(ctx, "UPDATE subscriptions SET status = $1, updated_at = $2 WHERE status = $3 AND expires_at <= $2 RETURNING "+subscriptionCols,
		store.StatusExpired, d.tv(now), store.StatusActive)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []store.Subscription{}
	for rows.Next() {
		var s store.Subscription
		if err := scanSubscription(rows, &s); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, s)
	}
	return out, wrap(op, rows.Err())
}
