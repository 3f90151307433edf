package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Subscription window lengths: a window restarts when its start is at least this old at
// the time of the usage being billed.
const (
	dailyWindow   = 24 * time.Hour
	weeklyWindow  = 7 * dailyWindow
	monthlyWindow = 30 * dailyWindow
)

// usageInsertCols are written by RecordUsage, in this order; usageCols adds the id.
const usageInsertCols = "request_id, user_id, api_key_id, account_id, group_id, platform, model, upstream_model, " +
	"input_tokens, output_tokens, cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens, " +
	"cost, rate_multiplier_ppm, charged, billing_type, stream, partial, status_code, duration_ms, first_byte_ms, created_at"

const usageCols = "id, " + usageInsertCols

var usageInsertColCount = strings.Count(usageInsertCols, ",") + 1

// usageChunk bounds the rows of one INSERT, keeping its parameters far below the limits of
// both dialects (SQLite 32766, PostgreSQL 65535).
const usageChunk = 500

// usageValues is the VALUES list of a multi-row INSERT of rows[idx…] into usageInsertCols,
// with its arguments.
func (d *DB) usageValues(rows []store.Usage, idx []int) (string, []any) {
	values := make([]string, len(idx))
	args := make([]any, 0, len(idx)*usageInsertColCount)
	for j, i := range idx {
		values[j] = "(" + d.placeholders(len(args)+1, usageInsertColCount) + ")"
		args = d.appendUsageArgs(args, &rows[i])
	}
	return strings.Join(values, ", "), args
}

// markInserted records, for each of rows[idx…] whose request id an INSERT … RETURNING
// answered (inserted: request id → new row id), its id and that it was inserted.
func markInserted(rows []store.Usage, idx []int, inserted map[string]int64, results []store.RecordResult) {
	for _, i := range idx {
		if id, ok := inserted[rows[i].RequestID]; ok {
			rows[i].ID = id
			results[i].Inserted = true
		}
	}
}

// appendUsageArgs appends the values of usageInsertCols for u to args.
func (d *DB) appendUsageArgs(args []any, u *store.Usage) []any {
	return append(args, u.RequestID, u.UserID, u.APIKeyID, u.AccountID, u.GroupID, u.Platform, u.Model, u.UpstreamModel,
		u.InputTokens, u.OutputTokens, u.CacheCreation5mTokens, u.CacheCreation1hTokens, u.CacheReadTokens,
		int64(u.Cost), u.RateMultiplierPPM, int64(u.Charged), u.BillingType, u.Stream, u.Partial, u.StatusCode,
		u.DurationMS, u.FirstByteMS, d.tv(u.CreatedAt))
}

func scanUsage(s scanner, u *store.Usage) error {
	return s.Scan(&u.ID, &u.RequestID, &u.UserID, &u.APIKeyID, &u.AccountID, &u.GroupID, &u.Platform, &u.Model,
		&u.UpstreamModel, &u.InputTokens, &u.OutputTokens, &u.CacheCreation5mTokens, &u.CacheCreation1hTokens,
		&u.CacheReadTokens, &u.Cost, &u.RateMultiplierPPM, &u.Charged, &u.BillingType, &u.Stream, &u.Partial,
		&u.StatusCode, &u.DurationMS, &u.FirstByteMS, timeDst{&u.CreatedAt})
}

