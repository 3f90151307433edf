package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fluxcode/fluxcode/internal/store"
)

func (d *DB) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	if err := d.r.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = $1", key).Scan(&v); err != nil {
		return "", wrap(fmt.Sprintf("get setting %q", key), err)
	}
	return v, nil
}

func (d *DB) SetSetting(ctx context.Context, key, value string) error {
	_, err := d.w.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, d.tv(d.clock()))
	return wrap(fmt.Sprintf("set setting %q", key), err)
}

// SetSettingIfAbsent inserts value unless the key has one and returns what is stored: the
// first writer wins on every node (the primary key arbitrates), the others read its value.
func (d *DB) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO NOTHING`, key, value, d.tv(d.clock())); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = $1", key).Scan(&stored)
	})
	if err != nil {
		return "", wrap(fmt.Sprintf("set setting %q if absent", key), err)
	}
	return stored, nil
}

func (d *DB) ListSettings(ctx context.Context) (map[string]string, error) {
	type kv struct{ k, v string }
	rows, err := queryAll(ctx, d, "list settings", "SELECT key, value FROM settings ORDER BY key", nil,
		func(s scanner, p *kv) error { return s.Scan(&p.k, &p.v) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.k] = r.v
	}
	return out, nil
}

// CreateErrorRule inserts r. ErrInvalid for a status outside 100-599 or Minutes below 1.
func (d *DB) CreateErrorRule(ctx context.Context, r *store.ErrorRule) error {
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `INSERT INTO error_rules (status_code, keyword, minutes, enabled, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, r.StatusCode, r.Keyword, r.Minutes, r.Enabled, d.tv(now)).Scan(&r.ID)
	if err != nil {
		return wrap("create error rule", err)
	}
	r.CreatedAt = now
	return nil
}

func (d *DB) ListErrorRules(ctx context.Context) ([]store.ErrorRule, error) {
	return queryAll(ctx, d, "list error rules", "SELECT id, status_code, keyword, minutes, enabled, created_at FROM error_rules ORDER BY id",
		nil, func(s scanner, r *store.ErrorRule) error {
			return s.Scan(&r.ID, &r.StatusCode, &r.Keyword, &r.Minutes, &r.Enabled, timeDst{&r.CreatedAt})
		})
}

func (d *DB) DeleteErrorRule(ctx context.Context, id int64) error {
	return d.deleteByID(ctx, "error_rules", "error rule", id)
}
