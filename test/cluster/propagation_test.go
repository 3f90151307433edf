package cluster

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// propagationWindow is the bound of scenario 4: a change made on one node holds on every
// node within it. It is the assertion's window, not a speed claim.
const propagationWindow = time.Second

// quick is a short JSON answer, for probing one node.
var quick = shape{events: 1}

// disabledKeyRefused is scenario 4's first half: a key disabled through node 1 is refused by
// every node, which had it cached, within the window, and stays refused.
func (c *cluster) disabledKeyRefused(t *testing.T) {
	tn := c.newTenant(t, "disable", accountSpec{})
	client := newClient()
	ctx := context.Background()
	nodes := c.liveNodes()
	for _, n := range nodes { // each node now has the key in its cache
		if o := send(ctx, client, n.base(), tn.key, quick, 0, nil); !o.complete {
			t.Fatalf("%s before the change: %s", n.name, o)
		}
	}

	testenv.MustCallJSON(t, "PATCH", nodes[0].base()+"/api/v1/admin/keys/"+strconv.FormatInt(tn.keyID, 10), c.admin,
		map[string]string{"status": "disabled"}, http.StatusOK, nil)
	changed := time.Now()

	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var refusedAt time.Time
			for {
				start := time.Now()
				o := send(ctx, client, n.base(), tn.key, quick, 0, nil)
				refused := o.status == http.StatusUnauthorized && o.errType == "authentication_error"
				switch {
				case refused && refusedAt.IsZero():
					refusedAt = start
				case !refused && !refusedAt.IsZero():
					t.Errorf("%s accepted the disabled key again after refusing it: %s", n.name, o)
				case !refused && !o.complete:
					t.Errorf("%s: %s, want a served request or an authentication_error", n.name, o)
				case !refused && start.Sub(changed) >= propagationWindow:
					t.Errorf("%s still serves the key disabled %s ago through %s", n.name, start.Sub(changed), nodes[0].name)
				}
				if start.Sub(changed) >= propagationWindow+200*time.Millisecond {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%s refused the key from %s after the change", n.name, refusedAt.Sub(changed).Round(time.Millisecond))
		}()
	}
	wg.Wait()
}

// rateLimitedSkipped is scenario 4's second half: when the preferred account answers 429
// with reset headers on one node, every node skips it until the reset, although each had
// it cached as available.
func (c *cluster) rateLimitedSkipped(t *testing.T) {
	tn := c.newTenant(t, "ratelimit", accountSpec{priority: 0}, accountSpec{priority: 1})
	limited, spare := tn.accounts[0], tn.accounts[1]
	client := newClient()
	ctx := context.Background()
	nodes := c.liveNodes()
	var outs []outcome
	sendTo := func(n *node, i int) outcome {
		o := send(ctx, client, n.base(), tn.key, quick, i, nil)
		outs = append(outs, o)
		return o
	}
	for _, n := range nodes { // each node now has the group's accounts in its cache
		if o := sendTo(n, 0); !o.complete {
			t.Fatalf("%s before the 429: %s", n.name, o)
		}
	}
	if got := c.mock.Stats(limited.upstreamKey).Requests; got != int64(len(nodes)) {
		t.Fatalf("the preferred account served %d of %d requests; the test needs it preferred", got, len(nodes))
	}

	// From now on the preferred account is rate-limited for ten minutes.
	reset := 10 * time.Minute
	if err := c.mock.SetScript(limited.upstreamKey, mockupstream.Script{
		Fail: &mockupstream.Failure{Status: http.StatusTooManyRequests, RetryAfter: reset}}); err != nil {
		t.Fatal(err)
	}
	marked := time.Now()
	if o := sendTo(nodes[0], 0); !o.complete {
		t.Fatalf("%s: the request that met the 429 was not failed over: %s", nodes[0].name, o)
	}
	hits := c.mock.Stats(limited.upstreamKey).Requests
	if hits != int64(len(nodes))+1 {
		t.Fatalf("the rate-limited account got %d requests, want %d", hits, len(nodes)+1)
	}

	time.Sleep(propagationWindow)
	for _, n := range nodes {
		for i := range 5 {
			if o := sendTo(n, i); !o.complete {
				t.Errorf("%s with the preferred account rate-limited: %s", n.name, o)
			}
		}
	}
	if got := c.mock.Stats(limited.upstreamKey).Requests; got != hits {
		t.Errorf("the rate-limited account got %d more requests after it was marked on %s", got-hits, nodes[0].name)
	}
	if got := c.mock.Stats(spare.upstreamKey).Completed; got != int64(1+5*len(nodes)) {
		t.Errorf("the spare account completed %d requests, want %d", got, 1+5*len(nodes))
	}

	// The mark follows the reset the 429 named, not a default cooldown.
	var acc struct {
		RateLimitedUntil *time.Time `json:"rate_limited_until"`
	}
	testenv.MustCallJSON(t, "GET", c.entry+"/api/v1/admin/accounts/"+strconv.FormatInt(limited.id, 10), c.admin, nil, http.StatusOK, &acc)
	if acc.RateLimitedUntil == nil || acc.RateLimitedUntil.Before(marked.Add(reset-time.Minute)) {
		t.Errorf("rate_limited_until = %v, want about %s (the 429's reset)", acc.RateLimitedUntil, marked.Add(reset).Format(time.RFC3339))
	}
	c.checkBilling(t, tn, outs, true)
}

// fourthNodeJoins is scenario 5: a node started later joins by a change of the upstream
// list alone and a reload of Caddy, and then answers its share of the requests.
func (c *cluster) fourthNodeJoins(t *testing.T) {
	n4 := c.addNode()
	if got := n4.served(t, "/v1/messages"); got != 0 {
		t.Fatalf("%s answered %d requests before it was added", n4.name, got)
	}
	// Only FLUXCODE_UPSTREAMS changes; the rest of Caddy's environment stays.
	reloadCaddyfile(t, c.caddy, map[string]string{"FLUXCODE_UPSTREAMS": upstreams(c.nodes)})

	tn := c.newTenant(t, "scaleout", accountSpec{})
	before := c.servedBy(t)
	outs := load{workers: 8, perWorker: 8, targets: []string{c.entry},
		shape: func(int) shape { return shape{stream: true, events: 3, interval: 10 * time.Millisecond} },
	}.run(context.Background(), tn.key)
	requireComplete(t, outs)
	c.checkBilling(t, tn, outs, true)
	c.checkSpread(t, before)

	var h struct {
		Node string `json:"node"`
	}
	seen := false
	for i := 0; i < 200 && !seen; i++ {
		testenv.MustCallJSON(t, "GET", c.entry+"/health", "", nil, http.StatusOK, &h)
		seen = h.Node == n4.name
	}
	if !seen {
		t.Errorf("%s never answered /health through Caddy", n4.name)
	}
}
