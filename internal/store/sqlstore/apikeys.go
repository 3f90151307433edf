package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

const apiKeyCols = "id, user_id, group_id, name, hash, prefix, status, concurrency, expires_at, " +
	"admin_disabled, admin_concurrency, admin_expires_at, allowed_models, allowed_ips, rpm_limit, tpm_limit, " +
	"last_used_at, created_at, updated_at"

func apiKeyDest(k *store.APIKey) []any {
	return []any{&k.ID, &k.UserID, &k.GroupID, &k.Name, &k.Hash, &k.Prefix, &k.Status, &k.Concurrency,
		nullTimeDst{&k.ExpiresAt}, &k.AdminDisabled, &k.AdminConcurrency, nullTimeDst{&k.AdminExpiresAt},
		linesDst{&k.AllowedModels}, linesDst{&k.AllowedIPs}, &k.RPMLimit, &k.TPMLimit, nullTimeDst{&k.LastUsedAt}, timeDst{&k.CreatedAt}, timeDst{&k.UpdatedAt}}
}

func scanAPIKey(s scanner, k *store.APIKey) error { return s.Scan(apiKeyDest(k)...) }

// CreateAPIKey inserts k; an empty Status means StatusActive. ErrConflict on a taken hash,
// ErrInvalid for an unknown user or group or an empty hash.
func (d *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	if len(k.Hash) == 0 {
		return invalid("create api key", "empty hash")
	}
	k.Status = orDefault(k.Status, store.StatusActive)
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `INSERT INTO api_keys (user_id, group_id, name, hash, prefix, status, concurrency,
		expires_at, admin_disabled, admin_concurrency, admin_expires_at, allowed_models, allowed_ips, rpm_limit, tpm_limit,
		created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING id`,
		k.UserID, k.GroupID, k.Name, k.Hash, k.Prefix, k.Status, k.Concurrency, d.tvp(k.ExpiresAt),
		k.AdminDisabled, k.AdminConcurrency, d.tvp(k.AdminExpiresAt), lines(k.AllowedModels), lines(k.AllowedIPs),
		k.RPMLimit, k.TPMLimit, d.tv(now)).Scan(&k.ID)
	if err != nil {
		return wrap("create api key", err)
	}
	k.CreatedAt, k.UpdatedAt, k.LastUsedAt = now, now, nil
	return nil
}

func (d *DB) GetAPIKey(ctx context.Context, id int64) (*store.APIKey, error) {
	var k store.APIKey
	if err := scanAPIKey(d.r.QueryRowContext(ctx, "SELECT "+apiKeyCols+" FROM api_keys WHERE id = $1", id), &k); err != nil {
		return nil, wrap(fmt.Sprintf("get api key %d", id), err)
	}
	return &k, nil
}

// ListAPIKeys lists a user's keys (userID 0: everyone's) in creation order.
func (d *DB) ListAPIKeys(ctx context.Context, userID int64, p store.Page) ([]store.APIKey, int, error) {
	where, args := ownedBy(userID)
	where, args = filterSQL{search: []string{"name", "prefix"}, status: "status", group: "group_id = $?"}.
		and(where, p.Filter, args)
	return listPage(ctx, d, "list api keys", apiKeyCols, "api_keys", where, args, "id", p, scanAPIKey)
}

// UpdateAPIKey writes Name, GroupID, Status, Concurrency, ExpiresAt, the admin limits and the
// policy, and sets k.UpdatedAt.
func (d *DB) UpdateAPIKey(ctx context.Context, k *store.APIKey) error {
	now := d.clock()
	err := mustAffect(d.w.ExecContext(ctx, `UPDATE api_keys SET name = $1, group_id = $2, status = $3, concurrency = $4,
		expires_at = $5, admin_disabled = $6, admin_concurrency = $7, admin_expires_at = $8, updated_at = $9,
		allowed_models = $11, allowed_ips = $12, rpm_limit = $13, tpm_limit = $14 WHERE id = $10`,
		k.Name, k.GroupID, k.Status, k.Concurrency, d.tvp(k.ExpiresAt), k.AdminDisabled, k.AdminConcurrency,
		d.tvp(k.AdminExpiresAt), d.tv(now), k.ID, lines(k.AllowedModels), lines(k.AllowedIPs), k.RPMLimit, k.TPMLimit))
	if err != nil {
		return wrap(fmt.Sprintf("update api key %d", k.ID), err)
	}
	k.UpdatedAt = now
	return nil
}

