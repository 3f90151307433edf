// Package report holds the benchmark's results — the JSON schema written to
// bench/results/<date>/results.json — and everything derived from them without measuring:
// medians over rounds, comparisons with the bare proxy, the verdicts on the goals,
// the Markdown tables and the chart.
package report

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/fluxcode/fluxcode/bench/internal/stats"
)

// Target names, in the order they are run and shown.
const (
	Mock   = "mock"
	Bare   = "bare-proxy"
	SQLite = "fluxcode-sqlite"
	// SQLiteNormal is SQLite with SQLITE_SYNCHRONOUS=normal (no sync at each ledger
	// commit, which a power loss may cost): a labelled extra, never judged.
	SQLiteNormal = "fluxcode-sqlite-normal"
	PGRedis      = "fluxcode-pg-redis"
	// PGRedisFast is PGRedis on storage no operator runs (PostgreSQL without fsync or
	// synchronous commit, Redis without persistence): a labelled extra that separates the
	// durable commit's cost from the request path's, never judged.
	PGRedisFast = "fluxcode-pg-redis-fast"
	TwoNodes    = "fluxcode-2nodes-caddy"
)

// Num is a figure that may be missing (NaN), written to JSON as null.
type Num float64

// NaN is the missing figure.
func NaN() Num { return Num(math.NaN()) }

// Missing reports whether n has no value.
func (n Num) Missing() bool { return math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) }

func (n Num) MarshalJSON() ([]byte, error) {
	if n.Missing() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'f', -1, 64), nil
}

func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = NaN()
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// Results is one run of the harness.
type Results struct {
	Date     string   `json:"date"` // RFC 3339, UTC
	Mode     string   `json:"mode"` // "full" or "quick"
	Settings Settings `json:"settings"`
	Machine  Machine  `json:"machine"`
	Targets  []Target `json:"targets"`
	Cells    []Cell   `json:"cells"`
	Memory   []Memory `json:"memory"`
	// RoundTrips counts the Redis commands clients sent, apart from those scripts ran.
	RoundTrips []RoundTrips `json:"redis_round_trips,omitempty"`
	Verdicts   []Verdict    `json:"verdicts"`
	Profiles   []Profile    `json:"profiles,omitempty"`
	Notes      []string     `json:"notes,omitempty"`
}

