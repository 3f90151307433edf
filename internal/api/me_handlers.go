package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

func (a *api) getMe(w http.ResponseWriter, r *http.Request) {
	a.writeMe(w, r, currentUser(r.Context()))
}

// updateMeReq changes the user's email; the current password confirms it, so a stolen token
// alone cannot move the account to another address.
type updateMeReq struct {
	Email    *string `json:"email"`
	Password string  `json:"password"`
}

func (a *api) updateMe(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := *currentUser(ctx)
	var req updateMeReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Email == nil {
		writeJSON(w, http.StatusOK, viewUser(&u))
		return
	}
	email, err := normalizeEmail("email", *req.Email)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ok, err := a.verifyCounted(r, u.Email, u.PasswordHash, req.Password)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !ok {
		a.writeError(w, r, invalid("password", "the current password is required to change the email"))
		return
	}
	u.Email = email
	if err := a.store.UpdateUser(ctx, &u); err != nil {
		a.writeError(w, r, emailConflict(err))
		return
	}
	a.publish(ctx, invalidate.User, u.ID)
	writeJSON(w, http.StatusOK, viewUser(&u))
}

type changePasswordReq struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
	// RevokeAPIKeys deletes every API key of the user too, for when they may have leaked
	// with the password.
	RevokeAPIKeys bool `json:"revoke_api_keys"`
}

// changePassword replaces the password and bumps the token version, which revokes every
// token issued before; the answer carries a fresh token.
func (a *api) changePassword(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var req changePasswordReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := checkPassword("new_password", req.NewPassword); err != nil {
		a.writeError(w, r, err)
		return
	}
	ok, err := a.verifyCounted(r, u.Email, u.PasswordHash, req.OldPassword)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !ok {
		a.writeError(w, r, invalid("old_password", "the current password is wrong"))
		return
	}
	if err := a.setPassword(ctx, u.ID, req.NewPassword, req.RevokeAPIKeys); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.SetSetting(ctx, mustChangeSetting(u.ID), "0"); err != nil {
		a.writeError(w, r, err)
		return
	}
	fresh, err := a.store.GetUser(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeToken(w, r, http.StatusOK, fresh)
}

// setPassword stores a new password (revoking the user's tokens) and, when revokeKeys is
// set, deletes every API key of the user. The keys go first: should that fail, nothing about
// the password has changed and the request can simply be repeated.
func (a *api) setPassword(ctx context.Context, userID int64, pw string, revokeKeys bool) error {
	hash, err := a.hashPassword(ctx, pw)
	if err != nil {
		return err
	}
	if revokeKeys {
		if err := a.deleteUserKeys(ctx, userID); err != nil {
			return err
		}
	}
	if err := a.store.SetPassword(ctx, userID, hash); err != nil {
		return err
	}
	a.publish(ctx, invalidate.User, userID)
	return nil
}

// logout revokes every token of the signed-in user (there is one token version per user,
// so this signs out all their sessions).
func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	if err := a.store.RevokeTokens(ctx, u.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.publish(ctx, invalidate.User, u.ID)
	clearSessionCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listMySubscriptions(w http.ResponseWriter, r *http.Request) {
	listRoute(a, ofUser(a.store.ListSubscriptions, currentUser(r.Context()).ID), a.viewSubscription)(w, r)
}

// listUsableGroups lists the groups the user may bind a key to.
func (a *api) listUsableGroups(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	groups, err := a.allGroups(ctx)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var usable []store.Group
	for i := range groups {
		ok, err := a.groupUsable(ctx, u, &groups[i])
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if ok {
			usable = append(usable, groups[i])
		}
	}
	writeList(w, usable, viewGroup)
}

// groupUsable: a user may use an active balance-billed group, or an active subscription
// group they hold a current subscription to; either only if they may use the group at all.
func (a *api) groupUsable(ctx context.Context, u *store.User, g *store.Group) (bool, error) {
	if g.Status != store.StatusActive {
		return false, nil
	}
	if ok, err := a.mayUseGroup(ctx, u.ID, g); !ok || err != nil {
		return false, err
	}
	if g.BillingType != store.BillingSubscription {
		return true, nil
	}
	sub, err := a.store.GetSubscription(ctx, u.ID, g.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	now := a.now()
	return sub.Status == store.StatusActive && !now.Before(sub.StartsAt) && now.Before(sub.ExpiresAt), nil
}

// mayUseGroup: every user may use a group that is not exclusive; an exclusive one only the
// users allowed on it.
func (a *api) mayUseGroup(ctx context.Context, userID int64, g *store.Group) (bool, error) {
	if !g.Exclusive {
		return true, nil
	}
	return a.store.MayUseGroup(ctx, userID, g.ID)
}

// allGroups reads every group, page by page.
func (a *api) allGroups(ctx context.Context) ([]store.Group, error) {
	var all []store.Group
	for off := 0; ; off += maxPageSize {
		page, total, err := a.store.ListGroups(ctx, store.Page{Offset: off, Limit: maxPageSize})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < maxPageSize || len(all) >= total {
			return all, nil
		}
	}
}
