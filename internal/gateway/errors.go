package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// HeaderReject marks every answer in which the gateway itself refused a request, so a client
// can tell an admission refusal from an upstream answer with the same status (doc.go).
const HeaderReject = "X-Fluxcode-Reject"

// Reasons carried by HeaderReject.
const (
	RejectConcurrency  = "concurrency"  // no slot freed within the wait timeout
	RejectQueueFull    = "queue_full"   // too many requests already waiting
	RejectBalance      = "balance"      // the balance is not positive
	RejectSubscription = "subscription" // no active subscription, or a usage window is full
	RejectCoordination = "coordination" // the coordinator (Redis) cannot be reached
	RejectDatabase     = "database"     // the database cannot be reached to check an uncached key
)

// fail answers the client with an error of kind. status 0 means the kind's status. reject,
// when set, is the admission reason for HeaderReject. After the response has started as an
// event stream, the error becomes one error event; after a JSON answer started, nothing more
// can be said.
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

// reject refuses a request at admission. Refusals that a retry may cure (a slot, the queue)
// let the SDKs retry; the others tell them not to (x-should-retry, honoured by the
// Stainless SDKs of Anthropic and OpenAI above their own status rules).
func (c *call) reject(reason string, kind provider.ErrorKind, message string, retryAfter time.Duration) {
	h := c.w.Header()
	switch reason {
	case RejectConcurrency, RejectQueueFull:
		h.Set("X-Should-Retry", "true")
	default:
		h.Set("X-Should-Retry", "false")
	}
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((retryAfter+time.Second-1)/time.Second), 10))
	}
	c.fail(kind, 0, message, reason)
}

// failUpstream ends a request none of whose attempts succeeded, reporting the last upstream
// failure in the client's format. The upstream's own words stay in the logs and the account's
// state: they describe the operator's account (its organization, its limits), not the
// client's request. An account's 401/403 is not the client's credential problem either, so it
// is reported as a gateway-side 502.
func (c *call) failUpstream(last *provider.Failure) {
	defer func() { c.outcome = outcomeUpstreamError }()
	if last == nil {
		c.fail(provider.KindOverloaded, http.StatusServiceUnavailable, "no upstream account of this group is available for this model", "")
		return
	}
	switch last.Kind {
	case provider.KindAuthentication, provider.KindPermission, provider.KindBilling:
		c.fail(provider.KindAPI, http.StatusBadGateway, "the upstream accounts of this group cannot serve right now", "")
	case provider.KindRateLimit:
		c.fail(last.Kind, 0, "upstream rate limit: the accounts of this group are limited; retry later", "")
	case provider.KindOverloaded:
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
