package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Two-factor sign-in (TOTP, RFC 6238). A user enrols (a secret and its otpauth:// URI, shown
// once), confirms with a code, and receives ten one-time recovery codes (stored hashed).
// From then on a correct password only earns a short-lived challenge token; the second step
// trades it and a code (or a recovery code) for a session. A code's time step is recorded
// when used, atomically in the store, so it cannot be replayed on any node; second-step
// attempts are counted per user in the shared counters, so the limit holds across nodes.

const (
	scopeChallenge = "2fa-challenge" // a password was right; a second factor is due
	scopeEnrol     = "2fa-enrol"     // an admin who must enrol before anything else

	challengeTTL = 5 * time.Minute
	enrolTTL     = 15 * time.Minute

	recoveryCodeCount = 10
	// twoFactorMaxFailures second-factor attempts per user per login window; with three
	// codes valid at a time, guessing succeeds with odds of 1.5e-5 per window.
	twoFactorMaxFailures = 5

	settingRequire2FA = "require_2fa_for_admins"
)

type scopeKey struct{}

// allowScope lets tokens of scope through requireUser on this route (enrolment routes accept
// the enrol-only token). Every other route refuses scoped tokens.
func allowScope(scope string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, scope)))
	}
}

func allowedScope(ctx context.Context) string {
	s, _ := ctx.Value(scopeKey{}).(string)
	return s
}

type tokenScopeKey struct{}

// tokenScope is the scope of the token the request was authenticated with.
func tokenScope(ctx context.Context) string {
	s, _ := ctx.Value(tokenScopeKey{}).(string)
	return s
}

// require2FA reports whether admins must use two-factor sign-in.
func (a *api) require2FA(ctx context.Context) (bool, error) {
	v, err := a.store.GetSetting(ctx, settingRequire2FA)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	on, _ := strconv.ParseBool(v)
	return on, nil
}

// totpOf returns the user's enrolment, nil when there is none.
func (a *api) totpOf(ctx context.Context, userID int64) (*store.TOTP, error) {
	t, err := a.store.GetTOTP(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return t, err
}

// checkAdminTwoFactor refuses an admin without two-factor sign-in while it is required: a
// session opened before the setting was turned on must enrol too.
func (a *api) checkAdminTwoFactor(ctx context.Context, u *store.User) error {
	must, err := a.mustEnrol(ctx, u)
	if err != nil {
		return err
	}
	if must {
		return newError(kindForbidden, "administrators must use two-factor sign-in (require_2fa_for_admins): enrol with POST /api/v1/me/2fa/enrol")
	}
	return nil
}

// mustEnrol reports whether u is an admin without two-factor sign-in while it is required.
func (a *api) mustEnrol(ctx context.Context, u *store.User) (bool, error) {
	if u.Role != store.RoleAdmin {
		return false, nil
	}
	on, err := a.require2FA(ctx)
	if err != nil || !on {
		return false, err
	}
	t, err := a.totpOf(ctx, u.ID)
	if err != nil {
		return false, err
	}
	return t == nil || !t.Enabled, nil
}

type challengeBody struct {
	TwoFactorRequired bool      `json:"two_factor_required"`
	Challenge         string    `json:"challenge"`
	ExpiresAt         time.Time `json:"expires_at"`
}

// finishLogin answers a login whose password was right: a session, or a challenge for the
// second factor, or (an admin who must enrol) a token good only for enrolling.
func (a *api) finishLogin(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	t, err := a.totpOf(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if t != nil && t.Enabled {
		tok, exp, err := a.tokens.IssueScoped(u, scopeChallenge, challengeTTL)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, challengeBody{TwoFactorRequired: true, Challenge: tok, ExpiresAt: exp})
		return
	}
	if u.Role == store.RoleAdmin {
		on, err := a.require2FA(ctx)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if on {
			tok, exp, err := a.tokens.IssueScoped(u, scopeEnrol, enrolTTL)
			if err != nil {
				a.writeError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, struct {
				tokenBody
				EnrolmentRequired bool `json:"two_factor_enrolment_required"`
			}{handOver(w, r, tok, exp, u), true})
			return
		}
	}
	a.writeToken(w, r, http.StatusOK, u)
}

type secondFactorReq struct {
	Challenge    string `json:"challenge"`
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
}

// loginSecondFactor trades a challenge and a code (or recovery code) for a session.
func (a *api) loginSecondFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req secondFactorReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.tokens.Parse(strings.TrimSpace(req.Challenge))
	if err != nil || c.Scope != scopeChallenge {
		a.writeError(w, r, newError(kindUnauthenticated, "the challenge is invalid or expired; sign in again"))
		return
	}
	u, err := a.store.GetUser(ctx, c.UserID)
	if err != nil || u.TokenVersion != c.TokenVersion || u.Status != store.StatusActive {
		a.writeError(w, r, newError(kindUnauthenticated, "the challenge is invalid or expired; sign in again"))
		return
	}
	if err := a.verifySecondFactor(ctx, u, req.Code, req.RecoveryCode); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeToken(w, r, http.StatusOK, u)
}

