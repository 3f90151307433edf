package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fluxcode/fluxcode/internal/store"
)

// mapErr turns driver errors into the store's errors, keeping the driver's text for logs:
// no rows → ErrNotFound, unique violations → ErrConflict, foreign key, check and not-null
// violations → ErrInvalid.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var kind error
	var le *sqlite.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &le):
		switch le.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			kind = store.ErrConflict
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, sqlite3.SQLITE_CONSTRAINT_CHECK,
			sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_TRIGGER:
			kind = store.ErrInvalid
		}
	case errors.As(err, &pe):
		switch pe.Code {
		case "23505": // unique_violation
			kind = store.ErrConflict
		case "23503", "23514", "23502", "22P02", "22003": // foreign key, check, not null, bad text, out of range
			kind = store.ErrInvalid
		}
	}
	if kind == nil {
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// wrap names the operation and maps the error; nil stays nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlstore: %s: %w", op, mapErr(err))
}

// invalid reports a rule the store checks before touching the database.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("sqlstore: %s: %w: %s", op, store.ErrInvalid, fmt.Sprintf(format, args...))
}

// mustAffect turns "no row matched" into ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// tv converts a time to the column representation: SQLite keeps INTEGER microseconds since
// the epoch (numbers compare and sort correctly; the driver's text format does not),
// PostgreSQL a TIMESTAMPTZ. Both keep microseconds.
func (d *DB) tv(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if d.pg {
		return t
	}
	return t.UnixMicro()
}

// tvp is tv for a nullable column.
func (d *DB) tvp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.tv(*t)
}

// timeDst scans either representation of tv into a UTC time; NULL gives the zero time.
type timeDst struct{ p *time.Time }

func (s timeDst) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*s.p = time.UnixMicro(x).UTC()
	case time.Time:
		*s.p = x.UTC()
	case nil:
		*s.p = time.Time{}
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as a time", v)
	}
	return nil
}

// nullTimeDst scans a nullable time column into a *time.Time (nil for NULL).
type nullTimeDst struct{ p **time.Time }

func (s nullTimeDst) Scan(v any) error {
	if v == nil {
		*s.p = nil
		return nil
	}
	var t time.Time
	if err := (timeDst{&t}).Scan(v); err != nil {
		return err
	}
	*s.p = &t
	return nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// Page bounds.
const (
	defaultPageLimit = 20
	maxPageLimit     = 200
)

// pageArgs applies the documented defaults of store.Page.
func pageArgs(p store.Page) (limit, offset int) {
	limit = p.Limit
	if limit <= 0 {
		limit = defaultPageLimit
	}
	limit = min(limit, maxPageLimit)
	return limit, max(p.Offset, 0)
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// placeholders returns n parameters numbered from: "$from, $from+1, …" on PostgreSQL, and
// plain "?, ?, …" on SQLite, whose lookup of numbered names grows with the square of their
// count (a 500-row INSERT spent most of its time there).
func (d *DB) placeholders(from, n int) string {
	if !d.pg {
		return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
	}
	b := make([]byte, 0, n*5)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(append(b, '$'), int64(from+i), 10) // per ledger row: no fmt
	}
	return string(b)
}

// queryAll runs q on the reader pool and scans every row with scan.
func queryAll[T any](ctx context.Context, d *DB, op, q string, args []any, scan func(scanner, *T) error) ([]T, error) {
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, v)
	}
	return out, wrap(op, rows.Err())
}

// listPage reads one page of "SELECT cols FROM from WHERE where ORDER BY order" and the total
// count of rows the WHERE clause selects. where may be empty; its parameters are args.
func listPage[T any](ctx context.Context, d *DB, op, cols, from, where string, args []any, order string,
	p store.Page, scan func(scanner, *T) error) ([]T, int, error) {
	if where != "" {
		where = " WHERE " + where
	}
	var total int
	if err := d.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+from+where, args...).Scan(&total); err != nil {
		return nil, 0, wrap(op, err)
	}
	limit, offset := pageArgs(p)
	q := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT $%d OFFSET $%d", cols, from, where, order, len(args)+1, len(args)+2)
	out, err := queryAll(ctx, d, op, q, append(args[:len(args):len(args)], limit, offset), scan)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// sortedKeys returns the keys of m in ascending order.
func sortedKeys[V any](m map[int64]V) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// deleteByID deletes one row of table by id; ErrNotFound when there is none.
func (d *DB) deleteByID(ctx context.Context, table, what string, id int64) error {
	err := mustAffect(d.w.ExecContext(ctx, "DELETE FROM "+table+" WHERE id = $1", id))
	return wrap(fmt.Sprintf("delete %s %d", what, id), err)
}

// ownedBy selects one user's rows, or every row for user 0.
func ownedBy(userID int64) (where string, args []any) {
	if userID == 0 {
		return "", nil
	}
	return "user_id = $1", []any{userID}
}

// lines stores a list of short strings as one newline-separated text (” for none).
func lines(v []string) string { return strings.Join(v, "\n") }

// linesDst scans a lines column; ” is a nil list.
type linesDst struct{ p *[]string }

func (s linesDst) Scan(v any) error {
	var text string
	switch t := v.(type) {
	case string:
		text = t
	case []byte:
		text = string(t)
	case nil:
	default:
		return fmt.Errorf("sqlstore: lines column of type %T", v)
	}
	*s.p = nil
	if text != "" {
		*s.p = strings.Split(text, "\n")
	}
	return nil
}
