package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestAccountLimit is must-show 4, first part: an account limited to 3 and 50 concurrent
// requests; the mock never sees more than 3 in flight for that account, on one node and on
// two nodes sharing PostgreSQL and Redis (requests alternate between the nodes).
func TestAccountLimit(t *testing.T) { onBothShapes(t, accountLimit) }

func accountLimit(t *testing.T, c *cluster) {
	ten := c.tenant(t, gatewaytest.TenantOptions{})
	gatewaytest.NewAccount(t, c.Deps, "up-limit3", []int64{ten.Group.ID}, func(a *store.Account) { a.Concurrency = 3 })
	if err := c.Mock.SetScript("up-limit3", mockupstream.Script{Events: 10, Interval: 3 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			client := sdk(c.nodes[i%len(c.nodes)], ten.Secret)
			stream := client.Messages.NewStreaming(context.Background(), params(fmt.Sprintf("conversation %d", i)))
			for stream.Next() {
			}
			if err := stream.Err(); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			stream.Close()
		})
	}
	wg.Wait()
	st := c.Mock.Stats("up-limit3")
	t.Logf("requests %d, peak in flight %d", st.Requests, st.PeakInFlight)
	if st.PeakInFlight > 3 {
		t.Fatalf("peak in flight %d exceeds the account's limit of 3", st.PeakInFlight)
	}
	if st.Requests != 50 || st.Completed != 50 {
		t.Fatalf("the mock served %d (completed %d), want all 50", st.Requests, st.Completed)
	}
}

// TestKilledNodeFreesSlots is must-show 4, last part: a node process holding slots is killed
// with SIGKILL; its slots are free again within 60 s. While it lives, its heartbeat keeps the
// slots past their lease (here 2 s) however long the requests run.
func TestKilledNodeFreesSlots(t *testing.T) {
	const slotTTL = 2 * time.Second
	c := shared(t, 1, config())
	ten := c.tenant(t, gatewaytest.TenantOptions{UserConcurrency: 10, KeyConcurrency: 10})
	acct := c.account(t, "up-kill", []int64{ten.Group.ID}, func(a *store.Account) { a.Concurrency = 3 })
	c.tap.Hold(t, "held by the doomed node") // its answers never come while it lives

	node := startNodeProcess(t, c, slotTTL)
	for i := range 3 {
		go func() {
			body := fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"held by the doomed node %d"}]}`, i)
			req, _ := http.NewRequest(http.MethodPost, node.url+"/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", ten.Secret)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	ctx := context.Background()
	slotKeys := []string{gateway.AccountSlotKey(acct.ID), gateway.UserSlotKey(ten.User.ID), gateway.KeySlotKey(ten.Key.ID)}
	count := func(key string) int {
		n, err := c.Coord.SlotCount(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for count(slotKeys[0]) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the node never held 3 slots (holds %d)", count(slotKeys[0]))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * slotTTL) // longer than the lease: only the heartbeat keeps the slots
	for _, k := range slotKeys {
		if n := count(k); n != 3 {
			t.Fatalf("%s: %d slots held after 3 leases; the heartbeat should keep all 3", k, n)
		}
	}

	killed := time.Now()
	node.Kill(t)
	for {
		held := 0
		for _, k := range slotKeys {
			held += count(k)
		}
		if held == 0 {
			break
		}
		if time.Since(killed) > 60*time.Second {
			t.Fatalf("%d slots still held 60 s after the node was killed", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("slots free %v after SIGKILL", time.Since(killed).Round(100*time.Millisecond))

	// The account serves again at its full limit through a living node.
	client := sdk(c.nodes[0], ten.Secret)
	if _, err := client.Messages.New(ctx, params("after the kill")); err != nil {
		t.Fatalf("after the kill: %v", err)
	}
}

type nodeProcess struct {
	*testenv.Process
	url string
}

// listening is the line gwnode prints once it serves.
var listening = regexp.MustCompile(`^listening (\S+)$`)

// startNodeProcess builds and starts test/e2e/gwnode on the cluster's PostgreSQL and Redis.
func startNodeProcess(t *testing.T, c *cluster, slotTTL time.Duration) *nodeProcess {
	t.Helper()
	bin := testenv.BuildBinary(t, "github.com/fluxcode/fluxcode/test/e2e/gwnode")
	env := map[string]string{
		"GWNODE_LISTEN": "127.0.0.1:0", "DATABASE_URL": c.dsn, "REDIS_URL": c.redisURL,
		"ENCRYPTION_KEY": c.master, "GATEWAY_SLOT_TTL": slotTTL.String(),
	}
	maps.Copy(env, c.nodeEnv)
	p := testenv.StartProcess(t, bin, testenv.ProcessOptions{InheritEnv: true, Env: env})
	return &nodeProcess{Process: p, url: "http://" + p.WaitLine(t, listening)[1]}
}
