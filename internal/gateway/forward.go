package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/netguard"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// result is what a delivered attempt produced, for billing.
type result struct {
	account       *store.Account
	upstreamModel string
	usage         provider.Usage
	partial       bool // the client or the upstream broke off
	status        int
	stream        bool
	firstByte     time.Duration
	// tail is the end of a complete answer, held back until its ledger row is committed;
	// nil when nothing is held (not billed, or the answer did not end normally).
	tail []byte
	// answerSession is the session of a later request continuing this answer, bound to
	// account once the answer is billed (answerBinding); "" for none.
	answerSession string
}

var (
	errDrainTimeout = errors.New("client left and the upstream answer did not end within the drain timeout")
	errIdleTimeout  = errors.New("upstream sent nothing within the idle timeout")
)

// errorBodyLimit bounds how much of an upstream error answer is read: enough for any
// Anthropic error and for keyword rules, small enough that a misbehaving upstream cannot
// make the gateway buffer megabytes.
const errorBodyLimit = 64 << 10

// attempt is one try of one account: its context is detached from the client, because a
// client that leaves must not cut the upstream answer short (it is read to the end, for at
// most DrainTimeout, so that what it consumed is billed).
type attempt struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	drain  *time.Timer
}

// clientLeft starts the drain bound once.
func (c *call) clientLeft(at *attempt) {
	c.gone.Store(true)
	at.mu.Lock()
	defer at.mu.Unlock()
	if at.drain == nil {
		at.drain = time.AfterFunc(c.g.cfg.DrainTimeout, func() { at.cancel(errDrainTimeout) })
	}
}

// forward sends the request to the lease's account and relays the answer. It returns the
// result to bill, or a failure that allows another account (nothing reached the client
// from this upstream). Both are nil when the answer was the client's own error, relayed.
func (c *call) forward(l *lease) (*result, *provider.Failure) {
	if c.ctx().Err() != nil { // gone before anything was sent: nothing to serve or bill
		c.gone.Store(true)
		c.outcome = outcomeClientGone
		return nil, nil
	}
	acct := l.cand.Account
	t := provider.Target{Account: acct, Model: l.cand.Model, Rewrite: l.cand.Model != c.req.Model}
	at := &attempt{}
	at.ctx, at.cancel = context.WithCancelCause(context.WithoutCancel(c.ctx()))
	defer at.cancel(nil)
	stopWatch := context.AfterFunc(c.ctx(), func() { c.clientLeft(at) })
	defer stopWatch()
	defer func() {
		at.mu.Lock()
		if at.drain != nil {
			at.drain.Stop()
		}
		at.mu.Unlock()
	}()

	req, err := c.prov.NewUpstreamRequest(at.ctx, c.op, t, c.in, c.body)
	if err != nil {
		f := &provider.Failure{Verdict: provider.Failover, Kind: provider.KindAPI, Message: err.Error()}
		if errors.Is(err, provider.ErrNoCredentials) {
			// Only the account's own defect marks it: a request the provider cannot build
			// for other reasons is the request's, and must not take the account out.
			f.Mark = provider.Mark{Kind: provider.MarkError}
			c.markAccount(acct, f, nil)
		}
		return nil, f
	}
	rt, err := c.g.transportFor(at.ctx, acct)
	if err != nil {
		// The account's proxy is unusable: its own state says why; going direct would leak
		// the operator's address, so this account is skipped.
		return nil, &provider.Failure{Verdict: provider.Failover, Kind: provider.KindAPI, Message: err.Error()}
	}

	sent := c.g.now()
	resp, err := rt.RoundTrip(req)
	c.g.metrics.upstreamSeconds.WithLabelValues(c.op.String()).Observe(c.g.now().Sub(sent).Seconds())
	if err != nil {
		if c.gone.Load() {
			c.outcome = outcomeClientGone
			return nil, nil // nothing came back to bill, and no one to answer
		}
		// A dial error, reset or header timeout: another account may well succeed. No mark:
		// one network error says little about the account.
		return nil, &provider.Failure{Verdict: provider.Failover, Kind: provider.KindAPI,
			Message: "cannot reach the upstream: " + netErrorText(context.Cause(at.ctx), err)}
	}
	defer resp.Body.Close()
	c.observeWindows(acct, resp.Header)
	body := newIdleReader(resp.Body, c.g.cfg.IdleTimeout, at.cancel)
	defer body.stop()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.upstreamError(acct, resp)
	}
	var answer io.Reader = body
	if ad, ok := c.prov.(provider.AnswerAdapter); ok {
		answer = ad.AdaptAnswer(c.op, t, c.req, resp, body) // still unread: the idle bound holds
	}
	res := &result{account: acct, upstreamModel: t.Model, status: resp.StatusCode}
	if isEventStream(resp.Header) {
		if f := c.relayStream(at, res, resp, answer); f != nil {
			return nil, f
		}
	} else {
		c.relayJSON(at, res, resp, answer)
	}
	return res, nil
}

