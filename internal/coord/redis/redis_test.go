package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/coordtest"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// prefixes keeps every coordinator of one test binary in its own key space.
var prefixes atomic.Int64

func uniquePrefix() string { return fmt.Sprintf("t%d", prefixes.Add(1)) }

func mustNew(t testing.TB, opts Options) *Coordinator {
	t.Helper()
	c, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawClient talks to the server directly, to look at what the coordinator stored.
func rawClient(t testing.TB, r *testenv.Redis) *goredis.Client {
	t.Helper()
	cl := goredis.NewClient(&goredis.Options{Addr: r.Addr(), Password: r.Password(), DisableIdentity: true})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestContract(t *testing.T) {
	r := testenv.StartRedis(t)
	coordtest.Run(t, func(t *testing.T) coord.Coordinator {
		return mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix()})
	})
}

func TestSharedBetweenNodes(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := uniquePrefix()
	coordtest.RunShared(t, func(t *testing.T) (coord.Coordinator, coord.Coordinator) {
		a, err := New(context.Background(), Options{URL: r.URL(), KeyPrefix: prefix})
		if err != nil {
			t.Fatalf("New a: %v", err)
		}
		b, err := New(context.Background(), Options{Addrs: []string{r.Addr()}, KeyPrefix: prefix})
		if err != nil {
			t.Fatalf("New b: %v", err)
		}
		return a, b
	})
}

// TestLoss wipes the server with FLUSHALL, as a restart without persistence would.
func TestLoss(t *testing.T) {
	r := testenv.StartRedis(t)
	raw := rawClient(t, r)
	coordtest.RunLoss(t, func(t *testing.T) (coord.Coordinator, coord.Coordinator, func()) {
		prefix := uniquePrefix()
		a := mustNew(t, Options{URL: r.URL(), KeyPrefix: prefix})
		b := mustNew(t, Options{URL: r.URL(), KeyPrefix: prefix})
		return a, b, func() {
			if err := raw.FlushAll(context.Background()).Err(); err != nil {
				t.Fatalf("FLUSHALL: %v", err)
			}
		}
	})
}

// Scenario 6 of issue 4, at this layer: with Redis down every call fails with
// ErrUnavailable instead of hanging; once it is back, calls work again by themselves and the
// subscriber reports the gap with "" before new messages.
func TestRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), OpTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := c.Subscribe(subCtx, "inv")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Publish(ctx, "inv", "before"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := coordtest.Receive(t, sub); got != "before" {
		t.Fatalf("received %q, want %q", got, "before")
	}

	if err := r.Stop(); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	calls := map[string]func() error{
		"Ping": func() error { return c.Ping(ctx) },
		"AcquireSlots": func() error {
			_, _, err := c.AcquireSlots(ctx, "h", time.Minute, coord.SlotReq{Key: "a", Limit: 3})
			return err
		},
		"ReleaseSlots": func() error { return c.ReleaseSlots(ctx, "h", "a") },
		"RefreshSlots": func() error {
			_, err := c.RefreshSlots(ctx, time.Minute, "", []coord.Held{{Key: "a", Holder: "h"}})
			return err
		},
		"SlotCount":    func() error { _, err := c.SlotCount(ctx, "a"); return err },
		"AcquireLease": func() error { _, _, err := c.AcquireLease(ctx, "job", "me", time.Minute); return err },
		"ReleaseLease": func() error { return c.ReleaseLease(ctx, "job", "me") },
		"StickyGet":    func() error { _, err := c.StickyGet(ctx, "s"); return err },
		"StickySet":    func() error { return c.StickySet(ctx, "s", 1, time.Minute) },
		"StickyDelete": func() error { return c.StickyDelete(ctx, "s", 1) },
		"Incr":         func() error { _, err := c.Incr(ctx, "n", 1, time.Minute); return err },
		"Get":          func() error { _, err := c.Get(ctx, "n"); return err },
		"Publish":      func() error { return c.Publish(ctx, "inv", "lost") },
		"Subscribe": func() error {
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			_, err := c.Subscribe(sctx, "other")
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("%s with Redis down: err = %v, want ErrUnavailable", name, err)
		}
	}

	if err := r.Start(); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	coordtest.Eventually(t, "calls succeed again", func() bool { return c.Ping(ctx) == nil })
	ok, _, err := c.AcquireSlots(ctx, "h", time.Minute, coord.SlotReq{Key: "a", Limit: 1})
	if err != nil || !ok {
		t.Fatalf("AcquireSlots after restart: ok=%v err=%v", ok, err)
	}
	if got := coordtest.Receive(t, sub); got != "" {
		t.Fatalf("first message after the restart = %q, want the flush signal \"\"", got)
	}
	if err := c.Publish(ctx, "inv", "after"); err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	for {
		got := coordtest.Receive(t, sub)
		if got == "after" {
			break
		}
		if got != "" {
			t.Fatalf("received %q, want \"after\" (or more flush signals)", got)
		}
	}
}

