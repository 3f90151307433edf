package mockupstream

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// dialect is what differs between providers around a generated answer: how the caller
// presents its key and how errors look.
type dialect struct {
	// key is the credential the caller presents; "" when none.
	key func(*http.Request) string
	// noKey is the answer to a request without a credential.
	noKey func() (status int, typ, msg string)
	// errorType is the error type (or status word) for an HTTP status.
	errorType func(status int) string
	// writeError writes an error body in the provider's format.
	writeError func(w http.ResponseWriter, status int, typ, msg, reqID string)
	// writeScripted writes the answer of a scripted status failure: its error body and
	// headers (rate-limit headers on 429).
	writeScripted func(w http.ResponseWriter, f *Failure, now time.Time, reqID string)
	// cacheWrites: the protocol reports cache creation; when false the 5m/1h buckets are
	// always reported as zero.
	cacheWrites bool
	// invalidKey is the message of the 401 for a revoked key (Script.Revoked).
	invalidKey string
	// revoked, when set, is the status and error type a revoked key is answered with
	// instead of 401 (Google answers a bad API key with 400 API_KEY_INVALID).
	revoked func() (status int, typ string)
}

// exchange is one provider API request being answered.
type exchange struct {
	s     *Server
	d     *dialect
	w     http.ResponseWriter
	r     *http.Request
	st    *keyState
	n     uint64 // request number, shared by the request and message ids
	entry LogEntry
	left  bool // out of the peak count (leave)
}

// serveAPI authenticates, counts and records a provider request, then hands it to handle.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, n uint64, reqID string, d *dialect,
	endpoint, method string, handle func(e *exchange, body []byte)) {
	if r.Method != method {
		d.writeError(w, http.StatusMethodNotAllowed, d.errorType(http.StatusMethodNotAllowed), "Method Not Allowed", reqID)
		return
	}
	key := d.key(r)
	if key == "" {
		status, typ, msg := d.noKey()
		d.writeError(w, status, typ, msg, reqID)
		return
	}
	st := s.state(key)
	st.begin()
	e := &exchange{s: s, d: d, w: w, r: r, st: st, n: n,
		entry: LogEntry{RequestID: reqID, Key: key, Endpoint: endpoint, Time: s.opts.Now()}}
	defer e.finish()

	body, err := s.readBody(w, r)
	s.recordRequest(e, body)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			e.fail(http.StatusRequestEntityTooLarge, d.errorType(http.StatusRequestEntityTooLarge),
				"Request exceeds the maximum allowed number of bytes.")
			return
		}
		e.entry.Aborted = true // the peer did not finish sending
		return
	}
	if endpoint == endpointModels && !e.holdModels() {
		return
	}
	st.mu.Lock()
	revoked := st.script.Revoked // after the hold: a test may revoke the key meanwhile
	st.mu.Unlock()
	if revoked {
		status, typ := http.StatusUnauthorized, d.errorType(http.StatusUnauthorized)
		if d.revoked != nil {
			status, typ = d.revoked()
		}
		e.fail(status, typ, d.invalidKey)
		return
	}
	handle(e, body)
}

func (s *Server) recordRequest(e *exchange, body []byte) {
	if s.opts.RecordPerKey < 0 {
		return
	}
	e.st.record(RecordedRequest{
		RequestID: e.entry.RequestID, Key: e.entry.Key, Method: e.r.Method, Path: e.r.URL.Path,
		RawQuery: e.r.URL.RawQuery, Host: e.r.Host, Header: e.r.Header.Clone(), Body: body,
		Time: e.entry.Time,
	})
}

// finish books the exchange. The log entry and counters come before the in-flight count
// falls, so that once WaitIdle returns, every answer a client has read is in the log.
func (e *exchange) finish() {
	e.leave()
	if e.entry.Aborted {
		e.st.aborted.Add(1)
	}
	if e.s.opts.LogSize > 0 {
		e.s.appendLog(e.entry)
	}
	e.st.end()
}

// leave takes the exchange out of the peak count once its last bytes are about to be
// written: a client that read the whole answer may send its next request before this
// handler returns, and those are not two requests at once. The in-flight count (WaitIdle)
// still falls only in finish, after the log entry.
func (e *exchange) leave() {
	if !e.left {
		e.left = true
		e.st.leave()
	}
}

