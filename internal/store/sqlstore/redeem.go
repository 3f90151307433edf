package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

const redeemCols = "id, hash, prefix, kind, amount, concurrency, group_id, days, note, status, created_by, used_by, used_at, created_at"

func scanRedeemCode(s scanner, c *store.RedeemCode) error {
	return s.Scan(&c.ID, &c.Hash, &c.Prefix, &c.Kind, &c.Amount, &c.Concurrency, &c.GroupID, &c.Days, &c.Note,
		&c.Status, &c.CreatedBy, &c.UsedBy, nullTimeDst{&c.UsedAt}, timeDst{&c.CreatedAt})
}

// CreateRedeemCodes inserts the batch in one transaction: all of it or none.
func (d *DB) CreateRedeemCodes(ctx context.Context, codes []store.RedeemCode) error {
	now := d.clock()
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		for i := range codes {
			c := &codes[i]
			c.Status, c.UsedBy, c.UsedAt, c.CreatedAt = store.StatusActive, 0, nil, now
			if err := tx.QueryRowContext(ctx, `INSERT INTO redeem_codes (hash, prefix, kind, amount, concurrency,
				group_id, days, note, status, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
				RETURNING id`, c.Hash, c.Prefix, c.Kind, int64(c.Amount), c.Concurrency, c.GroupID, c.Days, c.Note,
				c.Status, c.CreatedBy, d.tv(now)).Scan(&c.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(fmt.Sprintf("create %d redeem codes", len(codes)), err)
}

func (d *DB) GetRedeemCode(ctx context.Context, id int64) (*store.RedeemCode, error) {
	var c store.RedeemCode
	err := scanRedeemCode(d.r.QueryRowContext(ctx, "SELECT "+redeemCols+" FROM redeem_codes WHERE id = $1", id), &c)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get redeem code %d", id), err)
	}
	return &c, nil
}

func (d *DB) ListRedeemCodes(ctx context.Context, p store.Page) ([]store.RedeemCode, int, error) {
	// "used" is no stored status: a used code is one with used_at set, whatever its status.
	f, where := p.Filter, ""
	switch f.Status {
	case store.RedeemUsed:
		f.Status, where = "", "used_at IS NOT NULL"
	case store.StatusActive:
		where = "used_at IS NULL"
	}
	where, args := filterSQL{search: []string{"prefix", "note"}, status: "status", group: "group_id = $?"}.and(where, f, nil)
	return listPage(ctx, d, "list redeem codes", redeemCols, "redeem_codes", where, args, "id DESC", p, scanRedeemCode)
}

// DisableRedeemCode disables an unused code; a used one stays as it was used.
func (d *DB) DisableRedeemCode(ctx context.Context, id int64) error {
	op := fmt.Sprintf("disable redeem code %d", id)
	err := mustAffect(d.w.ExecContext(ctx, "UPDATE redeem_codes SET status = $1 WHERE id = $2 AND used_at IS NULL",
		store.StatusDisabled, id))
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := d.GetRedeemCode(ctx, id); gerr != nil {
			return gerr
		}
		return fmt.Errorf("sqlstore: %s: %w: it is used", op, store.ErrConflict)
	}
	return wrap(op, err)
}

// RedeemCode claims the code with a conditional UPDATE: on PostgreSQL a concurrent claim
// waits for this transaction's row lock and then finds used_at set; on SQLite the one writer
// orders them. The claim and what the code is worth commit together or not at all.
func (d *DB) RedeemCode(ctx context.Context, hash []byte, userID int64) (*store.RedeemCode, error) {
	var c store.RedeemCode
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		now := d.clock()
		err := scanRedeemCode(tx.QueryRowContext(ctx, `UPDATE redeem_codes SET used_by = $1, used_at = $2
			WHERE hash = $3 AND status = $4 AND used_at IS NULL RETURNING `+redeemCols,
			userID, d.tv(now), hash, store.StatusActive), &c)
		if err != nil {
			return err
		}
		switch c.Kind {
		case store.RedeemBalance:
			_, err = d.adjustBalanceTx(ctx, tx, &store.BalanceTransaction{UserID: userID, Amount: c.Amount,
				Note: "redeem code " + c.Prefix, CreatedBy: c.CreatedBy})
		case store.RedeemConcurrency:
			err = mustAffect(tx.ExecContext(ctx, `UPDATE users SET concurrency = CASE WHEN concurrency = 0 THEN 0
				ELSE concurrency + $1 END, updated_at = $2 WHERE id = $3`, c.Concurrency, d.tv(now), userID))
		case store.RedeemSubscription:
			err = d.extendSubscriptionTx(ctx, tx, userID, c.GroupID, c.Days, now)
		default:
			err = fmt.Errorf("%w: unknown redeem code kind %q", store.ErrInvalid, c.Kind)
		}
		return err
	})
	if err != nil {
		return nil, wrap("redeem code", err)
	}
	return &c, nil
}

// extendSubscriptionTx adds days to the user's subscription to the group: from its end, or
// from now when it has ended (an expired one becomes active); a missing subscription is created first (ON CONFLICT, so two
// transactions creating it at once both end up extending the one row).
func (d *DB) extendSubscriptionTx(ctx context.Context, tx *sql.Tx, userID, groupID int64, days int, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (user_id, group_id, status, starts_at, expires_at,
		daily_start, weekly_start, monthly_start, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4, $4, $4, $4, $4, $4) ON CONFLICT (user_id, group_id) DO NOTHING`,
		userID, groupID, store.StatusActive, d.tv(now))
	if err != nil {
		return err
	}
	lock := ""
	if d.pg {
		lock = " FOR UPDATE"
	}
	var id int64
	var end time.Time
	if err := tx.QueryRowContext(ctx, "SELECT id, expires_at FROM subscriptions WHERE user_id = $1 AND group_id = $2"+lock,
		userID, groupID).Scan(&id, timeDst{&end}); err != nil {
		return err
	}
	if end.Before(now) {
		end = now
	}
	end = end.AddDate(0, 0, days)
	// The new end is in the future: a subscription the expiry job marked is active again (a
	// disabled one stays disabled).
	_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET expires_at = $1, updated_at = $2,
		status = CASE WHEN status = $4 THEN $5 ELSE status END WHERE id = $3`,
		d.tv(end), d.tv(now), id, store.StatusExpired, store.StatusActive)
	return err
}
