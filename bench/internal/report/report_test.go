package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func round(rps, p50, p99 float64) Round {
	return Round{Requests: int64(rps), Total: int64(rps) + 10, RPS: rps, P50: p50, P99: p99, P999: 2 * p99,
		CPU: CPU{Target: 100, Postgres: NaN(), Redis: NaN(), Caddy: NaN()}, RedisCommands: NaN(), PGStatements: NaN()}
}

func TestAggregateTakesMediansOverRounds(t *testing.T) {
	rs := []Round{round(1000, 300, 900), round(1200, 200, 800), round(900, 400, 1000)}
	rs[0].TTFBP50, rs[1].TTFBP50, rs[2].TTFBP50 = 50, 70, 60
	rs[1].Errors, rs[1].ErrorSample = 2, "status 529"
	c := Aggregate(PGRedis, true, 32, rs)
	if c.RPS != 1000 || c.P50 != 300 || c.P99 != 900 || c.TTFBP50 != 60 {
		t.Errorf("medians: rps %v p50 %v p99 %v ttfb %v; want 1000 300 900 60", c.RPS, c.P50, c.P99, c.TTFBP50)
	}
	if c.Errors != 2 || c.ErrorSample != "status 529" {
		t.Errorf("errors %d %q, want 2 and the sample", c.Errors, c.ErrorSample)
	}
	if !c.CPU.Postgres.Missing() || c.CPU.Target != 100 {
		t.Errorf("CPU = %+v, want target 100 and postgres missing", c.CPU)
	}
	// A round without requests has no latency: it must not drag the median to zero.
	empty := Round{RPS: 0, CPU: CPU{Target: NaN()}}
	c = Aggregate(SQLite, false, 1, []Round{round(500, 100, 200), empty, round(700, 300, 400)})
	if c.P50 != 200 {
		t.Errorf("p50 with an empty round = %v, want 200 (median of 100 and 300)", c.P50)
	}
	if c.RPS != 500 {
		t.Errorf("rps with an empty round = %v, want 500 (median of 0, 500, 700)", c.RPS)
	}
}

func TestAggregateRedisCommandsByName(t *testing.T) {
	a, b := round(1, 1, 1), round(1, 1, 1)
	a.RedisCommands, a.RedisByCmd = 3, map[string]Num{"evalsha": 2, "get": 1}
	b.RedisCommands, b.RedisByCmd = 2, map[string]Num{"evalsha": 2}
	c := Aggregate(PGRedis, false, 32, []Round{a, b, a})
	if c.RedisCommands != 3 || c.RedisByCmd["evalsha"] != 2 || c.RedisByCmd["get"] != 1 {
		t.Errorf("redis = %v %v, want 3, evalsha 2, get 1", c.RedisCommands, c.RedisByCmd)
	}
	c = Aggregate(PGRedis, false, 32, []Round{a, b, b})
	if c.RedisByCmd["get"] != 0 {
		t.Errorf("get absent from two of three rounds: median %v, want 0", c.RedisByCmd["get"])
	}
}

// sample builds results where the gateway targets miss some goals and meet others.
func sample() *Results {
	r := &Results{Date: "2026-01-02T03:04:05Z", Mode: "quick", Settings: Settings{Rounds: 3, Concurrency: []int{1, 32}}}
	for _, n := range []string{Mock, Bare, SQLite, PGRedis, TwoNodes} {
		r.Targets = append(r.Targets, Target{Name: n, Description: n + " process"})
	}
	add := func(target string, stream bool, conc int, rps, p50 float64, mod func(*Round)) {
		rd := round(rps, p50, p50*3)
		if mod != nil {
			mod(&rd)
		}
		r.Cells = append(r.Cells, Aggregate(target, stream, conc, []Round{rd}))
	}
	for _, stream := range []bool{false, true} {
		add(Mock, stream, 1, 9000, 100, nil)
		add(Bare, stream, 1, 4000, 250, nil)
		add(SQLite, stream, 1, 3000, 900, nil)   // +0.65 ms: met
		add(PGRedis, stream, 1, 1000, 1750, nil) // +1.5 ms: missed by 0.5
		add(Mock, stream, 32, 20000, 1000, nil)
		add(Bare, stream, 32, 10000, 3000, nil)
		add(SQLite, stream, 32, 7000, 4000, nil)               // 70 %: met
		add(PGRedis, stream, 32, 4000, 8000, func(rd *Round) { // 40 %: missed by 10 points
			rd.RedisCommands, rd.PGStatements = 4, 0.5
			rd.RedisByCmd = map[string]Num{"evalsha": 3, "get": 1}
			rd.PGTop = []Statement{{Query: "INSERT INTO usage_log\n  VALUES ($1)", PerRequest: 0.01}}
		})
		add(TwoNodes, stream, 32, 3500, 9000, nil)
	}
	r.Memory = []Memory{
		{Target: SQLite, Streams: 1000, Open: 1000, IdleRSS: 40 << 20, LoadedRSS: 90 << 20, PerStream: Num(50 << 10)},
		{Target: PGRedis, Streams: 1000, Open: 1000, IdleRSS: 40 << 20, LoadedRSS: 120 << 20, PerStream: Num(80 << 10)},
		{Target: TwoNodes, Streams: 1000, Open: 10, Error: "990 streams failed: status 429", PerStream: NaN()},
	}
	r.RoundTrips = []RoundTrips{
		{Target: PGRedis, Requests: 100, Client: 2.5, Script: 20, ByCommand: map[string]Num{"evalsha": 2, "get": 0.5}},
		{Target: TwoNodes, Requests: 100, Client: 5, Script: 20, ByCommand: map[string]Num{"evalsha": 4, "set": 1}},
	}
	r.Compare()
	r.Evaluate()
	return r
}