// holdModels waits while the key's script holds model-list answers; false when the peer
// left or the server closes meanwhile.
func (e *exchange) holdModels() bool {
	e.st.mu.Lock()
	gate := e.st.modelsGate
	e.st.mu.Unlock()
	if gate == nil {
		return true
	}
	select {
	case <-gate:
		return true
	case <-e.r.Context().Done():
		e.entry.Aborted = true
	case <-e.s.done:
	}
	return false
}

// fail answers with an error body in the provider's format.
func (e *exchange) fail(status int, typ, msg string) {
	e.entry.Status = status
	e.st.errors.Add(1)
	e.d.writeError(e.w, status, typ, msg, e.entry.RequestID)
}

// badRequest answers 400 with the provider's invalid-request type.
func (e *exchange) badRequest(msg string) {
	e.fail(http.StatusBadRequest, e.d.errorType(http.StatusBadRequest), msg)
}

// stopped records why an answer ended early: the peer left (aborted) or the server closes.
func (e *exchange) stopped() {
	if e.r.Context().Err() != nil {
		e.entry.Aborted = true
	}
}

// genRequest is what the mock needs from a model request, whatever the provider.
type genRequest struct {
	model      string
	maxTokens  int64 // bounds the derived output; 1000 when the request sets none
	stream     bool
	count      bool // a token count, not a generation
	directives []string
}

// plan fixes what this request does: the key's script, then the body's directives.
// A directive that names a failure replaces the script's failure for this request.
func (e *exchange) plan(body []byte, req genRequest) (plan, error) {
	e.st.mu.Lock()
	sc := e.st.script
	e.st.mu.Unlock()
	if req.maxTokens <= 0 {
		req.maxTokens = 1000
	}
	p := plan{latency: sc.Latency, interval: sc.Interval, events: sc.events()}
	if sc.Usage != nil {
		p.usage = *sc.Usage
	} else {
		p.usage = DeriveUsage(body, sc.Seed, req.maxTokens)
	}
	for _, d := range req.directives {
		if err := applyDirective(&p, d, body, req.maxTokens); err != nil {
			return p, err
		}
	}
	if !e.d.cacheWrites {
		p.usage.Cache5m, p.usage.Cache1h = 0, 0
	}
	applies := func(k FailKind) bool {
		switch {
		case req.count:
			return !k.midStream()
		case !req.stream:
			return k != FailError // a JSON answer has no place for an error event
		}
		return true
	}
	if p.fail != nil {
		if !applies(p.fail.kind()) {
			p.fail = nil
		}
		return p, nil
	}
	_, p.fail = e.st.takeFailure(applies)
	return p, nil
}

// generate answers a model request: plan, latency, a scripted failure before the
// headers, else answer.
func (e *exchange) generate(body []byte, req genRequest, answer func(pc *pacer, p plan)) {
	e.entry.Model, e.entry.Stream = req.model, req.stream
	p, err := e.plan(body, req)
	if err != nil {
		e.badRequest(err.Error())
		return
	}
	if !req.count {
		e.entry.Usage = p.usage
	}
	pc := pacer{ctx: e.r.Context(), done: e.s.done}
	defer pc.stop()
	if !pc.wait(p.latency) {
		e.stopped()
		return
	}
	if f := p.fail; f != nil {
		e.st.failures.Add(1)
		e.entry.Failure = f.String()
		switch f.kind() {
		case FailStatus:
			e.entry.Status = f.Status
			e.st.errors.Add(1)
			e.d.writeScripted(e.w, f, e.s.opts.Now(), e.entry.RequestID)
			return
		case FailReset:
			resetConn(e.w)
			return
		}
	}
	answer(&pc, p)
}

// writeOK writes a complete JSON answer; false when it did not reach the peer.
func (e *exchange) writeOK(b []byte) bool {
	e.entry.Status = http.StatusOK
	e.leave()
	if writeJSONBytes(e.w, http.StatusOK, b) != nil {
		e.entry.Aborted = true
		return false
	}
	e.entry.Completed = true
	return true
}

// writeJSON writes v as a complete JSON answer that reports no usage.
func (e *exchange) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.fail(http.StatusInternalServerError, e.d.errorType(http.StatusInternalServerError), "mock: "+err.Error())
		return
	}
	e.writeOK(b)
}

