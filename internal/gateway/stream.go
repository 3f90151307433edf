package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// relayStream copies an event stream to the client event by event, flushing each one as it
// arrives, while the meter reads usage from the events that carry it. It returns a failure
// only when the upstream's first event is already an error that another account may not
// have: nothing from this upstream has reached the client then, so failing over cannot
// corrupt the stream (invariant 4).
//
// After the first event is out, an upstream failure becomes exactly one error event and the
// stream ends: the upstream's own error event when it sent one, else ours. A client that
// leaves stops the writing, not the reading: the rest is drained (DrainTimeout) and billed
// as partial.
//
// Events the meter keeps from the client (provider.Filter: a usage chunk the gateway asked
// for on the client's behalf) are metered and not relayed.
//
// A billed stream's end is held back in res.tail: the event that completes it (the meter
// knows which: message_stop) and anything after it, sent once the ledger row is committed
// (bill.go). A stream that does not end normally has nothing held: what arrived is passed
// on at once.
func (c *call) relayStream(at *attempt, res *result, resp *http.Response, body io.Reader) *provider.Failure {
	res.stream = true
	meter := c.newMeter()
	er := provider.NewEventReader(body)
	defer er.Release()

	var ev provider.Event
	var err error
	sawError := false
	for { // up to the first event the client is to see
		if ev, err = er.Next(); err != nil {
			return &provider.Failure{Verdict: provider.Failover, Kind: provider.KindAPI,
				Message: "the upstream stream ended before its first event"}
		}
		if sawError = meter.Event(ev.Name, ev.Data); !hidden(meter) {
			break
		}
	}
	if sawError {
		f := c.prov.ClassifyEvent(ev.Data, c.g.now())
		if f.Verdict == provider.Failover {
			c.markAccount(res.account, &f, nil)
			return &f
		}
		// The request's own fault (an invalid request found late): relayed like any event.
	}
	if !c.committed {
		c.startStream(resp.Header)
	}
	res.firstByte = c.g.now().Sub(c.start)
	out := &eventWriter{c: c, at: at, er: er, meter: meter, hold: c.op == provider.OpMessages}
	out.relay(ev.Raw)

	for {
		ev, err = er.Next()
		if err != nil {
			break
		}
		if meter.Event(ev.Name, ev.Data) && !sawError {
			sawError = true
			f := c.prov.ClassifyEvent(ev.Data, c.g.now())
			c.markMidStream(res.account, &f)
		}
		if hidden(meter) {
			if !er.Ready() {
				out.flush() // nothing else is coming at once: what was written goes out
			}
			continue
		}
		out.relay(ev.Raw)
	}

	out.flush()
	end := out.end
	res.usage = meter.Usage()
	ended := errors.Is(err, io.EOF) && meter.Complete()
	res.partial = !ended || sawError || c.gone.Load()
	if sm, ok := meter.(provider.SessionMeter); ok && ended && !sawError {
		res.answerSession = sm.AnswerSession()
	}
	if res.partial && end != nil {
		c.send(at, end) // the upstream went wrong after its end event: nothing to hold back
		end = nil
	}
	res.tail = end
	if !ended && !sawError {
		// The upstream broke off (reset, idle timeout, cut mid-event, or an end without
		// message_stop): tell the client once, in the protocol's own terms.
		c.send(at, c.errorEvent(brokeOff(at, err)))
	}
	if res.partial && c.outcome == outcomeOK {
		c.outcome = outcomePartial
	}
	return nil
}

// newMeter returns the meter of this request's stream.
func (c *call) newMeter() provider.Meter {
	if rs, ok := c.prov.(provider.RequestStreams); ok {
		return rs.NewRequestMeter(c.req)
	}
	return c.prov.NewMeter()
}

// hidden reports whether the event the meter last read is kept from the client.
func hidden(m provider.Meter) bool {
	f, ok := m.(provider.Filter)
	return ok && f.Hidden()
}

