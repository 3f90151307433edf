// Command bench is FluxCode's benchmark harness (issue 5). In one run on this machine it
// measures, side by side and interleaved, the mock upstream directly, a bare
// httputil.ReverseProxy in front of it, FluxCode on SQLite, FluxCode on PostgreSQL + Redis,
// and two FluxCode nodes behind Caddy, and writes the results under bench/results/.
//
// Every server is a separate process on loopback (the built fluxcode binary,
// cmd/mockupstream, postgres, redis-server, caddy), and so is the load generator
// (bench/cmd/loadgen). See bench/README.md.
//
//	go run ./bench/cmd/bench            # full run, about 6 minutes
//	go run ./bench/cmd/bench -quick     # about 2 minutes, rougher figures
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/load"
	"github.com/fluxcode/fluxcode/bench/internal/report"
)

func main() {
	// Children are forked from this goroutine only, locked to the main thread for good, so
	// their Pdeathsig fires when the harness dies and not when some thread exits.
	runtime.LockOSThread()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	quick       bool
	rounds      int
	warmup      time.Duration
	duration    time.Duration
	concurrency []int
	streams     int
	streamFor   time.Duration
	profile     bool
	profileFor  time.Duration
	out         string
	model       string   // the Anthropic load's
	protocols   []string // load.Protocols to load
	keep        bool
	render      string
	fastStorage bool
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var conc string
	fs.BoolVar(&o.quick, "quick", false, "a quick run (about 2 minutes): 2 short rounds, no profiles")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds of every cell (default 3; quick 2)")
	fs.DurationVar(&o.warmup, "warmup", 0, "unmeasured warm-up of every cell (default 500ms; quick 250ms)")
	fs.DurationVar(&o.duration, "duration", 0, "measured time of every cell (default 2.5s; quick 750ms)")
	fs.StringVar(&conc, "concurrency", "1,32,128", "comma-separated concurrency levels")
	protocols := fs.String("protocols", strings.Join(load.Protocols, ","),
		"comma-separated protocols whose route is loaded: anthropic (/v1/messages), openai (/v1/responses), gemini (generateContent)")
	fs.IntVar(&o.streams, "streams", 1000, "slow streams held open for the memory figures")
	fs.DurationVar(&o.streamFor, "stream-for", 0, "how long each held stream lasts upstream (default 12s; quick 8s)")
	fs.BoolVar(&o.profile, "profile", true, "capture CPU and heap profiles of the FluxCode targets (off in quick mode unless set)")
	fs.DurationVar(&o.profileFor, "profile-for", 5*time.Second, "length of each CPU profile")
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results in the module)")
	fs.StringVar(&o.model, "model", "claude-sonnet-5-5", "model named in every request")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, server logs)")
	fs.BoolVar(&o.fastStorage, "fast-storage", true, "also measure fluxcode-sqlite with SQLITE_SYNCHRONOUS=normal and fluxcode-pg-redis on fsync-off PostgreSQL and non-persistent Redis (extras, never judged)")
	fs.StringVar(&o.render, "render", "", "measure nothing: re-render the results.json in this directory (tables, chart, README)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	profileSet := false
	fs.Visit(func(f *flag.Flag) { profileSet = profileSet || f.Name == "profile" })
	def := func(v *time.Duration, full, quick time.Duration) {
		if *v <= 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.warmup, 500*time.Millisecond, 250*time.Millisecond)
	def(&o.duration, 2500*time.Millisecond, 750*time.Millisecond)
	def(&o.streamFor, 12*time.Second, 8*time.Second)
	if o.rounds <= 0 {
		o.rounds = 3
		if o.quick {
			o.rounds = 2
		}
	}
	if o.quick && !profileSet {
		o.profile = false
	}
	for _, s := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-concurrency: %q is not a positive number", s)
		}
		o.concurrency = append(o.concurrency, n)
	}
	if o.streams < 1 {
		return o, fmt.Errorf("-streams must be at least 1")
	}
	for _, p := range strings.Split(*protocols, ",") {
		if p = strings.TrimSpace(p); !slices.Contains(load.Protocols, p) {
			return o, fmt.Errorf("-protocols: %q is not one of %s", p, strings.Join(load.Protocols, ", "))
		}
		o.protocols = append(o.protocols, p)
	}
	return o, nil
}

// render re-derives everything from a run's results.json: comparisons, verdicts, profile
// summaries, tables, chart, latest.md and the README section.
func render(ctx context.Context, root, resultsDir, dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var res report.Results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s/results.json: %w", dir, err)
	}
	for i := range res.Cells {
		// Runs before p99.9 was measured have none (a latency is never 0); Compare derives
		// the added figures again.
		if res.Cells[i].P999 == 0 {
			res.Cells[i].P999 = report.NaN()
		}
		res.Cells[i].AddedP999 = report.NaN()
	}
	res.Compare()
	res.Evaluate()
	for i, p := range res.Profiles {
		if top, err := profileTop(ctx, filepath.Join(dir, p.File), p.Kind); err == nil {
			res.Profiles[i].Top = top
		}
	}
	return writeResults(root, resultsDir, dir, &res)
}

// moduleRoot is the directory of this checkout's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the bench inside the FluxCode module")
	}
	return filepath.Dir(mod), nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results")
	}
	if o.render != "" {
		return render(ctx, root, o.out, o.render)
	}
	dir, err := os.MkdirTemp("", "fluxcode-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logf("building binaries")
	bin, err := build(ctx, root, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}
	// One directory per run, named for its start (UTC): a second run of the day, perhaps on
	// another machine, must not overwrite the first's results.
	stamp := time.Now().UTC().Format("2006-01-02T1504Z")
	if o.quick {
		stamp += "-quick"
	}
	outDir := filepath.Join(o.out, stamp)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	l, err := startLab(ctx, root, dir, bin, o.fastStorage, logf)
	if err != nil {
		return err
	}
	defer l.close()
	res, err := measureAll(ctx, l, o, outDir, logf)
	if err != nil {
		return err
	}
	if err := writeResults(root, o.out, outDir, res); err != nil {
		return err
	}
	logf("results in %s", outDir)
	for _, v := range res.Verdicts {
		state := "met"
		if !v.Met {
			state = "MISSED " + v.Miss
		}
		if strings.HasPrefix(v.Measured, "not measured") {
			state = "not measured"
		}
		logf("%-24s %-70s %s (%s)", v.Target, v.Goal, state, v.Measured)
	}
	return nil
}
