package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fluxcode/fluxcode/internal/store"
)

const proxyCols = "id, name, protocol, host, port, username, password, status, created_at, updated_at"

// scanProxy reads a row and opens the sealed password.
func (d *DB) scanProxy(s scanner, p *store.Proxy) error {
	var sealed string
	if err := s.Scan(&p.ID, &p.Name, &p.Protocol, &p.Host, &p.Port, &p.Username, &sealed, &p.Status,
		timeDst{&p.CreatedAt}, timeDst{&p.UpdatedAt}); err != nil {
		return err
	}
	pw, err := d.keys.OpenString(sealed)
	if err != nil {
		return fmt.Errorf("proxy %d password: %w", p.ID, err)
	}
	p.Password = pw
	return nil
}

// CreateProxy inserts p with its password sealed; an empty Status means StatusActive.
// ErrInvalid for an unknown protocol, an empty host or a port outside 1-65535.
func (d *DB) CreateProxy(ctx context.Context, p *store.Proxy) error {
	p.Status = orDefault(p.Status, store.StatusActive)
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `INSERT INTO proxies (name, protocol, host, port, username, password, status,
		created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
		p.Name, p.Protocol, p.Host, p.Port, p.Username, d.keys.SealString(p.Password), p.Status, d.tv(now)).Scan(&p.ID)
	if err != nil {
		return wrap("create proxy", err)
	}
	p.CreatedAt, p.UpdatedAt = now, now
	return nil
}

func (d *DB) GetProxy(ctx context.Context, id int64) (*store.Proxy, error) {
	var p store.Proxy
	if err := d.scanProxy(d.r.QueryRowContext(ctx, "SELECT "+proxyCols+" FROM proxies WHERE id = $1", id), &p); err != nil {
		return nil, wrap(fmt.Sprintf("get proxy %d", id), err)
	}
	return &p, nil
}

func (d *DB) ListProxies(ctx context.Context, p store.Page) ([]store.Proxy, int, error) {
	return listPage(ctx, d, "list proxies", proxyCols, "proxies", "", nil, "id", p, d.scanProxy)
}

// UpdateProxy writes every field (the password sealed anew) and sets p.UpdatedAt.
func (d *DB) UpdateProxy(ctx context.Context, p *store.Proxy) error {
	now := d.clock()
	err := mustAffect(d.w.ExecContext(ctx, `UPDATE proxies SET name = $1, protocol = $2, host = $3, port = $4,
		username = $5, password = $6, status = $7, updated_at = $8 WHERE id = $9`,
		p.Name, p.Protocol, p.Host, p.Port, p.Username, d.keys.SealString(p.Password), p.Status, d.tv(now), p.ID))
	if err != nil {
		return wrap(fmt.Sprintf("update proxy %d", p.ID), err)
	}
	p.UpdatedAt = now
	return nil
}

// DeleteProxy removes the proxy; ErrConflict while an account uses it. On PostgreSQL the
// proxy row is locked first: an account being pointed at it holds a key-share lock that this
// waits for, and one pointed at it later waits for this delete and then fails its foreign
// key, so no account is left going direct unnoticed. SQLite's writer lock orders the same.
func (d *DB) DeleteProxy(ctx context.Context, id int64) error {
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		lock := "SELECT id FROM proxies WHERE id = $1"
		if d.pg {
			lock += " FOR UPDATE"
		}
		if err := tx.QueryRowContext(ctx, lock, id).Scan(&id); err != nil {
			return err
		}
		var used int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM accounts WHERE proxy_id = $1", id).Scan(&used); err != nil {
			return err
		}
		if used > 0 {
			return fmt.Errorf("%w: %d account(s) use the proxy", store.ErrConflict, used)
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM proxies WHERE id = $1", id)
		return err
	})
	return wrap(fmt.Sprintf("delete proxy %d", id), err)
}