func TestPassword(t *testing.T) {
	const password = "s3cret-coord-pw"
	r := testenv.StartRedis(t, testenv.WithPassword(password))
	ctx := context.Background()
	use := func(t *testing.T, c *Coordinator) {
		t.Helper()
		ok, _, err := c.AcquireSlots(ctx, "h", time.Minute, coord.SlotReq{Key: "k", Limit: 1})
		if err != nil || !ok {
			t.Fatalf("AcquireSlots: ok=%v err=%v", ok, err)
		}
	}
	t.Run("ViaURL", func(t *testing.T) {
		if !strings.Contains(r.URL(), password) {
			t.Fatalf("test setup: URL %q carries no password", r.URL())
		}
		use(t, mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix()}))
	})
	t.Run("ViaOption", func(t *testing.T) {
		use(t, mustNew(t, Options{Addrs: []string{r.Addr()}, Password: password, KeyPrefix: uniquePrefix()}))
	})
	t.Run("OptionWinsOverURL", func(t *testing.T) {
		url := "redis://:wrong@" + r.Addr() + "/0"
		use(t, mustNew(t, Options{URL: url, Password: password, KeyPrefix: uniquePrefix()}))
	})
	for name, opts := range map[string]Options{
		"Missing": {Addrs: []string{r.Addr()}},
		"Wrong":   {Addrs: []string{r.Addr()}, Password: "not-" + password},
	} {
		t.Run(name+"Refused", func(t *testing.T) {
			c, err := New(ctx, opts)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New succeeded without the right password")
			}
			if !errors.Is(err, coord.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}

func TestOptionsRefused(t *testing.T) {
	for name, opts := range map[string]Options{
		"NoAddress":    {},
		"BracePrefix":  {Addrs: []string{"127.0.0.1:1"}, KeyPrefix: "{x}"},
		"BadURL":       {URL: "http://:hunter2@127.0.0.1:1/0"},
		"NegativePool": {Addrs: []string{"127.0.0.1:1"}, PoolSize: -1},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := New(context.Background(), opts)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New accepted %+v", opts)
			}
			if errors.Is(err, coord.ErrUnavailable) {
				t.Fatalf("a configuration error reported as unavailability: %v", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}

// The scripts survive a server that forgot them (restart, SCRIPT FLUSH): EVALSHA fails,
// EVAL runs it, and the next call is back to one EVALSHA.
func TestScriptCacheFlushed(t *testing.T) {
	r := testenv.StartRedis(t)
	var counter CommandCounter
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), Counter: &counter})
	ctx := context.Background()
	acquire := func() {
		t.Helper()
		ok, _, err := c.AcquireSlots(ctx, "h", time.Minute, coord.SlotReq{Key: "k", Limit: 1})
		if err != nil || !ok {
			t.Fatalf("AcquireSlots: ok=%v err=%v", ok, err)
		}
	}
	acquire()
	if err := rawClient(t, r).ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	counter.Reset()
	acquire()
	if got := counter.Commands(); got != 2 {
		t.Fatalf("commands after a flush = %d, want 2 (EVALSHA, then EVAL)", got)
	}
	counter.Reset()
	acquire()
	if got := counter.Commands(); got != 1 {
		t.Fatalf("commands once cached again = %d, want 1", got)
	}
}

// Each operation is one round trip, which is what keeps the request path cheap. (RefreshSlots,
// the heartbeat, is one script too, but the counter leaves it out.)
func TestOneRoundTripEach(t *testing.T) {
	r := testenv.StartRedis(t)
	var counter CommandCounter
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), Counter: &counter})
	ctx := context.Background()
	reqs := []coord.SlotReq{{Key: "account:1", Limit: 3}, {Key: "user:1", Limit: 2}, {Key: "key:1", Limit: 1}}
	ops := []struct {
		name string
		call func() error
	}{
		{"AcquireSlots", func() error { _, _, err := c.AcquireSlots(ctx, "h", time.Minute, reqs...); return err }},
		{"AcquireAccount", func() error {
			_, err := c.AcquireAccount(ctx, "h", time.Minute, coord.AccountReq{
				Base:     reqs[1:],
				Accounts: []coord.AccountSlot{{ID: 1, Slot: reqs[0]}, {ID: 2, Slot: coord.SlotReq{Key: "account:2", Limit: 3}}},
				Session:  "s", SessionTTL: time.Minute, Keep: []int64{3},
			})
			return err
		}},
		{"ReleaseSlots", func() error { return c.ReleaseSlots(ctx, "h", "account:1", "user:1", "key:1") }},
		{"AcquireLease", func() error { _, _, err := c.AcquireLease(ctx, "job", "me", time.Minute); return err }},
		{"Incr", func() error { _, err := c.Incr(ctx, "n", 1, time.Minute); return err }},
		{"StickyDelete", func() error { return c.StickyDelete(ctx, "s", 1) }},
	}
	for _, op := range ops {
		if err := op.call(); err != nil { // loads the script
			t.Fatalf("%s: %v", op.name, err)
		}
		counter.Reset()
		if err := op.call(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if got := counter.RoundTrips(); got != 1 {
			t.Errorf("%s took %d round trips, want 1", op.name, got)
		}
	}
}

