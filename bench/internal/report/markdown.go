package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Markdown renders the results as the tables of results.md (and latest.md). chart is the
// chart's file name relative to the Markdown file ("" for none).
func (r *Results) Markdown(chart string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# FluxCode benchmark — %s\n\n", r.Date)
	m := r.Machine
	p("Machine: %s, %d cores, Linux %s · Go %s · PostgreSQL %s · Redis %s · Caddy %s · commit %s\n\n",
		m.CPU, m.Cores, m.Kernel, m.Go, m.PostgreSQL, m.Redis, m.Caddy, m.Commit)
	s := r.Settings
	p("Mode %s: %d rounds, targets interleaved in every round; each cell %s warm-up + %s measured; "+
		"figures are medians of the round medians. Load: %s. FluxCode: %s.\n\n",
		r.Mode, s.Rounds, s.Warmup, s.Duration, s.LoadGenerator, s.FluxCodeEnv)

	p("## Targets\n\n| target | what runs |\n|---|---|\n")
	for _, t := range r.Targets {
		p("| %s | %s |\n", t.Name, t.Description)
	}
	p("\n")

	if len(r.Verdicts) > 0 {
		p("## Targets judged\n\n")
		r.verdictTable(&b)
		p("\n")
	}
	if chart != "" {
		p("![req/s as a share of the bare proxy](%s)\n\n", chart)
	}

	for _, stream := range []bool{false, true} {
		if stream {
			p("## Streaming answers (SSE)\n\n")
		} else {
			p("## JSON answers\n\n")
		}
		r.cellTable(&b, r.sortedCells(stream), stream)
		p("\n")
	}
	p("“of bare” and “+p50/+p99/+p99.9” compare with the bare proxy's cell of the same shape and concurrency. " +
		"CPU µs/req is the target's own process(es) (mock, proxy, or FluxCode node(s)); PG, Redis and Caddy CPU are " +
		"their servers' processes, all from /proc utime+stime over the whole cell (warm-up included) divided by every " +
		"request completed in it.\n\n")

	if len(r.Memory) > 0 {
		p("## Memory\n\n| target | idle RSS MiB | RSS with streams open MiB | streams open | per stream KiB |\n|---|---:|---:|---:|---:|\n")
		for _, mem := range r.Memory {
			if mem.Error != "" && mem.PerStream.Missing() {
				p("| %s | %s | – | %d of %d | – (%s) |\n", mem.Target, mib(mem.IdleRSS), mem.Open, mem.Streams, mem.Error)
				continue
			}
			p("| %s | %s | %s | %d of %d | %s |\n", mem.Target, mib(mem.IdleRSS), mib(mem.LoadedRSS), mem.Open, mem.Streams, kib(mem.PerStream))
		}
		p("\nRSS is VmRSS of the target's own process(es) (both nodes for the two-node target); per stream = " +
			"(with streams − idle) / streams open.\n\n")
	}

	if len(r.RoundTrips) > 0 {
		p("## Redis round trips\n\nCommands the nodes sent to Redis per request, as MONITOR saw them during a short c=4 run " +
			"(JSON and streams), apart from the commands Lua scripts ran inside Redis:\n\n" +
			"| target | requests | client commands/req | by command | script commands/req |\n|---|---:|---:|---|---:|\n")
		for _, rt := range r.RoundTrips {
			if rt.Error != "" {
				p("| %s | – | – | %s | – |\n", rt.Target, rt.Error)
				continue
			}
			p("| %s | %d | %s | %s | %s |\n", rt.Target, rt.Requests, dec2(rt.Client), byCommand(rt.ByCommand), dec2(rt.Script))
		}
		p("\n")
	}
	if detail := r.counterDetail(); detail != "" {
		p("## Where the counters come from\n\n%s\n", detail)
	}
	for _, pr := range r.Profiles {
		if pr.Kind == HeapProfile {
			p("## Heap profile: %s\n\n`%s` (open with `go tool pprof`). Heap in use after a collection, by where it "+
				"was allocated, then FluxCode's own functions by cumulative size (goroutine stacks are not in it):\n\n```\n%s\n```\n\n",
				pr.Target, pr.File, strings.Join(pr.Top, "\n"))
			continue
		}
		p("## CPU profile: %s\n\n`%s` (open with `go tool pprof`). Functions by cumulative time, then FluxCode's own:\n\n```\n%s\n```\n\n",
			pr.Target, pr.File, strings.Join(pr.Top, "\n"))
	}
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	return b.String()
}

