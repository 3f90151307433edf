package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fluxcode/fluxcode/internal/store"
)

// firstAdminLockKey serialises CreateFirstAdmin across PostgreSQL nodes (a transaction lock,
// released at commit). SQLite needs none: its writer lock orders the transactions.
const firstAdminLockKey int64 = 0x466c7578_41646d6e // "FluxAdmn"

const userCols = "id, email, password_hash, role, status, balance, concurrency, rpm_limit, tpm_limit, token_version, created_at, updated_at"

func userDest(u *store.User) []any {
	return []any{&u.ID, &u.Email, &u.PasswordHash, &u.Role, &u.Status, &u.Balance, &u.Concurrency,
		&u.RPMLimit, &u.TPMLimit, &u.TokenVersion, timeDst{&u.CreatedAt}, timeDst{&u.UpdatedAt}}
}

func scanUser(s scanner, u *store.User) error { return s.Scan(userDest(u)...) }

// CreateUser inserts u; an empty Role means RoleUser and an empty Status StatusActive.
func (d *DB) CreateUser(ctx context.Context, u *store.User) error {
	return wrap("create user", d.inTx(ctx, func(tx *sql.Tx) error { return d.createUser(ctx, tx, u) }))
}

func (d *DB) createUser(ctx context.Context, tx *sql.Tx, u *store.User) error {
	u.Role = orDefault(u.Role, store.RoleUser)
	u.Status = orDefault(u.Status, store.StatusActive)
	now := d.clock()
	err := tx.QueryRowContext(ctx, `INSERT INTO users
		(email, password_hash, role, status, balance, concurrency, rpm_limit, tpm_limit, token_version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $8, $9, 0, $7, $7) RETURNING id`,
		u.Email, u.PasswordHash, u.Role, u.Status, int64(u.Balance), u.Concurrency, d.tv(now), u.RPMLimit, u.TPMLimit).Scan(&u.ID)
	if err != nil {
		return err
	}
	u.TokenVersion, u.CreatedAt, u.UpdatedAt = 0, now, now
	return nil
}

func (d *DB) GetUser(ctx context.Context, id int64) (*store.User, error) {
	var u store.User
	err := scanUser(d.r.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE id = $1", id), &u)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get user %d", id), err)
	}
	return &u, nil
}

// GetUserByEmail matches the email without regard to ASCII case, as the unique index does.
func (d *DB) GetUserByEmail(ctx context.Context, email string) (*store.User, error) {
	q := "SELECT " + userCols + " FROM users WHERE email = $1" // the column is COLLATE NOCASE
	if d.pg {
		q = "SELECT " + userCols + " FROM users WHERE lower(email) = lower($1)"
	}
	var u store.User
	if err := scanUser(d.r.QueryRowContext(ctx, q, email), &u); err != nil {
		return nil, wrap("get user by email", err)
	}
	return &u, nil
}

func (d *DB) ListUsers(ctx context.Context, p store.Page) ([]store.User, int, error) {
	where, args := filterSQL{search: []string{"email"}, status: "status", role: "role"}.where(p.Filter, nil)
	return listPage(ctx, d, "list users", userCols, "users", where, args, "id", p, scanUser)
}

// UpdateUser writes Email, Role, Status, Concurrency and the rate limits (never Balance or PasswordHash) and
// sets u.UpdatedAt. Disabling an active user bumps the token version in the same statement
// (the right-hand side reads the row as it was), so no token issued before outlives it.
func (d *DB) UpdateUser(ctx context.Context, u *store.User) error {
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `UPDATE users SET email = $1, role = $2,
		token_version = token_version + CASE WHEN status <> $3 AND $3 = 'disabled' THEN 1 ELSE 0 END,
		status = $3, concurrency = $4, updated_at = $5, rpm_limit = $7, tpm_limit = $8 WHERE id = $6 RETURNING token_version`,
		u.Email, u.Role, u.Status, u.Concurrency, d.tv(now), u.ID, u.RPMLimit, u.TPMLimit).Scan(&u.TokenVersion)
	if err != nil {
		return wrap(fmt.Sprintf("update user %d", u.ID), err)
	}
	u.UpdatedAt = now
	return nil
}

