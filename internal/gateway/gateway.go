package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Store is the part of store.Store the gateway uses: keys, the accounts of a group and their
// health marks, proxies, error rules, the pricing settings and the ledger. Every store.Store is one.
type Store interface {
	KeyAuthByHash(ctx context.Context, hash []byte) (*store.KeyAuth, error)
	TouchAPIKeys(ctx context.Context, used map[int64]time.Time) error
	AccountsByGroup(ctx context.Context, groupID int64) ([]store.Account, error)
	MarkAccount(ctx context.Context, id int64, m store.AccountMark) error
	SetAccountWindows(ctx context.Context, id int64, w store.UsageWindows) error
	TouchAccounts(ctx context.Context, used map[int64]time.Time) error
	GetProxy(ctx context.Context, id int64) (*store.Proxy, error)
	ListErrorRules(ctx context.Context) ([]store.ErrorRule, error)
	GetSetting(ctx context.Context, key string) (string, error)
	RecordUsage(ctx context.Context, rows []store.Usage) ([]store.RecordResult, error)
	AddRequestOutcomes(ctx context.Context, rows []store.DailyOutcome) error
	AddAccountErrors(ctx context.Context, rows []store.AccountErrors) error
}

var _ Store = store.Store(nil)

// Options are what a Gateway is built from. Store, Coord, Keys, Prices and at least one
// provider are required.
type Options struct {
	// Providers are the protocols served, at most one per platform; their routes make the
	// gateway's route table.
	Providers []provider.Provider
	Store     Store
	Coord     coord.Coordinator
	Keys      *secret.Keys
	Prices    *billing.Table
	Logger    *slog.Logger
	// Metrics receives the gateway's collectors; nil keeps them unregistered.
	Metrics  prometheus.Registerer
	Config   Config
	NodeName string
	// Now is the clock; nil means time.Now. Tests move it to check mark expiry.
	Now func() time.Time
	// Logins renews subscription logins whose access token the upstream refused as expired;
	// nil: none is renewed (the refusal is handled like any other).
	Logins Logins
}

// Logins renews a subscription login (package login). Refresh returns the account with
// credentials newer than acct's: renewed by this call, or by another node meanwhile.
type Logins interface {
	// Renews reports whether acct is a login this renews (its platform's, with a refresh token).
	Renews(acct *store.Account) bool
	Refresh(ctx context.Context, acct *store.Account) (*store.Account, error)
}

// Gateway serves the relay routes of every provider it knows.
type Gateway struct {
	store  Store
	coord  coord.Coordinator
	keys   *secret.Keys
	prices *billing.Table
	log    *slog.Logger
	cfg    Config
	node   string
	now    func() time.Time
	// routes is the route table built from the providers (route.go).
	routes []route

	auth      *authCache
	accounts  *accountCache
	rules     *rulesCache
	settings  *cache[struct{}, pricing]
	proxies   *proxyCache
	slots     *slotBook
	upstreams *transports
	bodies    *bodyBudget
	biller    *biller
	metrics   *metrics
	outcomes  outcomeTally // requests by day and outcome, flushed to the store (outcomes.go)
	// accountErrs counts failed attempts per day and account, flushed with the outcomes.
	accountErrs accountErrorTally
	unpriced    sync.Map // models served unpriced, already warned about
	logins      Logins
	windows     windowBook

	// life ends at Close; work that outlives its request (a confirming call) runs under it.
	life context.Context
	stop context.CancelFunc
	bg   sync.WaitGroup
	// verifying holds the accounts with a confirming call in flight on this node (one per
	// account); closing refuses new ones once Close has begun (failover.go).
	verifyMu  sync.Mutex
	verifying map[int64]bool
	closing   bool
	closeOnce sync.Once
}

