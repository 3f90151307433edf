package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// HeaderReject marks every answer in which the gateway itself refused a request, so a client
// can tell the gateway's refusal from an upstream answer with the same status (doc.go).
const HeaderReject = "X-Fluxcode-Reject"

// Reasons carried by HeaderReject.
const (
	RejectKey          = "key"          // no key, an unknown, disabled or expired key
	RejectForbidden    = "forbidden"    // the key's user or group is disabled, the user may not use the group, or it serves another protocol
	RejectRequest      = "request"      // the request itself: malformed, too large, too slow, no such route or model
	RejectConcurrency  = "concurrency"  // no slot freed within the wait timeout
	RejectQueueFull    = "queue_full"   // too many requests already waiting
	RejectBalance      = "balance"      // the balance is not positive
	RejectSubscription = "subscription" // no active subscription, or a usage window is full
	RejectCoordination = "coordination" // the coordinator (Redis) cannot be reached
	RejectDatabase     = "database"     // the database cannot be reached (an uncached key, the accounts)
	RejectNoAccount    = "no_account"   // no account of the group can serve the model now
)

// messagePrefix starts every message the gateway writes of its own.
const messagePrefix = "FluxCode: "

// retryShortly is the Retry-After of refusals that a moment's wait may cure (a slot, the
// queue, a backend coming back).
const retryShortly = time.Second

// retryable are the reasons a retry by the client may cure: x-should-retry: true, honoured
// by the Stainless SDKs of Anthropic and OpenAI above their own status rules. The others
// tell the SDKs not to retry (a full subscription window names its restart in Retry-After,
// often hours away, beyond what an SDK waits).
var retryable = map[string]bool{
	RejectConcurrency: true, RejectQueueFull: true, RejectCoordination: true,
	RejectDatabase: true, RejectBodyBudget: true, RejectNoAccount: true, RejectRate: true,
}

// clientMistakes are refusals of the client's own request, counted under their error kind
// (authentication, invalid_request, ...) rather than as admission refusals.
var clientMistakes = map[string]bool{RejectKey: true, RejectForbidden: true, RejectRequest: true}

// reject is the one way the gateway refuses a request of its own: the provider's error shape
// with status (0: the kind's), HeaderReject: reason, the message with the FluxCode prefix,
// x-should-retry, and Retry-After when retryAfter is positive.
func (c *call) reject(reason string, kind provider.ErrorKind, status int, message string, retryAfter time.Duration) {
	h := c.w.Header()
	h.Set("X-Should-Retry", strconv.FormatBool(retryable[reason]))
	if retryAfter > 0 {
		h.Set("Retry-After", retryAfterValue(retryAfter))
	}
	if !strings.HasPrefix(message, messagePrefix) {
		message = messagePrefix + message
	}
	if clientMistakes[reason] && c.outcome == outcomeOK {
		c.outcome = string(kind)
	}
	c.fail(kind, status, message, reason)
}

// retryAfterValue is d in whole seconds, rounded up.
func retryAfterValue(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// fail answers the client with an error of kind. status 0 means the kind's status. reject,
// when set, is the refusal reason for HeaderReject (the gateway's own refusals come through
// reject). After the response has started as an event stream, the error becomes one error
// event; after a JSON answer started, nothing more can be said.
func (c *call) fail(kind provider.ErrorKind, status int, message, reject string) {
	if c.outcome == outcomeOK {
		c.outcome = string(kind)
		if reject != "" {
			c.outcome = outcomeRejected + reject
		}
	}
	if c.gone.Load() {
		return
	}
	if c.committed {
		if c.sse {
			c.writeEvent(c.errorEvent(kind, message))
		}
		return
	}
	if reject != "" {
		c.w.Header().Set(HeaderReject, reject)
	}
	c.committed = true
	c.prov.WriteError(c.w, kind, status, message, c.id)
}

// failUpstream ends a request none of whose attempts succeeded, reporting the last upstream
// failure in the client's format. The upstream's own words stay in the logs and the account's
// state: they describe the operator's account (its organization, its limits), not the
// client's request. An account's 401/403 is not the client's credential problem either, so it
// is reported as a gateway-side 502. A 429 or 529 keeps the upstream's retry-after. With no
// failure at all, no account could be tried: that is the gateway's refusal (noAccount).
func (c *call) failUpstream(last *provider.Failure) {
	if last == nil {
		c.noAccount()
		return
	}
	defer func() { c.outcome = outcomeUpstreamError }()
	switch last.Kind {
	case provider.KindAuthentication, provider.KindPermission, provider.KindBilling:
		c.fail(provider.KindAPI, http.StatusBadGateway, "the upstream accounts of this group cannot serve right now", "")
	case provider.KindRateLimit:
		c.keepRetryAfter(last)
		c.fail(last.Kind, 0, "upstream rate limit: the accounts of this group are limited; retry later", "")
	case provider.KindOverloaded:
		c.keepRetryAfter(last)
		c.fail(last.Kind, 0, "upstream overloaded; retry later", "")
	case provider.KindTimeout:
		c.fail(last.Kind, 0, "the upstream did not answer in time", "")
	default:
		status := last.Status
		if status < 500 {
			status = http.StatusBadGateway // a network error has no status
		}
		c.fail(provider.KindAPI, status, fmt.Sprintf("upstream error (%s)", failoverReason(last)), "")
	}
}

// keepRetryAfter passes the upstream's retry-after of the last failure on to the client; an
// upstream that gives its delay elsewhere (Gemini's RetryInfo in the body) is answered with
// the delay the account was marked for.
func (c *call) keepRetryAfter(last *provider.Failure) {
	if c.committed {
		return
	}
	switch wait := last.Mark.Until.Sub(c.g.now()); {
	case last.RetryAfter != "":
		c.w.Header().Set("Retry-After", last.RetryAfter)
	case !last.Mark.Until.IsZero() && wait > 0:
		c.w.Header().Set("Retry-After", retryAfterValue(wait))
	}
}

// noAccount refuses a request no account of the group could be tried for: 503, retryable,
// with Retry-After the soonest end of a mark on an account that would serve the request
// (rate-limited, overloaded, paused), or retryShortly when that is unknown.
func (c *call) noAccount() {
	wait := retryShortly
	if accts, err := c.g.groupAccounts(c.ctx(), c.auth.Group.ID); err == nil {
		if soonest := c.soonestAvailable(accts); soonest > wait {
			wait = soonest
		}
	}
	c.reject(RejectNoAccount, provider.KindOverloaded, http.StatusServiceUnavailable,
		"no upstream account of this group is available for this model; retry later", wait)
	c.outcome = outcomeUpstreamError
}

// soonestAvailable is how long until the first marked account of accts that would otherwise
// serve the request becomes usable again; 0 when there is none.
func (c *call) soonestAvailable(accts []store.Account) time.Duration {
	now := c.g.now()
	var soonest time.Duration
	for i := range accts {
		a := &accts[i]
		if a.Platform != c.prov.Platform() || a.Status != store.StatusActive || !a.Schedulable {
			continue
		}
		if _, ok := MapModel(a, c.req.Model); !ok {
			continue
		}
		var end time.Time
		for _, until := range []*time.Time{a.RateLimitedUntil, a.OverloadedUntil, a.TempUnschedUntil} {
			if until != nil && until.After(end) {
				end = *until
			}
		}
		if d := end.Sub(now); d > 0 && (soonest == 0 || d < soonest) {
			soonest = d
		}
	}
	return soonest
}
