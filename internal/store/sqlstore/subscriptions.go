package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

const subscriptionCols = "id, user_id, group_id, status, starts_at, expires_at, daily_used, daily_start, " +
	"weekly_used, weekly_start, monthly_used, monthly_start, created_at, updated_at"

func subscriptionDest(s *store.Subscription) []any {
	return []any{&s.ID, &s.UserID, &s.GroupID, &s.Status, timeDst{&s.StartsAt}, timeDst{&s.ExpiresAt},
		&s.DailyUsed, timeDst{&s.DailyStart}, &s.WeeklyUsed, timeDst{&s.WeeklyStart},
		&s.MonthlyUsed, timeDst{&s.MonthlyStart}, timeDst{&s.CreatedAt}, timeDst{&s.UpdatedAt}}
}

func scanSubscription(sc scanner, s *store.Subscription) error {
	return sc.Scan(subscriptionDest(s)...)
}

// CreateSubscription inserts s. An empty Status means StatusActive, a zero StartsAt means now,
// and zero window starts mean StartsAt. ErrConflict when the user already has a subscription
// to the group; ErrInvalid without an ExpiresAt after StartsAt or for an unknown user or group.
func (d *DB) CreateSubscription(ctx context.Context, s *store.Subscription) error {
	now := d.clock()
	s.Status = orDefault(s.Status, store.StatusActive)
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	if !s.ExpiresAt.After(s.StartsAt) {
		return invalid("create subscription", "expires_at must be after starts_at")
	}
	for _, w := range []*time.Time{&s.DailyStart, &s.WeeklyStart, &s.MonthlyStart} {
		if w.IsZero() {
			*w = s.StartsAt
		}
	}
	err := d.w.QueryRowContext(ctx, `INSERT INTO subscriptions (user_id, group_id, status, starts_at, expires_at,
		daily_used, daily_start, weekly_used, weekly_start, monthly_used, monthly_start, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id`,
		s.UserID, s.GroupID, s.Status, d.tv(s.StartsAt), d.tv(s.ExpiresAt),
		int64(s.DailyUsed), d.tv(s.DailyStart), int64(s.WeeklyUsed), d.tv(s.WeeklyStart),
		int64(s.MonthlyUsed), d.tv(s.MonthlyStart), d.tv(now)).Scan(&s.ID)
	if err != nil {
		return wrap("create subscription", err)
	}
	s.CreatedAt, s.UpdatedAt = now, now
	return nil
}

func (d *DB) GetSubscription(ctx context.Context, userID, groupID int64) (*store.Subscription, error) {
	var s store.Subscription
	err := scanSubscription(d.r.QueryRowContext(ctx, "SELECT "+subscriptionCols+
		" FROM subscriptions WHERE user_id = $1 AND group_id = $2", userID, groupID), &s)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get subscription of user %d to group %d", userID, groupID), err)
	}
	return &s, nil
}

// ListSubscriptions lists a user's subscriptions (userID 0: everyone's) in creation order.
func (d *DB) ListSubscriptions(ctx context.Context, userID int64, p store.Page) ([]store.Subscription, int, error) {
	where, args := ownedBy(userID)
	return listPage(ctx, d, "list subscriptions", subscriptionCols, "subscriptions", where, args, "id", p, scanSubscription)
}

// UpdateSubscription writes Status and ExpiresAt and sets s.UpdatedAt.
func (d *DB) UpdateSubscription(ctx context.Context, s *store.Subscription) error {
	now := d.clock()
	err := mustAffect(d.w.ExecContext(ctx, "UPDATE subscriptions SET status = $1, expires_at = $2, updated_at = $3 WHERE id = $4",
		s.Status, d.tv(s.ExpiresAt), d.tv(now), s.ID))
	if err != nil {
		return wrap(fmt.Sprintf("update subscription %d", s.ID), err)
	}
	s.UpdatedAt = now
	return nil
}

func (d *DB) DeleteSubscription(ctx context.Context, id int64) error {
	return d.deleteByID(ctx, "subscriptions", "subscription", id)
}
