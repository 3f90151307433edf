package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

const accountCols = "id, name, platform, type, credentials, base_url, proxy_id, priority, concurrency, model_mapping, " +
	"status, error_message, schedulable, rate_limited_until, overloaded_until, temp_unsched_until, temp_unsched_reason, " +
	"last_used_at, created_at, updated_at, credentials_version, usage_windows"

// accountSelect reads accounts with their group ids folded into one text column, so a list
// needs a single query. The aggregate is the one place the dialects differ here.
func (d *DB) accountSelect() string {
	agg := "(SELECT group_concat(group_id, ',') FROM account_groups ag WHERE ag.account_id = a.id)"
	if d.pg {
		agg = "(SELECT string_agg(group_id::text, ',') FROM account_groups ag WHERE ag.account_id = a.id)"
	}
	cols := strings.Split(accountCols, ", ")
	for i, c := range cols {
		cols[i] = "a." + c
	}
	return "SELECT " + strings.Join(cols, ", ") + ", COALESCE(" + agg + ", '') FROM accounts a"
}

// scanAccount reads a row of accountSelect and opens the sealed credentials.
func (d *DB) scanAccount(s scanner, a *store.Account) error {
	var sealed, mapping, windows, groups string
	err := s.Scan(&a.ID, &a.Name, &a.Platform, &a.Type, &sealed, &a.BaseURL, &a.ProxyID, &a.Priority, &a.Concurrency,
		&mapping, &a.Status, &a.ErrorMessage, &a.Schedulable, nullTimeDst{&a.RateLimitedUntil},
		nullTimeDst{&a.OverloadedUntil}, nullTimeDst{&a.TempUnschedUntil}, &a.TempUnschedReason,
		nullTimeDst{&a.LastUsedAt}, timeDst{&a.CreatedAt}, timeDst{&a.UpdatedAt}, &a.CredentialsVersion, &windows, &groups)
	if err != nil {
		return err
	}
	a.Windows = nil
	if windows != "" {
		a.Windows = new(store.UsageWindows)
		if err := json.Unmarshal([]byte(windows), a.Windows); err != nil {
			return fmt.Errorf("account %d usage windows: %w", a.ID, err)
		}
	}
	plain, err := d.keys.OpenString(sealed)
	if err != nil {
		return fmt.Errorf("account %d credentials: %w", a.ID, err)
	}
	a.Credentials = store.Credentials{}
	if plain != "" {
		if err := json.Unmarshal([]byte(plain), &a.Credentials); err != nil {
			return fmt.Errorf("account %d credentials: %w", a.ID, err)
		}
	}
	a.ModelMapping = nil
	if err := json.Unmarshal([]byte(mapping), &a.ModelMapping); err != nil {
		return fmt.Errorf("account %d model mapping: %w", a.ID, err)
	}
	if len(a.ModelMapping) == 0 {
		a.ModelMapping = nil
	}
	a.GroupIDs = nil
	for g := range strings.SplitSeq(groups, ",") {
		if g == "" {
			continue
		}
		id, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return fmt.Errorf("account %d groups: %w", a.ID, err)
		}
		a.GroupIDs = append(a.GroupIDs, id)
	}
	slices.Sort(a.GroupIDs)
	return nil
}

// sealedAccount returns the stored forms of the credentials and the model mapping.
func (d *DB) sealedAccount(a *store.Account) (creds, mapping string, err error) {
	c, err := json.Marshal(a.Credentials)
	if err != nil {
		return "", "", fmt.Errorf("encode credentials: %w", err)
	}
	m := a.ModelMapping
	if m == nil {
		m = map[string]string{}
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return "", "", fmt.Errorf("encode model mapping: %w", err)
	}
	return d.keys.SealString(string(c)), string(mb), nil
}

