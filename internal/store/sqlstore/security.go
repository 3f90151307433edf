package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// GetTOTP reads the user's enrolment with its secrets opened.
func (d *DB) GetTOTP(ctx context.Context, userID int64) (*store.TOTP, error) {
	t := store.TOTP{UserID: userID}
	var sealed, pending string
	err := d.r.QueryRowContext(ctx, `SELECT secret, pending_secret, enabled, last_step, updated_at,
		(SELECT COUNT(*) FROM totp_recovery_codes c WHERE c.user_id = t.user_id)
		FROM user_totp t WHERE user_id = $1`, userID).
		Scan(&sealed, &pending, &t.Enabled, &t.LastStep, timeDst{&t.UpdatedAt}, &t.RecoveryCodesLeft)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get totp of user %d", userID), err)
	}
	if t.Secret, err = d.keys.OpenString(sealed); err != nil {
		return nil, fmt.Errorf("sqlstore: totp secret of user %d: %w", userID, err)
	}
	if t.PendingSecret, err = d.keys.OpenString(pending); err != nil {
		return nil, fmt.Errorf("sqlstore: pending totp secret of user %d: %w", userID, err)
	}
	return &t, nil
}

func (d *DB) SetPendingTOTP(ctx context.Context, userID int64, secret string) error {
	_, err := d.w.ExecContext(ctx, `INSERT INTO user_totp (user_id, pending_secret, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET pending_secret = excluded.pending_secret, updated_at = excluded.updated_at`,
		userID, d.keys.SealString(secret), d.tv(d.clock()))
	return wrap(fmt.Sprintf("set pending totp of user %d", userID), err)
}

