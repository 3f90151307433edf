package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

const adminKeyCols = "id, created_by, name, hash, prefix, last_used_at, revoked_at, created_at"

func scanAdminKey(s scanner, k *store.AdminAPIKey) error {
	return s.Scan(&k.ID, &k.CreatedBy, &k.Name, &k.Hash, &k.Prefix, nullTimeDst{&k.LastUsedAt},
		nullTimeDst{&k.RevokedAt}, timeDst{&k.CreatedAt})
}

func (d *DB) CreateAdminAPIKey(ctx context.Context, k *store.AdminAPIKey) error {
	if len(k.Hash) == 0 {
		return invalid("create admin api key", "empty hash")
	}
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `INSERT INTO admin_api_keys (created_by, name, hash, prefix, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, k.CreatedBy, k.Name, k.Hash, k.Prefix, d.tv(now)).Scan(&k.ID)
	if err != nil {
		return wrap("create admin api key", err)
	}
	k.CreatedAt, k.LastUsedAt, k.RevokedAt = now, nil, nil
	return nil
}

func (d *DB) GetAdminAPIKey(ctx context.Context, id int64) (*store.AdminAPIKey, error) {
	var k store.AdminAPIKey
	if err := scanAdminKey(d.r.QueryRowContext(ctx, "SELECT "+adminKeyCols+" FROM admin_api_keys WHERE id = $1", id), &k); err != nil {
		return nil, wrap(fmt.Sprintf("get admin api key %d", id), err)
	}
	return &k, nil
}

func (d *DB) AdminAPIKeyByHash(ctx context.Context, hash []byte) (*store.AdminAPIKey, error) {
	var k store.AdminAPIKey
	if err := scanAdminKey(d.r.QueryRowContext(ctx, "SELECT "+adminKeyCols+" FROM admin_api_keys WHERE hash = $1", hash), &k); err != nil {
		return nil, wrap("find admin api key", err)
	}
	return &k, nil
}

func (d *DB) ListAdminAPIKeys(ctx context.Context, p store.Page) ([]store.AdminAPIKey, int, error) {
	return listPage(ctx, d, "list admin api keys", adminKeyCols, "admin_api_keys", "", nil, "id", p, scanAdminKey)
}

func (d *DB) RevokeAdminAPIKey(ctx context.Context, id int64, at time.Time) error {
	err := mustAffect(d.w.ExecContext(ctx, "UPDATE admin_api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
		d.tv(at), id))
	return wrap(fmt.Sprintf("revoke admin api key %d", id), err)
}

func (d *DB) TouchAdminAPIKey(ctx context.Context, id int64, at time.Time) error {
	return wrap(fmt.Sprintf("touch admin api key %d", id), d.touch(ctx, "admin_api_keys", map[int64]time.Time{id: at}))
}
