package mockupstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultEvents is the number of text deltas a stream carries when a script does not say.
const DefaultEvents = 4

// Usage is the token usage one answer reports, per billing bucket. Input excludes cache
// tokens; the cache creation total the wire carries is Cache5m + Cache1h.
type Usage struct {
	Input     int64 `json:"input"`
	Output    int64 `json:"output"`
	Cache5m   int64 `json:"cache_5m"`
	Cache1h   int64 `json:"cache_1h"`
	CacheRead int64 `json:"cache_read"`
}

// Add returns the bucket-wise sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		Input:     u.Input + v.Input,
		Output:    u.Output + v.Output,
		Cache5m:   u.Cache5m + v.Cache5m,
		Cache1h:   u.Cache1h + v.Cache1h,
		CacheRead: u.CacheRead + v.CacheRead,
	}
}

// prompt is the whole prompt size: what count_tokens answers.
func (u Usage) prompt() int64 { return u.Input + u.Cache5m + u.Cache1h + u.CacheRead }

// FailKind names a class of scripted failure.
type FailKind string

const (
	// FailStatus answers with an HTTP error (Failure.Status) in the provider's error format.
	FailStatus FailKind = "status"
	// FailReset resets the connection (TCP RST) before any byte of the answer.
	FailReset FailKind = "reset"
	// FailError sends one `event: error` after Failure.After events and ends the stream.
	FailError FailKind = "error"
	// FailStall stops sending after Failure.After events and holds the connection open
	// until the peer leaves or the server closes. A JSON answer stalls after its headers.
	FailStall FailKind = "stall"
	// FailDrop resets the connection after Failure.After events (with Failure.Torn, half
	// way through the next one). A JSON answer is cut after its headers.
	FailDrop FailKind = "drop"
)

// midStream reports whether the kind acts after the response headers.
func (k FailKind) midStream() bool { return k == FailError || k == FailStall || k == FailDrop }

// RateLimitHeaders selects which rate-limit header families a 429 carries.
type RateLimitHeaders string

const (
	RateLimitBoth    RateLimitHeaders = ""        // API-key and unified families (the default)
	RateLimitAPI     RateLimitHeaders = "api"     // anthropic-ratelimit-{requests,tokens,...}-*
	RateLimitUnified RateLimitHeaders = "unified" // anthropic-ratelimit-unified-* (subscriptions)
	RateLimitNone    RateLimitHeaders = "none"    // neither; retry-after only
)

// Failure is one scripted failure.
type Failure struct {
	// Kind is the failure class; empty means FailStatus when Status is set.
	Kind FailKind
	// Status is the HTTP status for FailStatus (400, 401, 403, 404, 413, 429, 500, 529, ...).
	Status int
	// ErrorType overrides the error type in the body (default: from Status; for FailError,
	// overloaded_error).
	ErrorType string
	// Message overrides the error message.
	Message string
	// After is how many stream events are sent before a mid-stream failure. It is capped so
	// that the failure always comes before message_delta (the usage is never reported).
	After int
	// RetryAfter is, for 429, the retry-after value and the distance of every reset header
	// from now; rounded up to whole seconds. Zero means 60s.
	RetryAfter time.Duration
	// RateLimit selects the 429 header families.
	RateLimit RateLimitHeaders
	// NoRetryAfter leaves the retry-after header out of a 429, so that a client must fall
	// back to the reset headers (or its own default).
	NoRetryAfter bool
	// Torn makes a FailDrop send the first half of the event it replaces before the reset:
	// the stream breaks off in the middle of an event (of an element of a JSON array).
	Torn bool
}

func (f *Failure) kind() FailKind {
	if f.Kind == "" {
		return FailStatus
	}
	return f.Kind
}

// String is the short label the request log records, e.g. "529" or "stall".
func (f *Failure) String() string {
	if f == nil {
		return ""
	}
	if f.kind() == FailStatus {
		return strconv.Itoa(f.Status)
	}
	return string(f.kind())
}