// Keys one script touches must share a Redis Cluster hash tag, or Cluster refuses the
// script (CROSSSLOT). Checked on the names actually written.
func TestKeysShareHashTag(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := uniquePrefix()
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: prefix})
	ctx := context.Background()
	ok, _, err := c.AcquireSlots(ctx, "h", time.Minute,
		coord.SlotReq{Key: "account:1", Limit: 3}, coord.SlotReq{Key: "user:{odd}", Limit: 2}, coord.SlotReq{Key: "key:9", Limit: 1})
	if err != nil || !ok {
		t.Fatalf("AcquireSlots: ok=%v err=%v", ok, err)
	}
	if ok, _, err := c.AcquireLease(ctx, "refresh}tokens", "me", time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease: ok=%v err=%v", ok, err)
	}
	// One AcquireAccount spans slot sets and a sticky binding.
	g, err := c.AcquireAccount(ctx, "h2", time.Minute, coord.AccountReq{
		Accounts: []coord.AccountSlot{{ID: 1, Slot: coord.SlotReq{Key: "account:1", Limit: 3}}},
		Session:  "group:1:{sess}", SessionTTL: time.Minute,
	})
	if err != nil || g.Index != 0 {
		t.Fatalf("AcquireAccount: %+v, %v", g, err)
	}
	keys, err := rawClient(t, r).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	var slotKeys, leaseKeys []string
	for _, k := range keys {
		switch {
		case strings.Contains(k, ":slot:"), strings.Contains(k, ":sticky:"):
			slotKeys = append(slotKeys, k)
		case strings.Contains(k, ":lease:"):
			leaseKeys = append(leaseKeys, k)
		}
	}
	if len(slotKeys) != 4 || len(leaseKeys) != 2 {
		t.Fatalf("keys written: %q; want 3 slot sets, a binding and a lease with its fence", keys)
	}
	for _, group := range [][]string{slotKeys, leaseKeys} {
		for _, k := range group[1:] {
			if hashTag(k) != hashTag(group[0]) {
				t.Errorf("keys %q and %q hash to different tags %q and %q", group[0], k, hashTag(group[0]), hashTag(k))
			}
		}
	}
	if hashTag(slotKeys[0]) != prefix {
		t.Errorf("slot tag = %q, want %q", hashTag(slotKeys[0]), prefix)
	}
}

// hashTag is the part of a key Redis Cluster hashes: between the first "{" and the next
// "}" when that is non-empty, else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

// Expiry is judged by Redis's clock: a holder whose slot outlived its TTL is gone for every
// node, and the set's key itself disappears once its last holder expired.
func TestIdleSetsVanish(t *testing.T) {
	r := testenv.StartRedis(t)
	prefix := uniquePrefix()
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: prefix})
	ctx := context.Background()
	if ok, _, err := c.AcquireSlots(ctx, "h", 200*time.Millisecond, coord.SlotReq{Key: "k", Limit: 1}); err != nil || !ok {
		t.Fatalf("AcquireSlots: ok=%v err=%v", ok, err)
	}
	raw := rawClient(t, r)
	coordtest.Eventually(t, "the idle set expires from Redis", func() bool {
		n, err := raw.Exists(ctx, "{"+prefix+"}:slot:k").Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		return n == 0
	})
}

// oneSlotSet is a coordinator on a Redis of the test's own, a plain client of that Redis, and
// the Redis key of the coordinator's slot set "k".
func oneSlotSet(t *testing.T) (*Coordinator, *goredis.Client, string) {
	r := testenv.StartRedis(t)
	prefix := uniquePrefix()
	return mustNew(t, Options{URL: r.URL(), KeyPrefix: prefix}), rawClient(t, r), "{" + prefix + "}:slot:k"
}

