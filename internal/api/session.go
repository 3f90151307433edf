package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/auth"
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
		u, scope, err := a.authenticate(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), userKey{}, u)
		h(w, r.WithContext(context.WithValue(ctx, tokenScopeKey{}, scope)))
	}
}

// requireAdmin is requireUser plus the admin role, taken from the store, not the token, and
// two-factor sign-in when it is required for admins. Every change it lets through is
// recorded in the audit log (audit.go).
func (a *api) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	h = a.audited(h)
	return a.requireUser(func(w http.ResponseWriter, r *http.Request) {
		u := currentUser(r.Context())
		if u.Role != store.RoleAdmin {
			a.writeError(w, r, newError(kindForbidden, "this route is for administrators"))
			return
		}
		if err := a.checkAdminTwoFactor(r.Context(), u); err != nil {
			a.writeError(w, r, err)
			return
		}
		h(w, r)
	})
}

// authenticate returns the token's user and the token's scope. A scoped token (a pending
// second factor, an enrol-only session) passes only on routes that allow its scope.
func (a *api) authenticate(r *http.Request) (*store.User, string, error) {
	u, c, err := a.authenticateToken(r)
	if err != nil {
		return nil, "", err
	}
	if c.Scope != "" && c.Scope != allowedScope(r.Context()) {
		return nil, "", newError(kindUnauthenticated, "this token only serves to finish signing in (scope %s)", c.Scope)
	}
	return u, c.Scope, nil
}

func (a *api) authenticateToken(r *http.Request) (*store.User, auth.Claims, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if r.Header.Get("Authorization") == "" {
		// The console's HttpOnly cookie (see console.go); only with its header.
		scheme, token, ok = "Bearer", sessionToken(r), true
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, auth.Claims{}, newError(kindUnauthenticated, "an Authorization: Bearer token is required")
	}
	c, err := a.tokens.Parse(strings.TrimSpace(token))
	if err != nil {
		return nil, auth.Claims{}, &apiError{kind: kindUnauthenticated, message: "the token is invalid or expired", err: err}
	}
	u, err := a.store.GetUser(r.Context(), c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, auth.Claims{}, newError(kindUnauthenticated, "the token's user no longer exists")
	}
	if err != nil {
		return nil, auth.Claims{}, err
	}
	if u.TokenVersion != c.TokenVersion {
		return nil, auth.Claims{}, newError(kindUnauthenticated, "the token was revoked (password change, logout or disabled account); sign in again")
	}
	if u.Status != store.StatusActive {
		// Disabling bumps the token version, so this is only a guard; it answers like a
		// revoked token so a token says nothing about the account's state.
		return nil, auth.Claims{}, newError(kindUnauthenticated, "the token was revoked; sign in again")
	}
	return u, c, nil
}