// upstreamError reads a non-2xx answer and decides: relay it (the client's own mistake) or
// mark the account and let another try. Nothing the client wrote decides against the
// account: a classification or admin rule that rests on text found in the client's own
// request is not trusted (the upstream may be quoting it).
func (c *call) upstreamError(acct *store.Account, resp *http.Response) *provider.Failure {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	f := c.prov.Classify(resp.StatusCode, resp.Header, body, c.g.now())
	f.RetryAfter = resp.Header.Get("Retry-After")
	if f.Marker != "" && c.echoes(f.Marker) {
		f = provider.Failure{Verdict: provider.PassThrough, Status: f.Status, Kind: provider.KindInvalidRequest, Message: f.Message}
	}
	rule := c.matchRule(resp.StatusCode, body)
	if rule != nil {
		f.Verdict = provider.Failover // the admins said this answer means the account is unfit
	}
	if f.Verdict == provider.PassThrough {
		c.passThrough(resp, body, f)
		return nil
	}
	if c.expiredLogin(acct, resp.StatusCode) {
		c.refreshDue = true // tryAccount renews the login and tries again; no mark
		return &f
	}
	c.markAccount(acct, &f, rule)
	return &f
}

// passThrough relays an upstream error that is about the request itself, unchanged.
func (c *call) passThrough(resp *http.Response, body []byte, f provider.Failure) {
	c.outcome = outcomeClientError
	if c.gone.Load() {
		return
	}
	if c.committed { // the client is already receiving pings: the answer must be an event
		if c.sse {
			c.writeEvent(c.errorEvent(f.Kind, f.Message))
		}
		return
	}
	c.copyHeaders(resp.Header)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	c.committed = true
	c.w.WriteHeader(resp.StatusCode)
	_, _ = c.w.Write(body)
}

// copyHeaders relays the provider's allowed response headers.
func (c *call) copyHeaders(from http.Header) {
	h := c.w.Header()
	for _, name := range c.prov.ResponseHeaders() {
		if v := from.Values(name); len(v) > 0 {
			h[http.CanonicalHeaderKey(name)] = append([]string(nil), v...)
		}
	}
}

func isEventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// netErrorText describes a transport failure without the request URL's query or anything
// secret: the cause we set (drain, idle) wins over the transport's wording.
func netErrorText(cause, err error) string {
	if cause != nil && !errors.Is(cause, context.Canceled) {
		return cause.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// idleReader cancels the attempt when a read waits longer than the idle timeout: an
// upstream that stops sending mid-answer must not hold a slot and the client forever.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelCauseFunc) *idleReader {
	ir := &idleReader{r: r, d: d}
	ir.timer = time.AfterFunc(d, func() { cancel(errIdleTimeout) })
	return ir
}

// Read counts only the time spent waiting for the upstream: a slow client being written to
// between reads must not look like a silent upstream.
func (ir *idleReader) Read(p []byte) (int, error) {
	ir.timer.Reset(ir.d)
	n, err := ir.r.Read(p)
	ir.timer.Stop()
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }

// transports keeps one http.Transport per proxy setting, shared by every account that uses
// it, so keep-alive connections are reused across requests and accounts.
//
// Every transport dials through the SSRF guard: the upstream's address (direct) or the
// proxy's is checked after DNS and before connect.
type transports struct {
	cfg   Config
	guard *netguard.Guard
	mu    sync.Mutex
	m     map[string]*http.Transport // key: proxy URL, "" for direct
}

func newTransports(cfg Config) *transports {
	return &transports{cfg: cfg, guard: netguard.New(cfg.AllowedNetworks), m: make(map[string]*http.Transport)}
}

func (ts *transports) get(proxy *url.URL) *http.Transport {
	key := ""
	if proxy != nil {
		key = proxy.String()
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.m[key]; ok {
		return t
	}
	dial := ts.guard.DialContext(net.Dialer{Timeout: ts.cfg.ConnectTimeout, KeepAlive: 30 * time.Second})
	t := &http.Transport{
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   ts.cfg.ConnectTimeout,
		ResponseHeaderTimeout: ts.cfg.HeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Many requests run at once against the same few hosts; Go's default of 2 idle
		// connections per host would close and redial most of them.
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		// Relay bytes as the upstream sends them; transparent gzip would sit between the
		// upstream and the per-event flush.
		DisableCompression: true,
		// A connection keeps both buffers for its whole life, and a stream holds its
		// connection for minutes (issue 5: memory per open stream). 2 KiB still takes a
		// request's headers, or an answer's, in one system call; bodies larger than the
		// buffer bypass it (bufio reads into, and writes from, the caller's slice).
		WriteBufferSize: 2 << 10,
		ReadBufferSize:  2 << 10,
	}
	if proxy != nil {
		// http, https and socks5 schemes. The proxy resolves and dials the upstream itself,
		// so only a target written as an address (or localhost) can be checked here.
		t.Proxy = func(r *http.Request) (*url.URL, error) {
			if err := ts.guard.CheckHost(r.URL.Hostname()); err != nil {
				return nil, err
			}
			return proxy, nil
		}
	}
	ts.m[key] = t
	return t
}

func (ts *transports) closeIdle() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.m {
		t.CloseIdleConnections()
	}
}

// transportFor returns the transport for an account: direct, or through its proxy.
func (g *Gateway) transportFor(ctx context.Context, acct *store.Account) (http.RoundTripper, error) {
	if acct.ProxyID == nil {
		return g.upstreams.get(nil), nil
	}
	p, err := g.proxy(ctx, *acct.ProxyID)
	if err != nil {
		return nil, fmt.Errorf("account %d: proxy %d: %w", acct.ID, *acct.ProxyID, err)
	}
	if p.Status != store.StatusActive {
		return nil, fmt.Errorf("account %d: proxy %d is %s", acct.ID, p.ID, p.Status)
	}
	u, err := ProxyURL(p)
	if err != nil {
		return nil, fmt.Errorf("account %d: %w", acct.ID, err)
	}
	return g.upstreams.get(u), nil
}

// ProxyURL turns a stored proxy into the URL http.Transport dials through.
func ProxyURL(p *store.Proxy) (*url.URL, error) {
	switch p.Protocol {
	case "http", "https", "socks5":
	default:
		return nil, fmt.Errorf("proxy %d: unsupported protocol %q", p.ID, p.Protocol)
	}
	if p.Host == "" || p.Port <= 0 || p.Port > 65535 {
		return nil, fmt.Errorf("proxy %d: bad address", p.ID)
	}
	u := &url.URL{Scheme: p.Protocol, Host: net.JoinHostPort(p.Host, strconv.Itoa(p.Port))}
	if p.Username != "" {
		u.User = url.UserPassword(p.Username, p.Password)
	}
	return u, nil
}
