package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	geminiprov "github.com/fluxcode/fluxcode/internal/provider/gemini"
	openaiprov "github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestExactness is must-show 3 (and issue 10's must-show 2): 2,000 concurrent requests over
// all three protocols at once (Anthropic Messages; OpenAI Responses and Chat Completions;
// Gemini generateContent and streamGenerateContent, SSE and JSON array), JSON and
// streaming, with every usage bucket in play, some clients leaving early, over several
// tenants per protocol (different price multipliers) and accounts. Per bucket, and per
// account, the ledger's totals equal what the mock reported; each user's balance fell by
// exactly the sum of their charges; no request id appears twice; every answer the mock
// completed has exactly one row. It runs on one node (SQLite, in-process coordination) and
// on two nodes sharing PostgreSQL and Redis.
func TestExactness(t *testing.T) {
	provs := []provider.Provider{anthropic.New(), openaiprov.New(), geminiprov.New()}
	t.Run("OneNodeSQLite", func(t *testing.T) { exactness(t, singleWith(t, config(), provs)) })
	t.Run("TwoNodesPostgresRedis", func(t *testing.T) { exactness(t, sharedWith(t, 2, config(), provs)) })
}

// exactProtocol is one protocol's share of the exactness load: its tenants, its accounts
// and how its clients send a request.
type exactProtocol struct {
	platform string
	accounts []string
	baseURL  func(mockURL string) string
	tenants  []*gatewaytest.Tenant
	// request builds request i: its path, its body (system carries the tenant and a mock
	// directive) and where the key goes.
	request func(i int, stream bool, system string) (path, body string)
	key     func(h http.Header, secret string)
}

func exactProtocols() []*exactProtocol {
	return []*exactProtocol{{
		platform: store.PlatformAnthropic, accounts: []string{"up-x1", "up-x2"},
		baseURL: func(u string) string { return u },
		request: func(i int, stream bool, system string) (string, string) {
			return "/v1/messages", fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":800,"stream":%t,`+
				`"system":[{"type":"text","text":%q}],"messages":[{"role":"user","content":"request %d"}]}`, stream, system, i)
		},
		key: func(h http.Header, k string) { h.Set("X-Api-Key", k) },
	}, {
		platform: store.PlatformOpenAI, accounts: []string{"oa-x1", "oa-x2"},
		baseURL: func(u string) string { return u + "/v1" },
		request: func(i int, stream bool, system string) (string, string) {
			if i/3%2 == 0 {
				return "/v1/responses", fmt.Sprintf(`{"model":"gpt-6.1-sol","stream":%t,"instructions":%q,"input":"request %d"}`,
					stream, system, i)
			}
			usage := "" // half the chat streams ask for usage themselves; the gateway asks for the rest
			if stream && i/6%2 == 0 {
				usage = `"stream_options":{"include_usage":true},`
			}
			return "/v1/chat/completions", fmt.Sprintf(`{"model":"gpt-6.1-sol","stream":%t,%s"messages":`+
				`[{"role":"system","content":%q},{"role":"user","content":"request %d"}]}`, stream, usage, system, i)
		},
		key: func(h http.Header, k string) { h.Set("Authorization", "Bearer "+k) },
	}, {
		platform: store.PlatformGemini, accounts: []string{"gm-x1", "gm-x2"},
		baseURL: func(u string) string { return u },
		request: func(i int, stream bool, system string) (string, string) {
			path := "/v1beta/models/gemini-3.8-flash:generateContent"
			if stream && i/3%2 == 0 {
				path = "/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse"
			} else if stream {
				path = "/v1beta/models/gemini-3.8-flash:streamGenerateContent" // a JSON array
			}
			thinking := "" // thoughts are billed as output
			if i/6%2 == 0 {
				thinking = `,"generationConfig":{"thinkingConfig":{"includeThoughts":true}}`
			}
			return path, fmt.Sprintf(`{"systemInstruction":{"parts":[{"text":%q}]},`+
				`"contents":[{"role":"user","parts":[{"text":"request %d"}]}]%s}`, system, i, thinking)
		},
		key: func(h http.Header, k string) { h.Set("X-Goog-Api-Key", k) },
	}}
}