// Expired holders are purged only when a set looks full (the hot path then costs one call
// per set to see room), so a set of crashed holders never grows past its limit and the
// expired never take a live holder's place.
func TestExpiredHoldersArePurgedWhenTheSetIsFull(t *testing.T) {
	c, raw, key := oneSlotSet(t)
	ctx := context.Background()
	const limit = 3
	for i := range 10 {
		// Each holder "crashes": it never releases, and its 50 ms lease runs out.
		holder := fmt.Sprintf("crashed-%d", i)
		ok, _, err := c.AcquireSlots(ctx, holder, 50*time.Millisecond, coord.SlotReq{Key: "k", Limit: limit})
		if err != nil || !ok {
			t.Fatalf("holder %d: AcquireSlots: ok=%v err=%v (the expired must make room)", i, ok, err)
		}
		n, err := raw.ZCard(ctx, key).Result()
		if err != nil {
			t.Fatalf("ZCARD: %v", err)
		}
		if n > limit {
			t.Fatalf("after holder %d the set has %d members, limit %d: expired holders pile up", i, n, limit)
		}
		time.Sleep(60 * time.Millisecond)
	}
	// Live holders fill the set; the expired are purged, the live are not.
	for i := range limit {
		if ok, _, err := c.AcquireSlots(ctx, fmt.Sprintf("live-%d", i), time.Minute, coord.SlotReq{Key: "k", Limit: limit}); err != nil || !ok {
			t.Fatalf("live %d: ok=%v err=%v", i, ok, err)
		}
	}
	if ok, _, err := c.AcquireSlots(ctx, "one-too-many", time.Minute, coord.SlotReq{Key: "k", Limit: limit}); err != nil || ok {
		t.Fatalf("a fourth live holder: ok=%v err=%v, want refused", ok, err)
	}
}

// A set lives at least as long as its newest holder's lease, minus the eighth the scripts
// allow themselves before extending it (scripts.go, slotHelpers).
func TestSetOutlivesItsHolders(t *testing.T) {
	c, raw, key := oneSlotSet(t)
	ctx := context.Background()
	const ttl = 8 * time.Second
	for i := range 4 {
		if ok, _, err := c.AcquireSlots(ctx, fmt.Sprintf("h%d", i), ttl, coord.SlotReq{Key: "k", Limit: 10}); err != nil || !ok {
			t.Fatalf("AcquireSlots: ok=%v err=%v", ok, err)
		}
		left, err := raw.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		if left < ttl-ttl/8 || left > ttl {
			t.Fatalf("after holder %d the set has %v to live; want between %v and %v", i, left, ttl-ttl/8, ttl)
		}
		if i == 1 {
			time.Sleep(ttl/8 + 100*time.Millisecond) // the next acquisition must extend the set
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	r := testenv.StartRedis(b)
	var counter CommandCounter
	c := mustNew(b, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), Counter: &counter})
	ctx := context.Background()
	reqs := []coord.SlotReq{{Key: "account:1", Limit: 1 << 30}, {Key: "user:1", Limit: 1 << 30}, {Key: "key:1", Limit: 1 << 30}}
	keys := []string{"account:1", "user:1", "key:1"}
	// Warm the script cache so the numbers show the steady state.
	if _, _, err := c.AcquireSlots(ctx, "warm", time.Minute, reqs...); err != nil {
		b.Fatalf("AcquireSlots: %v", err)
	}
	if err := c.ReleaseSlots(ctx, "warm", keys...); err != nil {
		b.Fatalf("ReleaseSlots: %v", err)
	}
	counter.Reset()
	var holders atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		holder := fmt.Sprintf("h%d", holders.Add(1))
		for pb.Next() {
			ok, _, err := c.AcquireSlots(ctx, holder, time.Minute, reqs...)
			if err != nil || !ok {
				b.Fatalf("AcquireSlots: ok=%v err=%v", ok, err)
			}
			if err := c.ReleaseSlots(ctx, holder, keys...); err != nil {
				b.Fatalf("ReleaseSlots: %v", err)
			}
		}
	})
	b.ReportMetric(float64(counter.RoundTrips())/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(counter.Commands())/float64(b.N), "cmds/op")
}

