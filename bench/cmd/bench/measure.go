package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/load"
	"github.com/fluxcode/fluxcode/bench/internal/proc"
	"github.com/fluxcode/fluxcode/bench/internal/report"
)

// runner runs the load generator against targets and turns counters into figures.
type runner struct {
	loadgen string
	// models is the model each protocol's load names.
	models   map[string]string
	warmup   time.Duration
	duration time.Duration
	logf     func(string, ...any)
}

// runLoad runs one load generator process to completion and returns its result.
func (r *runner) runLoad(ctx context.Context, t *target, protocol string, stream bool, c int, warmup, duration time.Duration) (load.Result, error) {
	args := []string{"-url", t.url, "-protocol", protocol, "-key", t.keys[protocol], "-model", r.models[protocol],
		"-c", strconv.Itoa(c), "-warmup", warmup.String(), "-duration", duration.String()}
	if stream {
		args = append(args, "-stream")
	}
	cmd := exec.CommandContext(ctx, r.loadgen, args...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return load.Result{}, fmt.Errorf("loadgen %s: %w: %s", t.name, err, ee.Stderr)
		}
		return load.Result{}, fmt.Errorf("loadgen %s: %w", t.name, err)
	}
	var res load.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return load.Result{}, fmt.Errorf("loadgen %s: decode %q: %w", t.name, out, err)
	}
	return res, nil
}

// snapshot is every counter of a target at one moment.
type snapshot struct {
	self, pg, redis, caddy time.Duration
	redisCmds              map[string]int64
	pgStmts                map[string]int64
}