// CreateAccount inserts a with its credentials sealed and its group memberships; an empty
// Status means StatusActive. ErrInvalid for an unknown platform, type, proxy or group.
func (d *DB) CreateAccount(ctx context.Context, a *store.Account) error {
	a.Status = orDefault(a.Status, store.StatusActive)
	creds, mapping, err := d.sealedAccount(a)
	if err != nil {
		return wrap("create account", err)
	}
	now := d.clock()
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO accounts (name, platform, type, credentials, base_url, proxy_id,
			priority, concurrency, model_mapping, status, error_message, schedulable, temp_unsched_reason,
			created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13, $13) RETURNING id`,
			a.Name, a.Platform, a.Type, creds, a.BaseURL, a.ProxyID, a.Priority, a.Concurrency, mapping,
			a.Status, a.ErrorMessage, a.Schedulable, d.tv(now)).Scan(&a.ID)
		if err != nil {
			return err
		}
		return d.setAccountGroups(ctx, tx, a.ID, a.GroupIDs, false)
	})
	if err != nil {
		return wrap("create account", err)
	}
	a.CreatedAt, a.UpdatedAt = now, now
	return nil
}

// setAccountGroups makes groups the account's memberships.
func (d *DB) setAccountGroups(ctx context.Context, tx *sql.Tx, accountID int64, groups []int64, replace bool) error {
	if replace {
		if _, err := tx.ExecContext(ctx, "DELETE FROM account_groups WHERE account_id = $1", accountID); err != nil {
			return err
		}
	}
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	if len(groups) == 0 {
		return nil
	}
	values := make([]string, len(groups))
	args := make([]any, 0, len(groups)+1)
	args = append(args, accountID)
	for i, g := range groups {
		values[i] = fmt.Sprintf("($1, $%d)", i+2)
		args = append(args, g)
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO account_groups (account_id, group_id) VALUES "+strings.Join(values, ", "), args...)
	return err
}

func (d *DB) GetAccount(ctx context.Context, id int64) (*store.Account, error) {
	var a store.Account
	if err := d.scanAccount(d.r.QueryRowContext(ctx, d.accountSelect()+" WHERE a.id = $1", id), &a); err != nil {
		return nil, wrap(fmt.Sprintf("get account %d", id), err)
	}
	return &a, nil
}

func (d *DB) ListAccounts(ctx context.Context, p store.Page) ([]store.Account, int, error) {
	where, args := filterSQL{search: []string{"a.name"}, status: "a.status", platform: "a.platform",
		group: "EXISTS (SELECT 1 FROM account_groups fg WHERE fg.account_id = a.id AND fg.group_id = $?)"}.where(p.Filter, nil)
	if where != "" {
		where = " WHERE " + where
	}
	var total int
	if err := d.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts a"+where, args...).Scan(&total); err != nil {
		return nil, 0, wrap("count accounts", err)
	}
	limit, offset := pageArgs(p)
	q := fmt.Sprintf("%s%s ORDER BY a.id LIMIT $%d OFFSET $%d", d.accountSelect(), where, len(args)+1, len(args)+2)
	out, err := queryAll(ctx, d, "list accounts", q, append(args, limit, offset), d.scanAccount)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// AccountsByGroup returns every account of the group, whatever its state, credentials opened,
// ordered by priority then id.
func (d *DB) AccountsByGroup(ctx context.Context, groupID int64) ([]store.Account, error) {
	return queryAll(ctx, d, fmt.Sprintf("accounts of group %d", groupID), d.accountsByGroupQuery(),
		[]any{groupID}, d.scanAccount)
}

// accountsByGroupQuery is AccountsByGroup's statement: warmConn prepares it on a new
// connection after an outage, since every request reads it.
func (d *DB) accountsByGroupQuery() string {
	return d.accountSelect() +
		" WHERE a.id IN (SELECT account_id FROM account_groups WHERE group_id = $1) ORDER BY a.priority, a.id"
}

// UpdateAccount writes everything but the health marks, the windows and LastUsedAt, replaces
// the group memberships, and sets a.UpdatedAt. The credentials are compared with the stored
// ones in the same transaction: unchanged, nothing about them is written (an edit of the name
// must not race a token refresh); changed, they are written only over the version a was read
// at, and the version grows.
func (d *DB) UpdateAccount(ctx context.Context, a *store.Account) error {
	creds, mapping, err := d.sealedAccount(a)
	if err != nil {
		return wrap("update account", err)
	}
	now := d.clock()
	version := a.CredentialsVersion
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		var stored string
		var storedVersion int64
		err := tx.QueryRowContext(ctx, "SELECT credentials, credentials_version FROM accounts WHERE id = $1", a.ID).
			Scan(&stored, &storedVersion)
		if err != nil {
			return err
		}
		same, err := d.sameCredentials(stored, a.Credentials)
		if err != nil {
			return err
		}
		version = storedVersion
		if !same && storedVersion == a.CredentialsVersion {
			version++
		} else {
			creds = stored // unchanged, or newer ones were stored meanwhile: they stay
		}
		err = mustAffect(tx.ExecContext(ctx, `UPDATE accounts SET name = $1, platform = $2, type = $3, credentials = $4,
			base_url = $5, proxy_id = $6, priority = $7, concurrency = $8, model_mapping = $9, status = $10,
			error_message = $11, schedulable = $12, updated_at = $13, credentials_version = $14 WHERE id = $15`,
			a.Name, a.Platform, a.Type, creds, a.BaseURL, a.ProxyID, a.Priority, a.Concurrency, mapping,
			a.Status, a.ErrorMessage, a.Schedulable, d.tv(now), version, a.ID))
		if err != nil {
			return err
		}
		return d.setAccountGroups(ctx, tx, a.ID, a.GroupIDs, true)
	})
	if err != nil {
		return wrap(fmt.Sprintf("update account %d", a.ID), err)
	}
	a.UpdatedAt, a.CredentialsVersion = now, version
	return nil
}

// sameCredentials reports whether the sealed stored credentials are c.
func (d *DB) sameCredentials(sealed string, c store.Credentials) (bool, error) {
	plain, err := d.keys.OpenString(sealed)
	if err != nil {
		return false, fmt.Errorf("open credentials: %w", err)
	}
	want, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("encode credentials: %w", err)
	}
	var old store.Credentials
	if plain != "" {
		if err := json.Unmarshal([]byte(plain), &old); err != nil {
			return false, fmt.Errorf("decode credentials: %w", err)
		}
	}
	got, err := json.Marshal(old)
	if err != nil {
		return false, fmt.Errorf("encode credentials: %w", err)
	}
	return string(got) == string(want), nil
}

// UpdateCredentials replaces the credentials when the stored version is still version: one
// conditional statement, so two writers based on the same read cannot both win.
func (d *DB) UpdateCredentials(ctx context.Context, id int64, c store.Credentials, version int64) (int64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return 0, wrap("update credentials", fmt.Errorf("encode credentials: %w", err))
	}
	res, err := d.w.ExecContext(ctx, `UPDATE accounts SET credentials = $1, credentials_version = credentials_version + 1,
		updated_at = $2 WHERE id = $3 AND credentials_version = $4`, d.keys.SealString(string(b)), d.tv(d.clock()), id, version)
	if err != nil {
		return 0, wrap(fmt.Sprintf("update credentials of account %d", id), err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return version + 1, wrap(fmt.Sprintf("update credentials of account %d", id), err)
	}
	var stored int64
	err = d.w.QueryRowContext(ctx, "SELECT credentials_version FROM accounts WHERE id = $1", id).Scan(&stored)
	if err != nil {
		return 0, wrap(fmt.Sprintf("update credentials of account %d", id), err)
	}
	return 0, fmt.Errorf("sqlstore: update credentials of account %d: %w: version %d, stored %d",
		id, store.ErrConflict, version, stored)
}

// SetAccountWindows records the usage windows last reported for the account.
func (d *DB) SetAccountWindows(ctx context.Context, id int64, w store.UsageWindows) error {
	b, err := json.Marshal(w)
	if err != nil {
		return wrap("set account windows", err)
	}
	return wrap(fmt.Sprintf("set windows of account %d", id),
		mustAffect(d.w.ExecContext(ctx, "UPDATE accounts SET usage_windows = $1 WHERE id = $2", string(b), id)))
}

// MarkAccount writes the non-nil fields of m, and nothing else: marks from the gateway never
// overwrite what an admin changed meanwhile.
func (d *DB) MarkAccount(ctx context.Context, id int64, m store.AccountMark) error {
	var sets []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if m.RateLimitedUntil != nil {
		add("rate_limited_until", d.tv(*m.RateLimitedUntil))
	}
	if m.OverloadedUntil != nil {
		add("overloaded_until", d.tv(*m.OverloadedUntil))
	}
	if m.TempUnschedUntil != nil {
		add("temp_unsched_until", d.tv(*m.TempUnschedUntil))
	}
	if m.TempUnschedReason != nil {
		add("temp_unsched_reason", *m.TempUnschedReason)
	}
	if m.Status != nil {
		add("status", *m.Status)
	}
	if m.ErrorMessage != nil {
		add("error_message", *m.ErrorMessage)
	}
	if len(sets) == 0 {
		sets = append(sets, "id = id") // still report a missing account
	}
	args = append(args, id)
	q := fmt.Sprintf("UPDATE accounts SET %s WHERE id = $%d", strings.Join(sets, ", "), len(args))
	return wrap(fmt.Sprintf("mark account %d", id), mustAffect(d.w.ExecContext(ctx, q, args...)))
}

// ClearAccountMarks lifts every health mark and an error status (a disabled account stays
// disabled: that is the admin's switch, not a mark).
func (d *DB) ClearAccountMarks(ctx context.Context, id int64) error {
	err := mustAffect(d.w.ExecContext(ctx, `UPDATE accounts SET rate_limited_until = NULL, overloaded_until = NULL,
		temp_unsched_until = NULL, temp_unsched_reason = '', error_message = '',
		status = CASE WHEN status = 'error' THEN 'active' ELSE status END, updated_at = $1 WHERE id = $2`,
		d.tv(d.clock()), id))
	return wrap(fmt.Sprintf("clear marks of account %d", id), err)
}

// TouchAccounts records when accounts were last used; a time never moves backwards.
func (d *DB) TouchAccounts(ctx context.Context, used map[int64]time.Time) error {
	return wrap("touch accounts", d.touch(ctx, "accounts", used))
}

// DeleteAccount removes the account and its group memberships; its ledger rows stay.
func (d *DB) DeleteAccount(ctx context.Context, id int64) error {
	return d.deleteByID(ctx, "accounts", "account", id)
}

// BulkUpdateAccounts changes every account of ids in one transaction, after checking they
// all exist, so a bulk change is never half applied.
func (d *DB) BulkUpdateAccounts(ctx context.Context, ids []int64, c store.AccountBulkChange) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, "$"+strconv.Itoa(i+1)
	}
	in := "id IN (" + strings.Join(marks, ", ") + ")"
	next := "$" + strconv.Itoa(len(ids)+1)
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts WHERE "+in, args...).Scan(&n); err != nil {
			return err
		}
		if n != len(ids) {
			return fmt.Errorf("%d of %d accounts exist: %w", n, len(ids), store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET updated_at = "+next+" WHERE "+in,
			append(args[:len(args):len(args)], d.tv(d.clock()))...); err != nil {
			return err
		}
		if c.Status != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET status = "+next+" WHERE "+in,
				append(args[:len(args):len(args)], *c.Status)...); err != nil {
				return err
			}
		}
		if c.GroupIDs != nil {
			for _, id := range ids {
				if err := d.setAccountGroups(ctx, tx, id, *c.GroupIDs, true); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return wrap(fmt.Sprintf("bulk update of %d accounts", len(ids)), err)
}

// AccountFigures sums the ledger per account (served requests, tokens, cost) and adds the
// failed attempts counted per day in account_errors.
func (d *DB) AccountFigures(ctx context.Context, accountID int64, since time.Time) ([]store.AccountFigures, error) {
	ledgerWhere, ledgerArgs := "account_id <> 0", []any{}
	errWhere, errArgs := "1 = 1", []any{}
	if !since.IsZero() {
		ledgerWhere, ledgerArgs = ledgerWhere+" AND created_at >= $1", append(ledgerArgs, d.tv(since))
		errWhere, errArgs = "day >= $1", append(errArgs, since.UTC().Format(time.DateOnly))
	}
	if accountID != 0 {
		ledgerWhere += fmt.Sprintf(" AND account_id = $%d", len(ledgerArgs)+1)
		errWhere += fmt.Sprintf(" AND account_id = $%d", len(errArgs)+1)
		ledgerArgs, errArgs = append(ledgerArgs, accountID), append(errArgs, accountID)
	}
	byID := map[int64]*store.AccountFigures{}
	of := func(id int64) *store.AccountFigures {
		if byID[id] == nil {
			byID[id] = &store.AccountFigures{AccountID: id}
		}
		return byID[id]
	}
	type sums struct {
		id int64
		t  store.DailyModelUsage
	}
	served, err := queryAll(ctx, d, "account figures", "SELECT account_id, "+usageSums+" FROM usage_ledger WHERE "+
		ledgerWhere+" GROUP BY account_id", ledgerArgs, func(s scanner, r *sums) error {
		return s.Scan(append([]any{&r.id}, sumsDest(&r.t)...)...)
	})
	if err != nil {
		return nil, err
	}
	for _, r := range served {
		f, t := of(r.id), r.t
		f.Requests, f.InputTokens, f.OutputTokens = t.Requests, t.InputTokens, t.OutputTokens
		f.CacheCreationTokens, f.CacheReadTokens, f.Cost = t.CacheCreationTokens, t.CacheReadTokens, t.Cost
	}
	failed, err := queryAll(ctx, d, "account errors", "SELECT account_id, CAST(SUM(errors) AS BIGINT) FROM account_errors WHERE "+
		errWhere+" GROUP BY account_id", errArgs, func(s scanner, e *store.AccountErrors) error {
		return s.Scan(&e.AccountID, &e.Errors)
	})
	if err != nil {
		return nil, err
	}
	for _, e := range failed {
		of(e.AccountID).Errors = e.Errors
	}
	out := make([]store.AccountFigures, 0, len(byID))
	for _, id := range sortedKeys(byID) {
		out = append(out, *byID[id])
	}
	return out, nil
}

// AddAccountErrors adds the rows' counts in one transaction, in key order so that two nodes'
// transactions cannot deadlock; the upsert makes their additions sum.
func (d *DB) AddAccountErrors(ctx context.Context, rows []store.AccountErrors) error {
	if len(rows) == 0 {
		return nil
	}
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b store.AccountErrors) int {
		return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), strings.Compare(a.Day, b.Day))
	})
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO account_errors (day, account_id, errors) VALUES ($1, $2, $3)
				ON CONFLICT (account_id, day) DO UPDATE SET errors = account_errors.errors + excluded.errors`,
				r.Day, r.AccountID, r.Errors); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("add account errors", err)
}