func (d *DB) SetPassword(ctx context.Context, userID int64, hash string) error {
	err := mustAffect(d.w.ExecContext(ctx, `UPDATE users SET password_hash = $1, token_version = token_version + 1,
		updated_at = $2 WHERE id = $3`, hash, d.tv(d.clock()), userID))
	return wrap(fmt.Sprintf("set password of user %d", userID), err)
}

func (d *DB) RevokeTokens(ctx context.Context, userID int64) error {
	err := mustAffect(d.w.ExecContext(ctx, `UPDATE users SET token_version = token_version + 1, updated_at = $1
		WHERE id = $2`, d.tv(d.clock()), userID))
	return wrap(fmt.Sprintf("revoke tokens of user %d", userID), err)
}

// DeleteUser removes the user with their keys, subscriptions and balance history. Their
// ledger rows stay (the ledger keeps no foreign keys).
func (d *DB) DeleteUser(ctx context.Context, id int64) error {
	return d.deleteByID(ctx, "users", "user", id)
}

func (d *DB) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := d.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE role = $1", store.RoleAdmin).Scan(&n)
	return n, wrap("count admins", err)
}

// CreateFirstAdmin creates u as admin when no admin exists. The existence check and the
// insert run in one transaction that only one node at a time can be in: PostgreSQL under an
// advisory transaction lock (READ COMMITTED then sees the winner's committed row), SQLite
// under its write lock taken at BEGIN.
func (d *DB) CreateFirstAdmin(ctx context.Context, u *store.User) (created bool, err error) {
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		if d.pg {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", firstAdminLockKey); err != nil {
				return err
			}
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE role = $1)", store.RoleAdmin).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		u.Role = store.RoleAdmin
		if err := d.createUser(ctx, tx, u); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return false, wrap("create first admin", err)
	}
	return created, nil
}

// AdjustBalance records t and moves the balance by t.Amount in one transaction. The balance
// changes by arithmetic in SQL, so concurrent adjustments and usage charges never overwrite
// each other. ErrNotFound when the user does not exist; ErrInvalid for a zero amount.
func (d *DB) AdjustBalance(ctx context.Context, t *store.BalanceTransaction) (store.Nanos, error) {
	if t.Amount == 0 {
		return 0, invalid("adjust balance", "amount is zero")
	}
	var balance store.Nanos
	err := d.inTx(ctx, func(tx *sql.Tx) (err error) {
		balance, err = d.adjustBalanceTx(ctx, tx, t)
		return err
	})
	if err != nil {
		return 0, wrap(fmt.Sprintf("adjust balance of user %d", t.UserID), err)
	}
	return balance, nil
}

// adjustBalanceTx is AdjustBalance inside the caller's transaction (a redeemed code credits
// the balance this way, in the transaction that marks the code used).
func (d *DB) adjustBalanceTx(ctx context.Context, tx *sql.Tx, t *store.BalanceTransaction) (store.Nanos, error) {
	now := d.clock()
	var balance store.Nanos
	err := tx.QueryRowContext(ctx, "UPDATE users SET balance = balance + $1, updated_at = $2 WHERE id = $3 RETURNING balance",
		int64(t.Amount), d.tv(now), t.UserID).Scan(&balance)
	if err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO balance_transactions (user_id, amount, note, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, t.UserID, int64(t.Amount), t.Note, t.CreatedBy, d.tv(now)).Scan(&t.ID); err != nil {
		return 0, err
	}
	t.CreatedAt = now
	return balance, nil
}

// ListBalanceTransactions lists a user's transactions, newest first; userID 0 lists all.
func (d *DB) ListBalanceTransactions(ctx context.Context, userID int64, p store.Page) ([]store.BalanceTransaction, int, error) {
	where, args := ownedBy(userID)
	return listPage(ctx, d, "list balance transactions", "id, user_id, amount, note, created_by, created_at",
		"balance_transactions", where, args, "id DESC", p, scanBalanceTransaction)
}

func scanBalanceTransaction(s scanner, t *store.BalanceTransaction) error {
	return s.Scan(&t.ID, &t.UserID, &t.Amount, &t.Note, &t.CreatedBy, timeDst{&t.CreatedAt})
}