// RecordUsage writes the batch in one transaction and bills each row whose request id is new:
// a multi-row INSERT … ON CONFLICT (request_id) DO NOTHING RETURNING tells which rows are new,
// then one UPDATE per user debits the summed balance charges, and each subscription's windows
// are advanced row by row in order under a row lock. A request id repeated inside the batch
// counts once (its first row). Rows with a zero CreatedAt get the current time; rows[i].ID is
// set for inserted rows. ErrInvalid (and nothing written) for an empty request id or an
// unknown billing type. A row whose user or subscription no longer exists is still recorded.
// On PostgreSQL a batch that bills balances only is one statement (recordBalanceBatch); on
// SQLite the statements are prepared once (ledgerStmts) and a small batch is inserted row by
// row with the prepared single-row INSERT.
func (d *DB) RecordUsage(ctx context.Context, rows []store.Usage) ([]store.RecordResult, error) {
	results := make([]store.RecordResult, len(rows))
	if len(rows) == 0 {
		return results, nil
	}
	now := d.clock()
	first := make(map[string]int, len(rows)) // request id → index of its first row
	var fresh []int                          // indexes of first occurrences, in order
	for i := range rows {
		u := &rows[i]
		results[i].RequestID = u.RequestID
		if u.RequestID == "" {
			return nil, invalid("record usage", "row %d has no request id", i)
		}
		if u.BillingType != store.BillingBalance && u.BillingType != store.BillingSubscription {
			return nil, invalid("record usage", "row %d (%s) has billing type %q", i, u.RequestID, u.BillingType)
		}
		if u.CreatedAt.IsZero() {
			u.CreatedAt = now
		}
		u.CreatedAt = u.CreatedAt.UTC().Truncate(time.Microsecond)
		if _, dup := first[u.RequestID]; !dup {
			first[u.RequestID] = i
			fresh = append(fresh, i)
		}
	}

	// Insert in request-id order: two batches sharing ids then wait on each other in the
	// same order and cannot deadlock on PostgreSQL's unique index.
	byID := slices.Clone(fresh)
	slices.SortFunc(byID, func(a, b int) int { return strings.Compare(rows[a].RequestID, rows[b].RequestID) })
	if d.pg && len(byID) <= usageChunk && balanceOnly(rows, fresh) {
		if err := d.recordBalanceBatch(ctx, rows, byID, results); err != nil {
			return nil, wrap("record usage", err)
		}
		return results, nil
	}

	var st *ledgerStmts
	if !d.pg {
		var err error
		if st, err = d.ledgerPrepared(ctx); err != nil {
			return nil, wrap("record usage", err)
		}
	}
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		lt := st.in(ctx, tx)
		if err := d.insertLedger(ctx, tx, lt, rows, byID, results); err != nil {
			return err
		}
		debits := map[int64]int64{}              // user → summed balance charges
		subRows := map[[2]int64][]*store.Usage{} // (user, group) → subscription rows in order
		for _, i := range fresh {
			u := &rows[i]
			if !results[i].Inserted || u.Charged == 0 {
				continue
			}
			if u.BillingType == store.BillingBalance {
				debits[u.UserID] += int64(u.Charged)
			} else {
				key := [2]int64{u.UserID, u.GroupID}
				subRows[key] = append(subRows[key], u)
			}
		}
		// Fixed order (ascending ids) so that concurrent batches lock rows alike: no deadlock.
		for _, userID := range sortedKeys(debits) {
			var err error
			if lt != nil {
				_, err = lt.debit.ExecContext(ctx, debits[userID], userID)
			} else {
				_, err = tx.ExecContext(ctx, debitUser, debits[userID], userID)
			}
			if err != nil {
				return fmt.Errorf("debit user %d: %w", userID, err)
			}
		}
		keys := make([][2]int64, 0, len(subRows))
		for k := range subRows {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]int64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
		for _, k := range keys {
			if err := d.chargeSubscription(ctx, tx, lt, k[0], k[1], subRows[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("record usage", err)
	}
	return results, nil
}

// balanceOnly reports whether none of the rows bills a subscription.
func balanceOnly(rows []store.Usage, idx []int) bool {
	for _, i := range idx {
		if rows[i].BillingType != store.BillingBalance {
			return false
		}
	}
	return true
}

// recordBalanceBatch is RecordUsage on PostgreSQL for a batch that bills balances only, in
// ONE statement (its own transaction): the INSERT … ON CONFLICT DO NOTHING RETURNING feeds
// an UPDATE of the users from the sums of the rows it inserted. The gateway commits every
// answered request before the client sees its end, so the statements of a batch are the
// database cost of a request under load: BEGIN, INSERT, UPDATE, COMMIT would be four.
//
// Concurrent batches (other nodes) naming the same users must lock them in one order, or
// they deadlock; the UPDATE's join follows no order of ours. So a statement charging
// several users first locks them in id order (the locked CTE: its LockRows sits above the
// Sort), and the UPDATE waits for that through a scalar subquery, which PostgreSQL
// evaluates once (an InitPlan) before the first row is updated. The UPDATE then finds the
// rows already locked by this statement and, in READ COMMITTED, re-reads a row another
// batch changed meanwhile (EvalPlanQual), so no charge is lost.
func (d *DB) recordBalanceBatch(ctx context.Context, rows []store.Usage, idx []int, results []store.RecordResult) error {
	values, args := d.usageValues(rows, idx)
	users := make(map[int64]bool)
	for _, i := range idx {
		if rows[i].Charged != 0 {
			users[rows[i].UserID] = true
		}
	}
	insert := "INSERT INTO usage_ledger (" + usageInsertCols + ") VALUES " + values +
		" ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id, user_id, charged"
	var q string
	switch ids := sortedKeys(users); len(ids) {
	case 0: // nothing to charge
		q = insert
	case 1:
		// One user, one row lock: no order to keep. This form is also planned once: its
		// generic plan finds the user by primary key, so PostgreSQL keeps it after five
		// executions, where for the form below it keeps planning afresh (~0.1 ms a commit,
		// measured with 20,000 users) because it cannot tell how many users the array holds.
		// Most batches have one user: every batch at low load.
		args = append(args, ids[0])
		n := len(args)
		q = "WITH ins AS (" + insert + ")," +
			" debit AS (UPDATE users SET balance = balance -" +
			fmt.Sprintf(" (SELECT CAST(COALESCE(SUM(charged), 0) AS BIGINT) FROM ins WHERE user_id = $%d)", n) +
			fmt.Sprintf(" WHERE id = $%d AND EXISTS (SELECT 1 FROM ins WHERE user_id = $%d AND charged <> 0))", n, n) +
			" SELECT id, request_id FROM ins"
	default:
		args = append(args, ids)
		q = "WITH ins AS (" + insert + ")," +
			fmt.Sprintf(" locked AS (SELECT id FROM users WHERE id = ANY($%d) ORDER BY id FOR UPDATE),", len(args)) +
			" debit AS (UPDATE users SET balance = users.balance - s.total" +
			" FROM (SELECT user_id, CAST(SUM(charged) AS BIGINT) AS total FROM ins WHERE charged <> 0 GROUP BY user_id) s" +
			" WHERE users.id = s.user_id AND (SELECT COUNT(*) FROM locked) >= 0)" +
			" SELECT id, request_id FROM ins"
	}
	res, err := d.w.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("insert ledger rows and debit balances: %w", err)
	}
	defer res.Close()
	inserted := make(map[string]int64, len(idx))
	for res.Next() {
		var id int64
		var requestID string
		if err := res.Scan(&id, &requestID); err != nil {
			return fmt.Errorf("insert ledger rows and debit balances: %w", err)
		}
		inserted[requestID] = id
	}
	// The statement commits when its result is read to the end: an error here (the
	// connection lost at that moment) leaves it unknown whether it did, which the request
	// ids make safe to retry.
	if err := res.Err(); err != nil {
		return fmt.Errorf("insert ledger rows and debit balances: %w", err)
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("insert ledger rows and debit balances: %w", err)
	}
	markInserted(rows, idx, inserted, results)
	return nil
}

// SQLite's billing statements. SQLite has no network round trip, so a batch costs what
// SQLite spends on it: statements prepared once and run row by row beat a multi-row INSERT
// whose text (its number of rows) changes with every batch and is parsed again each time.
const (
	insertUsageRow = "INSERT INTO usage_ledger (" + usageInsertCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, " +
		"$9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) ON CONFLICT (request_id) DO NOTHING RETURNING id"
	debitUser         = "UPDATE users SET balance = balance - $1 WHERE id = $2"
	readSubscription  = "SELECT " + subscriptionCols + " FROM subscriptions WHERE user_id = $1 AND group_id = $2"
	writeSubscription = `UPDATE subscriptions SET daily_used = $1, daily_start = $2, weekly_used = $3,
		weekly_start = $4, monthly_used = $5, monthly_start = $6 WHERE id = $7`
)

// sqliteRowByRow is the largest batch SQLite inserts row by row. Each prepared row costs a
// fixed overhead (database/sql, the driver) that parsing one multi-row text outgrows only
// in larger batches: measured on 2 cores, row by row is ~20 % cheaper per row at 4 and 10
// rows, even at 25, and dearer at 50. The gateway's batches are mostly a few rows.
const sqliteRowByRow = 24

// ledgerStmts holds SQLite's billing statements, prepared on the writer's one connection
// on first use (Open with SkipMigrate may run before the tables exist); a failed
// preparation is retried next time. The zero value is ready to use.
type ledgerStmts struct {
	mu                               sync.Mutex
	insert, debit, subRead, subWrite *sql.Stmt
}

// ledgerTx is ledgerStmts bound to one transaction.
type ledgerTx struct{ insert, debit, subRead, subWrite *sql.Stmt }

// ledgerPrepared returns the prepared billing statements, preparing them when needed.
func (d *DB) ledgerPrepared(ctx context.Context) (*ledgerStmts, error) {
	l := &d.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.insert != nil {
		return l, nil
	}
	var stmts [4]*sql.Stmt
	for i, q := range []string{insertUsageRow, debitUser, readSubscription, writeSubscription} {
		st, err := d.w.PrepareContext(ctx, q)
		if err != nil {
			for _, p := range stmts[:i] {
				p.Close()
			}
			return nil, fmt.Errorf("prepare billing statements: %w", err)
		}
		stmts[i] = st
	}
	l.insert, l.debit, l.subRead, l.subWrite = stmts[0], stmts[1], stmts[2], stmts[3]
	return l, nil
}

// in binds the statements to tx; nil (PostgreSQL: statements as text) stays nil. The
// writer has one connection, on which the statements are prepared already: binding them
// costs no new preparation. The transaction closes them when it ends.
func (l *ledgerStmts) in(ctx context.Context, tx *sql.Tx) *ledgerTx {
	if l == nil {
		return nil
	}
	return &ledgerTx{insert: tx.StmtContext(ctx, l.insert), debit: tx.StmtContext(ctx, l.debit),
		subRead: tx.StmtContext(ctx, l.subRead), subWrite: tx.StmtContext(ctx, l.subWrite)}
}

func (l *ledgerStmts) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, st := range []*sql.Stmt{l.insert, l.debit, l.subRead, l.subWrite} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	l.insert, l.debit, l.subRead, l.subWrite = nil, nil, nil, nil
	return errors.Join(errs...)
}