// New builds a gateway and starts its background work: the invalidation listener, the slot
// heartbeat and the billing batcher. Close stops them.
func New(opts Options) (*Gateway, error) {
	if opts.Store == nil || opts.Coord == nil || opts.Keys == nil || opts.Prices == nil || len(opts.Providers) == 0 {
		return nil, errors.New("gateway: Store, Coord, Keys, Prices and Providers are required")
	}
	routes, err := buildRoutes(opts.Providers)
	if err != nil {
		return nil, err
	}
	cfg := opts.Config.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		store: opts.Store, coord: opts.Coord, keys: opts.Keys, prices: opts.Prices,
		log: log.With("component", "gateway"), cfg: cfg, node: opts.NodeName, now: now,
		routes:    routes,
		auth:      newCache[string, *store.KeyAuth](cfg.AuthCacheTTL, cfg.NegativeCacheTTL, now),
		accounts:  newCache[int64, []store.Account](cfg.AccountCacheTTL, 0, now),
		rules:     newCache[struct{}, []store.ErrorRule](cfg.AccountCacheTTL, 0, now),
		settings:  newCache[struct{}, pricing](cfg.AccountCacheTTL, 0, now),
		proxies:   newCache[int64, *store.Proxy](cfg.AccountCacheTTL, 0, now),
		slots:     newSlotBook(),
		upstreams: newTransports(cfg),
		bodies:    &bodyBudget{max: cfg.BodyBytesInFlight},
		metrics:   m,
		verifying: make(map[int64]bool),
		logins:    opts.Logins,
	}
	g.biller = newBiller(opts.Store, opts.Coord, cfg, g.log, m, g.auth)
	m.queueDepth(g.biller.depth)
	m.bodyBytes(g.bodies)

	ctx, stop := context.WithCancel(context.Background())
	g.life, g.stop = ctx, stop
	events, err := g.coord.Subscribe(ctx, invalidationChannel)
	if err != nil {
		stop()
		return nil, fmt.Errorf("gateway: subscribe to invalidations: %w", err)
	}
	g.bg.Add(4)
	go func() { defer g.bg.Done(); g.listen(events) }()
	go func() { defer g.bg.Done(); g.heartbeat(ctx) }()
	go func() { defer g.bg.Done(); g.biller.run() }()
	go func() { defer g.bg.Done(); g.reportOutcomes(ctx) }()
	return g, nil
}

// Routes registers the route table on mux.
func (g *Gateway) Routes(mux *http.ServeMux) {
	for i := range g.routes {
		mux.HandleFunc(g.routes[i].pattern, g.handler(&g.routes[i]))
	}
	g.clientRoutes(mux)
}

// Close stops background work and writes every pending usage row, retrying transient
// database errors until ctx ends, then the request outcome counts (one try). Call it after the HTTP server has stopped taking requests.
func (g *Gateway) Close(ctx context.Context) error {
	var err error
	g.closeOnce.Do(func() {
		err = g.biller.close(ctx)
		g.verifyMu.Lock()
		g.closing = true
		g.verifyMu.Unlock()
		g.stop()
		g.bg.Wait()
		g.flushOutcomes(ctx)
		g.upstreams.closeIdle()
	})
	return err
}

// serveMessages is the life of one request: check the declared length → authenticate →
// admit → read and parse the body → the key's policy (policy.go) → schedule → forward (stream and meter, failing over
// before the first byte) → bill → complete the answer. Each step answers the client itself
// when it ends the request. The length, the key, the balance and the subscription are all
// checked before the body is read (none of them needs it), so a client without a key or
// without money cannot make the gateway read, or hold, up to MaxBodyBytes.
func (g *Gateway) serveMessages(c *call) {
	if !c.checkLength() || !c.authenticate() || !c.admit() || !c.readBody() || !c.parse() || !c.policy() {
		return
	}
	res := c.relay() // schedule → forward → stream → meter, with failover
	if res != nil {
		// The answer's end waits for its ledger row: a client that saw the end was billed,
		// even if this node dies the next moment (doc.go, "Billing"). The upstream is done,
		// so the slots go back while the writer commits the row: the two round trips (Redis,
		// the database) overlap instead of following each other, and a client that sends its
		// next request on seeing the end finds its slots free.
		commit := c.bill(res)
		c.releaseHeldAndBind(c.answerBinding(res))
		c.awaitCommit(commit)
		c.sendTail(res)
		c.countTokens(res)
	}
}

// serveCountTokens relays a token count like a message, without slots or billing.
func (g *Gateway) serveCountTokens(c *call) {
	if !c.checkLength() || !c.authenticate() || !c.admit() || !c.readBody() || !c.parse() || !c.policy() {
		return
	}
	c.relay()
}

// serveModels lists the models of the key's group (see models.go), in the protocol of the
// group's platform when the route is shared.
func (g *Gateway) serveModels(c *call) {
	if !c.authenticate() || !c.parse() {
		return
	}
	if c.listModels() {
		return
	}
	c.relay()
}

// serveNotFound answers a path under a provider's prefix that no route serves, in the
// provider's error format (its SDKs parse it).
func (g *Gateway) serveNotFound(c *call) {
	c.chooseByKey()
	c.reject(RejectRequest, provider.KindNotFound, 0, "no route for "+c.r.Method+" "+c.r.URL.Path, 0)
}

// serveWebSocket answers a request for a WebSocket on a path served over HTTP (Codex tries
// one on /v1/responses) with 426, on which the client falls back to HTTP at once.
func (g *Gateway) serveWebSocket(c *call) {
	c.reject(RejectRequest, provider.KindInvalidRequest, http.StatusUpgradeRequired,
		"WebSocket is not supported here: send "+c.r.URL.Path+" as an HTTP POST", 0)
}
