package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/secret"
)

// clock is a settable time for the API's TOTP checks.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClockEnv(t *testing.T) (*env, *clock) {
	c := &clock{t: time.Now()}
	return newEnv(t, func(o *api.Options) { o.Now = c.now }), c
}

// otherNode is a second API node on the same store and coordinator.
func (e *env) otherNode(now func() time.Time) *env {
	return &env{t: e.t, st: e.st, co: e.co, keys: e.keys, tokens: e.tokens, msgs: e.msgs,
		h: httpx.WithRequestIDs(api.New(api.Options{Store: e.st, Keys: e.keys, Tokens: e.tokens, Coord: e.co, Now: now}))}
}

func code(t *testing.T, sec string, at time.Time) string {
	t.Helper()
	c, err := secret.TOTPCode(sec, secret.TOTPStep(at))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type enrolBody struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
}

type confirmBody struct {
	RecoveryCodes []string   `json:"recovery_codes"`
	Session       *tokenBody `json:"session"`
}

type challengeBody struct {
	TwoFactorRequired bool   `json:"two_factor_required"`
	Challenge         string `json:"challenge"`
	Token             string `json:"token"`
}

// enrol turns two-factor sign-in on for the token's user and returns the secret and the
// recovery codes.
func (e *env) enrol(token string, c *clock) (string, []string) {
	e.t.Helper()
	var en enrolBody
	e.do("POST", "/api/v1/me/2fa/enrol", token, map[string]any{}).ok(e.t, 200, &en)
	var cb confirmBody
	e.do("POST", "/api/v1/me/2fa/confirm", token, map[string]string{"code": code(e.t, en.Secret, c.now())}).ok(e.t, 200, &cb)
	return en.Secret, cb.RecoveryCodes
}

func (e *env) challenge(email, password string) string {
	e.t.Helper()
	var ch challengeBody
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}).ok(e.t, 200, &ch)
	if !ch.TwoFactorRequired || ch.Challenge == "" || ch.Token != "" {
		e.t.Fatalf("login with two-factor on answered %+v, want a challenge and no token", ch)
	}
	return ch.Challenge
}

func TestTwoFactorEnrolAndSignIn(t *testing.T) {
	e, c := newClockEnv(t)
	_, token := e.newUser("u@example.com")

	var en enrolBody
	e.do("POST", "/api/v1/me/2fa/enrol", token, nil).ok(t, 200, &en)
	if len(en.Secret) != 32 || !strings.HasPrefix(en.OTPAuthURI, "otpauth://totp/FluxCode:u@example.com?") ||
		!strings.Contains(en.OTPAuthURI, "secret="+en.Secret) {
		t.Fatalf("enrol = %+v", en)
	}
	// Not active until confirmed: the password alone still signs in.
	e.login("u@example.com", "user-password-1")
	e.do("POST", "/api/v1/me/2fa/confirm", token, map[string]string{"code": "000000"}).wantError(t, 400, "invalid_argument", "code")
	var cb confirmBody
	e.do("POST", "/api/v1/me/2fa/confirm", token, map[string]string{"code": code(t, en.Secret, c.now())}).ok(t, 200, &cb)
	if len(cb.RecoveryCodes) != 10 || cb.Session != nil {
		t.Fatalf("confirm = %+v, want 10 recovery codes and no new session", cb)
	}
	var st struct {
		Enabled           bool `json:"enabled"`
		RecoveryCodesLeft int  `json:"recovery_codes_left"`
	}
	e.do("GET", "/api/v1/me/2fa", token, nil).ok(t, 200, &st)
	if !st.Enabled || st.RecoveryCodesLeft != 10 {
		t.Fatalf("status = %+v", st)
	}

	ch := e.challenge("u@example.com", "user-password-1")
	// The attack: the challenge (proof of the password only) used as a session.
	e.do("GET", "/api/v1/me", ch, nil).wantError(t, 401, "unauthenticated", "")
	e.do("GET", "/api/v1/me/2fa", ch, nil).wantError(t, 401, "unauthenticated", "")
	// The code used to confirm cannot be used again.
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": code(t, en.Secret, c.now())}).
		wantError(t, 401, "unauthenticated", "")
	// A session token is not a challenge.
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": token, "code": code(t, en.Secret, c.now())}).
		wantError(t, 401, "unauthenticated", "")

	c.advance(secret.TOTPPeriod)
	fresh := code(t, en.Secret, c.now())
	var tb tokenBody
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": fresh}).ok(t, 200, &tb)
	e.do("GET", "/api/v1/me", tb.Token, nil).ok(t, 200, nil)
	// Replayed within its window, on another node: refused.
	other := e.otherNode(c.now)
	ch2 := other.challenge("u@example.com", "user-password-1")
	other.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch2, "code": fresh}).wantError(t, 401, "unauthenticated", "")

	// A recovery code works once.
	other.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch2, "recovery_code": strings.ToUpper(cb.RecoveryCodes[3])}).ok(t, 200, &tb)
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch2, "recovery_code": cb.RecoveryCodes[3]}).wantError(t, 401, "unauthenticated", "")
	e.do("GET", "/api/v1/me/2fa", token, nil).ok(t, 200, &st)
	if st.RecoveryCodesLeft != 9 {
		t.Fatalf("recovery codes left = %d, want 9", st.RecoveryCodesLeft)
	}

	// The secret is sealed at rest and recovery codes are stored hashed.
	dump := string(rawDump(t, e, "SELECT secret || pending_secret FROM user_totp", "SELECT hex(hash) FROM totp_recovery_codes"))
	if strings.Contains(dump, en.Secret) || strings.Contains(strings.ToLower(dump), strings.ReplaceAll(cb.RecoveryCodes[0], "-", "")) {
		t.Fatal("the TOTP secret or a recovery code is stored in the clear")
	}

	// Disabling needs the password and a code.
	c.advance(secret.TOTPPeriod)
	e.do("POST", "/api/v1/me/2fa/disable", tb.Token, map[string]string{"password": "wrong-password", "code": code(t, en.Secret, c.now())}).
		wantError(t, 401, "unauthenticated", "")
	c.advance(secret.TOTPPeriod)
	e.do("POST", "/api/v1/me/2fa/disable", tb.Token, map[string]string{"password": "user-password-1"}).wantError(t, 400, "invalid_argument", "code")
	e.do("POST", "/api/v1/me/2fa/disable", tb.Token, map[string]string{"password": "user-password-1", "code": code(t, en.Secret, c.now())}).ok(t, 204, nil)
	e.login("u@example.com", "user-password-1")
}