func verdict(t *testing.T, r *Results, goalPrefix, target string) Verdict {
	t.Helper()
	for _, v := range r.Verdicts {
		if strings.HasPrefix(v.Goal, goalPrefix) && v.Target == target {
			return v
		}
	}
	t.Fatalf("no verdict %q for %s in %+v", goalPrefix, target, r.Verdicts)
	return Verdict{}
}

func TestCompareWithBare(t *testing.T) {
	r := sample()
	c, _ := r.Cell(PGRedis, false, 1)
	if c.AddedP50 != 1500 || c.RPSOfBare != 0.25 {
		t.Errorf("pg c=1: added p50 %v, rps share %v; want 1500, 0.25", c.AddedP50, c.RPSOfBare)
	}
	b, _ := r.Cell(Bare, false, 1)
	if !b.AddedP50.Missing() || !b.RPSOfBare.Missing() {
		t.Errorf("the bare proxy compared with itself: %v %v", b.AddedP50, b.RPSOfBare)
	}
}

func TestEvaluate(t *testing.T) {
	r := sample()
	for i, c := range r.Cells {
		if c.Target == PGRedis && c.Concurrency == 32 && !c.Stream {
			r.Cells[i].CPU.Target = 200 // 2× the bare proxy's 100 µs
		}
	}
	r.Evaluate()
	cases := []struct {
		goal, target string
		met          bool
		miss         string
	}{
		{"req/s at c=32, JSON ≥ 65", PGRedis, false, "25.0 points short: 2,500 req/s more needed"},
		{"req/s at c=32, JSON ≥ 80", SQLite, false, "10.0 points short: 1,000 req/s more needed"},
		{"added p50 at c=1, JSON ≤ 0.300 ms", SQLite, false, "0.350 ms over"},
		{"added p50 at c=1, JSON ≤ 0.700 ms", PGRedis, false, "0.800 ms over"},
		{"added p50 at c=1, stream ≤ 0.700 ms", PGRedis, false, "0.800 ms over"},
		{"added p99 at c=1, JSON", SQLite, true, ""},
		{"added p99 at c=1, JSON", PGRedis, false, "2.500 ms over"},
		{"node CPU per request at c=32, JSON", SQLite, true, ""},
		{"node CPU per request at c=32, JSON", PGRedis, false, "50 µs per request over"},
		{"Redis round trips per request ≤ 3", PGRedis, true, ""},
		{"Redis round trips per request ≤ 3", TwoNodes, false, "2.00 round trips per request too many"},
		{"PostgreSQL statements per request < 1 (c=32, JSON)", PGRedis, true, ""},
		{"memory per open stream", SQLite, true, ""},
		{"memory per open stream", PGRedis, false, "16.0 KiB over"},
	}
	for _, c := range cases {
		v := verdict(t, r, c.goal, c.target)
		if v.Met != c.met || v.Miss != c.miss {
			t.Errorf("%s / %s: met %v miss %q; want %v %q (measured %s)", c.goal, c.target, v.Met, v.Miss, c.met, c.miss, v.Measured)
		}
	}
	v := verdict(t, r, "memory per open stream", TwoNodes)
	if v.Met || !strings.Contains(v.Measured, "not measured") || !strings.Contains(v.Measured, "status 429") {
		t.Errorf("failed memory measurement: %+v; want not measured, with the reason", v)
	}
}

