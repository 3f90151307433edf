// Package config reads FluxCode's configuration: environment variables named as in the deploy
// files, an optional YAML file (CONFIG_FILE), and *_FILE variants for secrets.
//
// Every variable is declared once, in the table of vars.go: its type, default, validator,
// whether it is secret and whether NAME_FILE may hold its value. Precedence, highest first:
//
//  1. the environment: NAME, or NAME_FILE (a file whose trimmed content is the value);
//  2. the YAML file named by CONFIG_FILE: flat keys, the lower-case variable names
//     (server_port: 8080, trusted_proxies: [10.0.0.0/8]), or name_file for a secret file;
//  3. the default in the table.
//
// An empty environment variable counts as unset, because compose files pass optional
// variables through as empty strings. Giving both NAME and NAME_FILE in one source is an
// error. Load returns every problem at once, each naming the variable and what it accepts.
//
// The mode follows from the values: a configured PostgreSQL (DATABASE_URL or DATABASE_HOST)
// means cluster mode, which also requires Redis and ENCRYPTION_KEY; otherwise FluxCode runs
// as a single node on SQLite in DATA_DIR with in-process coordination.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
)

// Modes.
const (
	ModeSingle  = "single"
	ModeCluster = "cluster"
)

// Redis deployments, as RedisMode names them.
const (
	RedisStandalone = "standalone" // REDIS_URL or REDIS_HOST
	RedisSentinel   = "sentinel"   // REDIS_SENTINEL_ADDRS + REDIS_MASTER_NAME
	RedisCluster    = "cluster"    // REDIS_CLUSTER_ADDRS
)

// Config is the effective configuration. Build it with Load; the zero value is not useful.
// Field comments name the variable; defaults and accepted values live in the table (vars.go).
type Config struct {
	ServerHost      string        // SERVER_HOST
	ServerPort      int           // SERVER_PORT; 0 picks a free port (tests)
	ServerMode      string        // SERVER_MODE: debug | release
	ShutdownTimeout time.Duration // SERVER_SHUTDOWN_TIMEOUT: how long Close waits for requests
	DrainDelay      time.Duration // SERVER_DRAIN_DELAY: how long Drain serves while reporting not-ready

	ReadHeaderTimeout time.Duration // SERVER_READ_HEADER_TIMEOUT
	IdleTimeout       time.Duration // SERVER_IDLE_TIMEOUT
	BodyReadTimeout   time.Duration // SERVER_BODY_READ_TIMEOUT: per read, outside /v1
	MaxConns          int           // SERVER_MAX_CONNS; 0 = no limit

	TrustedProxies []netip.Prefix
	NodeName       string // NODE_NAME; empty = the host name

	DatabaseURL          string
	DatabaseHost         string
	DatabasePort         int
	DatabaseUser         string
	DatabasePassword     string
	DatabaseName         string // DATABASE_DBNAME
	DatabaseSSLMode      string
	DatabaseMaxOpenConns int
	DatabaseMaxIdleConns int

	RedisURL              string
	RedisHost             string
	RedisPort             int
	RedisPassword         string
	RedisDB               int
	RedisPoolSize         int
	RedisMinIdleConns     int
	RedisSentinelAddrs    []string // REDIS_SENTINEL_ADDRS: host:port of each Sentinel
	RedisMasterName       string   // REDIS_MASTER_NAME: the master the Sentinels monitor
	RedisSentinelPassword string   // REDIS_SENTINEL_PASSWORD
	RedisClusterAddrs     []string // REDIS_CLUSTER_ADDRS: seed nodes of a Redis Cluster

	DataDir               string
	EncryptionKey         string
	EncryptionKeyPrevious string // ENCRYPTION_KEY_PREVIOUS: comma-separated older keys

	JWTSecret     string
	JWTExpireHour int

	AdminEmail          string
	AdminPassword       string
	RegistrationEnabled bool
	// Failed-login limits (LOGIN_*) and this node's password hashing bound; 0 = automatic.
	LoginMaxFailuresPerEmail   int
	LoginMaxFailuresPerAddress int
	LoginWindow                time.Duration
	PasswordHashConcurrency    int

	TZ        string
	LogFormat string // json | text
	LogLevel  string // debug | info | warn | error; empty = debug in SERVER_MODE=debug, else info

	PriceFile string

	// Claude's OAuth endpoints (CLAUDE_OAUTH_*); the OAUTH_REFRESH_* variables say when the
	// refresh job runs and how early it renews a login.
	ClaudeOAuthAuthorizeURL string
	ClaudeOAuthTokenURL     string
	ClaudeOAuthProfileURL   string
	ClaudeOAuthClientID     string
	ClaudeOAuthRedirectURI  string
	// ChatGPT's (Codex's) OAuth endpoints (OPENAI_OAUTH_*).
	OpenAIOAuthAuthorizeURL string
	OpenAIOAuthTokenURL     string
	OpenAIOAuthClientID     string
	OpenAIOAuthRedirectURI  string
	// Google's OAuth endpoints of Gemini CLI logins (GOOGLE_OAUTH_*), and the Code Assist
	// endpoint their onboarding finds the login's project at.
	GoogleOAuthAuthorizeURL string
	GoogleOAuthTokenURL     string
	GoogleOAuthUserinfoURL  string
	GoogleOAuthClientID     string
	GoogleOAuthClientSecret string
	GoogleOAuthRedirectURI  string
	GeminiCodeAssistURL     string
	OAuthRefreshEvery       time.Duration
	OAuthRefreshBefore      time.Duration
	OAuthRefreshLockTTL     time.Duration

	// SQLiteSynchronous is SQLite's synchronous setting (sqlstore.SyncFull or SyncNormal).
	SQLiteSynchronous string

	// JobsInterval is the period of the maintenance jobs (package jobs); LedgerRetentionDays
	// the age past which ledger rows are deleted, 0 = never.
	JobsInterval        time.Duration
	LedgerRetentionDays int

	// Gateway is the request path's configuration. The GATEWAY_*, UPSTREAM_*, MAX_BODY_BYTES
	// and ALLOW_UNPRICED_MODELS variables fill its fields, and their defaults are
	// gateway.Default()'s: the variable table names the field, the gateway owns the value,
	// so the two cannot disagree. Fields without a variable keep gateway.Default()'s value.
	Gateway                gateway.Config
	GatewayBodyReadTimeout time.Duration // per read of a /v1 request body (the HTTP server's)

	PprofAddr        string // PPROF_ADDR; empty = no profiling listener
	PprofAllowRemote bool   // PPROF_ALLOW_REMOTE
	MetricsToken     string // METRICS_TOKEN; empty = /metrics is open

	// ConfigFile is the YAML file that was read, if any.
	ConfigFile string

	// settings records the raw value and source of every variable, for Redacted.
	settings map[string]setting
}