// insertLedger inserts rows[i] for i in idx, skipping request ids already in the ledger; for
// each row it inserted it sets rows[i].ID and results[i].Inserted. With lt (SQLite) and a
// small batch it runs the prepared single-row INSERT per row, otherwise multi-row INSERTs of
// up to usageChunk rows.
func (d *DB) insertLedger(ctx context.Context, tx *sql.Tx, lt *ledgerTx, rows []store.Usage, idx []int, results []store.RecordResult) error {
	if lt != nil && len(idx) <= sqliteRowByRow {
		args := make([]any, 0, usageInsertColCount)
		for _, i := range idx {
			args = d.appendUsageArgs(args[:0], &rows[i])
			var id int64
			err := lt.insert.QueryRowContext(ctx, args...).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				continue // already in the ledger
			}
			if err != nil {
				return fmt.Errorf("insert ledger row %s: %w", rows[i].RequestID, err)
			}
			rows[i].ID = id
			results[i].Inserted = true
		}
		return nil
	}
	inserted := make(map[string]int64, len(idx))
	for chunk := range slices.Chunk(idx, usageChunk) {
		values, args := d.usageValues(rows, chunk)
		q := "INSERT INTO usage_ledger (" + usageInsertCols + ") VALUES " + values +
			" ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id"
		res, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("insert ledger rows: %w", err)
		}
		for res.Next() {
			var id int64
			var requestID string
			if err := res.Scan(&id, &requestID); err != nil {
				res.Close()
				return fmt.Errorf("insert ledger rows: %w", err)
			}
			inserted[requestID] = id
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("insert ledger rows: %w", err)
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("insert ledger rows: %w", err)
		}
	}
	markInserted(rows, idx, inserted, results)
	return nil
}

