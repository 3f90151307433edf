package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fluxcode/fluxcode/bench/internal/load"
	"github.com/fluxcode/fluxcode/bench/internal/report"
)

// The models the OpenAI and Gemini load names: the defaults of Codex and Gemini CLI.
const (
	openAIModel = "gpt-6.1-sol"
	geminiModel = "gemini-3.8-flash"
)

// measureAll runs every phase: warm-up, memory, interleaved rounds, ledger check, profiles.
func measureAll(ctx context.Context, l *lab, o options, outDir string, logf func(string, ...any)) (*report.Results, error) {
	r := &runner{loadgen: l.bin.loadgen, models: map[string]string{load.Anthropic: o.model, load.OpenAI: openAIModel, load.Gemini: geminiModel},
		warmup: o.warmup, duration: o.duration, logf: logf}
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	res := &report.Results{
		Date: time.Now().UTC().Format(time.RFC3339), Mode: mode,
		Settings: report.Settings{
			Rounds: o.rounds, Warmup: o.warmup.String(), Duration: o.duration.String(),
			Concurrency: o.concurrency, StreamsHeld: o.streams,
			PGStatementsSource: "pg_stat_statements (shared_preload_libraries in the bench's own server; " +
				"track=top; BEGIN and COMMIT count as statements), calls in the deployment's database",
			RedisCommandsSource: "INFO commandstats calls (commands run inside Lua scripts count as well, " +
				"and each command of a pipeline counts, so this is an upper bound on round trips)",
			LoadGenerator: "bench/cmd/loadgen, a separate Go process: closed loop, one keep-alive HTTP/1.1 " +
				"connection per worker; Anthropic POST /v1/messages (model " + o.model + "), OpenAI POST /v1/responses " +
				"(" + openAIModel + "), Gemini POST /v1beta/models/" + geminiModel + ":generateContent and " +
				":streamGenerateContent?alt=sse",
			FluxCodeEnv: "LOG_LEVEL=warn (no access log lines), UPSTREAM_ALLOWED_NETWORKS=127.0.0.0/8 (the mock is on loopback), everything else at its default; user, key and " +
				"account concurrency limits 5000",
		},
		Machine: machine(ctx, l),
	}
	for _, t := range l.targets {
		res.Targets = append(res.Targets, report.Target{Name: t.name, Description: t.desc})
	}

	// Warm every target up: connection pools and caches fill, and enough garbage is made
	// that the collector has run a few times since start-up (see stableRSS).
	for _, t := range l.targets {
		for _, protocol := range o.protocols {
			for _, stream := range []bool{false, true} {
				if _, err := r.runLoad(ctx, t, protocol, stream, 32, 0, time.Second); err != nil {
					return nil, err
				}
			}
		}
	}
	logf("warmed up")

	// Memory first, while the processes have seen only a little load: idle is then idle.
	var heaps []report.Profile
	for _, t := range l.targets {
		if t.extra {
			continue
		}
		var whileOpen func()
		if o.profile && t.deployment != nil {
			whileOpen = func() {
				p, err := heapProfile(ctx, t, outDir)
				if err != nil {
					res.Notes = append(res.Notes, fmt.Sprintf("heap profile of %s failed: %v", t.name, err))
					logf("heap profile %s: %v", t.name, err)
					return
				}
				heaps = append(heaps, p)
			}
		}
		m := r.memory(ctx, t, o.streams, o.streamFor, whileOpen)
		logf("memory %s: idle %.1f MiB, %d streams open, %.1f KiB/stream %s", t.name,
			float64(m.IdleRSS)/(1<<20), m.Open, float64(m.PerStream)/1024, m.Error)
		res.Memory = append(res.Memory, m)
	}
	if err := waitMockIdle(ctx, l.mockURL, o.streamFor+30*time.Second); err != nil {
		return nil, err
	}

	// Rounds: every cell, every target in turn (A B C … A B C …).
	type cellKey struct {
		protocol    string
		target      string
		stream      bool
		concurrency int
	}
	rounds := map[cellKey][]report.Round{}
	for round := 1; round <= o.rounds; round++ {
		for _, protocol := range o.protocols {
			for _, stream := range []bool{false, true} {
				for _, c := range o.concurrency {
					for _, t := range l.targets {
						if err := ctx.Err(); err != nil {
							return nil, err
						}
						rd, err := r.cell(ctx, t, protocol, stream, c)
						if err != nil {
							return nil, err
						}
						k := cellKey{protocol, t.name, stream, c}
						rounds[k] = append(rounds[k], rd)
						logf("round %d %-9s %-6s c=%-3d %-22s %8.0f req/s p50 %7.2f ms p99 %7.2f ms errors %d",
							round, protocol, shapeName(stream), c, t.name, rd.RPS, rd.P50/1000, rd.P99/1000, rd.Errors)
					}
				}
			}
		}
	}
	for _, protocol := range o.protocols {
		for _, stream := range []bool{false, true} {
			for _, c := range o.concurrency {
				for _, t := range l.targets {
					cell := report.Aggregate(t.name, stream, c, rounds[cellKey{protocol, t.name, stream, c}])
					cell.Protocol = report.ProtocolLabel(protocol)
					res.Cells = append(res.Cells, cell)
				}
			}
		}
	}
	res.Compare()

	for _, t := range l.targets {
		if t.redisAddr == "" {
			continue
		}
		rt := report.RoundTrips{Target: t.name, Client: report.NaN(), Script: report.NaN()}
		byCmd, script, requests, err := r.roundTrips(ctx, t, t.redisAddr, "", o.duration)
		if err != nil {
			rt.Error = err.Error()
		} else {
			rt.Requests, rt.Script, rt.ByCommand = requests, report.Num(script), map[string]report.Num{}
			var sum float64
			for k, v := range byCmd {
				rt.ByCommand[k] = report.Num(v)
				sum += v
			}
			rt.Client = report.Num(sum)
		}
		logf("redis round trips %s: %.2f client commands per request, %.2f inside scripts %s", t.name,
			float64(rt.Client), float64(rt.Script), rt.Error)
		res.RoundTrips = append(res.RoundTrips, rt)
	}

	res.Notes = append(res.Notes, ledgerNotes(ctx, l)...)
	res.Notes = append(res.Notes,
		"All processes share this machine's cores: load generator, mock, proxy or FluxCode node(s), PostgreSQL, "+
			"Redis and Caddy. The two-node figures show the cost of the extra hop and coordination, not scaling.",
		"Every FluxCode node ran with PPROF_ADDR (Go's profiler on a loopback listener of its own, idle "+
			"unless a profile is taken); the CPU profiles are of the measured nodes themselves, under a "+
			"separate c=32 load of each route and shape after the rounds.")

	if o.profile {
		for _, name := range []string{report.PGRedis, report.SQLite} {
			for _, protocol := range o.protocols {
				for _, stream := range []bool{false, true} {
					p, err := l.profile(ctx, r, l.target(name), protocol, stream, o.profileFor, outDir)
					if err != nil {
						res.Notes = append(res.Notes, fmt.Sprintf("profile of %s (%s, %s) failed: %v", name, protocol, shapeName(stream), err))
						logf("profile %s %s %s: %v", name, protocol, shapeName(stream), err)
						continue
					}
					res.Profiles = append(res.Profiles, p)
					logf("profiled %s %s %s", name, protocol, shapeName(stream))
				}
			}
		}
	}
	res.Profiles = append(res.Profiles, heaps...)
	res.Evaluate()
	return res, nil
}

