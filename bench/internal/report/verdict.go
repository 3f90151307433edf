package report

import (
	"fmt"
	"slices"
)

// Issue 5's goals.
const (
	goalPGShare        = 0.50 // PostgreSQL + Redis, one node, c=32 JSON: share of bare proxy req/s
	goalSQLiteShare    = 0.60 // SQLite single node, same cell
	goalAddedP50       = 1000 // µs of added median latency at c=1
	goalRedisCommands  = 3
	goalPGStatements   = 1 // strictly below
	goalBytesPerStream = 64 << 10
)

// Evaluate judges issue 5's targets on the results (after Compare) and stores the verdicts.
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
	share := func(protocol, target string, goal float64) {
		name := fmt.Sprintf("req/s at c=32, JSON ≥ %.0f %% of the bare proxy's", goal*100)
		c, ok := r.CellOf(protocol, target, false, 32)
		if !ok || c.RPSOfBare.Missing() {
			v = append(v, Verdict{Goal: name, Target: label(protocol, target), Measured: "not measured"})
			return
		}
		b, _ := r.CellOf(protocol, Bare, false, 32)
		d := Verdict{Goal: name, Target: label(protocol, target), Met: float64(c.RPSOfBare) >= goal,
			Measured: fmt.Sprintf("%.1f %% (%s of %s req/s)", 100*float64(c.RPSOfBare), rps(c.RPS), rps(b.RPS))}
		if !d.Met {
			d.Miss = fmt.Sprintf("%.1f points short: %s req/s more needed", 100*(goal-float64(c.RPSOfBare)),
				rps(Num(goal*float64(b.RPS))-c.RPS))
		}
		v = append(v, d)
	}
	for _, protocol := range protocols {
		share(protocol, PGRedis, goalPGShare)
		share(protocol, SQLite, goalSQLiteShare)
	}

	for _, protocol := range protocols {
		for _, target := range []string{SQLite, PGRedis} {
			for _, stream := range []bool{false, true} {
				name := fmt.Sprintf("added median latency at c=1, %s ≤ 1 ms over the bare proxy", shape(stream))
				c, ok := r.CellOf(protocol, target, stream, 1)
				if !ok || c.AddedP50.Missing() {
					v = append(v, Verdict{Goal: name, Target: label(protocol, target), Measured: "not measured"})
					continue
				}
				d := Verdict{Goal: name, Target: label(protocol, target), Met: c.AddedP50 <= goalAddedP50,
					Measured: fmt.Sprintf("%s ms (p50 %s vs %s ms)", ms(c.AddedP50), ms(c.P50), ms(c.P50-c.AddedP50))}
				if !d.Met {
					d.Miss = fmt.Sprintf("%s ms over the 1 ms budget", ms(c.AddedP50-goalAddedP50))
				}
				v = append(v, d)
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
