package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/auth"
	"github.com/fluxcode/fluxcode/internal/secret"
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
		u, c, err := a.authenticate(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), userKey{}, u)
		ctx = context.WithValue(ctx, tokenScopeKey{}, c.Scope)
		h(w, r.WithContext(context.WithValue(ctx, adminKeyIDKey{}, c.adminKeyID)))
	}
}

// requireAdmin is requireUser plus the admin role, taken from the store, not the token, and
// two-factor sign-in when it is required for admins. Every change it lets through is
// recorded in the audit log (audit.go). Admin routes, and only they, take admin API keys.
func (a *api) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	h = a.audited(h)
	return allowScope(scopeAdminKey, a.requireUser(func(w http.ResponseWriter, r *http.Request) {
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
	}))
}

// credential is what a request authenticated with: a session token's claims, or an admin
// API key (Scope scopeAdminKey and the key's id).
type credential struct {
	auth.Claims
	adminKeyID int64
}

type adminKeyIDKey struct{}

// adminKeyID is the admin API key the request was authenticated with; 0 for a session.
func adminKeyID(ctx context.Context) int64 {
	id, _ := ctx.Value(adminKeyIDKey{}).(int64)
	return id
}

// authenticate returns the credential's user and the credential. A scoped one (a pending
// second factor, an enrol-only session, an admin API key) passes only on routes that allow
// its scope.
func (a *api) authenticate(r *http.Request) (*store.User, credential, error) {
	u, c, err := a.authenticateToken(r)
	if err != nil {
		return nil, credential{}, err
	}
	switch {
	case c.Scope == "" || c.Scope == allowedScope(r.Context()):
		return u, c, nil
	case c.Scope == scopeAdminKey:
		return nil, credential{}, newError(kindForbidden, "an admin API key serves only the /api/v1/admin/ routes")
	default:
		return nil, credential{}, newError(kindUnauthenticated, "this token only serves to finish signing in (scope %s)", c.Scope)
	}
}

// authenticateToken reads the credential: an admin API key (x-api-key, or Bearer with its
// prefix), else a session token (Bearer, or the console's cookie).
func (a *api) authenticateToken(r *http.Request) (*store.User, credential, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if key := r.Header.Get("x-api-key"); key != "" {
		return a.authenticateAdminKey(r, strings.TrimSpace(key))
	}
	if ok && strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(token, secret.AdminAPIKeyPrefix) {
		return a.authenticateAdminKey(r, token)
	}
	if r.Header.Get("Authorization") == "" {
		// The console's HttpOnly cookie (see console.go); only with its header.
		scheme, token, ok = "Bearer", strings.TrimSpace(sessionToken(r)), true
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, credential{}, newError(kindUnauthenticated, "an Authorization: Bearer token is required")
	}
	if strings.HasPrefix(token, secret.APIKeyPrefix) {
		return nil, credential{}, newError(kindUnauthenticated, "a gateway API key (%s…) does not sign in to /api/v1: "+
			"send a session token or an admin API key (%s…)", secret.APIKeyPrefix, secret.AdminAPIKeyPrefix)
	}
	c, err := a.tokens.Parse(token)
	if err != nil {
		return nil, credential{}, &apiError{kind: kindUnauthenticated, message: "the token is invalid or expired", err: err}
	}
	u, err := a.store.GetUser(r.Context(), c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, credential{}, newError(kindUnauthenticated, "the token's user no longer exists")
	}
	if err != nil {
		return nil, credential{}, err
	}
	if u.TokenVersion != c.TokenVersion {
		return nil, credential{}, newError(kindUnauthenticated, "the token was revoked (password change, logout or disabled account); sign in again")
	}
	if u.Status != store.StatusActive {
		// Disabling bumps the token version, so this is only a guard; it answers like a
		// revoked token so a token says nothing about the account's state.
		return nil, credential{}, newError(kindUnauthenticated, "the token was revoked; sign in again")
	}
	return u, credential{Claims: c}, nil
}
