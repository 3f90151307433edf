package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// authenticate finds the key's user and group and checks that all three may be used.
func (c *call) authenticate() bool {
	if c.key == "" {
		c.reject(RejectKey, provider.KindAuthentication, 0, "missing API key: send it in "+keyPlacesText(c.route.keys), 0)
		return false
	}
	a, err := c.g.lookupKey(c.ctx(), c.key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.reject(RejectKey, provider.KindAuthentication, 0, "invalid API key", 0)
		return false
	case err != nil:
		// The database is down or slow (a restart): keys in the node's cache still work, an
		// uncached one cannot be checked. Like a Redis outage, a retry soon may succeed, so
		// the refusal is a retryable 503 the client can tell from an upstream answer.
		c.g.log.ErrorContext(c.ctx(), "key lookup failed", "err", err)
		c.reject(RejectDatabase, provider.KindOverloaded, http.StatusServiceUnavailable,
			"the gateway cannot check API keys right now; retry shortly", retryShortly)
		return false
	}
	now := c.g.now()
	switch {
	case a.Key.Status != store.StatusActive:
		c.reject(RejectKey, provider.KindAuthentication, 0, "this API key is disabled", 0)
	case a.Key.ExpiresAt != nil && !now.Before(*a.Key.ExpiresAt):
		c.reject(RejectKey, provider.KindAuthentication, 0, "this API key has expired", 0)
	case a.User.Status != store.StatusActive:
		c.reject(RejectForbidden, provider.KindPermission, 0, "this account is disabled", 0)
	case a.Group.Status != store.StatusActive:
		c.reject(RejectForbidden, provider.KindPermission, 0, "this API key's group is disabled", 0)
	case !a.Allowed:
		// The group became exclusive (or the user left its list) after the key was bound.
		c.reject(RejectForbidden, provider.KindPermission, 0, "this API key's group is not available to this account", 0)
	default:
		if !c.choose(a.Group.Platform) {
			return false
		}
		c.auth = a
		return true
	}
	return false
}

// keyPlacesText names the key places for the client: "x-api-key or Authorization: Bearer".
func keyPlacesText(places []provider.KeyPlace) string {
	names := make([]string, len(places))
	for i, p := range places {
		switch {
		case p.Query != "":
			names[i] = "the " + p.Query + " query parameter"
		case p.Scheme != "":
			names[i] = p.Header + ": " + p.Scheme
		default:
			names[i] = strings.ToLower(p.Header)
		}
	}
	return strings.Join(names, " or ")
}

// lookupKey returns the key's KeyAuth from the node cache, reading the store on a miss. The
// cache is short-lived and dropped by key, user and group invalidations; unknown keys are
// remembered briefly so a client hammering with a bad key does not hammer the database. A
// known key whose entry is due for a read is answered from its last known value while the
// database cannot be read (cache.go).
func (g *Gateway) lookupKey(ctx context.Context, key string) (*store.KeyAuth, error) {
	hash := string(g.keys.HashAPIKey(key))
	return g.auth.get(ctx, hash, func(ctx context.Context) (*store.KeyAuth, error) {
		return g.store.KeyAuthByHash(ctx, []byte(hash))
	})
}