// verifySecondFactor checks a TOTP code or a recovery code of u's enabled enrolment, and uses
// it up. The attempt is counted before it is checked (atomically, across nodes), so no more
// than the limit are checked per window however many arrive at once.
func (a *api) verifySecondFactor(ctx context.Context, u *store.User, code, recovery string) error {
	code, recovery = strings.TrimSpace(code), strings.TrimSpace(recovery)
	if (code == "") == (recovery == "") {
		return invalid("code", "give either code or recovery_code")
	}
	if len(code) > 16 || len(recovery) > 64 {
		return invalid("code", "the code is too long")
	}
	key, n, err := a.reserveSecondFactor(ctx, u.ID)
	if err != nil {
		return err
	}
	t, err := a.totpOf(ctx, u.ID)
	if err != nil {
		a.takeBack(ctx, key, 1)
		return err
	}
	if t == nil || !t.Enabled {
		a.takeBack(ctx, key, 1)
		return newError(kindConflict, "two-factor sign-in is not enabled")
	}
	ok := false
	if code != "" {
		if step, match := secret.CheckTOTP(t.Secret, code, a.now(), t.LastStep); match {
			// Another node may have taken the same step a moment ago: the store decides.
			if ok, err = a.store.UseTOTPStep(ctx, u.ID, step); err != nil {
				return err
			}
		}
	} else if ok, err = a.store.UseRecoveryCode(ctx, u.ID, secret.HashRecoveryCode(recovery)); err != nil {
		return err
	}
	if !ok {
		return newError(kindUnauthenticated, "wrong or already used code")
	}
	a.takeBack(ctx, key, n)
	return nil
}

// reserveSecondFactor counts one second-factor attempt of the user, or refuses with 429 past
// the limit. It returns the counter and its value, for giving the attempts back on success.
func (a *api) reserveSecondFactor(ctx context.Context, userID int64) (key string, n int64, err error) {
	key = throttleKey("2fa:user:", strconv.FormatInt(userID, 10))
	if n, err = a.coord.Incr(ctx, key, 1, a.loginWindow); err != nil {
		return "", 0, err
	}
	if n > twoFactorMaxFailures {
		return "", 0, &apiError{kind: kindRateLimited, retryAfter: a.loginWindow, message: "too many wrong codes; try again later"}
	}
	return key, n, nil
}

type twoFactorStatus struct {
	Enabled           bool `json:"enabled"`
	Pending           bool `json:"pending"`
	RecoveryCodesLeft int  `json:"recovery_codes_left"`
	Required          bool `json:"required"`
}

func (a *api) getTwoFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var st twoFactorStatus
	t, err := a.totpOf(ctx, u.ID)
	if err == nil && u.Role == store.RoleAdmin {
		st.Required, err = a.require2FA(ctx)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if t != nil {
		st.Enabled, st.Pending, st.RecoveryCodesLeft = t.Enabled, t.PendingSecret != "", t.RecoveryCodesLeft
	}
	writeJSON(w, http.StatusOK, st)
}

// factorReq carries a current second factor: a TOTP code or a recovery code.
type factorReq struct {
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
}

type enrolBody struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
}

// enrolTwoFactor starts an enrolment: a new secret, pending until confirmed. Replacing an
// enabled enrolment needs a code of it, so a stolen session cannot move the second factor.
func (a *api) enrolTwoFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var req factorReq
	if err := decodeOptionalJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	t, err := a.totpOf(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if t != nil && t.Enabled {
		if req.Code == "" && req.RecoveryCode == "" {
			a.writeError(w, r, newError(kindConflict, "two-factor sign-in is already enabled: give a current code to enrol a new device"))
			return
		}
		if err := a.verifySecondFactor(ctx, u, req.Code, req.RecoveryCode); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	s, err := a.loadSettings(ctx)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	sec := secret.NewTOTPSecret()
	if err := a.store.SetPendingTOTP(ctx, u.ID, sec); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, enrolBody{Secret: sec, OTPAuthURI: secret.TOTPURI(s.SiteName, u.Email, sec)})
}

