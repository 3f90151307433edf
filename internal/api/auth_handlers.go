package api

import (
	"errors"
	"net/http"
	"time"

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
	writeJSON(w, status, handOver(w, r, tok, exp, u))
}

// handOver gives a script the token in the body; the console gets it only as an HttpOnly
// cookie, never in script's reach.
func handOver(w http.ResponseWriter, r *http.Request, tok string, exp time.Time, u *store.User) tokenBody {
	if fromConsole(r) {
		setSessionCookie(w, r, tok, exp)
		return tokenBody{TokenType: "cookie", ExpiresAt: exp, User: viewUser(u)}
	}
	return tokenBody{Token: tok, TokenType: "Bearer", ExpiresAt: exp, User: viewUser(u)}
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
	if err := a.countSignUp(ctx, clientIP(r)); err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.newUser(ctx, req.Email, req.Password)
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

// login checks an email and password and returns a token. The attempt is counted against
// the email and the client address before the password is verified (see reserveLogin), so the
// throttle holds for parallel requests and across nodes. A wrong password, an unknown email
// and a disabled user get the same answer.
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
	attempt, err := a.reserveLogin(ctx, email, clientIP(r))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.releaseLogin(ctx, attempt)
		a.writeError(w, r, err)
		return
	}
	hash := a.dummyHash
	if u != nil {
		hash = u.PasswordHash
	}
	ok, err := a.verifyPassword(ctx, hash, req.Password)
	if err != nil {
		a.releaseLogin(ctx, attempt)
		a.writeError(w, r, err)
		return
	}
	if !ok || u == nil || u.Status != store.StatusActive {
		a.writeError(w, r, newError(kindUnauthenticated, "wrong email or password"))
		return
	}
	a.loginSucceeded(ctx, attempt)
	a.finishLogin(w, r, u)
}
