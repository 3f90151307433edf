package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

// TestKilledNodeLosesNoCompletedRequest is invariant 3 against the worst end a node can
// have: while clients complete requests against it continuously (JSON and streams), the
// node process is killed with SIGKILL. Every request whose client received the whole answer
// (message_stop, or the whole JSON body) is in the ledger, exactly once, the moment the node
// is dead: nothing it had only queued can still arrive. The balance fell by exactly what the
// ledger charges. On both shapes: a single node on SQLite, a node on PostgreSQL and Redis.
// SQLite also with SQLITE_SYNCHRONOUS=normal: syncing only at checkpoints gives up commits
// to a power loss or an operating-system crash, never to the process being killed.
func TestKilledNodeLosesNoCompletedRequest(t *testing.T) {
	t.Run("OneNodeSQLite", func(t *testing.T) { killMidFlow(t, sqliteFile(t)) })
	t.Run("OneNodeSQLiteSynchronousNormal", func(t *testing.T) {
		c := sqliteFile(t)
		c.nodeEnv = map[string]string{"SQLITE_SYNCHRONOUS": sqlstore.SyncNormal}
		killMidFlow(t, c)
	})
	t.Run("PostgresRedis", func(t *testing.T) { killMidFlow(t, shared(t, 1, config())) }) // node 1 only seeds
}

// sqliteFile is the single-node shape for a node process: a SQLite file the test seeds and
// reads, and no Redis (the process coordinates in itself).
func sqliteFile(t *testing.T) *cluster {
	t.Helper()
	master, keys := masterKey(t)
	path := filepath.Join(t.TempDir(), "fluxcode.db")
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Keys: keys, Store: gatewaytest.OpenSQLiteFile(t, keys, path)})
	return &cluster{Deps: d, dsn: path, master: master}
}

func killMidFlow(t *testing.T, c *cluster) {
	ten := c.tenant(t, gatewaytest.TenantOptions{})
	acct := gatewaytest.NewAccount(t, c.Deps, "up-doomed", []int64{ten.Group.ID}, nil)
	if err := c.Mock.SetScript("up-doomed", mockupstream.Script{Events: 3, Interval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before := gatewaytest.Balance(t, c.Store, ten.User.ID)
	node := startNodeProcess(t, c, 30*time.Second)

	const workers = 8
	const killAfter = 300 // completed requests before the kill: enough to be mid-flow
	var (
		mu        sync.Mutex
		completed = map[string]bool{} // request id → the client got the whole answer
		answered  = map[string]bool{} // every request id a client saw
		cut       int                 // answers that began and did not complete
		// unanswered are requests that ended before any answer began: sent as the node died,
		// or after. One the node had billed died before its answer went out (the row is
		// committed before the end is sent): billed for the tokens it consumed, unseen.
		unanswered int
	)
	killNow := make(chan struct{})
	var killOnce sync.Once
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	client := &http.Client{Timeout: time.Minute}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				stream := (w+i)%2 == 0
				id, whole, err := sendOne(ctx, client, node.url, ten.Secret, stream, fmt.Sprintf("kill %d-%d", w, i))
				mu.Lock()
				if err != nil && id == "" {
					unanswered++
					mu.Unlock()
					continue
				}
				answered[id] = true
				if whole {
					completed[id] = true
				} else {
					cut++
				}
				if len(completed) >= killAfter {
					killOnce.Do(func() { close(killNow) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-killNow:
	case <-time.After(2 * time.Minute):
		stop()
		wg.Wait()
		t.Fatalf("only %d requests completed", len(completed))
	}
	stop() // no new requests: those in flight now are the ones the kill cuts
	node.Kill(t)
	wg.Wait()
	t.Logf("%d requests answered, %d completed, %d cut by the kill, %d unanswered",
		len(answered), len(completed), cut, unanswered)

	// The ledger as the database has it now: the node is dead, nothing more can arrive.
	var got []store.Usage
	for {
		page, total, err := c.Store.ListUsage(context.Background(),
			store.UsageFilter{UserID: ten.User.ID, AccountID: acct.ID}, store.Page{Offset: len(got), Limit: 200})
		if err != nil {
			t.Fatalf("read the ledger: %v", err)
		}
		got = append(got, page...)
		if len(page) == 0 || len(got) >= total {
			break
		}
	}
	inLedger := map[string]bool{}
	var charged store.Nanos
	unseen := 0
	for _, r := range got {
		charged += r.Charged
		switch {
		case inLedger[r.RequestID]:
			t.Errorf("request %s has two ledger rows", r.RequestID)
		case !answered[r.RequestID]:
			unseen++
		case completed[r.RequestID] && r.Partial:
			t.Errorf("completed request %s is billed as partial", r.RequestID)
		}
		inLedger[r.RequestID] = true
	}
	if unseen > unanswered {
		t.Errorf("%d ledger rows belong to no answer a client saw, but only %d requests went unanswered", unseen, unanswered)
	}
	var lost []string
	for id := range completed {
		if !inLedger[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d requests whose clients got the whole answer are not in the ledger, e.g. %v",
			len(lost), len(completed), lost[:min(5, len(lost))])
	}
	if after := gatewaytest.Balance(t, c.Store, ten.User.ID); before-after != charged || charged <= 0 {
		t.Errorf("balance fell by %d; the ledger charges %d", before-after, charged)
	}
}

// sendOne sends one request and reads the answer to its end. id is the gateway request id
// ("" when no answer began); whole says the client got the complete answer: a stream
// through message_stop, or a JSON message body of its full length.
func sendOne(ctx context.Context, client *http.Client, base, key string, stream bool, text string) (id string, whole bool, err error) {
	body := fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":64,"stream":%v,"messages":[{"role":"user","content":%q}]}`, stream, text)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, base+"/v1/messages", strings.NewReader(body))
	if err != nil {
		return "", false, err
	}
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	id = resp.Header.Get(gateway.HeaderRequestID)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return id, false, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if !stream {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return id, false, err
		}
		var m struct {
			Type string `json:"type"`
		}
		return id, json.Unmarshal(b, &m) == nil && m.Type == "message", nil
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if strings.TrimSpace(line) == "event: message_stop" {
			return id, true, nil
		}
		if err != nil {
			return id, false, err
		}
	}
}
