package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Reasons carried by HeaderReject for a key's policy.
const (
	RejectPolicy = "policy" // the key may not ask for this model, or not from this address
	RejectRate   = "rate"   // a requests- or tokens-per-minute limit of the key or its user is reached
)

// rateWindow is the length of the per-minute limits' fixed windows.
const rateWindow = time.Minute

// policy applies the key's policy once the model is known: the client's address (the
// address the ClientIPs middleware found, which trusts forwarding headers only from
// TRUSTED_PROXIES), the model, then the per-minute limits of the key and its user. A billed
// request counts one against both request limits; tokens are counted when the answer is
// billed (countTokens) and checked here, so a window may end a little over its token limit
// (by the answers in flight when it filled), never the request limit. Only a key or user
// with a limit costs the coordinator a call.
func (c *call) policy() bool {
	k, u := &c.auth.Key, &c.auth.User
	if len(k.AllowedIPs) > 0 && !addressAllowed(k.AllowedIPs, c.clientAddr()) {
		c.reject(RejectPolicy, provider.KindPermission, 0, "this API key may not be used from this address", 0)
		return false
	}
	if c.req.Model != "" && len(k.AllowedModels) > 0 && !modelAllowed(k.AllowedModels, c.req.Model) {
		c.reject(RejectPolicy, provider.KindPermission, 0,
			fmt.Sprintf("this API key may not use the model %q", c.req.Model), 0)
		return false
	}
	if c.op != provider.OpMessages {
		return true
	}
	reqs := c.rateWindows(k, u, 1)
	if len(reqs) == 0 {
		return true
	}
	ok, wait, err := c.g.coord.TakeRate(c.ctx(), reqs...)
	if err != nil {
		c.coordFailed(err)
		return false
	}
	if !ok {
		c.reject(RejectRate, provider.KindRateLimit, 0, "the requests or tokens per minute of this key or account are used up; retry after the window", max(wait, time.Second))
		return false
	}
	return true
}

// rateWindows are the limited windows of the key and its user: requests (costing cost) and
// tokens (checked only).
func (c *call) rateWindows(k *store.APIKey, u *store.User, cost int64) []coord.RateReq {
	var reqs []coord.RateReq
	add := func(key string, limit, cost int64) {
		if limit > 0 {
			reqs = append(reqs, coord.RateReq{Key: key, Scope: rateScope(u.ID), Limit: limit, Cost: cost, Window: rateWindow})
		}
	}
	add(keyRPM(k.ID), k.RPMLimit, cost)
	add(userRPM(u.ID), u.RPMLimit, cost)
	add(keyTPM(k.ID), k.TPMLimit, 0)
	add(userTPM(u.ID), u.TPMLimit, 0)
	return reqs
}

// countTokens adds a served answer's tokens (input, output and cache writes; cache reads are
// not counted) to the token windows of a key or user that has a token limit. A failure is
// logged: the answer is served and billed, only the window misses it.
func (c *call) countTokens(res *result) {
	k, u := &c.auth.Key, &c.auth.User
	n := res.usage.Input + res.usage.Output + res.usage.CacheCreation5m + res.usage.CacheCreation1h
	if n <= 0 || k.TPMLimit <= 0 && u.TPMLimit <= 0 {
		return
	}
	var reqs []coord.RateReq
	if k.TPMLimit > 0 {
		reqs = append(reqs, coord.RateReq{Key: keyTPM(k.ID), Scope: rateScope(u.ID), Cost: n, Window: rateWindow})
	}
	if u.TPMLimit > 0 {
		reqs = append(reqs, coord.RateReq{Key: userTPM(u.ID), Scope: rateScope(u.ID), Cost: n, Window: rateWindow})
	}
	// The answer has been sent: a client leaving now does not cancel its count.
	ctx := context.WithoutCancel(c.ctx())
	if _, _, err := c.g.coord.TakeRate(ctx, reqs...); err != nil {
		c.g.log.WarnContext(c.ctx(), "counting tokens against the per-minute limit failed", "err", err)
	}
}

// rateScope places a user's windows and those of the user's keys together, checked in one
// call (coord.RateReq.Scope); users spread over the shards of a Redis Cluster.
func rateScope(userID int64) string { return "user:" + strconv.FormatInt(userID, 10) }

func keyRPM(id int64) string  { return "rpm:key:" + strconv.FormatInt(id, 10) }
func userRPM(id int64) string { return "rpm:user:" + strconv.FormatInt(id, 10) }
func keyTPM(id int64) string  { return "tpm:key:" + strconv.FormatInt(id, 10) }
func userTPM(id int64) string { return "tpm:user:" + strconv.FormatInt(id, 10) }

// clientAddr is the client's address: as the ClientIPs middleware resolved it, else the
// connection's peer.
func (c *call) clientAddr() netip.Addr {
	if a := httpx.ClientIP(c.ctx()); a.IsValid() {
		return a.Unmap()
	}
	host, _, err := net.SplitHostPort(c.r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// addressAllowed reports whether addr is one of the IPs or inside one of the CIDRs.
func addressAllowed(allowed []string, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	for _, s := range allowed {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(addr) {
			return true
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// modelAllowed reports whether model matches a name exactly or a pattern "prefix*".
func modelAllowed(patterns []string, model string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(model, prefix) || p == model {
			return true
		}
	}
	return false
}