// chargeSubscription adds the rows' charges to the windows of the user's subscription to the
// group. The row is locked (FOR UPDATE on PostgreSQL; SQLite's write lock is already held),
// so computing the new windows in Go cannot lose a concurrent charge. lt: as in insertLedger.
func (d *DB) chargeSubscription(ctx context.Context, tx *sql.Tx, lt *ledgerTx, userID, groupID int64, rows []*store.Usage) error {
	var row *sql.Row
	if lt != nil {
		row = lt.subRead.QueryRowContext(ctx, userID, groupID)
	} else {
		row = tx.QueryRowContext(ctx, readSubscription+" FOR UPDATE", userID, groupID)
	}
	var s store.Subscription
	err := scanSubscription(row, &s)
	if errors.Is(err, sql.ErrNoRows) {
		// Deleted while the request ran: the ledger row stands, there is no window to charge.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read subscription of user %d to group %d: %w", userID, groupID, err)
	}
	for _, u := range rows {
		chargeWindow(&s.DailyStart, &s.DailyUsed, dailyWindow, u.CreatedAt, u.Charged)
		chargeWindow(&s.WeeklyStart, &s.WeeklyUsed, weeklyWindow, u.CreatedAt, u.Charged)
		chargeWindow(&s.MonthlyStart, &s.MonthlyUsed, monthlyWindow, u.CreatedAt, u.Charged)
	}
	args := []any{int64(s.DailyUsed), d.tv(s.DailyStart), int64(s.WeeklyUsed), d.tv(s.WeeklyStart),
		int64(s.MonthlyUsed), d.tv(s.MonthlyStart), s.ID}
	if lt != nil {
		_, err = lt.subWrite.ExecContext(ctx, args...)
	} else {
		_, err = tx.ExecContext(ctx, writeSubscription, args...)
	}
	if err != nil {
		return fmt.Errorf("charge subscription %d: %w", s.ID, err)
	}
	return nil
}

