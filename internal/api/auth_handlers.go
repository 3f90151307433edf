package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

type credentialsReq struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type tokenBody struct {
	Token     string    `json:"token"`
	TokenType string    `json:"token_type"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userView  `json:"user"`
}

func (a *api) writeToken(w http.ResponseWriter, r *http.Request, status int, u *store.User) {
	tok, exp, err := a.tokens.Issue(u)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, status, tokenBody{Token: tok, TokenType: "Bearer", ExpiresAt: exp, User: viewUser(u)})
}

// register creates a user account when sign-up is open, and signs it in.
func (a *api) register(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	open, err := a.registrationOpen(ctx)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !open {
		a.writeError(w, r, newError(kindForbidden, "registration is disabled"))
		return
	}
	var req credentialsReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := newUser(req.Email, req.Password)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s, err := a.loadSettings(ctx)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	u.Concurrency = s.DefaultConcurrency
	if err := a.store.CreateUser(ctx, u); err != nil {
		a.writeError(w, r, emailConflict(err))
		return
	}
	if s.DefaultBalance > 0 {
		// A sign-up credit is a recorded transaction like any other (created by no admin), so
		// the transactions still sum to the balance.
		bal, err := a.store.AdjustBalance(ctx, &store.BalanceTransaction{UserID: u.ID,
			Amount: store.Nanos(s.DefaultBalance), Note: "sign-up credit"})
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		u.Balance = bal
	}
	a.writeToken(w, r, http.StatusCreated, u)
}

// login checks an email and password and returns a token. Failures are counted per email and
// client IP in the shared counters, so the throttle holds across nodes.
func (a *api) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req credentialsReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	email, err := normalizeEmail("email", req.Email)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Password == "" || len(req.Password) > maxPasswordLen {
		a.writeError(w, r, invalid("password", "password is required"))
		return
	}
	throttle := a.loginThrottleKey(email, clientIP(r))
	fails, err := a.coord.Get(ctx, throttle)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if fails >= a.loginMax {
		a.writeError(w, r, &apiError{kind: kindRateLimited, retryAfter: a.loginWindow,
			message: "too many failed logins; try again later"})
		return
	}
	u, err := a.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, err)
		return
	}
	hash := a.dummyHash
	if u != nil {
		hash = u.PasswordHash
	}
	if !secret.CheckPassword(hash, req.Password) || u == nil {
		if _, err := a.coord.Incr(ctx, throttle, 1, a.loginWindow); err != nil {
			a.writeError(w, r, err)
			return
		}
		a.writeError(w, r, newError(kindUnauthenticated, "wrong email or password"))
		return
	}
	if u.Status != store.StatusActive {
		a.writeError(w, r, newError(kindForbidden, "the account is disabled"))
		return
	}
	if fails > 0 {
		a.resetThrottle(ctx, throttle, fails)
	}
	a.writeToken(w, r, http.StatusOK, u)
}

// loginThrottleKey names the failure counter of one email from one address. Hashed, so the
// coordination backend holds no email addresses.
func (a *api) loginThrottleKey(email, ip string) string {
	sum := sha256.Sum256([]byte(email + "\x00" + ip))
	return "login:fail:" + hex.EncodeToString(sum[:16])
}

// resetThrottle takes back the failures counted before a successful login. Best effort: the
// window expires anyway.
func (a *api) resetThrottle(ctx context.Context, key string, fails int64) {
	if _, err := a.coord.Incr(ctx, key, -fails, a.loginWindow); err != nil {
		a.log.WarnContext(ctx, "reset login throttle", "error", err.Error())
	}
}
