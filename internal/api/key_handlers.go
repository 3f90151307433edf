package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// keyPrefixLen is how much of a key is kept for display: "fk-" and five characters, far too
// few to help guess the remaining 250 bits.
const keyPrefixLen = 8

type createKeyReq struct {
	Name        string     `json:"name"`
	GroupID     int64      `json:"group_id"`
	Concurrency int        `json:"concurrency"`
	ExpiresAt   *timestamp `json:"expires_at"`
}

// createKey makes a key for the signed-in user. The answer is the only time the full key is
// shown: only its keyed hash is stored.
func (a *api) createKey(w http.ResponseWriter, r *http.Request) {
	a.issueKey(w, r, currentUser(r.Context()), "you", false)
}

// createUserKey lets an admin make a key for any user, bound to a group that user may use
// (the same rule as the user's own keys, so the key works at the gateway). Like createKey,
// the answer is the only time the full key is shown.
func (a *api) createUserKey(w http.ResponseWriter, r *http.Request) {
	owner, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.issueKey(w, r, owner, "this user", true)
}

// issueKey validates a createKeyReq and stores a new key owned by owner; whom names the owner
// in the error about an unusable group. A key an admin makes carries its concurrency and
// expiry as admin limits, which the owner cannot loosen.
func (a *api) issueKey(w http.ResponseWriter, r *http.Request, owner *store.User, whom string, byAdmin bool) {
	ctx := r.Context()
	var req createKeyReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	name, err := checkText("name", req.Name, false, maxNameLen)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if name == "" {
		name = "default"
	}
	if err := a.checkUsableGroup(ctx, owner, req.GroupID, whom); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := checkConcurrency("concurrency", req.Concurrency); err != nil {
		a.writeError(w, r, err)
		return
	}
	var expires *time.Time
	if req.ExpiresAt != nil {
		t := time.Time(*req.ExpiresAt)
		if !t.After(a.now()) {
			a.writeError(w, r, invalid("expires_at", "expires_at must be in the future"))
			return
		}
		expires = &t
	}
	full := secret.NewAPIKey()
	k := &store.APIKey{UserID: owner.ID, GroupID: req.GroupID, Name: name, Hash: a.keys.HashAPIKey(full),
		Prefix: full[:keyPrefixLen], Status: store.StatusActive, Concurrency: req.Concurrency, ExpiresAt: expires}
	if byAdmin {
		k.AdminConcurrency, k.AdminExpiresAt = req.Concurrency, expires
	}
	if err := a.store.CreateAPIKey(ctx, k); err != nil {
		a.writeError(w, r, err)
		return
	}
	// A node may remember that this hash was unknown a moment ago.
	a.publish(ctx, invalidate.Key, k.ID)
	writeJSON(w, http.StatusCreated, createdKeyView{keyView: viewKey(k), Key: full})
}

// checkUsableGroup validates a group_id to bind a key of u to; whom names u in the error.
func (a *api) checkUsableGroup(ctx context.Context, u *store.User, groupID int64, whom string) error {
	g, err := a.groupField(ctx, "group_id", groupID)
	if err != nil {
		return err
	}
	ok, err := a.groupUsable(ctx, u, g)
	if err != nil {
		return err
	}
	if !ok {
		return invalid("group_id", "group %d is not available to %s", groupID, whom)
	}
	return nil
}

func (a *api) listMyKeys(w http.ResponseWriter, r *http.Request) {
	listRoute(a, ofUser(a.store.ListAPIKeys, currentUser(r.Context()).ID), viewKey, "search", "status", "group_id")(w, r)
}

// myKey reads the key named by the path, refusing another user's key as not found so ids of
// others' keys cannot be probed.
func (a *api) myKey(r *http.Request) (*store.APIKey, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	k, err := a.store.GetAPIKey(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if k.UserID != currentUser(r.Context()).ID {
		return nil, newError(kindNotFound, "not found")
	}
	return k, nil
}

func (a *api) getMyKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.myKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewKey(k))
}

type updateKeyReq struct {
	Name        *string              `json:"name"`
	Status      *string              `json:"status"`
	Concurrency *int                 `json:"concurrency"`
	ExpiresAt   optional[*timestamp] `json:"expires_at"` // null: never expires
	GroupID     *int64               `json:"group_id"`
	keyPolicyReq
}

func (a *api) updateMyKey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	k, err := a.myKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req updateKeyReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	checkGroup := func(id int64) error { return a.checkUsableGroup(ctx, currentUser(ctx), id, "you") }
	if err := a.applyKeyUpdate(k, &req, false, checkGroup); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.saveKey(w, r, k)
}

