package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// DeleteUsageBefore deletes up to limit of the oldest ledger rows created before before. One
// bounded statement is one short transaction: on PostgreSQL it locks only the old rows it
// deletes, which no request writes again; on SQLite it holds the single writer for one batch,
// so the ledger batches of the request path wait at most that long between two of them.
func (d *DB) DeleteUsageBefore(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, invalid("delete old usage", "limit must be positive")
	}
	res, err := d.w.ExecContext(ctx, `DELETE FROM usage_ledger WHERE id IN
		(SELECT id FROM usage_ledger WHERE created_at < $1 ORDER BY created_at LIMIT $2)`, d.tv(before), limit)
	if err != nil {
		return 0, wrap(fmt.Sprintf("delete usage before %s", before.UTC().Format(time.RFC3339)), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("delete old usage", err)
	}
	return n, nil
}