// chargeWindow adds amount used at time at to a window of the given length, restarting the
// window at at when its start is length or more before at.
func chargeWindow(start *time.Time, used *store.Nanos, length time.Duration, at time.Time, amount store.Nanos) {
	if at.Sub(*start) >= length {
		*start, *used = at, amount
		return
	}
	*used += amount
}

// usageWhere builds the WHERE clause (without the keyword; "1=1" when empty) of a filter.
func (d *DB) usageWhere(f store.UsageFilter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.UserID != 0 {
		add("user_id = $%d", f.UserID)
	}
	if f.APIKeyID != 0 {
		add("api_key_id = $%d", f.APIKeyID)
	}
	if f.AccountID != 0 {
		add("account_id = $%d", f.AccountID)
	}
	if f.GroupID != 0 {
		add("group_id = $%d", f.GroupID)
	}
	if f.Model != "" {
		add("model = $%d", f.Model)
	}
	if !f.From.IsZero() {
		add("created_at >= $%d", d.tv(f.From))
	}
	if !f.To.IsZero() {
		add("created_at < $%d", d.tv(f.To))
	}
	if len(conds) == 0 {
		return "1=1", nil
	}
	return strings.Join(conds, " AND "), args
}

// ListUsage lists ledger rows matching f, newest first.
func (d *DB) ListUsage(ctx context.Context, f store.UsageFilter, p store.Page) ([]store.Usage, int, error) {
	where, args := d.usageWhere(f)
	return listPage(ctx, d, "list usage", usageCols, "usage_ledger", where, args, "created_at DESC, id DESC", p, scanUsage)
}

// usageSums are the aggregate columns of UsageTotals and DailyUsageByModel. CAST keeps
// PostgreSQL's SUM(bigint) (a numeric) an integer.
const usageSums = "COUNT(*), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), " +
	"CAST(COALESCE(SUM(cache_creation_5m_tokens + cache_creation_1h_tokens), 0) AS BIGINT), " +
	"CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost), 0) AS BIGINT), " +
	"CAST(COALESCE(SUM(charged), 0) AS BIGINT)"

func sumsDest(t *store.DailyModelUsage) []any {
	return []any{&t.Requests, &t.InputTokens, &t.OutputTokens, &t.CacheCreationTokens, &t.CacheReadTokens, &t.Cost, &t.Charged}
}

// UsageTotals sums the ledger rows matching f.
func (d *DB) UsageTotals(ctx context.Context, f store.UsageFilter) (store.DailyModelUsage, error) {
	where, args := d.usageWhere(f)
	var t store.DailyModelUsage
	err := d.r.QueryRowContext(ctx, "SELECT "+usageSums+" FROM usage_ledger WHERE "+where, args...).Scan(sumsDest(&t)...)
	return t, wrap("usage totals", err)
}

// DailyUsageByModel sums the ledger rows matching f per UTC day and model, by day then model.
func (d *DB) DailyUsageByModel(ctx context.Context, f store.UsageFilter) ([]store.DailyModelUsage, error) {
	day := "strftime('%Y-%m-%d', created_at / 1000000, 'unixepoch')"
	if d.pg {
		day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	where, args := d.usageWhere(f)
	q := "SELECT " + day + " AS day, model, " + usageSums + " FROM usage_ledger WHERE " + where +
		" GROUP BY day, model ORDER BY day, model"
	return queryAll(ctx, d, "daily usage by model", q, args, func(s scanner, t *store.DailyModelUsage) error {
		return s.Scan(append([]any{&t.Day, &t.Model}, sumsDest(t)...)...)
	})
}