// setting is the raw text of one variable and where it came from.
type setting struct {
	raw    string
	source string
}

// Mode is ModeCluster when a PostgreSQL database is configured, else ModeSingle.
func (c Config) Mode() string {
	if c.DatabaseURL != "" || c.DatabaseHost != "" {
		return ModeCluster
	}
	return ModeSingle
}

// Cluster reports whether this node shares PostgreSQL and Redis with others.
func (c Config) Cluster() bool { return c.Mode() == ModeCluster }

// Addr is the listen address, host:port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.ServerHost, strconv.Itoa(c.ServerPort))
}

// PostgresDSN is DATABASE_URL, or a URL built from the DATABASE_* parts; "" in single mode.
func (c Config) PostgresDSN() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	if c.DatabaseHost == "" {
		return ""
	}
	u := url.URL{
		Scheme: "postgres",
		Host:   net.JoinHostPort(c.DatabaseHost, strconv.Itoa(c.DatabasePort)),
		Path:   "/" + c.DatabaseName,
	}
	if c.DatabasePassword != "" {
		u.User = url.UserPassword(c.DatabaseUser, c.DatabasePassword)
	} else if c.DatabaseUser != "" {
		u.User = url.User(c.DatabaseUser)
	}
	q := url.Values{}
	q.Set("sslmode", c.DatabaseSSLMode)
	u.RawQuery = q.Encode()
	return u.String()
}

// SQLitePath is the database file used in single mode.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "fluxcode.db") }

// EncryptionKeyPath is where a single node keeps its generated ENCRYPTION_KEY.
func (c Config) EncryptionKeyPath() string { return filepath.Join(c.DataDir, "encryption.key") }

// RedisAddr is REDIS_HOST:REDIS_PORT, or "" when Redis is configured by URL or not at all.
func (c Config) RedisAddr() string {
	if c.RedisHost == "" {
		return ""
	}
	return net.JoinHostPort(c.RedisHost, strconv.Itoa(c.RedisPort))
}

// RedisConfigured reports whether Redis is configured in any of its ways.
func (c Config) RedisConfigured() bool { return len(c.redisWays()) > 0 }

// RedisMode is how Redis is deployed: RedisStandalone, RedisSentinel or RedisCluster; ""
// when Redis is not configured. Validate guarantees at most one way is configured.
func (c Config) RedisMode() string {
	switch {
	case len(c.RedisSentinelAddrs) > 0:
		return RedisSentinel
	case len(c.RedisClusterAddrs) > 0:
		return RedisCluster
	case c.RedisURL != "" || c.RedisHost != "":
		return RedisStandalone
	}
	return ""
}

// redisWays names the variables that each configure Redis on their own and are set.
func (c Config) redisWays() []string {
	var ways []string
	for _, w := range []struct {
		name string
		set  bool
	}{
		{"REDIS_URL", c.RedisURL != ""},
		{"REDIS_HOST", c.RedisHost != ""},
		{"REDIS_SENTINEL_ADDRS", len(c.RedisSentinelAddrs) > 0},
		{"REDIS_CLUSTER_ADDRS", len(c.RedisClusterAddrs) > 0},
	} {
		if w.set {
			ways = append(ways, w.name)
		}
	}
	return ways
}