func shapeName(stream bool) string {
	if stream {
		return "stream"
	}
	return "json"
}

// waitMockIdle waits until the mock has no answer in flight (held streams drained).
func waitMockIdle(ctx context.Context, mockURL string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/_mock/idle?timeout=%s", mockURL, d), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("wait for the mock to be idle: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("wait for the mock to be idle: %s %s", resp.Status, b)
	}
	return nil
}

// mockStats reads the mock's counters for one upstream key.
func mockStats(ctx context.Context, mockURL, key string) (completed, output int64, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", mockURL+"/_mock/stats?key="+key, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var s struct {
		Completed int64 `json:"completed"`
		Usage     struct {
			Output int64 `json:"output"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, 0, err
	}
	return s.Completed, s.Usage.Output, nil
}

// ledgerNotes compares, per deployment, the ledger's totals with what the mock answered to
// that deployment's upstream key: every answer must have been billed exactly once.
func ledgerNotes(ctx context.Context, l *lab) []string {
	_ = waitMockIdle(ctx, l.mockURL, 30*time.Second)
	time.Sleep(time.Second) // the last billing batch
	var notes []string
	for _, name := range l.deploymentNames() {
		d := l.deployments[name]
		var completed, output int64
		var err error
		for _, key := range upstreamKeys(d.upstreamKey) {
			c, o, serr := mockStats(ctx, l.mockURL, key)
			completed, output, err = completed+c, output+o, errors.Join(err, serr)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("ledger check of %s: mock stats: %v", name, err))
			continue
		}
		requests, billedOutput, err := ledgerTotals(ctx, d.urls[0])
		if err != nil {
			notes = append(notes, fmt.Sprintf("ledger check of %s: %v", name, err))
			continue
		}
		verdict := "match"
		if requests != completed || billedOutput != output {
			verdict = "DO NOT MATCH"
		}
		notes = append(notes, fmt.Sprintf("Ledger check, %s: %d ledger requests and %d output tokens billed; the mock "+
			"completed %d answers with %d output tokens for this deployment — %s.", name, requests, billedOutput, completed, output, verdict))
	}
	return notes
}

// profile captures a CPU profile of a FluxCode target under c=32 load of one route and
// shape, from the profiler (PPROF_ADDR) of the deployment's first node: the very process
// that was measured.
func (l *lab) profile(ctx context.Context, r *runner, t *target, protocol string, stream bool, length time.Duration, outDir string) (report.Profile, error) {
	warm := time.Second
	loadCmd := exec.CommandContext(ctx, r.loadgen, "-url", t.url, "-protocol", protocol, "-key", t.keys[protocol],
		"-model", r.models[protocol], "-c", "32", fmt.Sprintf("-stream=%t", stream),
		"-warmup", warm.String(), "-duration", (length + time.Second).String())
	loadCmd.Stdout = io.Discard
	if err := loadCmd.Start(); err != nil {
		return report.Profile{}, err
	}
	defer func() { _ = loadCmd.Wait() }()
	time.Sleep(warm)
	label := protocol + "-" + shapeName(stream)
	if protocol == load.Anthropic && !stream {
		label = "" // the headline profile keeps its name: cpu-<target>.pprof
	}
	return saveProfile(ctx, t, report.CPUProfile, fmt.Sprintf("profile?seconds=%d", int(length.Seconds())),
		fmt.Sprintf("c=32, %s, %s", protocol, shapeName(stream)), label, outDir)
}

// heapProfile captures the heap in use (after a collection) of a FluxCode target's first
// node; the harness takes it while the slow streams of the memory figures are open.
func heapProfile(ctx context.Context, t *target, outDir string) (report.Profile, error) {
	return saveProfile(ctx, t, report.HeapProfile, "heap?gc=1", "streams open", "", outDir)
}

// saveProfile fetches /debug/pprof/<query> from the first node of t's deployment, writes it
// to outDir as <kind>-<target>[-<label>].pprof and summarises it.
func saveProfile(ctx context.Context, t *target, kind, query, when, label, outDir string) (report.Profile, error) {
	d := t.deployment
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.pprofAddrs[0]+"/debug/pprof/"+query, nil)
	if err != nil {
		return report.Profile{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return report.Profile{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return report.Profile{}, fmt.Errorf("fetch %s profile: %w", kind, err)
	}
	if resp.StatusCode != http.StatusOK {
		return report.Profile{}, fmt.Errorf("fetch %s profile: %s: %s", kind, resp.Status, data)
	}
	file := kind + "-" + t.name + ".pprof"
	if label != "" {
		file = kind + "-" + t.name + "-" + label + ".pprof"
	}
	path := filepath.Join(outDir, file)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return report.Profile{}, err
	}
	top, err := profileTop(ctx, path, kind)
	if err != nil {
		return report.Profile{}, err
	}
	return report.Profile{Kind: kind, Target: fmt.Sprintf("%s (%s, node %s, PPROF_ADDR)", t.name, when, d.nodes[0].name),
		File: file, Top: top}, nil
}

// profileTop summarises a profile. CPU: the functions with the most cumulative time, then
// FluxCode's own functions alone. Heap: the allocation sites holding the most memory, then
// FluxCode's functions by cumulative size. Go profiles carry their symbols, so no binary is
// needed.
func profileTop(ctx context.Context, path, kind string) ([]string, error) {
	views := [][]string{
		{"-top", "-cum", "-nodecount=25"},
		{"-top", "-cum", "-nodecount=20", "-show=github.com/fluxcode/fluxcode/"},
	}
	if kind == report.HeapProfile {
		views = [][]string{
			{"-top", "-sample_index=inuse_space", "-nodecount=15"},
			{"-top", "-cum", "-sample_index=inuse_space", "-nodecount=15", "-show=github.com/fluxcode/fluxcode/"},
		}
	}
	var lines []string
	for _, args := range views {
		out, err := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, args...), path)...).Output()
		if err != nil {
			return nil, fmt.Errorf("go tool pprof %v: %w", args, err)
		}
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			// The header lines (file, build id, time) say nothing the results do not.
			if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
				continue
			}
			lines = append(lines, line)
		}
		lines = append(lines, "")
	}
	return lines[:len(lines)-1], nil
}

// machine describes this machine and the versions of what ran.
func machine(ctx context.Context, l *lab) report.Machine {
	m := report.Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if conn, err := pgx.Connect(ctx, l.pg.DSN("postgres")); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&m.PostgreSQL)
		conn.Close(ctx)
	}
	if len(l.redis) > 0 {
		if rc, err := newRedisCounter(ctx, l.redis[0].URL()); err == nil {
			if info, err := rc.client.Info(ctx, "server").Result(); err == nil {
				for line := range strings.SplitSeq(info, "\n") {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
						m.Redis = v
					}
				}
			}
			rc.close()
		}
	}
	if out, err := exec.CommandContext(ctx, "caddy", "version").Output(); err == nil {
		m.Caddy = strings.Fields(string(out) + " ?")[0]
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", l.root, "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}
