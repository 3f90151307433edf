// Package auth issues and checks the JSON Web Tokens that the console and the JSON API use.
//
// Tokens are HS256 only; the secret is shared by every node (from JWT_SECRET, or generated once
// and stored in the database), so a token issued by one node is accepted by all. A token
// carries the user's TokenVersion: a password change bumps the version in the store, and the
// API refuses tokens that carry an older one.
package auth

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fluxcode/fluxcode/internal/store"
)

// issuer names FluxCode in every token, so a token minted for another service under the same
// secret is not taken for ours.
const issuer = "fluxcode"

// ErrInvalidToken is returned by Parse for any token that must not be accepted: malformed,
// badly signed, of another algorithm, expired or with missing claims.
var ErrInvalidToken = errors.New("invalid token")

// Claims is what a valid token says about its bearer.
type Claims struct {
	UserID       int64
	Role         string
	TokenVersion int64
	// Scope limits what the token is good for: "" is a full session; other values (a pending
	// two-factor step, an enrolment-only session) are accepted only where a route asks for them.
	Scope     string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Tokens issues and parses tokens under one secret. Safe for concurrent use.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens returns a token service signing with secret; tokens expire ttl after issue.
// An empty secret makes every Issue and Parse fail rather than sign with a guessable key.
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{secret: append([]byte(nil), secret...), ttl: ttl, now: time.Now}
}

// WithClock returns a copy of t that reads the time from now (tests move time instead of
// sleeping).
func (t *Tokens) WithClock(now func() time.Time) *Tokens {
	c := *t
	c.now = now
	return &c
}

// TTL is how long an issued token stays valid.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// claims is the token's JSON body: registered claims plus role and token version.
type claims struct {
	jwt.RegisteredClaims
	Role         string `json:"role"`
	TokenVersion int64  `json:"tv"`
	Scope        string `json:"scope,omitempty"`
}

// Issue signs a session token for u and returns it with its expiry.
func (t *Tokens) Issue(u *store.User) (string, time.Time, error) {
	return t.IssueScoped(u, "", t.ttl)
}

// IssueScoped signs a token for u limited to scope, valid for ttl (capped at the session TTL).
func (t *Tokens) IssueScoped(u *store.User, scope string, ttl time.Duration) (string, time.Time, error) {
	if len(t.secret) == 0 {
		return "", time.Time{}, errors.New("auth: issue token: empty secret")
	}
	if t.ttl <= 0 || ttl <= 0 {
		return "", time.Time{}, fmt.Errorf("auth: issue token: ttl %s is not positive", min(t.ttl, ttl))
	}
	// NumericDate keeps whole seconds; truncate first so the returned expiry is the token's.
	now := t.now().Truncate(time.Second)
	exp := now.Add(min(ttl, t.ttl))
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(u.ID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Role:         u.Role,
		TokenVersion: u.TokenVersion,
		Scope:        scope,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign token: %w", err)
	}
	return s, exp, nil
}

// Parse verifies token and returns its claims. Every failure wraps ErrInvalidToken.
func (t *Tokens) Parse(token string) (Claims, error) {
	if len(t.secret) == 0 {
		return Claims{}, fmt.Errorf("%w: empty secret", ErrInvalidToken)
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		// Only HS256: refuses "none" and the RS/HS confusion.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return Claims{}, fmt.Errorf("%w: bad subject", ErrInvalidToken)
	}
	if c.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: no issue time", ErrInvalidToken)
	}
	return Claims{
		UserID:       id,
		Role:         c.Role,
		TokenVersion: c.TokenVersion,
		Scope:        c.Scope,
		IssuedAt:     c.IssuedAt.Time,
		ExpiresAt:    c.ExpiresAt.Time,
	}, nil
}