func (r *runner) snapshot(ctx context.Context, t *target) (snapshot, error) {
	var s snapshot
	for _, pid := range t.selfPids() {
		ti, err := proc.Default.CPU(pid)
		if err != nil {
			return s, err
		}
		s.self += ti.Total()
	}
	if t.pgPid != 0 {
		ti, err := proc.Default.TreeCPU(t.pgPid)
		if err != nil {
			return s, err
		}
		s.pg = ti.Total()
	}
	if t.redisPid != 0 {
		ti, err := proc.Default.CPU(t.redisPid)
		if err != nil {
			return s, err
		}
		s.redis = ti.Total()
	}
	if t.caddyPid != 0 {
		ti, err := proc.Default.CPU(t.caddyPid)
		if err != nil {
			return s, err
		}
		s.caddy = ti.Total()
	}
	var err error
	if t.redis != nil {
		if s.redisCmds, err = t.redis.commands(ctx); err != nil {
			return s, err
		}
	}
	if t.pg != nil {
		if s.pgStmts, err = t.pg.statements(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// cell measures one round of one target at one shape and concurrency.
func (r *runner) cell(ctx context.Context, t *target, protocol string, stream bool, c int) (report.Round, error) {
	before, err := r.snapshot(ctx, t)
	if err != nil {
		return report.Round{}, err
	}
	res, err := r.runLoad(ctx, t, protocol, stream, c, r.warmup, r.duration)
	if err != nil {
		return report.Round{}, err
	}
	if t.settle > 0 {
		time.Sleep(t.settle)
	}
	after, err := r.snapshot(ctx, t)
	if err != nil {
		return report.Round{}, err
	}
	return makeRound(res, before, after, t), nil
}

// makeRound combines a load result with the counter deltas around it. Counters cover the
// whole load run, warm-up included, so they are divided by every request completed in it.
func makeRound(res load.Result, before, after snapshot, t *target) report.Round {
	n := res.Total
	cpu := func(b, a time.Duration, used bool) report.Num {
		if !used || n == 0 {
			return report.NaN()
		}
		return report.Num(float64(a-b) / float64(time.Microsecond) / float64(n))
	}
	rd := report.Round{
		Requests: res.Requests, Errors: res.Errors, Total: res.Total, RPS: res.RPS,
		P50: res.P50, P99: res.P99, P999: res.P999, TTFBP50: res.TTFBP50, TTFBP99: res.TTFBP99, ErrorSample: res.ErrorSample,
		CPU: report.CPU{
			Target:   cpu(before.self, after.self, true),
			Postgres: cpu(before.pg, after.pg, t.pgPid != 0),
			Redis:    cpu(before.redis, after.redis, t.redisPid != 0),
			Caddy:    cpu(before.caddy, after.caddy, t.caddyPid != 0),
		},
		RedisCommands: report.NaN(), PGStatements: report.NaN(),
	}
	if t.redis != nil && n > 0 {
		d, total := delta(before.redisCmds, after.redisCmds)
		rd.RedisCommands = report.Num(float64(total) / float64(n))
		rd.RedisByCmd = perRequest(d, n)
	}
	if t.pg != nil && n > 0 {
		d, total := delta(before.pgStmts, after.pgStmts)
		rd.PGStatements = report.Num(float64(total) / float64(n))
		rd.PGTop = topStatements(d, n, 8)
	}
	return rd
}

// stableRSS samples rss every half second until two samples in a row differ by less than
// 1 %, or patience runs out, and returns the last sample. A Go process returns freed memory
// to the system gradually (the background scavenger), and a node that just hashed a
// password with argon2id (19 MiB) holds that garbage until its next collection: measuring
// at once would compare a bloated idle process with a loaded one.
func stableRSS(rss func() (int64, error), patience time.Duration) (int64, error) {
	prev, err := rss()
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		cur, err := rss()
		if err != nil {
			return 0, err
		}
		if math.Abs(float64(cur-prev)) < 0.01*float64(prev) {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// holdReport mirrors cmd/loadgen's line in -hold mode.
type holdReport struct {
	Open  int    `json:"open"`
	Error string `json:"error"`
}

// memory measures a target's resident memory idle and with n slow streams open through it.
// The streams last streamFor upstream (so that a gateway still draining them after the
// client left is done soon), far longer than it takes to open them all. whileOpen, when not
// nil, runs once the loaded figure is read and before the streams close.
func (r *runner) memory(ctx context.Context, t *target, n int, streamFor time.Duration, whileOpen func()) report.Memory {
	m := report.Memory{Target: t.name, Streams: n, PerStream: report.NaN()}
	var detail []string
	rss := func() (int64, error) {
		var sum int64
		detail = detail[:0]
		for _, pid := range t.selfPids() {
			v, err := proc.Default.RSS(pid)
			if err != nil {
				return 0, err
			}
			detail = append(detail, fmt.Sprintf("pid %d %.1f MiB", pid, float64(v)/(1<<20)))
			sum += v
		}
		return sum, nil
	}
	defer func() { r.logf("memory %s per process, last sample: %v", t.name, detail) }()
	var err error
	if m.IdleRSS, err = stableRSS(rss, 15*time.Second); err != nil {
		m.Error = err.Error()
		return m
	}
	const interval = 100 * time.Millisecond
	events := int(streamFor / interval)
	cmd := exec.CommandContext(ctx, r.loadgen, "-url", t.url, "-key", t.keys[load.Anthropic], "-model", r.models[load.Anthropic],
		"-hold", strconv.Itoa(n), "-system", fmt.Sprintf("mock:events=%d,interval=%s", events, interval))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		m.Error = err.Error()
		return m
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		m.Error = err.Error()
		return m
	}
	if err := cmd.Start(); err != nil {
		m.Error = err.Error()
		return m
	}
	defer func() {
		stdin.Close() // ends the hold
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	lines := make(chan holdReport, 1)
	go func() {
		var h holdReport
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
				h.Error = "decode hold report: " + err.Error()
			}
		} else {
			h.Error = "loadgen ended without a hold report"
		}
		lines <- h
	}()
	var h holdReport
	select {
	case h = <-lines:
	case <-time.After(streamFor):
		m.Error = fmt.Sprintf("streams not all open after %s", streamFor)
		return m
	}
	m.Open = h.Open
	if h.Error != "" {
		m.Error = fmt.Sprintf("%d streams failed; first: %s", n-h.Open, h.Error)
	}
	if m.LoadedRSS, err = stableRSS(rss, 5*time.Second); err != nil {
		m.Error = err.Error()
		return m
	}
	if whileOpen != nil {
		whileOpen()
	}
	if m.Open > 0 && m.Open >= n*9/10 {
		m.PerStream = report.Num(float64(m.LoadedRSS-m.IdleRSS) / float64(m.Open))
	}
	if math.IsNaN(float64(m.PerStream)) && m.Error == "" {
		m.Error = fmt.Sprintf("only %d of %d streams opened", m.Open, n)
	}
	return m
}