// Settings say how the figures were taken.
type Settings struct {
	Rounds      int    `json:"rounds"`
	Warmup      string `json:"warmup"`
	Duration    string `json:"duration"`
	Concurrency []int  `json:"concurrency"`
	StreamsHeld int    `json:"streams_held"`
	// PGStatementsSource names where statement counts come from (pg_stat_statements).
	PGStatementsSource string `json:"pg_statements_source"`
	// RedisCommandsSource names where command counts come from (INFO commandstats).
	RedisCommandsSource string `json:"redis_commands_source"`
	LoadGenerator       string `json:"load_generator"`
	FluxCodeEnv         string `json:"fluxcode_env"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	PostgreSQL string `json:"postgresql"`
	Redis      string `json:"redis"`
	Caddy      string `json:"caddy"`
	Commit     string `json:"commit"`
}

// Target is one system under test.
type Target struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// CPU is CPU time per request in microseconds, per process role.
type CPU struct {
	Target   Num `json:"target"`   // the target's own process(es): mock, proxy or FluxCode node(s)
	Postgres Num `json:"postgres"` // every process of the PostgreSQL server
	Redis    Num `json:"redis"`
	Caddy    Num `json:"caddy"`
}

// Round is one measurement of one cell. Latencies in microseconds.
type Round struct {
	Requests      int64          `json:"requests"`
	Errors        int64          `json:"errors"`
	Total         int64          `json:"total"`
	RPS           float64        `json:"rps"`
	P50           float64        `json:"p50_us"`
	P99           float64        `json:"p99_us"`
	P999          float64        `json:"p999_us,omitempty"`
	TTFBP50       float64        `json:"ttfb_p50_us,omitempty"`
	TTFBP99       float64        `json:"ttfb_p99_us,omitempty"`
	CPU           CPU            `json:"cpu_us_per_request"`
	RedisCommands Num            `json:"redis_commands_per_request"`
	RedisByCmd    map[string]Num `json:"redis_by_command,omitempty"`
	PGStatements  Num            `json:"pg_statements_per_request"`
	PGTop         []Statement    `json:"pg_top,omitempty"`
	ErrorSample   string         `json:"error_sample,omitempty"`
}

// Statement is one normalised SQL statement and how often it ran per request.
type Statement struct {
	Query      string `json:"query"`
	PerRequest Num    `json:"per_request"`
}

// Cell is one target at one body shape and concurrency: medians of the round medians.
type Cell struct {
	Target string `json:"target"`
	// Protocol is the route loaded: "" for Anthropic Messages (every cell of runs before
	// OpenAI and Gemini were added), else ProtocolLabel's name.
	Protocol    string `json:"protocol,omitempty"`
	Stream      bool   `json:"stream"`
	Concurrency int    `json:"concurrency"`

	RPS     Num `json:"rps"`
	P50     Num `json:"p50_us"`
	P99     Num `json:"p99_us"`
	P999    Num `json:"p999_us"`
	TTFBP50 Num `json:"ttfb_p50_us"`
	TTFBP99 Num `json:"ttfb_p99_us"`
	// Against the bare proxy's cell of the same shape and concurrency.
	RPSOfBare Num `json:"rps_of_bare"` // ratio, 1 = as fast
	AddedP50  Num `json:"added_p50_us"`
	AddedP99  Num `json:"added_p99_us"`
	AddedP999 Num `json:"added_p999_us"`

	CPU           CPU            `json:"cpu_us_per_request"`
	RedisCommands Num            `json:"redis_commands_per_request"`
	RedisByCmd    map[string]Num `json:"redis_by_command,omitempty"`
	PGStatements  Num            `json:"pg_statements_per_request"`
	PGTop         []Statement    `json:"pg_top,omitempty"`

	Errors      int64   `json:"errors"`
	ErrorSample string  `json:"error_sample,omitempty"`
	Rounds      []Round `json:"rounds"`
}

// Memory is the resident memory of a target's own process(es), idle and with slow streams
// open through it.
type Memory struct {
	Target    string `json:"target"`
	Streams   int    `json:"streams"`
	Open      int    `json:"open"` // streams that really were open when measured
	IdleRSS   int64  `json:"idle_rss_bytes"`
	LoadedRSS int64  `json:"loaded_rss_bytes"`
	PerStream Num    `json:"per_stream_bytes"`
	Error     string `json:"error,omitempty"`
}

// RoundTrips is what MONITOR saw a target's nodes send to Redis during a short load run.
type RoundTrips struct {
	Target   string `json:"target"`
	Requests int64  `json:"requests"`
	// Client is the commands the nodes sent, per request: an upper bound on round trips
	// (each command of a pipeline counts).
	Client    Num            `json:"client_commands_per_request"`
	ByCommand map[string]Num `json:"by_command"`
	// Script is the commands Lua scripts ran inside Redis, per request (no round trip).
	Script Num    `json:"script_commands_per_request"`
	Error  string `json:"error,omitempty"`
}

// RoundTripsOf returns the round-trip figures of target, if measured.
func (r *Results) RoundTripsOf(target string) (RoundTrips, bool) {
	for _, rt := range r.RoundTrips {
		if rt.Target == target {
			return rt, true
		}
	}
	return RoundTrips{}, false
}

// Verdict is one of the benchmark's goals, judged.
type Verdict struct {
	Goal     string `json:"goal"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	// Miss says by how much the goal was missed ("" when met or not measurable).
	Miss string `json:"miss,omitempty"`
}

// Profile is a captured profile: CPU time under load, or the heap in use with the slow
// streams open.
type Profile struct {
	Kind   string   `json:"kind,omitempty"` // HeapProfile, or CPU (also when empty)
	Target string   `json:"target"`
	File   string   `json:"file"`
	Top    []string `json:"top,omitempty"`
}

// Profile kinds.
const (
	CPUProfile  = "cpu"
	HeapProfile = "heap"
)

