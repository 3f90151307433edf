package sqlstore

import (
	"context"
	"fmt"

	"github.com/fluxcode/fluxcode/internal/store"
)

const groupCols = "id, name, description, platform, billing_type, rate_multiplier_ppm, daily_limit, weekly_limit, monthly_limit, status, exclusive, created_at, updated_at"

func groupDest(g *store.Group) []any {
	return []any{&g.ID, &g.Name, &g.Description, &g.Platform, &g.BillingType, &g.RateMultiplierPPM,
		&g.DailyLimit, &g.WeeklyLimit, &g.MonthlyLimit, &g.Status, &g.Exclusive, timeDst{&g.CreatedAt}, timeDst{&g.UpdatedAt}}
}

func scanGroup(s scanner, g *store.Group) error { return s.Scan(groupDest(g)...) }

// CreateGroup inserts g; an empty BillingType means BillingBalance and an empty Status
// StatusActive. ErrConflict when the name is taken, ErrInvalid for an unknown platform.
func (d *DB) CreateGroup(ctx context.Context, g *store.Group) error {
	g.BillingType = orDefault(g.BillingType, store.BillingBalance)
	g.Status = orDefault(g.Status, store.StatusActive)
	now := d.clock()
	err := d.w.QueryRowContext(ctx, `INSERT INTO groups (name, description, platform, billing_type, rate_multiplier_ppm,
		daily_limit, weekly_limit, monthly_limit, status, exclusive, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $10, $10) RETURNING id`,
		g.Name, g.Description, g.Platform, g.BillingType, g.RateMultiplierPPM,
		int64(g.DailyLimit), int64(g.WeeklyLimit), int64(g.MonthlyLimit), g.Status, d.tv(now), g.Exclusive).Scan(&g.ID)
	if err != nil {
		return wrap("create group", err)
	}
	g.CreatedAt, g.UpdatedAt = now, now
	return nil
}

func (d *DB) GetGroup(ctx context.Context, id int64) (*store.Group, error) {
	var g store.Group
	if err := scanGroup(d.r.QueryRowContext(ctx, "SELECT "+groupCols+" FROM groups WHERE id = $1", id), &g); err != nil {
		return nil, wrap(fmt.Sprintf("get group %d", id), err)
	}
	return &g, nil
}

func (d *DB) ListGroups(ctx context.Context, p store.Page) ([]store.Group, int, error) {
	where, args := filterSQL{search: []string{"name"}, status: "status", platform: "platform"}.where(p.Filter, nil)
	return listPage(ctx, d, "list groups", groupCols, "groups", where, args, "id", p, scanGroup)
}

// UpdateGroup writes every field but the id and timestamps, and sets g.UpdatedAt.
func (d *DB) UpdateGroup(ctx context.Context, g *store.Group) error {
	now := d.clock()
	err := mustAffect(d.w.ExecContext(ctx, `UPDATE groups SET name = $1, description = $2, platform = $3,
		billing_type = $4, rate_multiplier_ppm = $5, daily_limit = $6, weekly_limit = $7, monthly_limit = $8,
		status = $9, updated_at = $10, exclusive = $12 WHERE id = $11`,
		g.Name, g.Description, g.Platform, g.BillingType, g.RateMultiplierPPM,
		int64(g.DailyLimit), int64(g.WeeklyLimit), int64(g.MonthlyLimit), g.Status, d.tv(now), g.ID, g.Exclusive))
	if err != nil {
		return wrap(fmt.Sprintf("update group %d", g.ID), err)
	}
	g.UpdatedAt = now
	return nil
}

// DeleteGroup removes the group and its account memberships. ErrInvalid while API keys or
// subscriptions still refer to it: they must be moved or deleted first.
func (d *DB) DeleteGroup(ctx context.Context, id int64) error {
	return d.deleteByID(ctx, "groups", "group", id)
}