// SlogLevel is the log level; LOG_LEVEL unset means debug in debug mode, info otherwise.
func (c Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	case "info":
		return slog.LevelInfo
	}
	if c.ServerMode == "debug" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Location is the TZ time zone for log timestamps; time.Local when TZ is unset.
func (c Config) Location() *time.Location {
	if c.TZ == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.TZ)
	if err != nil { // Validate has already refused such a value
		return time.Local
	}
	return loc
}

// ListensOnLoopback reports whether the node listens on a loopback address only.
func (c Config) ListensOnLoopback() bool { return loopbackHost(c.Addr()) }

// loopbackHost reports whether the host of addr (host:port) is a loopback IP or localhost.
// An empty host means every interface, so it is not loopback.
func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// JWTTTL is the lifetime of a login token.
func (c Config) JWTTTL() time.Duration { return time.Duration(c.JWTExpireHour) * time.Hour }

// Validate checks the rules that involve more than one variable. Load calls it.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.DatabaseURL != "" && c.DatabaseHost != "" {
		add("DATABASE_URL and DATABASE_HOST are both set: configure PostgreSQL one way only")
	}
	if ways := c.redisWays(); len(ways) > 1 {
		all := "all"
		if len(ways) == 2 {
			all = "both"
		}
		add("%s are %s set: configure Redis one way only (REDIS_URL or REDIS_HOST for one server, REDIS_SENTINEL_ADDRS for Sentinel, REDIS_CLUSTER_ADDRS for Cluster)", strings.Join(ways, " and "), all)
	}
	sentinel := len(c.RedisSentinelAddrs) > 0
	if sentinel && c.RedisMasterName == "" {
		add("REDIS_SENTINEL_ADDRS is set but REDIS_MASTER_NAME is not: name the master the Sentinels monitor (sentinel monitor <name> ...)")
	}
	if !sentinel && c.RedisMasterName != "" {
		add("REDIS_MASTER_NAME is set but REDIS_SENTINEL_ADDRS is not: the master name is used only with Sentinel")
	}
	if !sentinel && c.RedisSentinelPassword != "" {
		add("REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINEL_ADDRS is not: it authenticates to the Sentinels only")
	}
	if len(c.RedisClusterAddrs) > 0 && c.RedisDB != 0 {
		add("REDIS_DB is %d but REDIS_CLUSTER_ADDRS selects Redis Cluster, which has only database 0", c.RedisDB)
	}
	if c.PprofAddr != "" && !c.PprofAllowRemote && !loopbackHost(c.PprofAddr) {
		add("PPROF_ADDR %q is not a loopback address: the profiler has no authentication and shows internals, so it listens on 127.0.0.1 or ::1 only (reach it through an SSH tunnel), unless PPROF_ALLOW_REMOTE=true", c.PprofAddr)
	}
	if c.Gateway.BodyBytesInFlight < c.Gateway.MaxBodyBytes {
		add("GATEWAY_BODY_BYTES_IN_FLIGHT (%d) must be at least MAX_BODY_BYTES (%d), or no body of the largest size could be read", c.Gateway.BodyBytesInFlight, c.Gateway.MaxBodyBytes)
	}
	if c.LoginWindow > 24*time.Hour {
		add("LOGIN_WINDOW (%s) must be at most 24h: a longer lock lets anyone who knows an e-mail keep its owner out for that long", c.LoginWindow)
	}
	if c.DatabaseMaxIdleConns > c.DatabaseMaxOpenConns {
		add("DATABASE_MAX_IDLE_CONNS (%d) must not exceed DATABASE_MAX_OPEN_CONNS (%d)", c.DatabaseMaxIdleConns, c.DatabaseMaxOpenConns)
	}
	if c.RedisMinIdleConns > c.RedisPoolSize {
		add("REDIS_MIN_IDLE_CONNS (%d) must not exceed REDIS_POOL_SIZE (%d)", c.RedisMinIdleConns, c.RedisPoolSize)
	}
	if c.Cluster() {
		if !c.RedisConfigured() {
			add("cluster mode (PostgreSQL configured) requires Redis: set REDIS_URL or REDIS_HOST (or REDIS_SENTINEL_ADDRS, or REDIS_CLUSTER_ADDRS)")
		}
		if c.EncryptionKey == "" {
			add("cluster mode (PostgreSQL configured) requires ENCRYPTION_KEY, the same on every node (generate one with: openssl rand -hex 32)")
		}
	} else if c.RedisConfigured() {
		add("Redis is configured (%s) but PostgreSQL is not: Redis is used only in cluster mode; set DATABASE_URL or DATABASE_HOST, or unset Redis", strings.Join(c.redisWays(), ", "))
	}
	return errors.Join(errs...)
}