func (f *Failure) validate() error {
	switch f.kind() {
	case FailStatus:
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("failure status %d is not an HTTP error status", f.Status)
		}
	case FailReset, FailError, FailStall, FailDrop:
	default:
		return fmt.Errorf("unknown failure kind %q", f.Kind)
	}
	if f.After < 0 || f.RetryAfter < 0 {
		return fmt.Errorf("failure after/retry_after must not be negative")
	}
	switch f.RateLimit {
	case RateLimitBoth, RateLimitAPI, RateLimitUnified, RateLimitNone:
	default:
		return fmt.Errorf("unknown ratelimit header set %q", f.RateLimit)
	}
	return nil
}

// Script says how the mock answers requests presented with one upstream key.
// The zero Script answers every request successfully at once with DefaultEvents deltas
// and usage derived from the request body.
type Script struct {
	// Latency is the wait before the response headers.
	Latency time.Duration
	// Events is the number of text deltas in a stream (and words in a JSON answer);
	// 0 means DefaultEvents, a negative number means none.
	Events int
	// Interval is the pause between consecutive stream events.
	Interval time.Duration
	// Usage, when set, is reported by every answer. When nil the usage is derived from
	// the request body and Seed (see DeriveUsage).
	Usage *Usage
	// Seed varies the derived usage.
	Seed uint64
	// Fail, when set, makes requests fail.
	Fail *Failure
	// FailTimes limits Fail to the next FailTimes applicable requests, after which
	// requests succeed again; 0 means every request fails. Mid-stream kinds apply only to
	// streams (and stall/drop also to JSON answers); a request a failure does not apply
	// to neither fails nor uses up a count.
	FailTimes int
	// Revoked makes the key invalid: every request with it, on every endpoint (the model
	// list included), is answered as the provider answers a revoked key (401; Gemini 400
	// API_KEY_INVALID).
	Revoked bool
	// HoldModels makes the key's model-list requests (GET /v1/models and the like) wait,
	// counted and recorded, until ReleaseModels, the peer leaves or the server closes; a test
	// so decides when a caller's check of its key is answered. Setting a script without it
	// releases them too.
	HoldModels bool
	// Unified, when set, adds a subscription's unified rate-limit headers to every successful
	// Anthropic answer (anthropic-ratelimit-unified-*): the 5h and 7d windows' utilisation;
	// on the Codex backend, the same windows as x-codex-primary-*/secondary-* (a window at
	// 1 answers 429 usage_limit_reached there).
	Unified *Unified
}

// Unified is what a subscription's unified rate-limit headers report on success.
type Unified struct {
	FiveHour float64 `json:"5h"` // utilisation 0–1 of the 5-hour window
	SevenDay float64 `json:"7d"` // and of the 7-day window
	// Reset5h and Reset7d are how far the windows' resets are from now (0: 5 h and 7 d).
	Reset5h jsonDuration `json:"reset_5h,omitzero"`
	Reset7d jsonDuration `json:"reset_7d,omitzero"`
}

func (sc *Script) validate() error {
	if sc.Latency < 0 || sc.Interval < 0 || sc.FailTimes < 0 {
		return fmt.Errorf("script durations and fail_times must not be negative")
	}
	if sc.Usage != nil {
		u := sc.Usage
		if u.Input < 0 || u.Output < 0 || u.Cache5m < 0 || u.Cache1h < 0 || u.CacheRead < 0 {
			return fmt.Errorf("script usage must not be negative")
		}
	}
	if u := sc.Unified; u != nil && (u.FiveHour < 0 || u.SevenDay < 0 || u.Reset5h < 0 || u.Reset7d < 0) {
		return fmt.Errorf("script unified utilisation and resets must not be negative")
	}
	if sc.Fail != nil {
		return sc.Fail.validate()
	}
	return nil
}

func (sc *Script) events() int {
	switch {
	case sc.Events == 0:
		return DefaultEvents
	case sc.Events < 0:
		return 0
	}
	return sc.Events
}

