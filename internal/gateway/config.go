package gateway

import (
	"fmt"
	"net/netip"
	"time"
)

// Config tunes the request path. Start from Default(); internal/config maps the GATEWAY_*,
// UPSTREAM_* and MAX_BODY_BYTES variables onto it.
type Config struct {
	// StickyTTL is how long a conversation stays bound to the account that served it.
	// Default 1h.
	StickyTTL time.Duration
	// AnswerTTL is how long a stored upstream answer (an OpenAI response that a later
	// request continues by previous_response_id) stays bound to the account that holds it.
	// Default 24h.
	AnswerTTL time.Duration
	// MaxAccountSwitches is how many other accounts are tried after a failure before the
	// first byte reaches the client. Default 3; 0 means a failure is final.
	MaxAccountSwitches int
	// WaitQueueMax is how many requests of one user (and of one key) may wait for a
	// concurrency slot at once. Default 100; 0 refuses at once when no slot is free.
	WaitQueueMax int
	// WaitTimeout is how long a request waits for a slot before it is refused. Default 30s.
	WaitTimeout time.Duration
	// PingInterval is how often a waiting streaming client gets an SSE ping. Default 10s.
	PingInterval time.Duration
	// SlotTTL is the lease of a concurrency slot. One heartbeat per node refreshes every held
	// slot each SlotTTL/3, so a crashed node's slots free within SlotTTL. Default 8s: a
	// killed node's slots are back in use within 10 s (issue 16), while a refresh that fails
	// once or twice loses nothing.
	SlotTTL time.Duration
	// OverloadCooldown is how long an account that answered 529 is skipped. Default 5m.
	OverloadCooldown time.Duration
	// RateLimitCooldown is how long an account that answered 429 is skipped when the answer
	// names no reset time. Default 60s.
	RateLimitCooldown time.Duration
	// ConnectTimeout bounds dialing (and the TLS handshake with) an upstream. Default 10s.
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for an upstream's response headers. Default 5m: a large
	// non-streamed answer only sends headers when it is complete.
	HeaderTimeout time.Duration
	// IdleTimeout bounds the silence between two reads of an upstream body. Default 5m.
	IdleTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted (413 beyond, refused on the
	// Content-Length before any body byte is read). Default 32 MiB: Anthropic refuses
	// Messages bodies over 32 MB with a 413 of its own, so a larger one can never be served.
	MaxBodyBytes int64
	// BodyBytesInFlight bounds the request-body bytes one node holds at once (bodies being
	// read and bodies kept for failover until their request ends). A request that would pass
	// it is refused with a retryable 503. Default 1 GiB; at least MaxBodyBytes.
	BodyBytesInFlight int64
	// AllowedNetworks are the loopback, private, link-local or metadata networks an account's
	// base URL or a proxy may nevertheless point at. Empty (the default) refuses them all, at
	// dial time, on the resolved address (internal/netguard).
	AllowedNetworks []netip.Prefix
	// DrainTimeout bounds how long the gateway keeps reading an upstream answer after the
	// client left, so that the usage it reports can still be billed. Default 2m.
	DrainTimeout time.Duration
	// BillCommitWait bounds how long a complete answer holds back its end (a stream's last
	// event, a JSON body's last byte) waiting for its ledger row to commit. Past it, the
	// answer completes and the row stays queued, retried until the database takes it.
	// Default 5s.
	BillCommitWait time.Duration
	// BillGroupDelay is how long the ledger writer waits for more rows before a batch when
	// the previous batch carried more than one (the node is under load): a few hundred
	// microseconds of latency make each transaction carry several requests' rows, which
	// costs the database (and a SQLite node's CPU) far less per request. A writer that had
	// a single row writes the next at once, so a lone request never waits. Default 500µs;
	// negative: never wait.
	BillGroupDelay time.Duration
	// BillNotifyInterval is how often a node tells every node to re-read the balances its
	// billing charged, and writes the last-used times of accounts and keys. Default 200ms.
	BillNotifyInterval time.Duration
	// BillBatchSize is the most rows written in one transaction. Default 500.
	BillBatchSize int
	// BillQueueMax bounds the ledger rows a node holds unwritten (the database is down or
	// slow): with that many, billed requests are refused (503, X-Fluxcode-Reject: database)
	// until the writer catches up, rather than served without a row the node can keep.
	// Requests already running still add theirs. Default 10,000.
	BillQueueMax int
	// AuthCacheTTL is how long a node trusts a cached key lookup; invalidations drop entries
	// sooner. Default 10s. Unknown keys are remembered for NegativeCacheTTL (default 2s).
	AuthCacheTTL     time.Duration
	NegativeCacheTTL time.Duration
	// AccountCacheTTL is how long a node trusts its copy of a group's accounts (and of the
	// pricing settings). Default 10s.
	AccountCacheTTL time.Duration
	// AllowUnpricedModels serves models the price table does not know, at zero cost (their
	// tokens still recorded), instead of refusing them (403, X-Fluxcode-Reject: unpriced).
	// The admin setting allow_unpriced_models, once saved, overrides it. Default false.
	AllowUnpricedModels bool
	// SubscriptionPausePercent pauses a subscription account until a usage window resets
	// once the upstream reports the window's utilisation at or above this percentage (95),
	// so that the account is never pushed into the upstream's hard limit. 0 (the default)
	// never pauses.
	SubscriptionPausePercent int
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		StickyTTL:          time.Hour,
		AnswerTTL:          24 * time.Hour,
		MaxAccountSwitches: 3,
		WaitQueueMax:       100,
		WaitTimeout:        30 * time.Second,
		PingInterval:       10 * time.Second,
		SlotTTL:            8 * time.Second,
		OverloadCooldown:   5 * time.Minute,
		RateLimitCooldown:  time.Minute,
		ConnectTimeout:     10 * time.Second,
		HeaderTimeout:      5 * time.Minute,
		IdleTimeout:        5 * time.Minute,
		MaxBodyBytes:       32 << 20,
		BodyBytesInFlight:  1 << 30,
		DrainTimeout:       2 * time.Minute,
		BillCommitWait:     5 * time.Second,
		BillGroupDelay:     500 * time.Microsecond,
		BillNotifyInterval: 200 * time.Millisecond,
		BillBatchSize:      500,
		BillQueueMax:       10_000,
		AuthCacheTTL:       10 * time.Second,
		NegativeCacheTTL:   2 * time.Second,
		AccountCacheTTL:    10 * time.Second,
	}
}