// errorEvent is one error event in the protocol of this request's stream.
func (c *call) errorEvent(kind provider.ErrorKind, message string) []byte {
	if rs, ok := c.prov.(provider.RequestStreams); ok {
		return rs.RequestErrorEvent(c.req, kind, message, c.id)
	}
	return c.prov.ErrorEvent(kind, message, c.id)
}

// brokeOff is how an upstream answer that broke off (with err) is reported to the client.
func brokeOff(at *attempt, err error) (provider.ErrorKind, string) {
	if errors.Is(errorCause(at, err), errIdleTimeout) {
		return provider.KindTimeout, "the upstream stream went silent"
	}
	return provider.KindAPI, "the upstream stream broke off"
}

// errorCause prefers the cause the gateway gave the attempt's context (idle, drain) over the
// read error it produced.
func errorCause(at *attempt, err error) error {
	if cause := context.Cause(at.ctx); cause != nil {
		return cause
	}
	return err
}

// startStream sends the status and headers of an event stream. upstream (nil while waiting
// with pings) supplies the relayed headers.
func (c *call) startStream(upstream http.Header) {
	if upstream != nil {
		c.copyHeaders(upstream)
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	if upstream != nil && upstream.Get("Content-Type") != "" {
		h.Set("Content-Type", upstream.Get("Content-Type"))
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell nginx-like proxies not to buffer the stream
	c.committed, c.sse = true, true
	c.w.WriteHeader(http.StatusOK)
}

// send writes one event and flushes it (with whatever write left buffered), unless the
// client is gone; a failed write means the client left, which starts the drain bound of the
// attempt.
func (c *call) send(at *attempt, event []byte) {
	if c.write(at, event) {
		c.flush(at)
	}
}

// write writes one event without flushing it (another follows at once), unless the client
// is gone; it reports whether the event was written.
func (c *call) write(at *attempt, event []byte) bool {
	if c.gone.Load() {
		return false
	}
	if _, err := c.w.Write(event); err != nil {
		c.gone.Store(true)
		c.clientLeft(at)
		return false
	}
	return true
}

// flush sends what write left buffered.
func (c *call) flush(at *attempt) {
	if c.gone.Load() {
		return
	}
	if err := c.rc.Flush(); err != nil {
		c.gone.Store(true)
		c.clientLeft(at)
	}
}

// writeEvent writes and flushes one event outside an attempt (pings, the held end). Flush
// policy: an event held in a buffer is latency the client sees, so nothing is left
// unflushed while the gateway waits (Caddy's streaming.go flushes text/event-stream alike).
func (c *call) writeEvent(event []byte) bool {
	if _, err := c.w.Write(event); err != nil {
		c.gone.Store(true)
		return false
	}
	if err := c.rc.Flush(); err != nil {
		c.gone.Store(true)
		return false
	}
	return true
}

// eventWriter writes a stream's events to the client. Events that arrived together are
// written together and flushed once: each flush is a write to the client's socket. An event
// is never left unflushed while the relay waits for the next.
type eventWriter struct {
	c     *call
	at    *attempt
	er    *provider.EventReader
	meter provider.Meter
	// hold: the stream is billed, so its end is held back until the ledger row is committed.
	hold bool
	// end is the held end: the event that completed the stream and anything after it. The
	// reader reuses its buffer, so it is a copy.
	end       []byte
	unflushed bool
}

// relay passes one event on, or holds it once the stream's end has been seen.
func (w *eventWriter) relay(raw []byte) {
	if w.end != nil || (w.hold && w.meter.Complete()) {
		w.flush()
		w.end = append(w.end, raw...)
		return
	}
	if w.er.Ready() { // more has arrived: write now, flush with the last of them
		w.unflushed = w.c.write(w.at, raw) || w.unflushed
		return
	}
	w.unflushed = false
	w.c.send(w.at, raw) // flushes what was written before it too
}

// flush sends what was written and not yet flushed.
func (w *eventWriter) flush() {
	if w.unflushed {
		w.unflushed = false
		w.c.flush(w.at)
	}
}
