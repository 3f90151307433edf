package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	coordredis "github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestRedisCluster is issue 15's second must-show: the nodes' Redis is a real Redis Cluster
// of three masters and three replicas (REDIS_CLUSTER_ADDRS), and the limits and exactness
// scenarios hold on it as on one server; then a thousand users, each with a concurrency
// limit, a per-minute limit and a key of its own, are served, and the keys their requests
// left land on all three masters.
func TestRedisCluster(t *testing.T) {
	var rc *testenv.RedisCluster
	c := startClusterWith(t, buildFluxcode(t), func(c *cluster) map[string]string {
		rc = testenv.StartRedisCluster(t, testenv.WithPassword(c.secrets["REDIS_PASSWORD"]))
		c.rdb = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: rc.Addrs(), Password: rc.Password(),
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, DisableIdentity: true})
		t.Cleanup(func() { c.rdb.Close() })
		return map[string]string{"REDIS_CLUSTER_ADDRS": strings.Join(rc.Addrs(), ",")}
	})

	t.Run("2 load through Caddy keeps account limits and bills every request once", c.loadKeepsLimits)
	t.Run("8 with the sticky cookie on the same load holds", c.stickyCookieOn)
	t.Run("4 a key disabled on node 1 is refused by every node", c.disabledKeyRefused)
	t.Run("4 an account rate-limited on node 1 is skipped by every node", c.rateLimitedSkipped)
	t.Run("a thousand users' keys land on every master", func(t *testing.T) { c.thousandUsers(t, rc) })
	t.Run("the admission master killed under load: the cluster fails over and limits hold", func(t *testing.T) {
		c.admissionMasterKilled(t, rc)
	})
}

// admissionKey is a key of the nodes' admission state (the epoch; internal/coord/redis with
// the default key prefix): its master holds every slot set.
const admissionKey = "{" + coordredis.DefaultKeyPrefix + "}:epoch:v2"

// admissionMasterKilled SIGKILLs the master of the admission state under load, as
// TestSentinelPrimaryKilled does with Sentinel: its replica takes over once the other
// masters agree (cluster-node-timeout), the nodes follow by themselves, the new master lacks
// the epoch so the nodes register their requests in flight before anything is admitted, and
// no account limit is exceeded after the failover; every completed request is billed once.
func (c *cluster) admissionMasterKilled(t *testing.T, rc *testenv.RedisCluster) {
	master, replica, err := rc.MasterOf(admissionKey)
	if err != nil {
		t.Fatal(err)
	}
	c.masterKilledUnderLoad(t, "cluster", replica, rc.Node(master).Kill, func() time.Time {
		if err := rc.WaitOK(replica, time.Minute); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	})
}

// manyUsers is how many users thousandUsers serves.
const manyUsers = 1000

// manyShape is a short stream, long enough that the load keeps the accounts full.
var manyShape = shape{stream: true, events: 4, interval: 40 * time.Millisecond}

// thousandUsers creates manyUsers users in one group of two limited accounts, each user with
// a concurrency limit, a requests-per-minute limit and a limited key, sends a request per
// user through Caddy, and checks the account limits, the ledger (every completed request
// once, nothing else) and where the keys went: every master holds some, rate windows of the
// users among them.
func (c *cluster) thousandUsers(t *testing.T, rc *testenv.RedisCluster) {
	tn := c.newTenant(t, "thousand", accountSpec{concurrency: 6}, accountSpec{concurrency: 6})
	keys := make([]string, manyUsers)
	userIDs := make([]int64, manyUsers)
	suffix := secret.NewMasterKey()[:6]
	var wg sync.WaitGroup
	errs := make(chan error, manyUsers)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				id, key, err := c.newLimitedUser(fmt.Sprintf("u%d-%s@cluster.test", i, suffix), tn.groupID)
				if err != nil {
					errs <- fmt.Errorf("user %d: %w", i, err)
					continue
				}
				userIDs[i], keys[i] = id, key
			}
		})
	}
	for i := range manyUsers {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var outs []outcome
	client := newClient()
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for n := range work {
				o := send(context.Background(), client, c.entry, keys[n%manyUsers], manyShape, n, nil)
				mu.Lock()
				outs = append(outs, o)
				mu.Unlock()
			}
		})
	}
	for n := range manyUsers {
		work <- n
	}
	close(work)
	wg.Wait()

	requireComplete(t, outs)
	c.checkPeaks(t, tn)
	c.checkLedgerOnce(t, userIDs, outs)
	c.checkKeysSpread(t, rc)
}