func rawDump(t *testing.T, e *env, queries ...string) []byte {
	t.Helper()
	var out []byte
	for _, q := range queries {
		rows, err := e.st.RawDB().QueryContext(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s...)
			out = append(out, '\n')
		}
		rows.Close()
	}
	return out
}

// Second-factor guesses are counted per user in the shared counters: after five wrong codes,
// even the right code is refused, on every node. The nodes share a store and each has its own
// coordinator client: two Redis clients of one server, or the single node's in-process one.
func TestTwoFactorThrottleAcrossNodes(t *testing.T) {
	run := func(t *testing.T, c1, c2 coord.Coordinator) {
		c := &clock{t: time.Now()}
		e := newEnv(t, func(o *api.Options) { o.Now, o.Coord = c.now, c1 })
		_, token := e.newUser("u@example.com")
		sec, _ := e.enrol(token, c)
		c.advance(secret.TOTPPeriod)
		other := &env{t: t, st: e.st, keys: e.keys, tokens: e.tokens,
			h: httpx.WithRequestIDs(api.New(api.Options{Store: e.st, Keys: e.keys, Tokens: e.tokens, Coord: c2, Now: c.now}))}
		ch := e.challenge("u@example.com", "user-password-1")
		right := code(t, sec, c.now())
		wrong := fmt.Sprintf("%06d", (atoi(right)+1)%1_000_000)
		nodes := []*env{e, other}
		for i := range 5 {
			nodes[i%2].do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": wrong}).wantError(t, 401, "unauthenticated", "")
		}
		r := other.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": right})
		r.wantError(t, 429, "rate_limited", "")
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": right}).wantError(t, 429, "rate_limited", "")
	}
	acrossNodes(t, run)
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func TestRequireTwoFactorForAdmins(t *testing.T) {
	e, c := newClockEnv(t)
	// An admin without two-factor sign-in cannot require it (they would lock themselves out).
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"require_2fa_for_admins": true}).wantError(t, 409, "conflict", "")
	e.enrol(e.adminToken, c)
	var s struct {
		Require bool `json:"require_2fa_for_admins"`
	}
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"require_2fa_for_admins": true}).ok(t, 200, &s)
	if !s.Require {
		t.Fatal("setting not saved")
	}

	// A second admin without TOTP: an existing session loses the admin routes ...
	var u userBody
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "second@example.com", "password": "second-password", "role": "admin"}).ok(t, 201, &u)
	c.advance(secret.TOTPPeriod) // the first admin's enrolment code is used
	// (created before: sessions issued now are enrol-only; simulate an old session by
	// issuing one directly)
	stored, err := e.st.GetUser(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := e.tokens.Issue(stored)
	if err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/api/v1/admin/users", old, nil).wantError(t, 403, "forbidden", "")

	// ... and a new sign-in gets a token good only for enrolling.
	var tb struct {
		Token    string `json:"token"`
		Required bool   `json:"two_factor_enrolment_required"`
	}
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "second@example.com", "password": "second-password"}).ok(t, 200, &tb)
	if tb.Token == "" || !tb.Required {
		t.Fatalf("login = %+v, want an enrol-only token", tb)
	}
	e.do("GET", "/api/v1/admin/users", tb.Token, nil).wantError(t, 401, "unauthenticated", "")
	e.do("GET", "/api/v1/me", tb.Token, nil).wantError(t, 401, "unauthenticated", "")
	e.do("POST", "/api/v1/me/2fa/disable", tb.Token, map[string]string{"password": "second-password", "code": "123456"}).wantError(t, 401, "unauthenticated", "")
	var en enrolBody
	e.do("POST", "/api/v1/me/2fa/enrol", tb.Token, nil).ok(t, 200, &en)
	var cb confirmBody
	e.do("POST", "/api/v1/me/2fa/confirm", tb.Token, map[string]string{"code": code(t, en.Secret, c.now())}).ok(t, 200, &cb)
	if cb.Session == nil || cb.Session.Token == "" {
		t.Fatal("confirming with an enrol-only token gave no session")
	}
	e.do("GET", "/api/v1/admin/users", cb.Session.Token, nil).ok(t, 200, nil)
	e.do("GET", "/api/v1/admin/users", old, nil).ok(t, 200, nil)

	// While required, an admin cannot turn it off; an admin can reset another user's.
	c.advance(secret.TOTPPeriod)
	e.do("POST", "/api/v1/me/2fa/disable", cb.Session.Token, map[string]string{"password": "second-password", "code": code(t, en.Secret, c.now())}).
		wantError(t, 403, "forbidden", "")
	e.do("DELETE", fmt.Sprintf("/api/v1/admin/users/%d/2fa", u.ID), e.adminToken, nil).ok(t, 204, nil)
	e.do("GET", "/api/v1/admin/users", old, nil).wantError(t, 403, "forbidden", "")
	e.do("DELETE", fmt.Sprintf("/api/v1/admin/users/%d/2fa", u.ID), e.adminToken, nil).wantError(t, 404, "not_found", "")

	// An ordinary user is not concerned.
	_, token := e.newUser("u@example.com")
	e.do("GET", "/api/v1/me", token, nil).ok(t, 200, nil)
	_ = http.StatusOK
}

