package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Redeem codes: an admin issues a batch, each code is shown once in the answer and stored
// only as a keyed hash (like an API key); a user redeems one through /me/redeem.

const (
	// redeemCodePrefix starts every code; 24 random bytes follow (192 bits), so guessing
	// one is hopeless even without the per-user throttle on failures.
	redeemCodePrefix  = "rc-"
	redeemCodeBytes   = 24
	redeemPrefixLen   = 8 // kept for display: "rc-" and five characters
	maxRedeemBatch    = 1000
	maxRedeemCodeLen  = 100
	defaultRedeemMax  = 10 // failed redemptions per user per window
	redeemThrottleKey = "redeem:user:"
)

// redeemWorth is what a code gives, as every view of a code shows it.
type redeemWorth struct {
	Kind        string `json:"kind"`
	Amount      *money `json:"amount,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
	GroupID     int64  `json:"group_id,omitempty"`
	Days        int    `json:"days,omitempty"`
}

func viewWorth(c *store.RedeemCode) redeemWorth {
	w := redeemWorth{Kind: c.Kind, Concurrency: c.Concurrency, GroupID: c.GroupID, Days: c.Days}
	if c.Kind == store.RedeemBalance {
		m := money(c.Amount)
		w.Amount = &m
	}
	return w
}

type redeemCodeView struct {
	ID int64 `json:"id"`
	// Code is the code itself, present only in the answer that created it.
	Code   string `json:"code,omitempty"`
	Prefix string `json:"prefix"`
	redeemWorth
	Note      string     `json:"note"`
	Status    string     `json:"status"`
	CreatedBy int64      `json:"created_by"`
	UsedBy    int64      `json:"used_by,omitempty"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

func viewRedeemCode(c *store.RedeemCode) redeemCodeView {
	return redeemCodeView{ID: c.ID, Prefix: c.Prefix, redeemWorth: viewWorth(c), Note: c.Note, Status: c.Status,
		CreatedBy: c.CreatedBy, UsedBy: c.UsedBy, UsedAt: c.UsedAt, CreatedAt: c.CreatedAt}
}

// redeemedCodeView is a code as the user who spent it sees it: what it gave. The admin's
// note, who issued the code and its status in the admins' lists are the admins' business.
type redeemedCodeView struct {
	ID     int64  `json:"id"`
	Prefix string `json:"prefix"`
	redeemWorth
	UsedBy int64      `json:"used_by,omitempty"`
	UsedAt *time.Time `json:"used_at,omitempty"`
}

func viewRedeemedCode(c *store.RedeemCode) redeemedCodeView {
	return redeemedCodeView{ID: c.ID, Prefix: c.Prefix, redeemWorth: viewWorth(c), UsedBy: c.UsedBy, UsedAt: c.UsedAt}
}

type createRedeemCodesReq struct {
	Kind        string `json:"kind"`
	Count       int    `json:"count"`
	Amount      *money `json:"amount"`      // balance
	Concurrency int    `json:"concurrency"` // concurrency
	GroupID     int64  `json:"group_id"`    // subscription, with days
	Days        int    `json:"days"`
	Note        string `json:"note"`
}

// createRedeemCodes issues count codes of one worth and answers with them, the only time
// the codes themselves are shown.
func (a *api) createRedeemCodes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req createRedeemCodesReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	tmpl, err := a.redeemWorth(ctx, &req)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Count < 1 || req.Count > maxRedeemBatch {
		a.writeError(w, r, invalid("count", "count must be from 1 to %d", maxRedeemBatch))
		return
	}
	tmpl.CreatedBy = currentUser(ctx).ID
	codes := make([]store.RedeemCode, req.Count)
	plain := make([]string, req.Count)
	for i := range codes {
		plain[i] = redeemCodePrefix + secret.RandomToken(redeemCodeBytes)
		codes[i] = tmpl
		codes[i].Hash, codes[i].Prefix = a.keys.HashAPIKey(plain[i]), plain[i][:redeemPrefixLen]
	}
	if err := a.store.CreateRedeemCodes(ctx, codes); err != nil {
		a.writeError(w, r, err)
		return
	}
	items := make([]redeemCodeView, len(codes))
	for i := range codes {
		items[i] = viewRedeemCode(&codes[i])
		items[i].Code = plain[i]
	}
	writeJSON(w, http.StatusCreated, listBody[redeemCodeView]{Items: items})
}

// redeemWorth checks what a batch is worth: exactly the fields of its kind.
func (a *api) redeemWorth(ctx context.Context, req *createRedeemCodesReq) (store.RedeemCode, error) {
	note, err := checkText("note", req.Note, false, maxTextLen)
	c := store.RedeemCode{Kind: req.Kind, Note: note}
	if err != nil {
		return c, err
	}
	if err := checkEnum("kind", req.Kind, store.RedeemBalance, store.RedeemConcurrency, store.RedeemSubscription); err != nil {
		return c, err
	}
	isBalance, isConc, isSub := req.Kind == store.RedeemBalance, req.Kind == store.RedeemConcurrency, req.Kind == store.RedeemSubscription
	for _, f := range []struct {
		name       string
		set, allow bool
	}{{"amount", req.Amount != nil, isBalance}, {"concurrency", req.Concurrency != 0, isConc},
		{"group_id", req.GroupID != 0, isSub}, {"days", req.Days != 0, isSub}} {
		if f.set && !f.allow {
			return c, invalid(f.name, "%s does not apply to a %s code", f.name, req.Kind)
		}
	}
	switch {
	case isBalance:
		if req.Amount == nil || *req.Amount <= 0 {
			return c, invalid("amount", "amount must be more than zero")
		}
		c.Amount = store.Nanos(*req.Amount)
	case isConc:
		if req.Concurrency < 1 || req.Concurrency > maxConcurrency {
			return c, invalid("concurrency", "concurrency must be from 1 to %d", maxConcurrency)
		}
		c.Concurrency = req.Concurrency
	case isSub:
		g, err := a.groupField(ctx, "group_id", req.GroupID)
		if err != nil {
			return c, err
		}
		if g.BillingType != store.BillingSubscription {
			return c, invalid("group_id", "group %d bills by balance, not by subscription", g.ID)
		}
		if req.Days < 1 || req.Days > maxSubscriptionDays {
			return c, invalid("days", "days must be from 1 to %d", maxSubscriptionDays)
		}
		c.GroupID, c.Days = g.ID, req.Days
	}
	return c, nil
}