func (d *DB) EnableTOTP(ctx context.Context, userID int64, pending string, step int64, hashes [][]byte) error {
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		lock := ""
		if d.pg {
			lock = " FOR UPDATE"
		}
		var sealed string
		if err := tx.QueryRowContext(ctx, "SELECT pending_secret FROM user_totp WHERE user_id = $1"+lock, userID).Scan(&sealed); err != nil {
			return err
		}
		if sealed == "" {
			return store.ErrNotFound
		}
		cur, err := d.keys.OpenString(sealed)
		if err != nil {
			return err
		}
		if cur != pending {
			return store.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_totp SET secret = pending_secret, pending_secret = '',
			enabled = $1, last_step = $2, updated_at = $3 WHERE user_id = $4`, true, step, d.tv(d.clock()), userID); err != nil {
			return err
		}
		return replaceCodes(ctx, tx, userID, hashes)
	})
	return wrap(fmt.Sprintf("enable totp of user %d", userID), err)
}

func replaceCodes(ctx context.Context, tx *sql.Tx, userID int64, hashes [][]byte) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM totp_recovery_codes WHERE user_id = $1", userID); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, "INSERT INTO totp_recovery_codes (user_id, hash) VALUES ($1, $2)", userID, h); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) UseTOTPStep(ctx context.Context, userID, step int64) (bool, error) {
	res, err := d.w.ExecContext(ctx, `UPDATE user_totp SET last_step = $1
		WHERE user_id = $2 AND enabled = $3 AND last_step < $1`, step, userID, true)
	return affectedOne(res, err, fmt.Sprintf("use totp step of user %d", userID))
}

func (d *DB) UseRecoveryCode(ctx context.Context, userID int64, hash []byte) (bool, error) {
	res, err := d.w.ExecContext(ctx, "DELETE FROM totp_recovery_codes WHERE user_id = $1 AND hash = $2", userID, hash)
	return affectedOne(res, err, fmt.Sprintf("use recovery code of user %d", userID))
}

// affectedOne reports whether a statement changed a row.
func affectedOne(res sql.Result, err error, op string) (bool, error) {
	if err != nil {
		return false, wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap(op, err)
	}
	return n == 1, nil
}

func (d *DB) ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes [][]byte) error {
	return wrap(fmt.Sprintf("replace recovery codes of user %d", userID), d.inTx(ctx, func(tx *sql.Tx) error {
		return replaceCodes(ctx, tx, userID, hashes)
	}))
}

func (d *DB) DeleteTOTP(ctx context.Context, userID int64) error {
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM totp_recovery_codes WHERE user_id = $1", userID); err != nil {
			return err
		}
		return mustAffect(tx.ExecContext(ctx, "DELETE FROM user_totp WHERE user_id = $1", userID))
	})
	return wrap(fmt.Sprintf("delete totp of user %d", userID), err)
}

const auditCols = "id, actor_user_id, actor_email, admin_key_id, action, target_type, target_id, before_json, after_json, client_ip, created_at"

func (d *DB) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `INSERT INTO audit_log (actor_user_id, actor_email, action, target_type, target_id,
		before_json, after_json, client_ip, created_at, admin_key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		e.ActorUserID, e.ActorEmail, e.Action, e.TargetType, e.TargetID, e.Before, e.After, e.ClientIP, d.tv(now), e.AdminKeyID).Scan(&e.ID)
	if err != nil {
		return wrap("append audit entry", err)
	}
	e.CreatedAt = now
	return nil
}

func (d *DB) ListAudit(ctx context.Context, f store.AuditFilter, p store.Page) ([]store.AuditEntry, int, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.ActorUserID != 0 {
		add("actor_user_id = $%d", f.ActorUserID)
	}
	if f.ActorEmail != "" {
		add("actor_email = $%d", f.ActorEmail)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.TargetType != "" {
		add("target_type = $%d", f.TargetType)
	}
	if f.TargetID != "" {
		add("target_id = $%d", f.TargetID)
	}
	if !f.From.IsZero() {
		add("created_at >= $%d", d.tv(f.From))
	}
	if !f.To.IsZero() {
		add("created_at < $%d", d.tv(f.To))
	}
	return listPage(ctx, d, "list audit log", auditCols, "audit_log", strings.Join(conds, " AND "), args,
		"created_at DESC, id DESC", p, func(s scanner, e *store.AuditEntry) error {
			return s.Scan(&e.ID, &e.ActorUserID, &e.ActorEmail, &e.AdminKeyID, &e.Action, &e.TargetType, &e.TargetID,
				&e.Before, &e.After, &e.ClientIP, timeDst{&e.CreatedAt})
		})
}

// sealedColumns are every column holding secret.Keys.SealString values: table, key column
// (unique), sealed column and which rows. Settings hold sealed values only under the
// "system." prefix (the generated JWT secret, the API key hash key); the others are admin
// text that may look like anything.
var sealedColumns = []struct{ table, key, col, where string }{
	{"accounts", "id", "credentials", ""},
	{"proxies", "id", "password", ""},
	{"user_totp", "user_id", "secret", ""},
	{"user_totp", "user_id", "pending_secret", ""},
	{"settings", "key", "value", "key LIKE 'system.%'"},
}

// ResealSecrets walks each sealed column in key order, batch rows at a time, and replaces
// every value not sealed under the current key with one that is. The UPDATE compares the
// old value, so a row an admin or the gateway rewrote meanwhile (already under a key of the
// ring) is left as that writer left it.
func (d *DB) ResealSecrets(ctx context.Context, batch int) (store.ResealReport, error) {
	if batch <= 0 {
		batch = 500
	}
	var rep store.ResealReport
	for _, c := range sealedColumns {
		var after any
		for {
			conds := []string{"1 = 1"}
			if c.where != "" {
				conds = append(conds, c.where)
			}
			args := []any{batch}
			if after != nil {
				conds = append(conds, c.key+" > $2")
				args = append(args, after)
			}
			q := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s ORDER BY %s LIMIT $1",
				c.key, c.col, c.table, strings.Join(conds, " AND "), c.key)
			type row struct {
				key   any
				value string
			}
			rows, err := queryAll(ctx, d, "reseal: read "+c.table, q, args, func(s scanner, r *row) error {
				if c.key == "key" {
					var k string
					err := s.Scan(&k, &r.value)
					r.key = k
					return err
				}
				var k int64
				err := s.Scan(&k, &r.value)
				r.key = k
				return err
			})
			if err != nil {
				return rep, err
			}
			for _, r := range rows {
				if r.value == "" || !secret.IsSealed(r.value) {
					continue
				}
				rep.Checked++
				out, changed, err := d.keys.Reseal(r.value)
				if err != nil {
					return rep, fmt.Errorf("sqlstore: reseal %s.%s of %s %v: %w", c.table, c.col, c.key, r.key, err)
				}
				if !changed {
					continue
				}
				res, err := d.w.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET %s = $1 WHERE %s = $2 AND %s = $3",
					c.table, c.col, c.key, c.col), out, r.key, r.value)
				ok, err := affectedOne(res, err, "reseal "+c.table)
				if err != nil {
					return rep, err
				}
				if ok {
					rep.Resealed++
				}
			}
			if len(rows) < batch {
				break
			}
			after = rows[len(rows)-1].key
		}
	}
	return rep, nil
}