func exactness(t *testing.T, c *cluster) {
	const requests = 2000
	ctx := context.Background()
	protocols := exactProtocols()
	multipliers := []int64{1_000_000, 1_500_000, 800_000, 2_250_000, 1_000_003}
	var tenants []*gatewaytest.Tenant
	var upstreams []string
	for pi, p := range protocols {
		var groups []int64
		for _, ppm := range multipliers[pi : pi+3] { // three tenants each, multipliers shared around
			g := &store.Group{Name: fmt.Sprintf("%s-%d", p.platform, ppm), Platform: p.platform,
				BillingType: store.BillingBalance, RateMultiplierPPM: ppm, Status: store.StatusActive}
			if err := c.Store.CreateGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
			ten := c.tenant(t, gatewaytest.TenantOptions{Group: g, Balance: 1_000_000_000_000})
			p.tenants = append(p.tenants, ten)
			tenants = append(tenants, ten)
			groups = append(groups, g.ID)
		}
		for _, k := range p.accounts {
			gatewaytest.NewAccount(t, c.Deps, k, groups, func(a *store.Account) { // straight to the mock: no tap
				a.Platform, a.BaseURL = p.platform, p.baseURL(c.Mock.URL())
			})
			upstreams = append(upstreams, k)
			if err := c.Mock.SetScript(k, mockupstream.Script{Events: 6, Interval: time.Millisecond, Seed: uint64(len(upstreams))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := map[int64]store.Nanos{}
	for _, ten := range tenants {
		before[ten.User.ID] = gatewaytest.Balance(t, c.Store, ten.User.ID)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}
	t.Cleanup(client.CloseIdleConnections)
	// Every node has seen every key, as a node in service has: the burst below measures
	// billing, not a cold cache's first database reads (a body the protocol cannot parse is
	// refused after the key is checked, before anything goes upstream or is billed).
	for _, p := range protocols {
		path, _ := p.request(0, false, "")
		for _, ten := range p.tenants {
			for _, n := range c.nodes {
				req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader("{"))
				p.key(req.Header, ten.Secret)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("warming %s on %s: status %d: %s", p.platform, n.URL, resp.StatusCode, b)
				}
			}
		}
	}
	var mu sync.Mutex
	seenIDs := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range requests {
		wg.Go(func() {
			p := protocols[i%len(protocols)]
			ten := p.tenants[i/len(protocols)%len(p.tenants)]
			node := c.nodes[i/2%len(c.nodes)] // both nodes see both kinds
			stream := i%2 == 0
			leave := i%10 == 3 || i%10 == 4 // a tenth of each kind leaves early
			// The answers of clients that leave are slow (a mock directive), so that they
			// leave while the upstream is still answering.
			system := fmt.Sprintf("tenant %d", ten.User.ID)
			if leave {
				system += " mock:latency=300ms,interval=20ms,events=20"
			}
			path, body := p.request(i, stream, system)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodPost, node.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			p.key(req.Header, ten.Secret)
			<-start
			if leave && !stream {
				time.AfterFunc(50*time.Millisecond, cancel) // gone before the answer starts
			}
			resp, err := client.Do(req)
			if err != nil {
				if !leave {
					t.Errorf("request %d: %v", i, err)
				}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Errorf("request %d (%s %s): status %d: %s", i, p.platform, path, resp.StatusCode, b)
				return
			}
			if leave {
				_, _ = resp.Body.Read(make([]byte, 32))
				cancel() // the client goes away with the answer unfinished
				return
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Errorf("request %d (%s %s): %v", i, p.platform, path, err)
				return
			}
			mu.Lock()
			seenIDs[resp.Header.Get(gateway.HeaderRequestID)]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Handlers of clients that left may still be reading their answers: wait until the mock
	// has nothing in flight. Then every answer it completed must be in the ledger once.
	var reported mockupstream.Usage
	var served, reqs int64
	deadline := time.Now().Add(time.Minute)
	for {
		var inFlight int64
		for _, k := range upstreams {
			inFlight += c.Mock.Stats(k).InFlight
		}
		if inFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d answers still in flight after a minute", inFlight)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range upstreams {
		st := c.Mock.Stats(k)
		reported = reported.Add(st.Usage)
		served += st.Completed
		reqs += st.Requests
		if st.Aborted != 0 {
			t.Errorf("%s: %d answers were cut off; the gateway should read every answer to its end", k, st.Aborted)
		}
	}
	// Every client that stayed was served; a client that left before its request was sent
	// upstream costs nothing and has no row.
	if served != reqs || served < requests-requests/10 || served > requests {
		t.Fatalf("the mock received %d requests and completed %d answers (of %d sent by clients)", reqs, served, requests)
	}
	ledger := rows(t, c.Store, store.UsageFilter{}, int(served))
	ids := map[string]bool{}
	var billed mockupstream.Usage
	perAccount := map[int64]mockupstream.Usage{}
	charged := map[int64]store.Nanos{}
	partial := 0
	for _, r := range ledger {
		if ids[r.RequestID] {
			t.Fatalf("request id %s appears twice in the ledger", r.RequestID)
		}
		ids[r.RequestID] = true
		u := mockupstream.Usage{Input: r.InputTokens, Output: r.OutputTokens, Cache5m: r.CacheCreation5mTokens,
			Cache1h: r.CacheCreation1hTokens, CacheRead: r.CacheReadTokens}
		billed = billed.Add(u)
		perAccount[r.AccountID] = perAccount[r.AccountID].Add(u)
		charged[r.UserID] += r.Charged
		if r.Partial {
			partial++
		}
	}
	for id, n := range seenIDs {
		if n != 1 || !ids[id] {
			t.Fatalf("client saw request id %q %d times; in ledger: %v", id, n, ids[id])
		}
	}

	if billed != reported {
		t.Fatalf("ledger totals %+v\n  mock reported %+v", billed, reported)
	}
	for _, k := range upstreams {
		a := accountByKey(t, c.Store, k)
		if perAccount[a.ID] != c.Mock.Stats(k).Usage {
			t.Errorf("account %s: ledger %+v, mock %+v", k, perAccount[a.ID], c.Mock.Stats(k).Usage)
		}
	}
	if reported.Cache5m == 0 || reported.Cache1h == 0 || reported.CacheRead == 0 || reported.Input == 0 || reported.Output == 0 {
		t.Fatalf("not every bucket was exercised: %+v", reported)
	}
	// Each protocol had its share, in every bucket it reports (OpenAI and Gemini report no
	// cache writes), and was billed at a price.
	for _, p := range protocols {
		var u mockupstream.Usage
		for _, k := range p.accounts {
			u = u.Add(c.Mock.Stats(k).Usage)
		}
		var cost store.Nanos
		for _, r := range ledger {
			if r.Platform == p.platform {
				cost += r.Cost
			}
		}
		if u.Input == 0 || u.Output == 0 || u.CacheRead == 0 || cost <= 0 {
			t.Errorf("%s: mock reported %+v, ledger cost %d; want every bucket used and a price", p.platform, u, cost)
		}
	}
	t.Logf("%d answers billed, %d of them partial", len(ledger), partial)
	// Which rows are partial depends on when each departure is noticed; how many clients
	// left bounds them, and some must be.
	if partial == 0 || partial > requests/5 {
		t.Errorf("%d rows flagged partial; %d clients left early", partial, requests/5)
	}
	for _, ten := range tenants {
		after := gatewaytest.Balance(t, c.Store, ten.User.ID)
		if got := before[ten.User.ID] - after; got != charged[ten.User.ID] || got <= 0 {
			t.Errorf("user %d: balance fell by %d, charges sum to %d", ten.User.ID, got, charged[ten.User.ID])
		}
	}
}

func accountByKey(t *testing.T, st store.Store, key string) *store.Account {
	t.Helper()
	all, _, err := st.ListAccounts(context.Background(), store.Page{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if all[i].Credentials.APIKey == key {
			return &all[i]
		}
	}
	t.Fatalf("no account with upstream key %s", key)
	return nil
}
