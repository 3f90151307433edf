package api

import (
	"errors"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// groupReq is the body of both create (absent fields take defaults) and update (absent
// fields keep their values).
type groupReq struct {
	Name           *string     `json:"name"`
	Description    *string     `json:"description"`
	Platform       *string     `json:"platform"`
	BillingType    *string     `json:"billing_type"`
	RateMultiplier *multiplier `json:"rate_multiplier"`
	DailyLimit     *money      `json:"daily_limit"`
	WeeklyLimit    *money      `json:"weekly_limit"`
	MonthlyLimit   *money      `json:"monthly_limit"`
	Status         *string     `json:"status"`
	Exclusive      *bool       `json:"exclusive"`
}

// maxMultiplierPPM bounds a rate multiplier at 1000×: anything above is a typo.
const maxMultiplierPPM = 1000 * 1_000_000

// apply validates req and writes its fields into g.
func (req *groupReq) apply(g *store.Group) error {
	if req.Name != nil {
		name, err := checkText("name", *req.Name, true, maxNameLen)
		if err != nil {
			return err
		}
		g.Name = name
	}
	if req.Description != nil {
		d, err := checkText("description", *req.Description, false, maxTextLen)
		if err != nil {
			return err
		}
		g.Description = d
	}
	if req.Platform != nil {
		g.Platform = *req.Platform
	}
	if err := checkEnum("platform", g.Platform, store.PlatformAnthropic, store.PlatformOpenAI, store.PlatformGemini); err != nil {
		return err
	}
	if req.BillingType != nil {
		g.BillingType = *req.BillingType
	}
	if err := checkEnum("billing_type", g.BillingType, store.BillingBalance, store.BillingSubscription); err != nil {
		return err
	}
	if req.RateMultiplier != nil {
		if *req.RateMultiplier < 0 || *req.RateMultiplier > maxMultiplierPPM {
			return invalid("rate_multiplier", "rate_multiplier must be from 0 to 1000")
		}
		g.RateMultiplierPPM = int64(*req.RateMultiplier)
	}
	for _, l := range []struct {
		field string
		v     *money
		dst   *store.Nanos
	}{{"daily_limit", req.DailyLimit, &g.DailyLimit}, {"weekly_limit", req.WeeklyLimit, &g.WeeklyLimit},
		{"monthly_limit", req.MonthlyLimit, &g.MonthlyLimit}} {
		if l.v == nil {
			continue
		}
		if *l.v < 0 {
			return invalid(l.field, "%s must not be negative (0 means no limit)", l.field)
		}
		*l.dst = store.Nanos(*l.v)
	}
	if req.Status != nil {
		g.Status = *req.Status
	}
	if req.Exclusive != nil {
		g.Exclusive = *req.Exclusive
	}
	return checkEnum("status", g.Status, store.StatusActive, store.StatusDisabled)
}

func (a *api) createGroup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req groupReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Name == nil {
		a.writeError(w, r, invalid("name", "name is required"))
		return
	}
	g := &store.Group{BillingType: store.BillingBalance, RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := req.apply(g); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.CreateGroup(ctx, g); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	writeJSON(w, http.StatusCreated, viewGroup(g))
}

func nameConflict(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return &apiError{kind: kindConflict, field: "name", message: "this name is taken", err: err}
	}
	return err
}

func (a *api) updateGroup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	g, err := byPathID(r, a.store.GetGroup)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req groupReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	oldPlatform := g.Platform
	if err := req.apply(g); err != nil {
		a.writeError(w, r, err)
		return
	}
	if g.Platform != oldPlatform {
		// A group's accounts serve its platform; moving the group would strand them.
		accs, err := a.store.AccountsByGroup(ctx, g.ID)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if len(accs) > 0 {
			a.writeError(w, r, &apiError{kind: kindConflict, field: "platform",
				message: "the group has accounts of its current platform; remove them first"})
			return
		}
	}
	if err := a.store.UpdateGroup(ctx, g); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	a.publish(ctx, invalidate.Group, g.ID)
	writeStored(a, w, r, a.store.GetGroup, g.ID, viewGroup)
}

// deleteGroup removes a group; the store refuses while keys or subscriptions refer to it.
func (a *api) deleteGroup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	g, err := byPathID(r, a.store.GetGroup)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DeleteGroup(ctx, g.ID); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			err = &apiError{kind: kindConflict, err: err,
				message: "the group still has API keys or subscriptions; move or delete them first"}
		}
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.Group, g.ID)
	w.WriteHeader(http.StatusNoContent)
}
