package api

import (
	"net/http"
	"time"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// maxSubscriptionDays bounds a subscription's length: ten years.
const maxSubscriptionDays = 3650

func (a *api) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	userID, err := queryID(r, "user_id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeSubscriptions(w, r, userID)
}

func (a *api) listUserSubscriptions(w http.ResponseWriter, r *http.Request) {
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeSubscriptions(w, r, u.ID)
}

// writeSubscriptions answers with a page of userID's subscriptions (0: everyone's).
func (a *api) writeSubscriptions(w http.ResponseWriter, r *http.Request, userID int64) {
	listRoute(a, ofUser(a.store.ListSubscriptions, userID), a.viewSubscription)(w, r)
}

type assignSubscriptionReq struct {
	GroupID   int64      `json:"group_id"`
	StartsAt  *timestamp `json:"starts_at"` // default: now
	ExpiresAt *timestamp `json:"expires_at"`
	Days      int        `json:"days"` // instead of expires_at: length from starts_at
}

// assignSubscription subscribes a user to a subscription-billed group.
func (a *api) assignSubscription(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req assignSubscriptionReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	g, err := a.groupField(ctx, "group_id", req.GroupID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if g.BillingType != store.BillingSubscription {
		a.writeError(w, r, invalid("group_id", "group %d bills by balance, not by subscription", g.ID))
		return
	}
	start := a.now()
	if req.StartsAt != nil {
		start = time.Time(*req.StartsAt)
	}
	expires, err := a.subscriptionEnd(start, req.ExpiresAt, req.Days, "days")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s := &store.Subscription{UserID: u.ID, GroupID: g.ID, Status: store.StatusActive, StartsAt: start,
		ExpiresAt: expires, DailyStart: start, WeeklyStart: start, MonthlyStart: start}
	if err := a.store.CreateSubscription(ctx, s); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, u.ID)
	writeJSON(w, http.StatusCreated, a.viewSubscription(s))
}

// subscriptionEnd takes exactly one of an end time or a number of days from start, and
// requires the end to be after start and in the future.
func (a *api) subscriptionEnd(start time.Time, expiresAt *timestamp, days int, daysField string) (time.Time, error) {
	var end time.Time
	switch {
	case expiresAt != nil && days != 0:
		return end, invalid(daysField, "give expires_at or %s, not both", daysField)
	case expiresAt != nil:
		end = time.Time(*expiresAt)
	case days >= 1 && days <= maxSubscriptionDays:
		end = start.AddDate(0, 0, days)
	default:
		return end, invalid(daysField, "%s must be from 1 to %d (or give expires_at)", daysField, maxSubscriptionDays)
	}
	if !end.After(start) || !end.After(a.now()) {
		return end, invalid("expires_at", "expires_at must be after starts_at and in the future")
	}
	return end, nil
}

// pathSubscription reads the subscription of the path's user to the path's group.
func (a *api) pathSubscription(r *http.Request) (*store.Subscription, error) {
	userID, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	groupID, err := pathID(r, "group_id")
	if err != nil {
		return nil, err
	}
	return a.store.GetSubscription(r.Context(), userID, groupID)
}

type updateSubscriptionReq struct {
	Status    *string    `json:"status"`
	ExpiresAt *timestamp `json:"expires_at"`
	// ExtendDays adds days to the current end (or to now, when it has passed).
	ExtendDays int `json:"extend_days"`
}

func (a *api) updateSubscription(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, err := a.pathSubscription(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req updateSubscriptionReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Status != nil {
		if err := checkEnum("status", *req.Status, store.StatusActive, store.StatusDisabled); err != nil {
			a.writeError(w, r, err)
			return
		}
		s.Status = *req.Status
	}
	if req.ExpiresAt != nil || req.ExtendDays != 0 {
		// A new end counts from the start; an extension from the current end, or from now
		// when that has passed.
		start, days := s.StartsAt, req.ExtendDays
		if req.ExpiresAt == nil {
			start = s.ExpiresAt
			if now := a.now(); start.Before(now) {
				start = now
			}
		}
		end, err := a.subscriptionEnd(start, req.ExpiresAt, days, "extend_days")
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		s.ExpiresAt = end
		// A new end is in the future (subscriptionEnd): one the expiry job marked is
		// active again, unless the admin says otherwise.
		if s.Status == store.StatusExpired && req.Status == nil {
			s.Status = store.StatusActive
		}
	}
	if err := a.store.UpdateSubscription(ctx, s); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, s.UserID)
	fresh, err := a.store.GetSubscription(ctx, s.UserID, s.GroupID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.viewSubscription(fresh))
}

func (a *api) revokeSubscription(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, err := a.pathSubscription(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DeleteSubscription(ctx, s.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, s.UserID)
	w.WriteHeader(http.StatusNoContent)
}