// Summary renders the short form for the READMEs: the verdicts on the benchmark's
// goals and the c=32 rows of both shapes. latest and chart are the paths of latest.md and
// of the chart relative to the README; howto, when not "", the path of bench/README.md.
func (r *Results) Summary(latest, chart, howto string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	p("Latest run (%s mode, %s, commit %s): %s, %d cores, everything on loopback, every process on the same "+
		"cores. All figures, the per-statement and per-command counters and the profiles: [%s](%s); "+
		"`go run ./bench/cmd/bench` measures again%s.\n\n",
		r.Mode, r.Date, m.Commit, m.CPU, m.Cores, latest, latest, seeHowto(howto))
	if len(r.Verdicts) > 0 {
		p("The goals, judged in that run:\n\n")
		r.verdictTable(&b)
		p("\n")
	}
	for _, stream := range []bool{false, true} {
		var cells []Cell
		for _, c := range r.sortedCells(stream) {
			if c.Concurrency == 32 {
				cells = append(cells, c)
			}
		}
		if len(cells) == 0 {
			continue
		}
		if stream {
			p("32 connections, streamed answers (SSE):\n\n")
		} else {
			p("32 connections, JSON answers:\n\n")
		}
		r.cellTable(&b, cells, stream)
		p("\n")
	}
	p("“of bare” and “+p50/+p99/+p99.9” compare with the bare `httputil.ReverseProxy` in the same run; CPU figures are " +
		"microseconds per request of the target's own process(es) and of the PostgreSQL, Redis and Caddy servers.\n")
	if chart != "" {
		p("\n![req/s as a share of the bare proxy](%s)\n", chart)
	}
	return b.String()
}

// Pointer renders what bench/README.md says of the latest run: which run it was and how it
// fared, with a link to latest.md (at path latest) for every figure, so that the how-to does
// not repeat the results.
func (r *Results) Pointer(latest string) string {
	met, missed := 0, 0
	for _, v := range r.Verdicts {
		switch {
		case strings.HasPrefix(v.Measured, "not measured"):
		case v.Met:
			met++
		default:
			missed++
		}
	}
	return fmt.Sprintf("Latest run: %s mode, %s, commit %s, %s, %d cores: %d goals met, %d missed. Every verdict, "+
		"table, counter and profile: [%s](%s); the verdicts and the c=32 rows are also in the repository's "+
		"README (Performance).\n", r.Mode, r.Date, r.Machine.Commit, r.Machine.CPU, r.Machine.Cores, met, missed, latest, latest)
}

func seeHowto(path string) string {
	if path == "" {
		return ""
	}
	return " (see [bench/README.md](" + path + "))"
}

// verdictTable writes the table of verdicts on the benchmark's goals.
func (r *Results) verdictTable(b *strings.Builder) {
	b.WriteString("| goal | target | measured | verdict |\n|---|---|---|---|\n")
	for _, v := range r.Verdicts {
		verdict := "**met**"
		switch {
		case strings.HasPrefix(v.Measured, "not measured"):
			verdict = "not measured"
		case !v.Met:
			verdict = "**missed**: " + v.Miss
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", v.Goal, v.Target, v.Measured, verdict)
	}
}

// cellTable writes one shape's cells as a table (streams have time-to-first-byte columns).
func (r *Results) cellTable(b *strings.Builder, cells []Cell, stream bool) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	if stream {
		p("| c | target | req/s | of bare | p50 ms | p99 ms | p99.9 ms | +p50 ms | +p99 ms | +p99.9 ms | TTFB p50 ms | TTFB p99 ms | CPU µs/req | PG CPU | Redis CPU | Caddy CPU | Redis cmd/req | PG stmt/req | errors |\n")
		p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	} else {
		p("| c | target | req/s | of bare | p50 ms | p99 ms | p99.9 ms | +p50 ms | +p99 ms | +p99.9 ms | CPU µs/req | PG CPU | Redis CPU | Caddy CPU | Redis cmd/req | PG stmt/req | errors |\n")
		p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	}
	for _, c := range cells {
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |", c.Concurrency, c.Label(), rps(c.RPS), pct(c.RPSOfBare),
			ms(c.P50), ms(c.P99), ms(c.P999), signedMs(c.AddedP50), signedMs(c.AddedP99), signedMs(c.AddedP999))
		if stream {
			p(" %s | %s |", ms(c.TTFBP50), ms(c.TTFBP99))
		}
		p(" %s | %s | %s | %s | %s | %s | %d |\n", us(c.CPU.Target), us(c.CPU.Postgres), us(c.CPU.Redis),
			us(c.CPU.Caddy), dec2(c.RedisCommands), dec2(c.PGStatements), c.Errors)
	}
}