// BenchmarkAcquireAccountRelease is one request's whole use of Redis on the hot path: the
// binding, the choice among two accounts and the user, key and account slots in one call,
// then one release.
func BenchmarkAcquireAccountRelease(b *testing.B) {
	r := testenv.StartRedis(b)
	var counter CommandCounter
	c := mustNew(b, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), Counter: &counter})
	ctx := context.Background()
	req := coord.AccountReq{
		Base: []coord.SlotReq{{Key: "user:1", Limit: 1 << 30}, {Key: "key:1", Limit: 1 << 30}},
		Accounts: []coord.AccountSlot{
			{ID: 1, Slot: coord.SlotReq{Key: "account:1", Limit: 1 << 30}},
			{ID: 2, Slot: coord.SlotReq{Key: "account:2", Limit: 1 << 30}},
		},
		SessionTTL: time.Hour,
	}
	var holders atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	counter.Reset()
	b.RunParallel(func(pb *testing.PB) {
		n := holders.Add(1)
		holder := fmt.Sprintf("h%d", n)
		req := req
		req.Session = fmt.Sprintf("session-%d", n)
		for pb.Next() {
			g, err := c.AcquireAccount(ctx, holder, time.Minute, req)
			if err != nil || g.Index < 0 {
				b.Fatalf("AcquireAccount: %+v, %v", g, err)
			}
			if err := c.ReleaseSlots(ctx, holder, "user:1", "key:1", req.Accounts[g.Index].Slot.Key); err != nil {
				b.Fatalf("ReleaseSlots: %v", err)
			}
		}
	})
	b.ReportMetric(float64(counter.RoundTrips())/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(counter.Commands())/float64(b.N), "cmds/op")
}

// A subscriber whose connection is cut reconnects by itself and reports the gap.
func TestSubscriberReconnectsAfterKill(t *testing.T) {
	r := testenv.StartRedis(t)
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := c.Subscribe(ctx, "inv")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := rawClient(t, r).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatalf("CLIENT KILL: %v", err)
	}
	if got := coordtest.Receive(t, sub); got != "" {
		t.Fatalf("first message after the kill = %q, want \"\"", got)
	}
	publishUntilReceived(t, c, sub, "after-kill")
}

// A server that stops answering without closing the socket (here: CLIENT PAUSE) is found
// by the idle probe; the subscriber starts over and reports the gap once it answers again.
func TestSubscriberProbesSilentServer(t *testing.T) {
	r := testenv.StartRedis(t)
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix()})
	c.probeIdle = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := c.Subscribe(ctx, "inv")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := rawClient(t, r).Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	if got := coordtest.Receive(t, sub); got != "" {
		t.Fatalf("first message after the pause = %q, want \"\"", got)
	}
	publishUntilReceived(t, c, sub, "after-pause")
}

// publishUntilReceived publishes msg and expects it next, skipping further flush signals.
func publishUntilReceived(t *testing.T, c *Coordinator, sub <-chan string, msg string) {
	t.Helper()
	if err := c.Publish(context.Background(), "inv", msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for {
		got := coordtest.Receive(t, sub)
		if got == msg {
			return
		}
		if got != "" {
			t.Fatalf("received %q, want %q (or more flush signals)", got, msg)
		}
	}
}

// A call that queues for a pooled connection longer than OpTimeout is served, not refused:
// the queue is local load (a burst of requests on a small machine), not a Redis failure. The
// queue has its own bound, PoolWait. The test holds the only connection with a BLPOP that
// Redis answers after a fixed time, longer than OpTimeout.
func TestPoolWaitIsNotAnExchangeTimeout(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	hold := func(c *Coordinator, d time.Duration) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Blocks server-side for d: the pool's one connection is busy meanwhile.
			_ = c.client.BLPop(ctx, d, uniquePrefix()+":never").Err()
		}()
		// Wait until the BLPOP holds the connection (the pool reports it in use).
		deadline := time.Now().Add(5 * time.Second)
		for c.client.PoolStats().TotalConns-c.client.PoolStats().IdleConns == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the holding call never took the connection")
			}
			time.Sleep(time.Millisecond)
		}
		return done
	}

	queued := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), PoolSize: 1, OpTimeout: 300 * time.Millisecond})
	done := hold(queued, time.Second)
	if err := queued.Ping(ctx); err != nil {
		t.Fatalf("Ping queued behind a 1 s call with a 300 ms op timeout: %v; want it served", err)
	}
	<-done

	bounded := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), PoolSize: 1,
		OpTimeout: 300 * time.Millisecond, PoolWait: 100 * time.Millisecond})
	done = hold(bounded, 2*time.Second)
	start := time.Now()
	err := bounded.Ping(ctx)
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Ping queued past PoolWait: err = %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited >= 2*time.Second {
		t.Fatalf("Ping waited %v, past the holding call: PoolWait did not bound the queue", waited)
	}
	<-done
}