// Moving the second factor to a new device, or replacing the recovery codes, needs a current
// code: a stolen session alone cannot take over the second factor.
func TestTwoFactorReenrolAndNewRecoveryCodesNeedACode(t *testing.T) {
	e, c := newClockEnv(t)
	_, token := e.newUser("u@example.com")
	sec, codes := e.enrol(token, c)
	c.advance(secret.TOTPPeriod)

	e.do("POST", "/api/v1/me/2fa/enrol", token, nil).wantError(t, 409, "conflict", "")
	e.do("POST", "/api/v1/me/2fa/recovery-codes", token, map[string]string{}).wantError(t, 400, "invalid_argument", "code")
	var fresh confirmBody
	e.do("POST", "/api/v1/me/2fa/recovery-codes", token, map[string]string{"code": code(t, sec, c.now())}).ok(t, 200, &fresh)
	if len(fresh.RecoveryCodes) != 10 || fresh.RecoveryCodes[0] == codes[0] {
		t.Fatalf("new recovery codes = %v", fresh.RecoveryCodes)
	}
	// The old codes are gone.
	ch := e.challenge("u@example.com", "user-password-1")
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "recovery_code": codes[0]}).wantError(t, 401, "unauthenticated", "")

	var en enrolBody
	e.do("POST", "/api/v1/me/2fa/enrol", token, map[string]string{"recovery_code": fresh.RecoveryCodes[0]}).ok(t, 200, &en)
	// Until the new device is confirmed, the old one still signs in.
	c.advance(secret.TOTPPeriod)
	var tb tokenBody
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": code(t, sec, c.now())}).ok(t, 200, &tb)
	c.advance(secret.TOTPPeriod)
	e.do("POST", "/api/v1/me/2fa/confirm", token, map[string]string{"code": code(t, en.Secret, c.now())}).ok(t, 200, nil)
	c.advance(secret.TOTPPeriod)
	ch = e.challenge("u@example.com", "user-password-1")
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": code(t, sec, c.now())}).wantError(t, 401, "unauthenticated", "")
	e.do("POST", "/api/v1/auth/login/2fa", "", map[string]string{"challenge": ch, "code": code(t, en.Secret, c.now())}).ok(t, 200, &tb)
}
