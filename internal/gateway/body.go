package gateway

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// RejectBodyBudget is HeaderReject's reason when the node holds too many body bytes already.
const RejectBodyBudget = "body_budget"

// errBodyBudget ends a body read that would pass the node's BodyBytesInFlight.
var errBodyBudget = errors.New("the node's budget of request-body bytes is spent")

// bodyBudget counts the request-body bytes a node holds: read, or being read, by requests
// that have not ended. It bounds the memory bodies take however many clients send at once.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes; false (and nothing reserved) when that would pass the budget.
func (b *bodyBudget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// checkLength refuses a declared Content-Length over MaxBodyBytes before anything else: no
// body byte is read, no key is looked up.
func (c *call) checkLength() bool {
	if c.r.ContentLength > c.g.cfg.MaxBodyBytes {
		c.reject(RejectRequest, provider.KindTooLarge, 0, "request body is larger than the gateway's limit", 0)
		return false
	}
	return true
}

// readBody reads the whole body before anything goes upstream, bounded by MaxBodyBytes: a
// failover needs the body again, and streaming a body upstream lost answers (issue 5). It
// runs after authentication and admission, so a client without a key or balance never makes
// the node read or hold its body. The bytes count against the node's BodyBytesInFlight from
// before they are read (a declared length) or as they arrive (a chunked body) until the
// request ends.
func (c *call) readBody() bool {
	if c.op == provider.OpModels {
		return true
	}
	n := c.r.ContentLength
	if n < 0 {
		n = 0 // chunked: taken from the budget as it arrives
	}
	if !c.takeBody(n) {
		return c.failBudget()
	}
	src := &budgetReader{c: c, r: http.MaxBytesReader(c.w, c.r.Body, c.g.cfg.MaxBodyBytes)}
	var body []byte
	var err error
	if c.r.ContentLength >= 0 {
		body = make([]byte, c.r.ContentLength)
		_, err = io.ReadFull(src, body)
	} else {
		body, err = io.ReadAll(src)
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		c.body = body
		return true
	case errors.As(err, &tooBig):
		c.reject(RejectRequest, provider.KindTooLarge, 0, "request body is larger than the gateway's limit", 0)
	case errors.Is(err, errBodyBudget):
		c.failBudget()
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The per-read deadline (GATEWAY_BODY_READ_TIMEOUT) passed: a client that trickles
		// its body must not hold a connection and its bytes for ever.
		c.outcome = outcomeBodyTimeout
		c.reject(RejectRequest, provider.KindInvalidRequest, http.StatusRequestTimeout, "the request body was not received in time", 0)
	default:
		c.outcome = outcomeClientGone // the client stopped sending: there is no one to answer
	}
	return false
}

// takeBody reserves n more bytes of the node's body budget for this request.
func (c *call) takeBody(n int64) bool {
	if n == 0 {
		return true
	}
	if !c.g.bodies.take(n) {
		return false
	}
	c.bodyHeld += n
	return true
}

// releaseBody gives back the request's share of the body budget.
func (c *call) releaseBody() {
	if c.bodyHeld > 0 {
		c.g.bodies.give(c.bodyHeld)
		c.bodyHeld = 0
	}
}

// failBudget refuses a request because the node holds as many body bytes as it may. Another
// node, or this one a moment later, can take it: the refusal is a retryable 503.
func (c *call) failBudget() bool {
	c.reject(RejectBodyBudget, provider.KindOverloaded, http.StatusServiceUnavailable,
		"this node is receiving too many request bodies at once; retry shortly", retryShortly)
	return false
}

// budgetReader takes the bytes it reads beyond what the request reserved from the budget.
type budgetReader struct {
	c    *call
	r    io.Reader
	read int64
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	br.read += int64(n)
	if extra := br.read - br.c.bodyHeld; extra > 0 && !br.c.takeBody(extra) {
		return n, errBodyBudget
	}
	return n, err
}

// bodyBytes exposes the bytes the node's requests hold against BodyBytesInFlight.
func (m *metrics) bodyBytes(b *bodyBudget) {
	if m.reg == nil {
		return
	}
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fluxcode_gateway_body_bytes_in_flight",
		Help: "Request-body bytes held by this node's requests (GATEWAY_BODY_BYTES_IN_FLIGHT bounds it).",
	}, func() float64 { return float64(b.used.Load()) }))
}
