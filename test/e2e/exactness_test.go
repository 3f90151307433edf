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
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestExactness is must-show 3: 2,000 concurrent requests, JSON and streaming, with every
// usage bucket in play, some clients leaving early, over several tenants (different price
// multipliers) and accounts. Per bucket, the ledger's totals equal what the mock reported;
// each user's balance fell by exactly the sum of their charges; no request id appears twice;
// every answer the mock completed has exactly one row.
// It runs on one node (SQLite, in-process coordination) and on two nodes sharing
// PostgreSQL and Redis.
func TestExactness(t *testing.T) { onBothShapes(t, exactness) }

func exactness(t *testing.T, c *cluster) {
	const requests = 2000
	ctx := context.Background()
	multipliers := []int64{1_000_000, 1_500_000, 800_000, 2_250_000, 1_000_003}
	var tenants []*gatewaytest.Tenant
	for _, ppm := range multipliers {
		tenants = append(tenants, c.tenant(t, gatewaytest.TenantOptions{MultiplierPPM: ppm, Balance: 1_000_000_000_000}))
	}
	groups := make([]int64, len(tenants))
	for i, ten := range tenants {
		groups[i] = ten.Group.ID
	}
	upstreams := []string{"up-x1", "up-x2", "up-x3", "up-x4"}
	for i, k := range upstreams {
		gatewaytest.NewAccount(t, c.Deps, k, groups, nil) // straight to the mock: no tap
		if err := c.Mock.SetScript(k, mockupstream.Script{Events: 6, Interval: time.Millisecond, Seed: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	before := map[int64]store.Nanos{}
	for _, ten := range tenants {
		before[ten.User.ID] = gatewaytest.Balance(t, c.Store, ten.User.ID)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}
	t.Cleanup(client.CloseIdleConnections)
	var mu sync.Mutex
	seenIDs := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range requests {
		wg.Go(func() {
			ten := tenants[i%len(tenants)]
			node := c.nodes[i%len(c.nodes)]
			stream := i%2 == 0
			leave := i%10 == 3 || i%10 == 4 // a tenth of each kind leaves early
			// The answers of clients that leave are slow (a mock directive), so that they
			// leave while the upstream is still answering.
			slow := ""
			if leave {
				slow = " mock:latency=300ms,interval=20ms,events=20"
			}
			body := fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":800,"stream":%t,`+
				`"system":[{"type":"text","text":"tenant %d%s"}],"messages":[{"role":"user","content":"request %d"}]}`, stream, ten.User.ID, slow, i)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodPost, node.URL+"/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", ten.Secret)
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
				t.Errorf("request %d: status %d: %s", i, resp.StatusCode, b)
				return
			}
			if leave {
				_, _ = resp.Body.Read(make([]byte, 32))
				cancel() // the client goes away with the answer unfinished
				return
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Errorf("request %d: %v", i, err)
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
