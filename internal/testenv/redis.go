package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const redisPackage = "redis-server"

// RedisOption configures StartRedis.
type RedisOption func(*redisConfig)

type redisConfig struct {
	password  string
	persist   bool
	fsync     string // appendfsync when persist: "always" (WithPersistence) or "everysec"
	replicaOf string
	// cluster: the server is a Redis Cluster node (cluster-enabled), its bus on a port of
	// its own (StartRedisCluster).
	cluster bool
}

// WithReplicaOf makes the server a replica of the master at addr (host:port), which it
// authenticates to with its own password. Without persistence it starts empty and copies the
// master as soon as it reaches it.
func WithReplicaOf(addr string) RedisOption {
	return func(c *redisConfig) { c.replicaOf = addr }
}

// WithPassword makes the server require password (requirepass).
func WithPassword(password string) RedisOption {
	return func(c *redisConfig) { c.password = password }
}

// WithPersistence turns on the append-only file with fsync on every write,
// so data survives Stop/Start and Restart. Without it the server keeps
// nothing on disk and restarts empty.
func WithPersistence() RedisOption {
	return func(c *redisConfig) { c.persist, c.fsync = true, "always" }
}

// WithOperatorPersistence runs Redis as deploy/docker-compose.infra.yml does: the
// append-only file, fsynced once a second. The benchmark measures this, not a server that
// keeps nothing.
func WithOperatorPersistence() RedisOption {
	return func(c *redisConfig) { c.persist, c.fsync = true, "everysec" }
}

// Redis is a redis-server on 127.0.0.1 with a private directory. Stop, Start
// and Restart keep its port.
type Redis struct {
	server // Stop, Start, Restart, LogTail
	cfg    redisConfig
	dir    string
	port   int
	// busPort is the Redis Cluster bus port of a cluster node; 0 otherwise.
	busPort int
}

// StartRedis starts a fresh server for t; it is stopped and its files removed
// when t ends.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	path := RequireBinary(t, "redis-server", redisPackage)
	r, err := newRedis(path, opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(r.close)
	return r
}

// newRedis starts a server from the binary at path on a free port, trying a
// few ports when one is taken between FreePort and bind.
func newRedis(path string, opts []RedisOption) (*Redis, error) {
	var cfg redisConfig
	for _, o := range opts {
		o(&cfg)
	}
	dir, err := os.MkdirTemp("", "fluxcode-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis temp dir: %w", err)
	}
	r := &Redis{cfg: cfg, dir: dir}
	for try := 1; ; try++ {
		if r.port, err = freePortOn("127.0.0.1"); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		// The bus would be port+10000, which may be taken or out of range: pick it too.
		if cfg.cluster {
			if r.busPort, err = freePortOn("127.0.0.1"); err != nil {
				_ = os.RemoveAll(dir)
				return nil, err
			}
		}
		r.server = server{
			probe:     r.ping,
			portTaken: "Address already in use",
			proc: &process{
				name: "redis-server", path: path, args: r.args(), env: []string{"PATH=/usr/bin:/bin"},
				dir: dir, logPath: filepath.Join(dir, "redis.log"), stopSig: syscall.SIGTERM,
			},
		}
		err = r.Start()
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, errPortTaken) || try == 4 {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
}

// close stops the server and removes its files.
func (r *Redis) close() {
	_ = r.Stop()
	_ = os.RemoveAll(r.dir)
}

func (r *Redis) args() []string {
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--daemonize", "no",
		"--save", "",
		"--logfile", "", // stdout, captured into redis.log
	}
	if r.cfg.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", r.cfg.fsync)
	} else {
		args = append(args, "--appendonly", "no")
	}
	if r.cfg.password != "" {
		args = append(args, "--requirepass", r.cfg.password)
	}
	if r.cfg.cluster {
		// nodes.conf keeps the node's identity and view across Restart. A short node
		// timeout makes a dead master's replica take over within seconds.
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(r.busPort), "--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())))
		if r.cfg.password != "" {
			args = append(args, "--masterauth", r.cfg.password)
		}
	}
	if host, port, ok := strings.Cut(r.cfg.replicaOf, ":"); ok {
		args = append(args, "--replicaof", host, port)
		if r.cfg.password != "" {
			args = append(args, "--masterauth", r.cfg.password)
		}
	}
	return args
}

// Kill ends the server with SIGKILL, as a crash or a pulled plug would: nothing is flushed
// and clients see their connections reset. Start brings it back.
func (r *Redis) Kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.proc
	if p.cmd == nil || p.hasExited() {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill redis-server: %w", err)
	}
	<-p.exited
	return nil
}

// Addr is the server's host:port on 127.0.0.1.
func (r *Redis) Addr() string { return loopbackAddr(r.port) }

// Password is the password the server requires ("" for none).
func (r *Redis) Password() string { return r.cfg.password }

// URL is a redis:// URL for database 0, with the password when one is set.
func (r *Redis) URL() string {
	u := url.URL{Scheme: "redis", Host: r.Addr(), Path: "/0"}
	if r.cfg.password != "" {
		u.User = url.UserPassword("", r.cfg.password)
	}
	return u.String()
}

// ping speaks just enough RESP to know the server is ready: AUTH when a
// password is set, then PING. (A loading server answers -LOADING.)
func (r *Redis) ping() error {
	conn, err := net.DialTimeout("tcp", r.Addr(), 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	rd := bufio.NewReader(conn)
	if r.cfg.password != "" {
		if err := RedisCommand(conn, rd, "+OK", "AUTH", r.cfg.password); err != nil {
			return err
		}
	}
	return RedisCommand(conn, rd, "+PONG", "PING")
}

// RedisCommand sends one command (args, as a RESP array) on conn and reads
// its one-line reply from rd, which must be conn's reader; a reply other than
// want (e.g. "+OK") is an error. It needs no client library and no test: the
// benchmark's MONITOR connection uses it before it reads the command stream
// from the same reader.
func RedisCommand(conn net.Conn, rd *bufio.Reader, want string, args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if got := strings.TrimRight(line, "\r\n"); got != want {
		return fmt.Errorf("redis %s: got %q, want %q", args[0], got, want)
	}
	return nil
}