// DeriveUsage is the usage reported for a request body when a script has no fixed Usage:
// a deterministic function of (body, seed), so equal requests report equal usage and
// different requests (almost always) differ. Ranges: input 1..5000, output
// 1..min(1000, maxTokens), cache 5m 0..4000, cache 1h 0..2000, cache read 0..30000;
// each cache bucket is zero for about a quarter of requests.
func DeriveUsage(body []byte, seed uint64, maxTokens int64) Usage {
	h := uint64(14695981039346656037) // FNV-1a offset basis
	for _, b := range body {
		h ^= uint64(b)
		h *= 1099511628211
	}
	x := h ^ (seed * 0x9e3779b97f4a7c15)
	next := func(n uint64) int64 { // splitmix64 step, reduced to [0, n)
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		return int64(z % n)
	}
	maxOut := min(int64(1000), maxTokens)
	if maxOut < 1 {
		maxOut = 1
	}
	u := Usage{Input: 1 + next(5000), Output: 1 + next(uint64(maxOut))}
	cache := func(n uint64) int64 {
		if next(4) == 0 {
			return 0
		}
		return next(n + 1)
	}
	u.Cache5m = cache(4000)
	u.Cache1h = cache(2000)
	u.CacheRead = cache(30000)
	return u
}

// plan is what one request will do, fixed before any byte is written.
type plan struct {
	latency  time.Duration
	interval time.Duration
	events   int
	usage    Usage
	fail     *Failure
}

// directivePrefix starts a per-request directive inside metadata.user_id or a system text.
const directivePrefix = "mock:"

// findDirectives appends every directive found in text (without the prefix) to dst.
func findDirectives(dst []string, text string) []string {
	for {
		i := strings.Index(text, directivePrefix)
		if i < 0 {
			return dst
		}
		text = text[i+len(directivePrefix):]
		end := 0
		for end < len(text) && directiveByte(text[end]) {
			end++
		}
		if end > 0 {
			dst = append(dst, text[:end])
		}
		text = text[end:]
	}
}

func directiveByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '=' || c == ',' || c == '.' || c == '/' || c == '+' || c == '-'
}

// applyDirective changes p as directive d (e.g. "fail=529" or "events=20,interval=5ms")
// asks. body, seed and maxTokens let "seed=" derive a fresh usage.
func applyDirective(p *plan, d string, body []byte, maxTokens int64) error {
	for _, item := range strings.Split(d, ",") {
		name, value, ok := strings.Cut(item, "=")
		if !ok || value == "" {
			return fmt.Errorf("mock directive %q: want name=value, got %q", d, item)
		}
		if err := applyDirectiveItem(p, name, value, body, maxTokens); err != nil {
			return fmt.Errorf("mock directive %q: %w", d, err)
		}
	}
	if p.fail != nil {
		if err := p.fail.validate(); err != nil {
			return fmt.Errorf("mock directive %q: %w", d, err)
		}
	}
	return nil
}

