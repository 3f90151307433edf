package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/load"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// monitor counts the commands clients send to a Redis server, through MONITOR. Unlike
// INFO commandstats it tells a client's own commands from those a Lua script runs
// ("[0 lua]"), so its count of client commands bounds the round trips from above (a
// pipeline still counts once per command).
type monitor struct {
	conn net.Conn
	mu   sync.Mutex
	cmds map[string]int64 // client commands by name
	lua  int64
	done chan struct{}
}

// startMonitor connects to addr (with password, if any) and starts counting.
func startMonitor(addr, password string) (*monitor, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	rd := bufio.NewReaderSize(conn, 64<<10)
	var args [][]string
	if password != "" {
		args = append(args, []string{"AUTH", password})
	}
	for _, a := range append(args, []string{"MONITOR"}) {
		if err := testenv.RedisCommand(conn, rd, "+OK", a...); err != nil {
			conn.Close()
			return nil, fmt.Errorf("monitor: %w", err)
		}
	}
	m := &monitor{conn: conn, cmds: map[string]int64{}, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			m.count(line)
		}
	}()
	return m, nil
}

// count reads one MONITOR line: `1700000000.123456 [0 127.0.0.1:5000] "evalsha" "…" …`.
func (m *monitor) count(line string) {
	_, rest, ok := strings.Cut(line, " [")
	if !ok {
		return
	}
	source, args, ok := strings.Cut(rest, "] ")
	if !ok {
		return
	}
	name := args
	if i := strings.Index(args[1:], `"`); strings.HasPrefix(args, `"`) && i >= 0 {
		name = args[1 : i+1]
	}
	name = strings.ToLower(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.HasSuffix(source, " lua") {
		m.lua++
		return
	}
	m.cmds[name]++
}

// stop ends monitoring and returns the client commands by name and the script commands.
func (m *monitor) stop() (map[string]int64, int64) {
	m.conn.Close()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmds, m.lua
}

// roundTrips runs c=4 load of each shape against t with MONITOR attached to its Redis and
// returns client commands per request by name, script-internal commands per request, and
// the number of requests.
func (r *runner) roundTrips(ctx context.Context, t *target, addr, password string, d time.Duration) (map[string]float64, float64, int64, error) {
	m, err := startMonitor(addr, password)
	if err != nil {
		return nil, 0, 0, err
	}
	var total int64
	for _, stream := range []bool{false, true} {
		res, err := r.runLoad(ctx, t, load.Anthropic, stream, 4, 0, d)
		if err != nil {
			m.stop()
			return nil, 0, 0, err
		}
		total += res.Total
	}
	time.Sleep(t.settle)
	cmds, lua := m.stop()
	out := map[string]float64{}
	for k, n := range cmds {
		out[k] = float64(n) / float64(max(total, 1))
	}
	return out, float64(lua) / float64(max(total, 1)), total, nil
}
