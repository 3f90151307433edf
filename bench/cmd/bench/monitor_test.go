package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestMonitorCountsClientAndScriptCommands(t *testing.T) {
	m := &monitor{cmds: map[string]int64{}}
	for _, line := range []string{
		`1700000000.123456 [0 127.0.0.1:50000] "evalsha" "abc" "3" "slot:user:1"` + "\r\n",
		`1700000000.123457 [0 lua] "zremrangebyscore" "slot:user:1" "-inf" "170"` + "\r\n",
		`1700000000.123458 [0 lua] "zadd" "slot:user:1" "1" "h"` + "\r\n",
		`1700000000.123459 [0 127.0.0.1:50001] "GET" "sticky:x"` + "\r\n",
		`1700000000.123460 [0 127.0.0.1:50000] "evalsha" "def"` + "\r\n",
		"OK\r\n", // not a command line
	} {
		m.count(line)
	}
	if m.cmds["evalsha"] != 2 || m.cmds["get"] != 1 || len(m.cmds) != 2 {
		t.Errorf("client commands = %v, want evalsha 2, get 1", m.cmds)
	}
	if m.lua != 2 {
		t.Errorf("script commands = %d, want 2", m.lua)
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setname:calls=2,usec=1\r\ncmdstat_info:calls=9,usec=100\r\n"
	got := parseCommandStats(info)
	if got["evalsha"] != 12 || got["client|setname"] != 2 || len(got) != 2 {
		t.Errorf("parseCommandStats = %v, want evalsha 12 and client|setname 2, without info", got)
	}
	d, total := delta(map[string]int64{"evalsha": 10}, map[string]int64{"evalsha": 12, "get": 3})
	if total != 5 || d["evalsha"] != 2 || d["get"] != 3 {
		t.Errorf("delta = %v %d, want evalsha 2 get 3 total 5", d, total)
	}
}

// TestMonitorOnRedis runs MONITOR on a real, password-protected Redis: a client's commands
// count by name, a script's own commands apart, and a wrong password is refused.
func TestMonitorOnRedis(t *testing.T) {
	r := testenv.StartRedis(t, testenv.WithPassword("bench-pw"))
	if _, err := startMonitor(r.Addr(), "wrong"); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("startMonitor with a wrong password: %v, want an AUTH error", err)
	}
	m, err := startMonitor(r.Addr(), r.Password())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Eval(ctx, `redis.call("INCR", KEYS[1]); return redis.call("GET", KEYS[1])`, []string{"n"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k").Err(); err != nil {
		t.Fatal(err)
	}
	// MONITOR's lines trail the replies: wait for the last command's line (bounded).
	for deadline := time.Now().Add(30 * time.Second); ; {
		m.mu.Lock()
		seen := m.cmds["get"]
		m.mu.Unlock()
		if seen > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmds, lua := m.stop()
	if cmds["set"] != 1 || cmds["eval"] != 1 || cmds["get"] != 1 {
		t.Errorf("client commands = %v, want set 1, eval 1, get 1", cmds)
	}
	if cmds["incr"] != 0 || lua != 2 {
		t.Errorf("script commands = %d (client incr %d), want 2 inside the script and none from the client", lua, cmds["incr"])
	}
}
