package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
)

// loginAttempt is one login's reservation in the shared throttle counters: one attempt
// counted against the email and one against the client address, taken before the password
// is verified, so parallel requests cannot all pass a check made before any was counted.
type loginAttempt struct {
	emailKey, addrKey string
	emailCount        int64 // the email counter after this attempt was added
}

// reserveLogin counts an attempt for email from ip, or refuses with 429 when either counter
// is past its limit. Incr is atomic on every coordinator, so across all nodes exactly the
// limit's number of attempts get through in a window. The address is counted first: an
// address past its limit learns nothing and costs the email's owner nothing.
func (a *api) reserveLogin(ctx context.Context, email, ip string) (*loginAttempt, error) {
	at := &loginAttempt{emailKey: throttleKey("login:email:", email), addrKey: throttleKey("login:addr:", addressBucket(ip))}
	n, err := a.coord.Incr(ctx, at.addrKey, 1, a.loginWindow)
	if err != nil {
		return nil, err
	}
	if n > a.loginMaxAddr {
		return nil, a.throttled()
	}
	if at.emailCount, err = a.coord.Incr(ctx, at.emailKey, 1, a.loginWindow); err != nil {
		a.takeBack(ctx, at.addrKey, 1)
		return nil, err
	}
	if at.emailCount > a.loginMax {
		// Nothing was verified: the address's attempt is given back, the email's stays (it is
		// past the limit anyway).
		a.takeBack(ctx, at.addrKey, 1)
		return nil, a.throttled()
	}
	return at, nil
}

func (a *api) throttled() error {
	return &apiError{kind: kindRateLimited, retryAfter: a.loginWindow, message: "too many failed logins; try again later"}
}

// release gives the attempt back when no password was verified (the hashing gate was busy).
func (a *api) releaseLogin(ctx context.Context, at *loginAttempt) {
	a.takeBack(ctx, at.addrKey, 1)
	a.takeBack(ctx, at.emailKey, 1)
}

// loginSucceeded takes back what a successful login counted: its own attempt from the
// address (other failures from there stay), and every failure counted against the email up
// to this attempt, since its owner has just proved the password.
func (a *api) loginSucceeded(ctx context.Context, at *loginAttempt) {
	a.takeBack(ctx, at.addrKey, 1)
	a.takeBack(ctx, at.emailKey, at.emailCount)
}

// takeBack lowers a throttle counter (sign-in, 2FA, redeem). Best effort: the window
// expires anyway.
func (a *api) takeBack(ctx context.Context, key string, n int64) {
	if _, err := a.coord.Incr(context.WithoutCancel(ctx), key, -n, a.loginWindow); err != nil {
		a.log.WarnContext(ctx, "take back a throttle count", "throttle", throttleName(key), "err", err)
	}
}

// throttleKey names a counter. Hashed, so the coordination backend holds no emails or
// addresses.
func throttleKey(prefix, v string) string {
	sum := sha256.Sum256([]byte(prefix + v))
	return prefix + hex.EncodeToString(sum[:16])
}

// throttleName is the counter a throttle key belongs to (its prefix, "redeem:user"), for
// logs: the hashed rest names one user or address and says nothing to a reader.
func throttleName(key string) string {
	if i := strings.LastIndexByte(key, ':'); i > 0 {
		return key[:i]
	}
	return key
}

// addressBucket is the unit an address is throttled by: an IPv4 address, or the /64 of an
// IPv6 address (one host usually holds a whole /64, so single addresses would be free to
// rotate).
func addressBucket(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

// countSignUp counts a sign-up from ip: each costs a password hash and may create a user,
// so an address gets as many per window as it gets failed logins.
func (a *api) countSignUp(ctx context.Context, ip string) error {
	n, err := a.coord.Incr(ctx, throttleKey("register:addr:", addressBucket(ip)), 1, a.loginWindow)
	if err != nil {
		return err
	}
	if n > a.loginMaxAddr {
		return &apiError{kind: kindRateLimited, retryAfter: a.loginWindow, message: "too many sign-ups from this address; try again later"}
	}
	return nil
}

// verifyCounted checks the current password of a signed-in user (to change the email or the
// password) as one login attempt, so a stolen token cannot be used to guess the password
// faster than the login throttle allows.
func (a *api) verifyCounted(r *http.Request, email, hash, pw string) (bool, error) {
	ctx := r.Context()
	at, err := a.reserveLogin(ctx, email, clientIP(r))
	if err != nil {
		return false, err
	}
	ok, err := a.verifyPassword(ctx, hash, pw)
	switch {
	case err != nil:
		a.releaseLogin(ctx, at)
	case ok:
		a.loginSucceeded(ctx, at)
	}
	return ok, err
}

// Password hashing goes through the node's gate, which bounds argon2id's memory.

func (a *api) hashPassword(ctx context.Context, pw string) (string, error) {
	h, err := a.passwords.Hash(ctx, pw)
	return h, gateError(err)
}

func (a *api) verifyPassword(ctx context.Context, encoded, pw string) (bool, error) {
	ok, err := a.passwords.Check(ctx, encoded, pw)
	return ok, gateError(err)
}

// gateError turns a full gate into 503 with Retry-After.
func gateError(err error) error {
	if errors.Is(err, secret.ErrBusy) {
		return &apiError{kind: kindUnavailable, retryAfter: time.Second, err: err,
			message: "the server is busy checking passwords; retry shortly"}
	}
	return err
}