func (d *DB) DeleteAPIKey(ctx context.Context, id int64) error {
	return d.deleteByID(ctx, "api_keys", "api key", id)
}

// keyAuthQuery reads everything admission needs in one round trip. The subscription is the
// user's active, unexpired subscription to the key's group, joined only when the group
// bills by subscription; COALESCE keeps the scan the same when there is none (its id is 0).
// The last column says whether the user may use the group (KeyAuth.Allowed).
func keyAuthQuery() string {
	var cols []string
	for _, t := range []struct{ alias, cols string }{{"k", apiKeyCols}, {"u", userCols}, {"g", groupCols}} {
		for c := range strings.SplitSeq(t.cols, ", ") {
			cols = append(cols, t.alias+"."+c)
		}
	}
	for c := range strings.SplitSeq(subscriptionCols, ", ") {
		zero := "0"
		switch {
		case c == "status":
			zero = "''"
		case strings.HasSuffix(c, "_at") || strings.HasSuffix(c, "_start"):
			zero = "k.created_at" // any non-null time of the right type
		}
		cols = append(cols, fmt.Sprintf("COALESCE(s.%s, %s)", c, zero))
	}
	cols = append(cols, fmt.Sprintf(mayUseGroupSQL, "k.user_id"))
	return "SELECT " + strings.Join(cols, ", ") + `
		FROM api_keys k
		JOIN users u ON u.id = k.user_id
		JOIN groups g ON g.id = k.group_id
		LEFT JOIN subscriptions s ON s.user_id = k.user_id AND s.group_id = k.group_id
			AND g.billing_type = 'subscription' AND s.status = 'active' AND s.expires_at > $2
		WHERE k.hash = $1`
}

// keyAuthStmt returns the prepared key lookup, preparing it on first use: the tables may
// not exist yet when Open runs with SkipMigrate. A failed preparation is retried next time.
func (d *DB) keyAuthStmt(ctx context.Context) (*sql.Stmt, error) {
	d.keyAuthMu.Lock()
	defer d.keyAuthMu.Unlock()
	if d.keyAuth == nil {
		stmt, err := d.r.PrepareContext(ctx, keyAuthQuery())
		if err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
		d.keyAuth = stmt
	}
	return d.keyAuth, nil
}

// KeyAuthByHash reads key, user, group and (for subscription groups) the active subscription
// in one prepared query. ErrNotFound when no key has the hash.
func (d *DB) KeyAuthByHash(ctx context.Context, hash []byte) (*store.KeyAuth, error) {
	var ka store.KeyAuth
	var sub store.Subscription
	dest := apiKeyDest(&ka.Key)
	dest = append(dest, userDest(&ka.User)...)
	dest = append(dest, groupDest(&ka.Group)...)
	dest = append(dest, subscriptionDest(&sub)...)
	dest = append(dest, &ka.Allowed)
	stmt, err := d.keyAuthStmt(ctx)
	if err != nil {
		return nil, wrap("authenticate api key", err)
	}
	if err := stmt.QueryRowContext(ctx, hash, d.tv(d.clock())).Scan(dest...); err != nil {
		return nil, wrap("authenticate api key", err)
	}
	if sub.ID != 0 {
		ka.Subscription = &sub
	}
	return &ka, nil
}

// TouchAPIKeys records when keys were last used. A time never moves backwards, so nodes
// flushing their batches in any order agree on the latest use.
func (d *DB) TouchAPIKeys(ctx context.Context, used map[int64]time.Time) error {
	return wrap("touch api keys", d.touch(ctx, "api_keys", used))
}

func (d *DB) touch(ctx context.Context, table string, used map[int64]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, "UPDATE "+table+
			" SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		// Ascending ids: concurrent batches lock rows in the same order and cannot deadlock.
		for _, id := range sortedKeys(used) {
			if _, err := stmt.ExecContext(ctx, d.tv(used[id]), id); err != nil {
				return err
			}
		}
		return nil
	})
}
