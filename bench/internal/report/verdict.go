package report

import (
	"fmt"
	"slices"
)

// The benchmark's goals: issue 14's (PostgreSQL and Redis run durable, as operators run
// them), which tightened issue 5's throughput and median goals and added the tail and CPU.
const (
	goalPGShare        = 0.65 // PostgreSQL + Redis, one node, c=32 JSON: share of bare proxy req/s
	goalSQLiteShare    = 0.80 // SQLite single node, same cell
	goalSQLiteAddedP50 = 300  // µs of added median latency at c=1
	goalPGAddedP50     = 700
	goalAddedP99       = 2000 // µs of added p99 at c=1, both storage shapes
	goalCPURatio       = 1.5  // node CPU per request at c=32 over the bare proxy's
	goalRedisCommands  = 3
	goalPGStatements   = 1 // strictly below
	goalBytesPerStream = 64 << 10
)

// Evaluate judges the goals on the results (after Compare) and stores the verdicts.
func (r *Results) Evaluate() {
	var v []Verdict
	// The throughput and latency goals hold for every protocol's route; the cells of
	// Anthropic's (Protocol "") were the only ones before OpenAI and Gemini joined.
	protocols := []string{""}
	for _, c := range r.Cells {
		if !slices.Contains(protocols, c.Protocol) {
			protocols = append(protocols, c.Protocol)
		}
	}
	label := func(protocol, target string) string { return Cell{Target: target, Protocol: protocol}.Label() }
	// judge adds one verdict on the cell, or "not measured" when the cell or its figure is missing.
	judge := func(name, protocol, target string, stream bool, concurrency int, judged func(c, bare Cell) (measured Num, d Verdict)) {
		c, ok := r.CellOf(protocol, target, stream, concurrency)
		b, bok := r.CellOf(protocol, Bare, stream, concurrency)
		if !ok || !bok {
			v = append(v, Verdict{Goal: name, Target: label(protocol, target), Measured: "not measured"})
			return
		}
		m, d := judged(c, b)
		d.Goal, d.Target = name, label(protocol, target)
		if m.Missing() {
			d = Verdict{Goal: name, Target: label(protocol, target), Measured: "not measured"}
		}
		v = append(v, d)
	}
	for _, protocol := range protocols {
		for _, g := range []struct {
			target string
			goal   float64
		}{{SQLite, goalSQLiteShare}, {PGRedis, goalPGShare}} {
			name := fmt.Sprintf("req/s at c=32, JSON ≥ %.0f %% of the bare proxy's", g.goal*100)
			judge(name, protocol, g.target, false, 32, func(c, b Cell) (Num, Verdict) {
				d := Verdict{Met: float64(c.RPSOfBare) >= g.goal,
					Measured: fmt.Sprintf("%.1f %% (%s of %s req/s)", 100*float64(c.RPSOfBare), rps(c.RPS), rps(b.RPS))}
				if !d.Met {
					d.Miss = fmt.Sprintf("%.1f points short: %s req/s more needed", 100*(g.goal-float64(c.RPSOfBare)),
						rps(Num(g.goal*float64(b.RPS))-c.RPS))
				}
				return c.RPSOfBare, d
			})
		}
	}
	for _, protocol := range protocols {
		for _, g := range []struct {
			target string
			goal   Num
		}{{SQLite, goalSQLiteAddedP50}, {PGRedis, goalPGAddedP50}} {
			for _, stream := range []bool{false, true} {
				name := fmt.Sprintf("added p50 at c=1, %s ≤ %s ms over the bare proxy", shape(stream), ms(g.goal))
				judge(name, protocol, g.target, stream, 1, func(c, b Cell) (Num, Verdict) {
					d := Verdict{Met: c.AddedP50 <= g.goal,
						Measured: fmt.Sprintf("%s ms (p50 %s vs %s ms)", ms(c.AddedP50), ms(c.P50), ms(b.P50))}
					if !d.Met {
						d.Miss = fmt.Sprintf("%s ms over", ms(c.AddedP50-g.goal))
					}
					return c.AddedP50, d
				})
				name = fmt.Sprintf("added p99 at c=1, %s ≤ %s ms over the bare proxy", shape(stream), ms(goalAddedP99))
				judge(name, protocol, g.target, stream, 1, func(c, b Cell) (Num, Verdict) {
					d := Verdict{Met: c.AddedP99 <= goalAddedP99,
						Measured: fmt.Sprintf("%s ms (p99 %s vs %s ms)", ms(c.AddedP99), ms(c.P99), ms(b.P99))}
					if !d.Met {
						d.Miss = fmt.Sprintf("%s ms over", ms(c.AddedP99-goalAddedP99))
					}
					return c.AddedP99, d
				})
			}
		}
	}
	for _, protocol := range protocols {
		for _, target := range []string{SQLite, PGRedis} {
			for _, stream := range []bool{false, true} {
				name := fmt.Sprintf("node CPU per request at c=32, %s ≤ %.1f× the bare proxy's", shape(stream), goalCPURatio)
				judge(name, protocol, target, stream, 32, func(c, b Cell) (Num, Verdict) {
					if b.CPU.Target.Missing() || b.CPU.Target <= 0 {
						return NaN(), Verdict{}
					}
					ratio := float64(c.CPU.Target / b.CPU.Target)
					d := Verdict{Met: ratio <= goalCPURatio,
						Measured: fmt.Sprintf("%.2f× (%s vs %s µs; PostgreSQL %s, Redis %s µs beside it)", ratio,
							us(c.CPU.Target), us(b.CPU.Target), us(c.CPU.Postgres), us(c.CPU.Redis))}
					if !d.Met {
						d.Miss = fmt.Sprintf("%s µs per request over", us(c.CPU.Target-Num(goalCPURatio)*b.CPU.Target))
					}
					return c.CPU.Target, d
				})
			}
		}
	}

	for _, target := range []string{PGRedis, TwoNodes} {
		name := fmt.Sprintf("Redis round trips per request ≤ %d (client commands seen by MONITOR)", goalRedisCommands)
		rt, ok := r.RoundTripsOf(target)
		if !ok || rt.Client.Missing() {
			d := Verdict{Goal: name, Target: target, Measured: "not measured"}
			if ok && rt.Error != "" {
				d.Measured += ": " + rt.Error
			}
			v = append(v, d)
			continue
		}
		d := Verdict{Goal: name, Target: target, Met: rt.Client <= goalRedisCommands,
			Measured: fmt.Sprintf("%.2f (and %.2f commands inside scripts)", float64(rt.Client), float64(rt.Script))}
		if !d.Met {
			d.Miss = fmt.Sprintf("%.2f round trips per request too many", float64(rt.Client)-goalRedisCommands)
		}
		v = append(v, d)
	}
	for _, stream := range []bool{false, true} {
		c, ok := r.Cell(PGRedis, stream, 32)
		name := fmt.Sprintf("PostgreSQL statements per request < %d (c=32, %s)", goalPGStatements, shape(stream))
		if !ok || c.PGStatements.Missing() {
			v = append(v, Verdict{Goal: name, Target: PGRedis, Measured: "not measured"})
			continue
		}
		d := Verdict{Goal: name, Target: PGRedis, Met: c.PGStatements < goalPGStatements,
			Measured: fmt.Sprintf("%.2f", float64(c.PGStatements))}
		if !d.Met {
			d.Miss = fmt.Sprintf("%.2f statements per request over the limit", float64(c.PGStatements)-goalPGStatements)
		}
		v = append(v, d)
	}

	for _, target := range []string{SQLite, PGRedis, TwoNodes} {
		name := "memory per open stream ≤ 64 KiB"
		m, ok := r.MemoryOf(target)
		if !ok || m.PerStream.Missing() {
			d := Verdict{Goal: name, Target: target, Measured: "not measured"}
			if ok && m.Error != "" {
				d.Measured += ": " + m.Error
			}
			v = append(v, d)
			continue
		}
		d := Verdict{Goal: name, Target: target, Met: m.PerStream <= goalBytesPerStream,
			Measured: fmt.Sprintf("%s KiB (%d streams open)", kib(m.PerStream), m.Open)}
		if !d.Met {
			d.Miss = fmt.Sprintf("%s KiB over", kib(m.PerStream-goalBytesPerStream))
		}
		v = append(v, d)
	}
	r.Verdicts = v
}

func shape(stream bool) string {
	if stream {
		return "stream"
	}
	return "JSON"
}