// Aggregate makes a cell from its rounds: each figure is the median over rounds of that
// round's figure (itself a median or percentile of the round's requests).
func Aggregate(target string, stream bool, concurrency int, rounds []Round) Cell {
	c := Cell{Target: target, Stream: stream, Concurrency: concurrency, Rounds: rounds,
		RPSOfBare: NaN(), AddedP50: NaN(), AddedP99: NaN(), AddedP999: NaN()}
	med := func(f func(Round) float64) Num {
		xs := make([]float64, len(rounds))
		for i, r := range rounds {
			xs[i] = f(r)
		}
		return Num(stats.Median(xs))
	}
	// A round that measured nothing has no latency; leave it out of the medians.
	lat := func(f func(Round) float64) func(Round) float64 {
		return func(r Round) float64 {
			if r.Requests == 0 {
				return math.NaN()
			}
			return f(r)
		}
	}
	c.RPS = med(func(r Round) float64 { return r.RPS })
	c.P50 = med(lat(func(r Round) float64 { return r.P50 }))
	c.P99 = med(lat(func(r Round) float64 { return r.P99 }))
	// Runs before p99.9 was measured have none: missing, not zero.
	c.P999 = med(lat(func(r Round) float64 {
		if r.P999 == 0 {
			return math.NaN()
		}
		return r.P999
	}))
	c.TTFBP50, c.TTFBP99 = NaN(), NaN()
	if stream {
		c.TTFBP50 = med(lat(func(r Round) float64 { return r.TTFBP50 }))
		c.TTFBP99 = med(lat(func(r Round) float64 { return r.TTFBP99 }))
	}
	c.CPU = CPU{
		Target:   med(func(r Round) float64 { return float64(r.CPU.Target) }),
		Postgres: med(func(r Round) float64 { return float64(r.CPU.Postgres) }),
		Redis:    med(func(r Round) float64 { return float64(r.CPU.Redis) }),
		Caddy:    med(func(r Round) float64 { return float64(r.CPU.Caddy) }),
	}
	c.RedisCommands = med(func(r Round) float64 { return float64(r.RedisCommands) })
	c.PGStatements = med(func(r Round) float64 { return float64(r.PGStatements) })
	cmds := map[string]bool{}
	for _, r := range rounds {
		for k := range r.RedisByCmd {
			cmds[k] = true
		}
	}
	if len(cmds) > 0 {
		c.RedisByCmd = map[string]Num{}
		for k := range cmds {
			// A command absent from a round ran 0 times in it (when Redis was measured).
			c.RedisByCmd[k] = med(func(r Round) float64 {
				if r.RedisCommands.Missing() {
					return math.NaN()
				}
				return float64(r.RedisByCmd[k])
			})
		}
	}
	// The statement list of the round closest to the median count is representative.
	best := math.Inf(1)
	for _, r := range rounds {
		if d := math.Abs(float64(r.PGStatements - c.PGStatements)); len(r.PGTop) > 0 && d < best {
			best, c.PGTop = d, r.PGTop
		}
	}
	for _, r := range rounds {
		c.Errors += r.Errors
		if c.ErrorSample == "" {
			c.ErrorSample = r.ErrorSample
		}
	}
	return c
}

// ProtocolLabel is the Protocol of a cell of load.Protocols' protocol p: "" for Anthropic,
// whose cells keep the figures (and verdicts) of earlier runs.
func ProtocolLabel(p string) string {
	if p == "anthropic" {
		return ""
	}
	return p
}

// Label names the cell's target in tables: "fluxcode-pg-redis", or "fluxcode-pg-redis · openai".
func (c Cell) Label() string {
	if c.Protocol == "" {
		return c.Target
	}
	return c.Target + " · " + c.Protocol
}

// Compare fills every cell's comparison with the bare proxy's cell of the same protocol,
// shape and concurrency.
func (r *Results) Compare() {
	bare := map[cellKey]Cell{}
	for _, c := range r.Cells {
		if c.Target == Bare {
			bare[key(c)] = c
		}
	}
	for i := range r.Cells {
		c := &r.Cells[i]
		b, ok := bare[key(*c)]
		if !ok || c.Target == Bare {
			continue
		}
		if !b.RPS.Missing() && b.RPS > 0 {
			c.RPSOfBare = c.RPS / b.RPS
		}
		c.AddedP50 = c.P50 - b.P50
		c.AddedP99 = c.P99 - b.P99
		c.AddedP999 = c.P999 - b.P999
	}
}

type cellKey struct {
	protocol    string
	stream      bool
	concurrency int
}

func key(c Cell) cellKey { return cellKey{c.Protocol, c.Stream, c.Concurrency} }

// TrimQueries cuts every statement text to at most n bytes (at a rune boundary), marking the
// cut with "…".
func (r *Results) TrimQueries(n int) {
	trim := func(sts []Statement) {
		for i := range sts {
			q := sts[i].Query
			if len(q) <= n {
				continue
			}
			cut := n
			for cut > 0 && !utf8.RuneStart(q[cut]) {
				cut--
			}
			sts[i].Query = q[:cut] + "…"
		}
	}
	for ci := range r.Cells {
		trim(r.Cells[ci].PGTop)
		for ri := range r.Cells[ci].Rounds {
			trim(r.Cells[ci].Rounds[ri].PGTop)
		}
	}
}

// Cell returns the Anthropic cell of target at the shape and concurrency, if measured.
func (r *Results) Cell(target string, stream bool, concurrency int) (Cell, bool) {
	return r.CellOf("", target, stream, concurrency)
}

// CellOf returns the cell of target at the protocol (a Cell.Protocol), shape and
// concurrency, if measured.
func (r *Results) CellOf(protocol, target string, stream bool, concurrency int) (Cell, bool) {
	for _, c := range r.Cells {
		if c.Protocol == protocol && c.Target == target && c.Stream == stream && c.Concurrency == concurrency {
			return c, true
		}
	}
	return Cell{}, false
}

// MemoryOf returns the memory figures of target, if measured.
func (r *Results) MemoryOf(target string) (Memory, bool) {
	for _, m := range r.Memory {
		if m.Target == target {
			return m, true
		}
	}
	return Memory{}, false
}
