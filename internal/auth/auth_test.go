package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fluxcode/fluxcode/internal/store"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestIssueParseRoundTrip(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	tok := NewTokens(secret, time.Hour).WithClock(fixedClock(now))
	s, exp, err := tok.Issue(&store.User{ID: 42, Role: store.RoleAdmin, TokenVersion: 7})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Truncate(time.Second).Add(time.Hour); !exp.Equal(want) {
		t.Errorf("expiry = %v, want %v", exp, want)
	}
	c, err := tok.Parse(s)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Claims{UserID: 42, Role: store.RoleAdmin, TokenVersion: 7,
		IssuedAt: now.Truncate(time.Second), ExpiresAt: exp}
	if c.UserID != want.UserID || c.Role != want.Role || c.TokenVersion != want.TokenVersion ||
		!c.IssuedAt.Equal(want.IssuedAt) || !c.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("claims = %+v, want %+v", c, want)
	}
}

func TestParseRefuses(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := NewTokens(secret, time.Hour).WithClock(fixedClock(now))
	good, _, err := tok.Issue(&store.User{ID: 1, Role: store.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Subject: "1",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}, Role: "user"}
	withReg := func(f func(*jwt.RegisteredClaims)) claims { c := valid; f(&c.RegisteredClaims); return c }
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"fluxcode","sub":"2","role":"admin","tv":0,"iat":1,"exp":9999999999}`)) + "." + parts[2]

	cases := map[string]string{
		"Expired":         NewTokens(secret, time.Hour).WithClock(fixedClock(now.Add(-2 * time.Hour))).mustIssue(t),
		"OtherSecret":     NewTokens([]byte("another secret of enough length!"), time.Hour).WithClock(fixedClock(now)).mustIssue(t),
		"AlgNone":         sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid),
		"HS512":           sign(jwt.SigningMethodHS512, secret, valid),
		"TamperedPayload": tampered,
		"WrongIssuer":     sign(jwt.SigningMethodHS256, secret, withReg(func(r *jwt.RegisteredClaims) { r.Issuer = "other" })),
		"NoExpiry":        sign(jwt.SigningMethodHS256, secret, withReg(func(r *jwt.RegisteredClaims) { r.ExpiresAt = nil })),
		"NoIssuedAt":      sign(jwt.SigningMethodHS256, secret, withReg(func(r *jwt.RegisteredClaims) { r.IssuedAt = nil })),
		"IssuedInFuture":  sign(jwt.SigningMethodHS256, secret, withReg(func(r *jwt.RegisteredClaims) { r.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute)) })),
		"BadSubject":      sign(jwt.SigningMethodHS256, secret, withReg(func(r *jwt.RegisteredClaims) { r.Subject = "abc" })),
		"ZeroSubject":     sign(jwt.SigningMethodHS256, secret, withReg(func(r *jwt.RegisteredClaims) { r.Subject = "0" })),
		"Garbage":         "not.a.token",
		"Empty":           "",
	}
	// The valid claims themselves pass, so each case fails for its own reason.
	if _, err := tok.Parse(sign(jwt.SigningMethodHS256, secret, valid)); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := tok.Parse(s); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Parse = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

func TestEmptySecretRefused(t *testing.T) {
	tok := NewTokens(nil, time.Hour)
	if _, _, err := tok.Issue(&store.User{ID: 1}); err == nil {
		t.Error("Issue with an empty secret succeeded")
	}
	good := NewTokens(secret, time.Hour).mustIssue(t)
	if _, err := tok.Parse(good); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Parse with an empty secret = %v, want ErrInvalidToken", err)
	}
}

func (t *Tokens) mustIssue(tb testing.TB) string {
	tb.Helper()
	s, _, err := t.Issue(&store.User{ID: 1, Role: store.RoleUser})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