// withDefaults fills every zero duration and size from Default(): none of them has a useful
// zero. The counts MaxAccountSwitches and WaitQueueMax keep their zero, which means "none".
func (c Config) withDefaults() Config {
	d := Default()
	fill := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&c.StickyTTL, d.StickyTTL)
	fill(&c.AnswerTTL, d.AnswerTTL)
	fill(&c.WaitTimeout, d.WaitTimeout)
	fill(&c.PingInterval, d.PingInterval)
	fill(&c.SlotTTL, d.SlotTTL)
	fill(&c.OverloadCooldown, d.OverloadCooldown)
	fill(&c.RateLimitCooldown, d.RateLimitCooldown)
	fill(&c.ConnectTimeout, d.ConnectTimeout)
	fill(&c.HeaderTimeout, d.HeaderTimeout)
	fill(&c.IdleTimeout, d.IdleTimeout)
	fill(&c.DrainTimeout, d.DrainTimeout)
	fill(&c.BillCommitWait, d.BillCommitWait)
	fill(&c.BillNotifyInterval, d.BillNotifyInterval)
	if c.BillGroupDelay == 0 {
		c.BillGroupDelay = d.BillGroupDelay
	}
	fill(&c.AuthCacheTTL, d.AuthCacheTTL)
	fill(&c.NegativeCacheTTL, d.NegativeCacheTTL)
	fill(&c.AccountCacheTTL, d.AccountCacheTTL)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.BodyBytesInFlight <= 0 {
		c.BodyBytesInFlight = max(d.BodyBytesInFlight, c.MaxBodyBytes)
	}
	if c.BillBatchSize <= 0 {
		c.BillBatchSize = d.BillBatchSize
	}
	if c.BillQueueMax <= 0 {
		c.BillQueueMax = d.BillQueueMax
	}
	return c
}

func (c Config) validate() error {
	if c.MaxAccountSwitches < 0 || c.WaitQueueMax < 0 {
		return fmt.Errorf("gateway config: MaxAccountSwitches and WaitQueueMax must not be negative")
	}
	if c.SubscriptionPausePercent < 0 || c.SubscriptionPausePercent > 100 {
		return fmt.Errorf("gateway config: SubscriptionPausePercent must be from 0 (never) to 100")
	}
	if c.BodyBytesInFlight < c.MaxBodyBytes {
		return fmt.Errorf("gateway config: BodyBytesInFlight (%d) must be at least MaxBodyBytes (%d), or no body of the largest size could ever be read", c.BodyBytesInFlight, c.MaxBodyBytes)
	}
	return nil
}
