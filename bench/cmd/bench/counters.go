package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/bench/internal/report"
)

// redisCounter reads a Redis server's per-command call counts (INFO commandstats) over one
// connection of its own.
type redisCounter struct {
	client *redis.Client
}

func newRedisCounter(ctx context.Context, url string) (*redisCounter, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opt.PoolSize, opt.MinIdleConns = 1, 1
	c := redis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis counter: %w", err)
	}
	return &redisCounter{client: c}, nil
}

func (r *redisCounter) close() { r.client.Close() }

// commands returns calls per command name. The harness's own INFO calls are left out.
func (r *redisCounter) commands(ctx context.Context) (map[string]int64, error) {
	info, err := r.client.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	return parseCommandStats(info), nil
}

// parseCommandStats reads lines like "cmdstat_evalsha:calls=12,usec=34,...". Subcommands
// appear as "cmdstat_client|setname".
func parseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok || name == "info" {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					out[name] = n
				}
			}
		}
	}
	return out
}

// pgCounter reads pg_stat_statements for one database.
type pgCounter struct {
	conn   *pgx.Conn
	dbname string
}

// newPGCounter connects to the server's "postgres" database, where it created the
// extension, to count the statements run in dbname.
func newPGCounter(ctx context.Context, adminDSN, dbname string) (*pgCounter, error) {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return nil, fmt.Errorf("pg counter: %w", err)
	}
	return &pgCounter{conn: conn, dbname: dbname}, nil
}

func (p *pgCounter) close() { p.conn.Close(context.Background()) }

// statements returns calls per normalised statement text in the counter's database.
func (p *pgCounter) statements(ctx context.Context) (map[string]int64, error) {
	rows, err := p.conn.Query(ctx, `SELECT s.query, s.calls FROM pg_stat_statements s
		JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`, p.dbname)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var q string
		var calls int64
		if err := rows.Scan(&q, &calls); err != nil {
			return nil, err
		}
		out[q] += calls // one text may have several query ids (different users, toplevel)
	}
	return out, rows.Err()
}

// delta is after - before per name, leaving out names that did not move.
func delta(before, after map[string]int64) (map[string]int64, int64) {
	d := map[string]int64{}
	var total int64
	for k, a := range after {
		if n := a - before[k]; n > 0 {
			d[k] = n
			total += n
		}
	}
	return d, total
}

// perRequest turns a command-count delta into per-request figures.
func perRequest(d map[string]int64, requests int64) map[string]report.Num {
	out := make(map[string]report.Num, len(d))
	for k, n := range d {
		out[k] = report.Num(float64(n) / float64(max(requests, 1)))
	}
	return out
}

// topStatements returns the n statements that ran most, per request.
func topStatements(d map[string]int64, requests int64, n int) []report.Statement {
	type kv struct {
		q string
		n int64
	}
	var all []kv
	for q, c := range d {
		all = append(all, kv{q, c})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].q < all[j].q
	})
	if len(all) > n {
		all = all[:n]
	}
	out := make([]report.Statement, len(all))
	for i, e := range all {
		out[i] = report.Statement{Query: e.q, PerRequest: report.Num(float64(e.n) / float64(max(requests, 1)))}
	}
	return out
}