// applyKeyUpdate validates req and writes its fields into k; checkGroup vets a new group.
// An admin's status, concurrency and expiry are recorded as the key's admin limits too; an
// owner's must stay within those limits, so an owner cannot undo what an admin imposed.
func (a *api) applyKeyUpdate(k *store.APIKey, req *updateKeyReq, byAdmin bool, checkGroup func(int64) error) error {
	if req.Name != nil {
		name, err := checkText("name", *req.Name, true, maxNameLen)
		if err != nil {
			return err
		}
		k.Name = name
	}
	if req.Status != nil {
		if err := checkEnum("status", *req.Status, store.StatusActive, store.StatusDisabled); err != nil {
			return err
		}
		switch {
		case byAdmin:
			k.AdminDisabled = *req.Status == store.StatusDisabled
		case k.AdminDisabled && *req.Status == store.StatusActive:
			return &apiError{kind: kindForbidden, field: "status", message: "an administrator disabled this key"}
		}
		k.Status = *req.Status
	}
	if req.Concurrency != nil {
		if err := checkConcurrency("concurrency", *req.Concurrency); err != nil {
			return err
		}
		c := *req.Concurrency
		switch {
		case byAdmin:
			k.AdminConcurrency = c
		case k.AdminConcurrency > 0 && (c == 0 || c > k.AdminConcurrency):
			return &apiError{kind: kindForbidden, field: "concurrency",
				message: fmt.Sprintf("an administrator limited this key to concurrency %d", k.AdminConcurrency)}
		}
		k.Concurrency = c
	}
	if req.ExpiresAt.Set {
		var exp *time.Time
		if req.ExpiresAt.V != nil {
			t := time.Time(*req.ExpiresAt.V)
			if !t.After(a.now()) {
				return invalid("expires_at", "expires_at must be in the future (or null for never)")
			}
			exp = &t
		}
		switch {
		case byAdmin:
			k.AdminExpiresAt = exp
		case k.AdminExpiresAt != nil && (exp == nil || exp.After(*k.AdminExpiresAt)):
			return &apiError{kind: kindForbidden, field: "expires_at", message: fmt.Sprintf(
				"an administrator set this key to expire at %s; it can only be earlier", k.AdminExpiresAt.Format(time.RFC3339))}
		}
		k.ExpiresAt = exp
	}
	if req.GroupID != nil && *req.GroupID != k.GroupID {
		if err := checkGroup(*req.GroupID); err != nil {
			return err
		}
		k.GroupID = *req.GroupID
	}
	return req.keyPolicyReq.apply(k, byAdmin)
}

// saveKey writes an updated key, tells every node, and answers with it.
func (a *api) saveKey(w http.ResponseWriter, r *http.Request, k *store.APIKey) {
	ctx := r.Context()
	if err := a.store.UpdateAPIKey(ctx, k); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.Key, k.ID)
	writeStored(a, w, r, a.store.GetAPIKey, k.ID, viewKey)
}

func (a *api) deleteMyKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.myKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.removeKey(w, r, k.ID)
}

func (a *api) removeKey(w http.ResponseWriter, r *http.Request, id int64) {
	ctx := r.Context()
	if err := a.store.DeleteAPIKey(ctx, id); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.Key, id)
	w.WriteHeader(http.StatusNoContent)
}

// Admin: keys of any user.

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	userID, err := queryID(r, "user_id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeKeys(w, r, userID)
}

func (a *api) listUserKeys(w http.ResponseWriter, r *http.Request) {
	u, err := byPathID(r, a.store.GetUser)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeKeys(w, r, u.ID)
}

// writeKeys answers with a page of the keys of userID (0: everyone's).
func (a *api) writeKeys(w http.ResponseWriter, r *http.Request, userID int64) {
	listRoute(a, ofUser(a.store.ListAPIKeys, userID), viewKey, "search", "status", "group_id")(w, r)
}

// updateKey lets an admin bind any existing group the owner may use (the gateway still
// refuses a subscription group the owner has no subscription to).
func (a *api) updateKey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	k, err := byPathID(r, a.store.GetAPIKey)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req updateKeyReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	checkGroup := func(id int64) error {
		g, err := a.groupField(ctx, "group_id", id)
		if err != nil {
			return err
		}
		ok, err := a.mayUseGroup(ctx, k.UserID, g)
		if err == nil && !ok {
			err = invalid("group_id", "group %d is exclusive and user %d is not allowed on it", id, k.UserID)
		}
		return err
	}
	if err := a.applyKeyUpdate(k, &req, true, checkGroup); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.saveKey(w, r, k)
}

func (a *api) deleteKey(w http.ResponseWriter, r *http.Request) {
	k, err := byPathID(r, a.store.GetAPIKey)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.removeKey(w, r, k.ID)
}

// groupField reads the group a request field names, as a field error when it does not exist.
func (a *api) groupField(ctx context.Context, field string, id int64) (*store.Group, error) {
	if id <= 0 {
		return nil, invalid(field, "%s must be a positive group id", field)
	}
	g, err := a.store.GetGroup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid(field, "no group has id %d", id)
	}
	return g, err
}