type codeReq struct {
	Code string `json:"code"`
}

type confirmBody struct {
	RecoveryCodes []string `json:"recovery_codes"`
	// Session replaces an enrol-only token with a full one.
	Session *tokenBody `json:"session,omitempty"`
}

// confirmTwoFactor activates the pending enrolment with a code from the new device and
// returns the recovery codes, shown this once.
func (a *api) confirmTwoFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var req codeReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	t, err := a.totpOf(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if t == nil || t.PendingSecret == "" {
		a.writeError(w, r, newError(kindConflict, "no enrolment is pending: start one with POST /api/v1/me/2fa/enrol"))
		return
	}
	key, n, err := a.reserveSecondFactor(ctx, u.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	step, ok := secret.CheckTOTP(t.PendingSecret, req.Code, a.now(), 0)
	if !ok {
		a.writeError(w, r, invalid("code", "the code does not match the new secret; check the device's clock"))
		return
	}
	codes, hashes := newRecoveryCodes()
	if err := a.store.EnableTOTP(ctx, u.ID, t.PendingSecret, step, hashes); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			err = newError(kindConflict, "the enrolment changed meanwhile; start again")
		}
		a.writeError(w, r, err)
		return
	}
	a.takeBack(ctx, key, n)
	body := confirmBody{RecoveryCodes: codes}
	if tokenScope(ctx) == scopeEnrol {
		tok, exp, err := a.tokens.Issue(u)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		s := handOver(w, r, tok, exp, u)
		body.Session = &s
	}
	writeJSON(w, http.StatusOK, body)
}

func newRecoveryCodes() (codes []string, hashes [][]byte) {
	for range recoveryCodeCount {
		c := secret.NewRecoveryCode()
		codes = append(codes, c)
		hashes = append(hashes, secret.HashRecoveryCode(c))
	}
	return codes, hashes
}

// newRecoveryCodesRoute replaces the recovery codes; it needs a current code.
func (a *api) regenerateRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var req factorReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.verifySecondFactor(ctx, u, req.Code, req.RecoveryCode); err != nil {
		a.writeError(w, r, err)
		return
	}
	codes, hashes := newRecoveryCodes()
	if err := a.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, confirmBody{RecoveryCodes: codes})
}

type disableReq struct {
	Password string `json:"password"`
	factorReq
}

// disableTwoFactor turns two-factor sign-in off; it needs the password and a code. An admin
// cannot while it is required for admins.
func (a *api) disableTwoFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	var req disableReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Password == "" || len(req.Password) > maxPasswordLen {
		a.writeError(w, r, invalid("password", "password is required"))
		return
	}
	if u.Role == store.RoleAdmin {
		on, err := a.require2FA(ctx)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if on {
			a.writeError(w, r, newError(kindForbidden, "administrators must keep two-factor sign-in while require_2fa_for_admins is on; enrol a new device instead"))
			return
		}
	}
	// The code is checked (and counted) first: the throttle then bounds password guesses too.
	if err := a.verifySecondFactor(ctx, u, req.Code, req.RecoveryCode); err != nil {
		a.writeError(w, r, err)
		return
	}
	ok, err := a.verifyPassword(ctx, u.PasswordHash, req.Password)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !ok {
		a.writeError(w, r, newError(kindUnauthenticated, "wrong password"))
		return
	}
	if err := a.store.DeleteTOTP(ctx, u.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resetUserTwoFactor is an admin's removal of a user's two-factor sign-in (a lost device).
func (a *api) resetUserTwoFactor(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.store.DeleteTOTP(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = newError(kindNotFound, "user %d has no two-factor sign-in", id)
		}
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeOptionalJSON is decodeJSON for a body that may be left out.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decodeJSON(w, r, dst)
}

// checkCanRequire2FA refuses to require two-factor sign-in for admins while the admin asking
// has none: they would lock themselves out of the admin routes.
func (a *api) checkCanRequire2FA(ctx context.Context, on bool) error {
	if !on {
		return nil
	}
	t, err := a.totpOf(ctx, currentUser(ctx).ID)
	if err != nil {
		return err
	}
	if t == nil || !t.Enabled {
		return newError(kindConflict, "enable two-factor sign-in for your own account before requiring it for administrators")
	}
	return nil
}