func TestJSONRoundTripKeepsMissingFigures(t *testing.T) {
	r := sample()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"postgres":null`)) {
		t.Errorf("a missing figure is not null in JSON: %.300s", b)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	c, _ := back.Cell(PGRedis, false, 32)
	if c.RPS != 4000 || !c.CPU.Postgres.Missing() || c.RedisByCmd["evalsha"] != 3 {
		t.Errorf("after a round trip: rps %v postgres %v evalsha %v", c.RPS, c.CPU.Postgres, c.RedisByCmd["evalsha"])
	}
}

func TestMarkdown(t *testing.T) {
	md := sample().Markdown("chart.png")
	for _, want := range []string{
		"# FluxCode benchmark — 2026-01-02T03:04:05Z",
		"| 32 | fluxcode-pg-redis | 4,000 | 40.0 % | 8.000 | 24.0 | 48.0 | +5.000 | +15.0 | +30.0 |",
		"**missed**: 10.0 points short",
		"![req/s as a share of the bare proxy](chart.png)",
		"| fluxcode-sqlite | 40.0 | 90.0 | 1000 of 1000 | 50.0 |",
		"evalsha 3.00, get 1.00",
		"| fluxcode-2nodes-caddy | 100 | 5.00 | evalsha 4.00, set 1.00 | 20.00 |",
		"0.010 × `INSERT INTO usage_log VALUES ($1)`",
		"## Streaming answers (SSE)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	// JSON table rows come by concurrency, then in target order.
	i1, i32 := strings.Index(md, "| 1 | mock |"), strings.Index(md, "| 32 | mock |")
	if i1 < 0 || i32 < 0 || i1 > i32 {
		t.Errorf("row order: c=1 at %d, c=32 at %d", i1, i32)
	}
}

func TestChart(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := r.WriteChart(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != chartW || b.Dy() != chartH {
		t.Fatalf("size %v, want %dx%d", b, chartW, chartH)
	}
	// The SQLite bar at c=32 JSON (70 %) must be drawn in its colour just above the axis,
	// and nothing of that colour may stand above its top.
	panelW := (chartW - panelLeft - panelGap - 30) / 2
	groupW := panelW / len(r.Settings.Concurrency)
	barW := (groupW - 20) / len(r.Targets)
	x := panelLeft + 1*groupW + 10 + 2*barW + barW/2
	want := palettes[2]
	if got := color.RGBAModel.Convert(img.At(x, panelBottom-3)).(color.RGBA); got != want {
		t.Errorf("pixel at the SQLite bar's foot = %v, want %v", got, want)
	}
	top := 1.2 // the mock is left out of the scale
	for _, c := range r.Cells {
		if !c.RPSOfBare.Missing() && c.Target != Mock {
			top = math.Max(top, float64(c.RPSOfBare))
		}
	}
	top = math.Ceil(top/0.2) * 0.2
	barTop := panelBottom - int(math.Round(0.7/top*float64(panelBottom-panelTop)))
	if got := color.RGBAModel.Convert(img.At(x, barTop+2)).(color.RGBA); got != want {
		t.Errorf("pixel just inside the bar's top = %v, want %v", got, want)
	}
	if got := color.RGBAModel.Convert(img.At(x, barTop-20)).(color.RGBA); got == want {
		t.Errorf("bar colour found 20px above a 70 %% bar's top")
	}
}

func TestTrimQueries(t *testing.T) {
	r := sample()
	long := "INSERT INTO usage_ledger VALUES " + strings.Repeat("(é, 2), ", 200)
	r.Cells[0].PGTop = []Statement{{Query: long}, {Query: "begin"}}
	r.Cells[0].Rounds[0].PGTop = []Statement{{Query: long}}
	r.TrimQueries(41)
	got := r.Cells[0].PGTop[0].Query
	if !strings.HasSuffix(got, "…") || len(got) > 41+len("…") || !utf8.ValidString(got) {
		t.Errorf("trimmed query = %q, want at most 41 valid bytes and an ellipsis", got)
	}
	if r.Cells[0].PGTop[1].Query != "begin" || r.Cells[0].Rounds[0].PGTop[0].Query != got {
		t.Errorf("short query changed or round not trimmed: %q %q", r.Cells[0].PGTop[1].Query, r.Cells[0].Rounds[0].PGTop[0].Query)
	}
}

func TestSummary(t *testing.T) {
	md := sample().Summary("bench/results/latest.md", "bench/results/2026-01-02/chart.png", "bench/README.md")
	for _, want := range []string{
		"[bench/results/latest.md](bench/results/latest.md)",
		"| req/s at c=32, JSON ≥ 65 % of the bare proxy's | fluxcode-pg-redis | 40.0 % (4,000 of 10,000 req/s) | **missed**: 25.0 points short",
		"| memory per open stream ≤ 64 KiB | fluxcode-sqlite | 50.0 KiB (1000 streams open) | **met** |",
		"32 connections, JSON answers:",
		"32 connections, streamed answers (SSE):",
		"| 32 | fluxcode-pg-redis | 4,000 | 40.0 % | 8.000 | 24.0 | 48.0 | +5.000 | +15.0 | +30.0 |",
		"![req/s as a share of the bare proxy](bench/results/2026-01-02/chart.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Summary lacks %q:\n%s", want, md)
		}
	}
	// Only the c=32 rows: the full tables stay in latest.md.
	if strings.Contains(md, "| 1 | ") {
		t.Errorf("Summary has c=1 rows:\n%s", md)
	}
	if strings.Contains(md, "\n#") {
		t.Errorf("Summary has a heading of its own (the README's section heading stands outside the markers):\n%s", md)
	}
}

// TestPointer: bench/README.md names the run and counts its verdicts, and leaves every
// figure to latest.md.
func TestPointer(t *testing.T) {
	r := sample()
	met, missed := 0, 0
	for _, v := range r.Verdicts {
		switch {
		case strings.HasPrefix(v.Measured, "not measured"): // neither
		case v.Met:
			met++
		default:
			missed++
		}
	}
	md := r.Pointer("results/latest.md")
	if want := fmt.Sprintf("%d goals met, %d missed", met, missed); !strings.Contains(md, want) {
		t.Errorf("Pointer lacks %q:\n%s", want, md)
	}
	if !strings.Contains(md, "[results/latest.md](results/latest.md)") || strings.Contains(md, "|") {
		t.Errorf("Pointer should link latest.md and hold no table:\n%s", md)
	}
	if met == 0 || missed == 0 {
		t.Fatalf("the sample should have met and missed goals (met %d, missed %d)", met, missed)
	}
}

func TestMarkdownProfiles(t *testing.T) {
	r := sample()
	r.Profiles = []Profile{
		{Target: "fluxcode-sqlite (c=32, JSON)", File: "cpu-fluxcode-sqlite.pprof", Top: []string{"cpu line"}},
		{Kind: HeapProfile, Target: "fluxcode-sqlite (streams open)", File: "heap-fluxcode-sqlite.pprof", Top: []string{"heap line"}},
	}
	md := r.Markdown("")
	cpu := strings.Index(md, "## CPU profile: fluxcode-sqlite (c=32, JSON)\n\n`cpu-fluxcode-sqlite.pprof`")
	heap := strings.Index(md, "## Heap profile: fluxcode-sqlite (streams open)\n\n`heap-fluxcode-sqlite.pprof`")
	if cpu < 0 || heap < 0 {
		t.Fatalf("profiles missing or mislabelled (cpu at %d, heap at %d):\n%s", cpu, heap, md)
	}
	if !strings.Contains(md[heap:], "heap line") || strings.Contains(md[cpu:heap], "heap line") {
		t.Errorf("heap summary not under its own heading:\n%s", md[cpu:])
	}
}

// TestProtocolCells: an OpenAI cell is compared with the bare proxy's OpenAI cell, judged
// against the same goals under its own label, and shown in the tables under that label,
// while the Anthropic figures (and Cell) stay as they were.
func TestProtocolCells(t *testing.T) {
	r := sample()
	for _, c := range []Cell{Aggregate(Bare, false, 32, []Round{round(5000, 2000, 6000)}),
		Aggregate(PGRedis, false, 32, []Round{round(3000, 5000, 15000)})} {
		c.Protocol = ProtocolLabel("openai")
		r.Cells = append(r.Cells, c)
	}
	r.Compare()
	r.Evaluate()
	c, ok := r.CellOf("openai", PGRedis, false, 32)
	if !ok || c.RPSOfBare != 0.6 || c.AddedP50 != 3000 {
		t.Errorf("openai pg c=32: share %v, added p50 %v; want 0.6 against the OpenAI bare cell, 3000", c.RPSOfBare, c.AddedP50)
	}
	if a, _ := r.Cell(PGRedis, false, 32); a.RPSOfBare != 0.4 || a.Protocol != "" {
		t.Errorf("anthropic pg c=32: share %v, protocol %q; want 0.4 and the Anthropic cell", a.RPSOfBare, a.Protocol)
	}
	if v := verdict(t, r, "req/s at c=32", PGRedis+" · openai"); v.Met || v.Miss != "5.0 points short: 250 req/s more needed" {
		t.Errorf("openai share verdict %+v, want missed (60 %% of a 65 %% goal)", v)
	}
	if v := verdict(t, r, "added p50 at c=1, JSON", PGRedis+" · openai"); v.Measured != "not measured" {
		t.Errorf("openai c=1 verdict %+v, want not measured", v)
	}
	if md := r.Markdown(""); !strings.Contains(md, "| 32 | "+PGRedis+" · openai | ") {
		t.Errorf("markdown lacks the OpenAI row:\n%s", md)
	}
	if ProtocolLabel("anthropic") != "" {
		t.Error("Anthropic cells must keep an empty protocol")
	}
}