// counterDetail lists per-command Redis and per-statement PostgreSQL figures of the one-node
// PostgreSQL + Redis target at c=32, where the goals are judged.
func (r *Results) counterDetail() string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "PostgreSQL statements: %s. Redis commands: %s.\n\n", s.PGStatementsSource, s.RedisCommandsSource)
	found := false
	for _, target := range []string{PGRedis, TwoNodes} {
		for _, stream := range []bool{false, true} {
			c, ok := r.Cell(target, stream, 32)
			if !ok {
				continue
			}
			if len(c.RedisByCmd) > 0 {
				found = true
				fmt.Fprintf(&b, "- %s, %s, c=32 — Redis per request (INFO commandstats): %s\n", target, shape(stream), byCommand(c.RedisByCmd))
			}
			if len(c.PGTop) > 0 {
				found = true
				fmt.Fprintf(&b, "- %s, %s, c=32 — PostgreSQL statements per request:\n", target, shape(stream))
				for _, st := range c.PGTop {
					fmt.Fprintf(&b, "  - %s × `%s`\n", dec3(st.PerRequest), oneLine(st.Query, 140))
				}
			}
		}
	}
	if !found {
		return ""
	}
	return b.String()
}

// byCommand lists per-request command counts, most frequent first.
func byCommand(m map[string]Num) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := float64(m[b] - m[a]); d != 0 {
			return int(math.Copysign(1, d))
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, k+" "+dec2(m[k]))
	}
	return strings.Join(parts, ", ")
}

// sortedCells returns the cells of one shape by concurrency, then in target order.
func (r *Results) sortedCells(stream bool) []Cell {
	order := map[string]int{}
	for i, t := range r.Targets {
		order[t.Name] = i
	}
	var out []Cell
	for _, c := range r.Cells {
		if c.Stream == stream {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Cell) int {
		if a.Concurrency != b.Concurrency {
			return a.Concurrency - b.Concurrency
		}
		if a.Protocol != b.Protocol { // Anthropic ("") first, then as measured
			return protocolOrder(a.Protocol) - protocolOrder(b.Protocol)
		}
		return order[a.Target] - order[b.Target]
	})
	return out
}

const dash = "–"

func rps(n Num) string {
	if n.Missing() {
		return dash
	}
	return thousands(int64(math.Round(float64(n))))
}

func thousands(v int64) string {
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ms renders microseconds as milliseconds.
func ms(n Num) string {
	if n.Missing() {
		return dash
	}
	v := float64(n) / 1000
	if math.Abs(v) < 10 {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func signedMs(n Num) string {
	s := ms(n)
	if !n.Missing() && n >= 0 {
		return "+" + s
	}
	return s
}

func us(n Num) string {
	if n.Missing() {
		return dash
	}
	if math.Abs(float64(n)) < 10 {
		return strconv.FormatFloat(float64(n), 'f', 1, 64)
	}
	return strconv.FormatFloat(float64(n), 'f', 0, 64)
}

func pct(n Num) string {
	if n.Missing() {
		return dash
	}
	return strconv.FormatFloat(100*float64(n), 'f', 1, 64) + " %"
}

func dec2(n Num) string {
	if n.Missing() {
		return dash
	}
	return strconv.FormatFloat(float64(n), 'f', 2, 64)
}

func dec3(n Num) string {
	if n.Missing() {
		return dash
	}
	return strconv.FormatFloat(float64(n), 'f', 3, 64)
}

func kib(n Num) string {
	if n.Missing() {
		return dash
	}
	return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64)
}

func mib(b int64) string {
	if b <= 0 {
		return dash
	}
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ReplaceAll(s, "`", "'")
}

// protocolOrder puts a cell's protocol in the order rows show them: Anthropic, OpenAI, Gemini.
func protocolOrder(p string) int {
	return map[string]int{"": 0, "openai": 1, "gemini": 2}[p]
}