// answerJSON writes a non-streaming answer rendered by render and books its usage.
// A stall or drop failure sends the headers and never the body.
func (e *exchange) answerJSON(pc *pacer, p plan, render func([]byte) []byte) {
	if f := p.fail; f != nil {
		e.w.Header().Set("Content-Type", "application/json")
		e.w.WriteHeader(http.StatusOK)
		e.entry.Status = http.StatusOK
		if flush(e.w) != nil {
			e.entry.Aborted = true
			return
		}
		if f.kind() == FailDrop {
			resetConn(e.w)
			return
		}
		pc.hold()
		e.stopped()
		return
	}
	buf := getBuf()
	defer putBuf(buf)
	*buf = render((*buf)[:0])
	if e.writeOK(*buf) {
		e.entry.UsageReported = true
		e.st.addUsage(p.usage)
	}
}

// streamer renders the events of one streamed answer.
type streamer interface {
	// total is the number of events in a complete stream.
	total() int
	// usageAt is the index of the event that reports the final usage; -1 when none does.
	// Mid-stream failures come no later than this event (or the last one).
	usageAt() int
	// event renders event i; the bytes are valid until the next call.
	event(i int) []byte
	// errorEvent renders the mid-stream error event of f.
	errorEvent(f *Failure) []byte
}

// stream writes a streamed answer event by event, each flushed on its own, and books the
// usage once the event that reports it has reached the connection.
func (e *exchange) stream(pc *pacer, p plan, sr streamer, contentType string) {
	h := e.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	e.w.WriteHeader(http.StatusOK)
	e.entry.Status = http.StatusOK
	if flush(e.w) != nil {
		e.entry.Aborted = true
		return
	}
	last, usageAt := sr.total()-1, sr.usageAt()
	failAt := -1
	if p.fail != nil {
		failAt = min(p.fail.After, last)
		if usageAt >= 0 {
			failAt = min(failAt, usageAt)
		}
	}
	for i := 0; i <= last; i++ {
		if i > 0 && !pc.wait(p.interval) {
			e.stopped()
			return
		}
		if i == failAt {
			e.midStreamFailure(pc, p.fail, sr, i)
			return
		}
		ev := sr.event(i)
		// a peer that already left must not be credited with usage it never read
		if e.r.Context().Err() != nil {
			e.entry.Aborted = true
			return
		}
		if i == last {
			e.leave()
		}
		if _, err := e.w.Write(ev); err != nil || flush(e.w) != nil {
			e.entry.Aborted = true
			return
		}
		e.entry.Events++
		if i == 0 {
			e.entry.StartSent = true
		}
		if i == usageAt {
			e.entry.UsageReported = true
			e.st.addUsage(p.usage)
		}
	}
	e.entry.Completed = true
}

// midStreamFailure fails a stream in place of its event i.
func (e *exchange) midStreamFailure(pc *pacer, f *Failure, sr streamer, i int) {
	switch f.kind() {
	case FailError:
		if _, err := e.w.Write(sr.errorEvent(f)); err != nil || flush(e.w) != nil {
			e.entry.Aborted = true
		}
	case FailStall:
		pc.hold()
		e.stopped()
	case FailDrop:
		if f.Torn { // the first half of event i, then the reset: a break mid-event
			ev := sr.event(i)
			if _, err := e.w.Write(ev[:len(ev)/2]); err != nil || flush(e.w) != nil {
				e.entry.Aborted = true
				return
			}
		}
		resetConn(e.w)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// appendReply appends the reply text of n deltas (plain ASCII: no escaping needed).
func appendReply(b []byte, n int) []byte {
	for i := range n {
		b = append(b, replyWords[i%len(replyWords)]...)
	}
	return b
}

// replyWords are the text deltas, in turn; a JSON answer's text is their concatenation.
var replyWords = [...]string{"Hello", " from", " the", " mock", " upstream", "."}

// ReplyText is the text of an answer with n text deltas: what a client accumulates.
func ReplyText(n int) string { return string(appendReply(nil, n)) }

// writeJSONBytes writes a complete JSON answer and reports whether it reached the peer's
// connection.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return flush(w)
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (it came out of a JSON
// document or our own code), so only quotes, backslashes and control bytes need escaping.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// resetAt is when a 429's limits reset: now + RetryAfter (default 60s), rounded up to a
// whole second; secs is the matching retry-after value.
func resetAt(f *Failure, now time.Time) (reset time.Time, secs int64) {
	ra := f.RetryAfter
	if ra <= 0 {
		ra = time.Minute
	}
	reset = now.Add(ra)
	if t := reset.Truncate(time.Second); !t.Equal(reset) {
		reset = t.Add(time.Second)
	}
	return reset, int64((ra + time.Second - 1) / time.Second)
}
