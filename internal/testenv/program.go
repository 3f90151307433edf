package testenv

import (
	"fmt"
)

// The Launch functions start the same servers as the Start functions for a
// program that is not a test (the benchmark harness): they return errors
// instead of failing a test, and the caller stops the server and removes
// its files with Close. Processes still die with the program (Pdeathsig).

// LaunchPostgres starts a dedicated PostgreSQL server like StartPostgres.
// settings are extra server settings as "name=value", e.g.
// "shared_preload_libraries=pg_stat_statements".
func LaunchPostgres(settings ...string) (*Postgres, error) {
	return newPostgres(false, settings...)
}

// LaunchDurablePostgres is LaunchPostgres with PostgreSQL's own defaults for
// fsync, synchronous_commit, full_page_writes and shared_buffers: every commit
// waits for its WAL flush, as on an operator's server.
func LaunchDurablePostgres(settings ...string) (*Postgres, error) {
	return newPostgres(true, settings...)
}

// Close stops the server and removes its files.
func (p *Postgres) Close() { p.close() }

// LaunchRedis starts a fresh Redis server like StartRedis.
func LaunchRedis(opts ...RedisOption) (*Redis, error) {
	path, err := findBinary("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: install the Debian package %s (apt-get install %s)", redisPackage, redisPackage)
	}
	return newRedis(path, opts)
}

// Close stops the server and removes its files.
func (r *Redis) Close() { r.close() }

// LaunchCaddy starts Caddy on caddyfile like StartCaddy.
func LaunchCaddy(caddyfile string, env map[string]string) (*Caddy, error) {
	path, err := findBinary("caddy")
	if err != nil {
		return nil, fmt.Errorf("caddy not found: install the Debian package %s (apt-get install %s)", caddyPackage, caddyPackage)
	}
	return newCaddy(path, caddyfile, env)
}

// Close stops Caddy and removes its files.
func (c *Caddy) Close() { c.close() }

// Pid is the process id of the running server's main process (0 when it is
// stopped). A server's helper processes share its process group, whose id
// is this pid: PostgreSQL's backends are found that way.
func (s *server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.proc.running() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}