// listRedeemCodes lists codes filtered by search (prefix or note), group_id and status, which
// takes "used" besides active and disabled (a used code keeps its status).
func (a *api) listRedeemCodes(w http.ResponseWriter, r *http.Request) {
	status := strings.TrimSpace(r.URL.Query().Get("status"))
	if status != "" {
		if err := checkEnum("status", status, store.StatusActive, store.StatusDisabled, store.RedeemUsed); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	list := func(ctx context.Context, p store.Page) ([]store.RedeemCode, int, error) {
		p.Filter.Status = status
		return a.store.ListRedeemCodes(ctx, p)
	}
	listRoute(a, list, viewRedeemCode, "search", "group_id")(w, r)
}

func (a *api) disableRedeemCode(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DisableRedeemCode(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrConflict) {
			err = newError(kindConflict, "redeem code %d is used and cannot be disabled", id)
		}
		a.writeError(w, r, err)
		return
	}
	writeStored(a, w, r, a.store.GetRedeemCode, id, viewRedeemCode)
}

// exportRedeemCodes writes every code's record as CSV, newest first. The codes themselves
// are not stored, so they are not in it: they are in the answer that created them.
func (a *api) exportRedeemCodes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	first, total, err := a.store.ListRedeemCodes(ctx, store.Page{Limit: maxPageSize})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	cw := startCSV(w, "fluxcode-redeem-codes.csv")
	_ = cw.Write([]string{"id", "prefix", "kind", "amount", "concurrency", "group_id", "days", "note", "status",
		"created_by", "created_at", "used_by", "used_at"})
	page := first
	for off := 0; ; {
		for i := range page {
			c := &page[i]
			amount, usedAt := "", ""
			if c.Kind == store.RedeemBalance {
				amount = formatDecimal(int64(c.Amount), moneyScale)
			}
			if c.UsedAt != nil {
				usedAt = c.UsedAt.UTC().Format(time.RFC3339Nano)
			}
			_ = cw.Write([]string{itoa(c.ID), c.Prefix, c.Kind, amount, strconv.Itoa(c.Concurrency), itoa(c.GroupID),
				strconv.Itoa(c.Days), csvText(c.Note), c.Status, itoa(c.CreatedBy), c.CreatedAt.UTC().Format(time.RFC3339Nano),
				itoa(c.UsedBy), usedAt})
		}
		off += len(page)
		if len(page) < maxPageSize || off >= total {
			break
		}
		if page, _, err = a.store.ListRedeemCodes(ctx, store.Page{Offset: off, Limit: maxPageSize}); err != nil {
			a.log.WarnContext(ctx, "redeem code export cut short", "err", err)
			break
		}
	}
	cw.Flush()
}

type redeemReq struct {
	Code string `json:"code"`
}

// redeemedBody is what a redemption gave: the code, the user as they are now and, for a
// subscription code, the subscription.
type redeemedBody struct {
	Code         redeemedCodeView  `json:"redeemed"`
	User         userView          `json:"user"`
	Subscription *subscriptionView `json:"subscription,omitempty"`
}

// redeem spends a code for the signed-in user. Every attempt is counted against the user
// before the store is asked (so parallel guesses cannot all pass a check made before any was
// counted); a success gives its own count back, failures stay until the window ends.
func (a *api) redeem(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var req redeemReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	code, err := checkText("code", req.Code, true, maxRedeemCodeLen)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	key := throttleKey(redeemThrottleKey, strconv.FormatInt(u.ID, 10))
	n, err := a.coord.Incr(ctx, key, 1, a.loginWindow)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if n > a.redeemMax {
		a.writeError(w, r, &apiError{kind: kindRateLimited, retryAfter: a.loginWindow,
			message: "too many failed redemptions; try again later"})
		return
	}
	c, err := a.store.RedeemCode(ctx, a.keys.HashAPIKey(code), u.ID)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, invalid("code", "no such redeem code, or it is used or disabled"))
		return
	}
	a.takeBack(ctx, key, 1)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, u.ID)
	body := redeemedBody{Code: viewRedeemedCode(c)}
	fresh, err := a.store.GetUser(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body.User = viewUser(fresh)
	if c.Kind == store.RedeemSubscription {
		s, err := a.store.GetSubscription(ctx, u.ID, c.GroupID)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		sv := a.viewSubscription(s)
		body.Subscription = &sv
	}
	writeJSON(w, http.StatusOK, body)
}
