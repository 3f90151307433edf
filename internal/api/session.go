package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/store"
)

type userKey struct{}

// currentUser is the signed-in user that requireUser stored in the context.
func currentUser(ctx context.Context) *store.User {
	u, _ := ctx.Value(userKey{}).(*store.User)
	return u
}

// requireUser admits requests bearing a valid token of an existing, active user whose token
// version is current. The user is read from the store on every request, so a disabled user,
// a changed password or a demoted admin takes effect at once on every node.
func (a *api) requireUser(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := a.authenticate(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}
}

// requireAdmin is requireUser plus the admin role, taken from the store, not the token.
func (a *api) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return a.requireUser(func(w http.ResponseWriter, r *http.Request) {
		if currentUser(r.Context()).Role != store.RoleAdmin {
			a.writeError(w, r, newError(kindForbidden, "this route is for administrators"))
			return
		}
		h(w, r)
	})
}

func (a *api) authenticate(r *http.Request) (*store.User, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, newError(kindUnauthenticated, "an Authorization: Bearer token is required")
	}
	c, err := a.tokens.Parse(strings.TrimSpace(token))
	if err != nil {
		return nil, &apiError{kind: kindUnauthenticated, message: "the token is invalid or expired", err: err}
	}
	u, err := a.store.GetUser(r.Context(), c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(kindUnauthenticated, "the token's user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	if u.TokenVersion != c.TokenVersion {
		return nil, newError(kindUnauthenticated, "the token was revoked (password change, logout or disabled account); sign in again")
	}
	if u.Status != store.StatusActive {
		// Disabling bumps the token version, so this is only a guard; it answers like a
		// revoked token so a token says nothing about the account's state.
		return nil, newError(kindUnauthenticated, "the token was revoked; sign in again")
	}
	return u, nil
}
