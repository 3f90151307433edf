package mockupstream

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the counters of one upstream key.
type Stats struct {
	// Requests counts authenticated requests to the provider API (any endpoint).
	Requests int64 `json:"requests"`
	// InFlight is the number of those requests being answered now.
	InFlight int64 `json:"in_flight"`
	// PeakInFlight is the highest InFlight seen since the key's counters or peak were reset.
	PeakInFlight int64 `json:"peak_in_flight"`
	// Errors counts answers with an HTTP error status, scripted or not.
	Errors int64 `json:"errors"`
	// Failures counts scripted failures of any kind.
	Failures int64 `json:"failures"`
	// Completed counts answers whose final usage was reported: a JSON body fully written,
	// or a stream whose message_delta was written and flushed.
	Completed int64 `json:"completed"`
	// Aborted counts answers the peer went away from before they were complete.
	Aborted int64 `json:"aborted"`
	// Usage sums, per bucket, the final usage of the Completed answers.
	Usage Usage `json:"usage"`
}

// LogEntry describes one answered request.
type LogEntry struct {
	RequestID string `json:"request_id"`
	Key       string `json:"key"`
	Endpoint  string `json:"endpoint"` // messages, count_tokens, models
	Model     string `json:"model,omitempty"`
	Stream    bool   `json:"stream"`
	Status    int    `json:"status"`            // HTTP status sent; 0 when reset before any byte
	Failure   string `json:"failure,omitempty"` // scripted failure label: "529", "reset", "error", ...
	Usage     Usage  `json:"usage"`             // the usage the answer carried (or would have)
	// StartSent: a stream's message_start (input and cache usage) was written and flushed.
	StartSent bool `json:"start_sent"`
	// Events is the number of stream events written and flushed.
	Events int `json:"events"`
	// UsageReported: the final usage was written (JSON body, or message_delta flushed);
	// exactly these entries are summed into Stats.Usage.
	UsageReported bool `json:"usage_reported"`
	// Completed: the whole answer was written (through message_stop for a stream).
	Completed bool `json:"completed"`
	// Aborted: the peer went away before the answer was complete.
	Aborted bool      `json:"aborted"`
	Time    time.Time `json:"time"`
}

// RecordedRequest is one request as the mock received it.
type RecordedRequest struct {
	RequestID string      `json:"request_id"`
	Key       string      `json:"key"`
	Method    string      `json:"method"`
	Path      string      `json:"path"`
	RawQuery  string      `json:"raw_query"`
	Host      string      `json:"host"`
	Header    http.Header `json:"header"`
	Body      []byte      `json:"-"`
	Time      time.Time   `json:"time"`
}

// keyState is everything the mock keeps for one upstream key. Counters are atomics so
// that answering never waits on a lock; mu guards only the script and the request ring.
type keyState struct {
	requests, inFlight, peak, errors, failures, completed, aborted atomic.Int64
	// active is what the peak counts: inFlight less the exchanges whose last bytes were
	// already handed to the connection (see exchange.leave).
	active                                     atomic.Int64
	input, output, cache5m, cache1h, cacheRead atomic.Int64

	mu       sync.Mutex
	own      bool // the script was set for this key (not inherited from the default)
	script   Script
	failLeft int // with script.FailTimes > 0: failures still to serve
	// modelsGate, open while script.HoldModels, holds model-list answers until closed.
	modelsGate chan struct{}
	recent     ring[RecordedRequest]
}

func (st *keyState) setScript(sc Script, own bool) {
	st.script, st.own, st.failLeft = sc, own, sc.FailTimes
	switch {
	case sc.HoldModels && st.modelsGate == nil:
		st.modelsGate = make(chan struct{})
	case !sc.HoldModels:
		st.releaseModels()
	}
}

// releaseModels answers the held model-list requests, and later ones until the script is
// set again.
func (st *keyState) releaseModels() {
	if st.modelsGate != nil {
		close(st.modelsGate)
		st.modelsGate = nil
	}
}

func (st *keyState) begin() {
	st.requests.Add(1)
	st.inFlight.Add(1)
	n := st.active.Add(1)
	for {
		p := st.peak.Load()
		if n <= p || st.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (st *keyState) end() { st.inFlight.Add(-1) }

func (st *keyState) leave() { st.active.Add(-1) }

func (st *keyState) addUsage(u Usage) {
	st.completed.Add(1)
	st.input.Add(u.Input)
	st.output.Add(u.Output)
	st.cache5m.Add(u.Cache5m)
	st.cache1h.Add(u.Cache1h)
	st.cacheRead.Add(u.CacheRead)
}

func (st *keyState) stats() Stats {
	return Stats{
		Requests:     st.requests.Load(),
		InFlight:     st.inFlight.Load(),
		PeakInFlight: st.peak.Load(),
		Errors:       st.errors.Load(),
		Failures:     st.failures.Load(),
		Completed:    st.completed.Load(),
		Aborted:      st.aborted.Load(),
		Usage: Usage{
			Input: st.input.Load(), Output: st.output.Load(), Cache5m: st.cache5m.Load(),
			Cache1h: st.cache1h.Load(), CacheRead: st.cacheRead.Load(),
		},
	}
}

// resetCounters zeroes the counters; the peak restarts from what is in flight now.
func (st *keyState) resetCounters() {
	for _, c := range []*atomic.Int64{&st.requests, &st.errors, &st.failures, &st.completed,
		&st.aborted, &st.input, &st.output, &st.cache5m, &st.cache1h, &st.cacheRead} {
		c.Store(0)
	}
	st.peak.Store(st.active.Load())
}

// takeFailure decides whether this request fails by the key's script, using up one of
// FailTimes when it does. applies says whether a failure of a given kind can act on it.
func (st *keyState) takeFailure(applies func(FailKind) bool) (Script, *Failure) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sc := st.script
	f := sc.Fail
	if f == nil || !applies(f.kind()) {
		return sc, nil
	}
	if sc.FailTimes > 0 {
		if st.failLeft == 0 {
			return sc, nil
		}
		st.failLeft--
	}
	return sc, f
}

func (st *keyState) record(rr RecordedRequest) {
	st.mu.Lock()
	st.recent.add(rr)
	st.mu.Unlock()
}

// ring keeps the last len(buf) items added.
type ring[T any] struct {
	buf  []T
	next int  // index the next item goes to
	full bool // buf has wrapped at least once
}

func newRing[T any](size int) ring[T] { return ring[T]{buf: make([]T, max(size, 0))} }

func (r *ring[T]) add(v T) {
	if len(r.buf) == 0 {
		return
	}
	r.buf[r.next] = v
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// last returns up to n items that match keep, oldest first; n <= 0 means all.
func (r *ring[T]) last(n int, keep func(*T) bool) []T {
	size := r.next
	if r.full {
		size = len(r.buf)
	}
	var out []T
	for i := 0; i < size && (n <= 0 || len(out) < n); i++ {
		idx := (r.next - 1 - i + len(r.buf)) % len(r.buf)
		if keep(&r.buf[idx]) {
			out = append(out, r.buf[idx])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func (r *ring[T]) clear() {
	clear(r.buf)
	r.next, r.full = 0, false
}