// newLimitedUser creates a user with $100, a concurrency of 2 and 1000 requests a minute,
// and the user's key in group with a concurrency of 1. It returns the user's id and key.
// It reports errors instead of failing, so that it can run on several goroutines.
func (c *cluster) newLimitedUser(email string, group int64) (int64, string, error) {
	api := c.entry + "/api/v1"
	var u struct {
		ID int64 `json:"id"`
	}
	if err := c.adminCall("POST", api+"/admin/users", map[string]any{
		"email": email, "password": secret.NewMasterKey()[:16], "concurrency": 2,
	}, http.StatusCreated, &u); err != nil {
		return 0, "", err
	}
	user := api + "/admin/users/" + strconv.FormatInt(u.ID, 10)
	if err := c.adminCall("PATCH", user, map[string]any{"rpm_limit": 1000}, http.StatusOK, nil); err != nil {
		return 0, "", err
	}
	if err := c.adminCall("POST", user+"/balance", map[string]string{"amount": "100", "note": "cluster harness"}, http.StatusOK, nil); err != nil {
		return 0, "", err
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := c.adminCall("POST", user+"/keys", map[string]any{"name": "k", "group_id": group, "concurrency": 1}, http.StatusCreated, &k); err != nil {
		return 0, "", err
	}
	return u.ID, k.Key, nil
}

// adminCall sends one admin API call and decodes its answer into out (unless nil).
func (c *cluster) adminCall(method, url string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, answer)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer, out)
}

// checkLedgerOnce checks that the ledger rows of users are exactly the completed requests
// of outs, each once.
func (c *cluster) checkLedgerOnce(t testing.TB, users []int64, outs []outcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := c.db.Query(ctx, "SELECT request_id FROM usage_ledger WHERE user_id = ANY($1)", users)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	defer rows.Close()
	seen := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatalf("read the ledger: %v", err)
		}
		seen[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	completed := 0
	for _, o := range outs {
		if !o.complete {
			continue
		}
		completed++
		if seen[o.requestID] != 1 {
			t.Errorf("request %s is in the ledger %d times, want once", o.requestID, seen[o.requestID])
		}
	}
	if len(seen) != completed {
		t.Errorf("the ledger has %d rows for the users, the clients completed %d requests", len(seen), completed)
	}
	t.Logf("%d users: %d requests completed, %d ledger rows", len(users), completed, len(seen))
}

// checkKeysSpread counts the keys on each master (DBSIZE) and, by kind, those of the
// coordination (SCAN), and fails t unless every master holds keys, user rate windows among
// them.
func (c *cluster) checkKeysSpread(t testing.TB, rc *testenv.RedisCluster) {
	t.Helper()
	masters, err := rc.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) != 3 {
		t.Fatalf("the cluster has masters %v, want 3", masters)
	}
	for _, m := range masters {
		size, err := rc.Command(m, "DBSIZE")
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", m, err)
		}
		kinds, err := keyKinds(rc, m)
		if err != nil {
			t.Fatalf("SCAN on %s: %v", m, err)
		}
		t.Logf("master %s: %s keys; by kind %v", m, size[0], kinds)
		if size[0] == "0" {
			t.Errorf("master %s holds no key", m)
		}
		if kinds["rate"] == 0 {
			t.Errorf("master %s holds no user's rate window", m)
		}
	}
}

// keyKinds counts the keys of the master at addr by kind: the word after the key prefix
// and its hash tag (slot, sticky, rate, lease, counter, epoch, nodes).
func keyKinds(rc *testenv.RedisCluster, addr string) (map[string]int, error) {
	kinds := map[string]int{}
	cursor := "0"
	for {
		out, err := rc.Command(addr, "SCAN", cursor, "COUNT", "1000")
		if err != nil {
			return nil, err
		}
		cursor = out[0]
		for _, k := range out[1:] {
			kinds[keyKind(k)]++
		}
		if cursor == "0" {
			return kinds, nil
		}
	}
}

// keyKind names what a coordination key is, from its layout (internal/coord/redis).
func keyKind(k string) string {
	for _, kind := range []string{"slot", "sticky", "rate", "lease", "counter", "epoch", "nodes"} {
		if strings.Contains(k, ":"+kind) {
			return kind
		}
	}
	return "other"
}