func applyDirectiveItem(p *plan, name, value string, body []byte, maxTokens int64) error {
	// failure settings apply to this request's own copy of the failure
	ownFail := func() *Failure {
		if p.fail == nil {
			p.fail = &Failure{}
		} else {
			f := *p.fail
			p.fail = &f
		}
		return p.fail
	}
	var err error
	switch name {
	case "latency":
		p.latency, err = parseDuration(value)
	case "interval":
		p.interval, err = parseDuration(value)
	case "events":
		p.events, err = strconv.Atoi(value)
		if err == nil && p.events < 0 {
			err = fmt.Errorf("events must not be negative")
		}
	case "usage":
		p.usage, err = parseUsage(value)
	case "seed":
		var seed uint64
		seed, err = strconv.ParseUint(value, 10, 64)
		p.usage = DeriveUsage(body, seed, maxTokens)
	case "fail":
		f := ownFail()
		if n, convErr := strconv.Atoi(value); convErr == nil {
			f.Kind, f.Status = FailStatus, n
		} else {
			f.Kind, f.Status = FailKind(value), 0
		}
	case "after":
		ownFail().After, err = strconv.Atoi(value)
	case "retry_after":
		ownFail().RetryAfter, err = parseDuration(value)
	case "ratelimit":
		if value == "both" {
			value = ""
		}
		ownFail().RateLimit = RateLimitHeaders(value)
	case "error_type":
		ownFail().ErrorType = value
	case "no_retry_after":
		ownFail().NoRetryAfter, err = strconv.ParseBool(value)
	case "torn":
		ownFail().Torn, err = strconv.ParseBool(value)
	default:
		return fmt.Errorf("unknown setting %q", name)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// parseDuration accepts Go durations ("5ms", "2s") and bare numbers as seconds.
func parseDuration(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 || secs > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("duration %q out of range", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, err
}

// parseUsage reads "input/output/cache5m/cache1h/cacheRead"; trailing fields may be left out.
func parseUsage(s string) (Usage, error) {
	parts := strings.Split(s, "/")
	if len(parts) > 5 {
		return Usage{}, fmt.Errorf("usage %q: at most 5 fields (in/out/5m/1h/read)", s)
	}
	var vals [5]int64
	for i, part := range parts {
		n, err := strconv.ParseInt(part, 10, 64)
		if err != nil || n < 0 {
			return Usage{}, fmt.Errorf("usage %q: field %d is not a non-negative integer", s, i+1)
		}
		vals[i] = n
	}
	return Usage{Input: vals[0], Output: vals[1], Cache5m: vals[2], Cache1h: vals[3], CacheRead: vals[4]}, nil
}

// scriptJSON is a Script on the wire of POST /_mock/script: durations as strings
// ("5ms", "2s") or numbers of seconds.
type scriptJSON struct {
	Latency    jsonDuration `json:"latency,omitzero"`
	Events     int          `json:"events,omitempty"`
	Interval   jsonDuration `json:"interval,omitzero"`
	Usage      *Usage       `json:"usage,omitempty"`
	Seed       uint64       `json:"seed,omitempty"`
	Fail       *failureJSON `json:"fail,omitempty"`
	FailTimes  int          `json:"fail_times,omitempty"`
	Revoked    bool         `json:"revoked,omitempty"`
	HoldModels bool         `json:"hold_models,omitempty"`
	Unified    *Unified     `json:"unified,omitempty"`
}

type failureJSON struct {
	Kind         FailKind         `json:"kind,omitempty"`
	Status       int              `json:"status,omitempty"`
	ErrorType    string           `json:"error_type,omitempty"`
	Message      string           `json:"message,omitempty"`
	After        int              `json:"after,omitempty"`
	RetryAfter   jsonDuration     `json:"retry_after,omitzero"`
	RateLimit    RateLimitHeaders `json:"ratelimit,omitempty"`
	NoRetryAfter bool             `json:"no_retry_after,omitempty"`
	Torn         bool             `json:"torn,omitempty"`
}

// MarshalJSON writes the wire form of POST /_mock/script.
func (sc Script) MarshalJSON() ([]byte, error) {
	w := scriptJSON{
		Latency: jsonDuration(sc.Latency), Events: sc.Events, Interval: jsonDuration(sc.Interval),
		Usage: sc.Usage, Seed: sc.Seed, FailTimes: sc.FailTimes, Revoked: sc.Revoked,
		HoldModels: sc.HoldModels, Unified: sc.Unified,
	}
	if f := sc.Fail; f != nil {
		w.Fail = &failureJSON{
			Kind: f.Kind, Status: f.Status, ErrorType: f.ErrorType, Message: f.Message,
			After: f.After, RetryAfter: jsonDuration(f.RetryAfter), RateLimit: f.RateLimit,
			NoRetryAfter: f.NoRetryAfter, Torn: f.Torn,
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the wire form of POST /_mock/script.
func (sc *Script) UnmarshalJSON(data []byte) error {
	var w scriptJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // a misspelt setting must not silently do nothing
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*sc = Script{
		Latency: time.Duration(w.Latency), Events: w.Events, Interval: time.Duration(w.Interval),
		Usage: w.Usage, Seed: w.Seed, FailTimes: w.FailTimes, Revoked: w.Revoked,
		HoldModels: w.HoldModels, Unified: w.Unified,
	}
	if f := w.Fail; f != nil {
		sc.Fail = &Failure{
			Kind: f.Kind, Status: f.Status, ErrorType: f.ErrorType, Message: f.Message,
			After: f.After, RetryAfter: time.Duration(f.RetryAfter), RateLimit: f.RateLimit,
			NoRetryAfter: f.NoRetryAfter, Torn: f.Torn,
		}
	}
	return nil
}

type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		s = string(data) // a bare number of seconds
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = jsonDuration(v)
	return nil
}
