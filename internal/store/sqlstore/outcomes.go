package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/fluxcode/fluxcode/internal/store"
)

// AddRequestOutcomes adds the rows' counts in one transaction; the upsert makes concurrent
// nodes' additions to the same day and outcome sum rather than overwrite. Rows are written in
// key order, so two nodes' transactions lock them in the same order and cannot deadlock.
func (d *DB) AddRequestOutcomes(ctx context.Context, rows []store.DailyOutcome) error {
	if len(rows) == 0 {
		return nil
	}
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b store.DailyOutcome) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Outcome, b.Outcome))
	})
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO request_outcomes (day, outcome, requests) VALUES ($1, $2, $3)
				ON CONFLICT (day, outcome) DO UPDATE SET requests = request_outcomes.requests + excluded.requests`,
				r.Day, r.Outcome, r.Requests); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("add request outcomes", err)
}

// DailyRequestOutcomes reads the counts of the days from..to, by day then outcome.
func (d *DB) DailyRequestOutcomes(ctx context.Context, from, to string) ([]store.DailyOutcome, error) {
	return queryAll(ctx, d, "daily request outcomes", `SELECT day, outcome, requests FROM request_outcomes
		WHERE day >= $1 AND day <= $2 ORDER BY day, outcome`, []any{from, to},
		func(s scanner, o *store.DailyOutcome) error { return s.Scan(&o.Day, &o.Outcome, &o.Requests) })
}
