package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// HeaderRequestID carries the gateway request id in every relay answer: the id of the ledger
// row, generated here once per request (never taken from the client, which could otherwise
// replay one id to make the ledger skip its requests).
const HeaderRequestID = "X-Fluxcode-Request-Id"

// Outcomes label a finished request in the requests metric. Besides these, a request the
// gateway refused is labelled with its error kind, or outcomeRejected and the reason.
const (
	outcomeOK            = "ok"
	outcomePartial       = "partial"        // billed, but the answer or its usage is incomplete
	outcomeClientGone    = "client_gone"    // the client left before the end
	outcomeClientError   = "client_error"   // the upstream's answer was about the request
	outcomeUpstreamError = "upstream_error" // no account could answer
	outcomeBodyTimeout   = "body_timeout"   // the body stalled
	outcomeRejected      = "rejected_"      // + the admission reason (HeaderReject)
)

// call is one client request on its way through the gateway.
type call struct {
	g     *Gateway
	route *route
	prov  provider.Provider // the protocol answering: chosen by the key's place until its group settles it
	op    provider.Operation
	w     http.ResponseWriter
	rc    *http.ResponseController
	r     *http.Request
	id    string
	start time.Time
	// key is the client's API key, taken out of the request; in is the rest of the request
	// as the provider sees it, with every key place of the route removed.
	key string
	in  provider.Inbound

	body []byte
	// bodyHeld is what this request took from the node's body budget (body.go); finish
	// gives it back.
	bodyHeld int64
	auth     *store.KeyAuth
	req      provider.Request
	// pricing is what a billed request was checked against when its account was chosen,
	// and is billed with (pricing.go).
	pricing pricing

	// held are the user and key slots (and wait-queue places) this request holds; released
	// by finish.
	held []string
	// committed is set once the response status has been sent; from then on an error can
	// only be an SSE event (streams) or a cut connection.
	committed bool
	// sse is set when the committed response is an event stream.
	sse bool
	// gone is set when the client has disconnected.
	gone atomic.Bool
	// abort asks finish to cut the connection (a JSON body broke off after its headers).
	abort bool
	// outcome labels the request in metrics.
	outcome string
	// refreshDue: the attempt's login was refused as if expired and is to be renewed;
	// renewed: it was, once, for this request.
	refreshDue, renewed bool
}

func (g *Gateway) newCall(w http.ResponseWriter, r *http.Request, rt *route) *call {
	c := &call{g: g, route: rt, op: rt.op, w: w, rc: http.NewResponseController(w), r: r,
		id: newRequestID(), start: g.now(), outcome: outcomeOK}
	if rt.opOf != nil {
		c.op = rt.opOf(r.URL.Path)
	}
	w.Header().Set(HeaderRequestID, c.id)
	// One id from the edge to the ledger: the logs, the access line and the error body all
	// carry the ledger row's id; the edge's (a proxy's) is logged beside it once.
	if edge := httpx.Rename(r.Context(), w, c.id); edge != "" {
		g.log.DebugContext(r.Context(), "gateway request", "edge_request_id", edge)
	}
	var place provider.KeyPlace
	c.key, place, c.in = takeKey(rt.keys, r)
	c.prov = rt.byKeyPlace(place)
	return c
}

// takeKey returns the API key found in the first of places that holds one, that place, and
// the request without any of them: the headers lose every key header, the query every key
// parameter.
func takeKey(places []provider.KeyPlace, r *http.Request) (string, provider.KeyPlace, provider.Inbound) {
	key, place := provider.FindKey(places, r.Header, func(name string) string { return r.URL.Query().Get(name) })
	for _, p := range places {
		if p.Header != "" {
			r.Header.Del(p.Header)
		}
	}
	return key, place, provider.Inbound{Header: r.Header, Path: r.URL.Path, RawQuery: provider.WithoutKeys(places, r.URL.RawQuery)}
}

// releaseHeld gives back every slot the request holds (one coordinator call).
func (c *call) releaseHeld() { c.releaseHeldAndBind(coord.Binding{}) }

// releaseHeldAndBind gives back every slot the request holds and makes bind, in one
// coordinator call.
func (c *call) releaseHeldAndBind(bind coord.Binding) {
	if len(c.held) > 0 || bind.Key != "" {
		c.g.releaseAndBind(c.id, c.held, bind)
		c.held = nil
	}
}

// finish releases what the request still holds and counts it. It runs deferred, so no
// early return can leak a slot.
func (c *call) finish() {
	c.releaseHeld()
	c.releaseBody()
	c.g.metrics.requests.WithLabelValues(c.op.String(), c.outcome).Inc()
	c.g.outcomes.add(c.start, c.outcome)
	if c.abort {
		panic(http.ErrAbortHandler) // the only honest end of a body that broke off
	}
}

// ctx is the request's context: done when the client leaves.
func (c *call) ctx() context.Context { return c.r.Context() }

// parse reads the fields the gateway needs from the body.
func (c *call) parse() bool {
	req, err := c.prov.ParseRequest(c.op, c.in, c.body)
	if err != nil {
		c.reject(RejectRequest, provider.KindInvalidRequest, 0, err.Error(), 0)
		return false
	}
	c.req = req
	return true
}

// newRequestID returns a time-ordered UUID (version 7, RFC 9562): 48 bits of Unix
// milliseconds, then 74 random bits. The id is the ledger row's unique key, and ids that
// grow with time are inserted at the end of its index instead of on a random page, which
// spares the database reading and rewriting a random page per row (the index outgrows any
// cache long before the ledger does).
func newRequestID() string {
	return formatUUIDv7(time.Now())
}

func formatUUIDv7(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // never fails (crypto/rand panics rather than return short)
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:16])
	return string(out[:])
}
