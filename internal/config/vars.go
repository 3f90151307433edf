package config

import (
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/login"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/secret"
)

// Var declares one configuration variable.
type Var struct {
	Name    string
	Default string // the text parsed when nothing sets the variable; "" = empty/zero
	Doc     string
	// Secret values are shown as "***" by Redacted and must never be logged.
	Secret bool
	// File: NAME_FILE may name a file holding the value (Docker/Kubernetes secrets).
	File bool
	// Enum lists the accepted values of a string variable; nil = any string.
	Enum []string
	// Min and Max bound integers (inclusive) when Max > Min.
	Min, Max int64
	// redactURL hides only the password of a URL value.
	redactURL bool
	// check validates a non-empty raw string beyond its type.
	check func(string) error
	// field returns a pointer to the Config field the variable fills.
	field func(*Config) any
	// gateway, instead of field and Default, names a field of Config.Gateway: the variable
	// fills it, and its default is gateway.Default()'s value of it (Vars sets both).
	gateway func(*gateway.Config) any
}

// Type names the variable's type for documentation and error messages.
func (v Var) Type() string {
	var c Config
	switch v.field(&c).(type) {
	case *int, *int64:
		return "integer"
	case *bool:
		return "bool"
	case *time.Duration:
		return "duration"
	case *[]netip.Prefix:
		return "list of IPs/CIDRs"
	case *[]string:
		return "list of host:port"
	}
	if len(v.Enum) > 0 {
		return strings.Join(v.Enum, "|")
	}
	return "string"
}

// Vars is the table of every variable FluxCode reads, besides CONFIG_FILE.
// It is built on each call so that no caller can change it for another.
func Vars() []Var {
	vars := []Var{
		// Server.
		{Name: "SERVER_HOST", Default: "0.0.0.0", Doc: "Address to listen on; 127.0.0.1 keeps the node local.",
			field: func(c *Config) any { return &c.ServerHost }},
		{Name: "SERVER_PORT", Default: "8080", Min: 0, Max: 65535, Doc: "TCP port to listen on (0 picks a free one).",
			field: func(c *Config) any { return &c.ServerPort }},
		{Name: "SERVER_MODE", Default: "release", Enum: []string{"debug", "release"},
			Doc:   "debug lowers the default log level to debug; release is for production.",
			field: func(c *Config) any { return &c.ServerMode }},
		{Name: "SERVER_SHUTDOWN_TIMEOUT", Default: "30s", Doc: "On stop, how long in-flight requests (streams) may finish before they are cut.",
			field: func(c *Config) any { return &c.ShutdownTimeout }},
		{Name: "SERVER_DRAIN_DELAY", Default: "6s",
			Doc:   "On SIGTERM, how long the node goes on serving while /health/live answers 503, before it stops accepting: longer than the load balancer's health-check interval (CADDY_HEALTH_INTERVAL, 5s).",
			field: func(c *Config) any { return &c.DrainDelay }},
		{Name: "SERVER_READ_HEADER_TIMEOUT", Default: "10s", Doc: "How long a client may take to send a request's headers.",
			field: func(c *Config) any { return &c.ReadHeaderTimeout }},
		{Name: "SERVER_IDLE_TIMEOUT", Default: "2m", Doc: "How long an idle keep-alive connection stays open.",
			field: func(c *Config) any { return &c.IdleTimeout }},
		{Name: "SERVER_BODY_READ_TIMEOUT", Default: "10s", Doc: "Outside the gateway routes (/api, ...): longest wait for the next bytes of a request body before the request is cut.",
			field: func(c *Config) any { return &c.BodyReadTimeout }},
		{Name: "SERVER_MAX_CONNS", Default: "4096", Min: 0, Max: 10000000,
			Doc:   "Client connections one node keeps open at once; one more gets a 503 and is closed. 0 = no limit.",
			field: func(c *Config) any { return &c.MaxConns }},
		{Name: "MAX_BODY_BYTES", Min: 1024, Max: 1 << 40,
			Doc:     "Largest accepted gateway request body, in bytes (413 beyond, refused on its Content-Length). 32 MiB: Anthropic refuses larger Messages bodies.",
			gateway: func(g *gateway.Config) any { return &g.MaxBodyBytes }},
		{Name: "TRUSTED_PROXIES", Doc: "Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed; empty = none.",
			field: func(c *Config) any { return &c.TrustedProxies }},
		{Name: "NODE_NAME", Doc: "Name of this node in logs and metrics; empty = the host name.",
			field: func(c *Config) any { return &c.NodeName }},

		// PostgreSQL (cluster mode).
		{Name: "DATABASE_URL", Secret: true, File: true, redactURL: true, check: checkPostgresURL,
			Doc:   "PostgreSQL URL (postgres://user:pass@host:5432/db?sslmode=disable). Setting it, or DATABASE_HOST, selects cluster mode.",
			field: func(c *Config) any { return &c.DatabaseURL }},
		{Name: "DATABASE_HOST", Doc: "PostgreSQL host, instead of DATABASE_URL. Setting it selects cluster mode.",
			field: func(c *Config) any { return &c.DatabaseHost }},
		{Name: "DATABASE_PORT", Default: "5432", Min: 1, Max: 65535, Doc: "PostgreSQL port.",
			field: func(c *Config) any { return &c.DatabasePort }},
		{Name: "DATABASE_USER", Default: "fluxcode", Doc: "PostgreSQL user.",
			field: func(c *Config) any { return &c.DatabaseUser }},
		{Name: "DATABASE_PASSWORD", Secret: true, File: true, Doc: "PostgreSQL password.",
			field: func(c *Config) any { return &c.DatabasePassword }},
		{Name: "DATABASE_DBNAME", Default: "fluxcode", Doc: "PostgreSQL database name.",
			field: func(c *Config) any { return &c.DatabaseName }},
		{Name: "DATABASE_SSLMODE", Default: "prefer", Enum: []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
			Doc: "PostgreSQL TLS mode.", field: func(c *Config) any { return &c.DatabaseSSLMode }},
		{Name: "DATABASE_MAX_OPEN_CONNS", Default: "20", Min: 1, Max: 10000,
			Doc:   "Connections one node may open; the cluster total is nodes × this.",
			field: func(c *Config) any { return &c.DatabaseMaxOpenConns }},
		{Name: "DATABASE_MAX_IDLE_CONNS", Default: "10", Min: 0, Max: 10000, Doc: "Idle connections kept per node (≤ DATABASE_MAX_OPEN_CONNS).",
			field: func(c *Config) any { return &c.DatabaseMaxIdleConns }},

		// Redis (cluster mode).
		{Name: "REDIS_URL", Secret: true, File: true, redactURL: true, check: checkRedisURL,
			Doc:   "Redis URL (redis://:pass@host:6379/0, rediss:// for TLS), instead of REDIS_HOST.",
			field: func(c *Config) any { return &c.RedisURL }},
		{Name: "REDIS_HOST", Doc: "Redis host, instead of REDIS_URL. Required in cluster mode (one of the two).",
			field: func(c *Config) any { return &c.RedisHost }},
		{Name: "REDIS_PORT", Default: "6379", Min: 1, Max: 65535, Doc: "Redis port.",
			field: func(c *Config) any { return &c.RedisPort }},
		{Name: "REDIS_PASSWORD", Secret: true, File: true, Doc: "Redis password.",
			field: func(c *Config) any { return &c.RedisPassword }},
		{Name: "REDIS_DB", Default: "0", Min: 0, Max: 15, Doc: "Redis database number.",
			field: func(c *Config) any { return &c.RedisDB }},
		{Name: "REDIS_POOL_SIZE", Default: "64", Min: 1, Max: 10000, Doc: "Redis connections per node.",
			field: func(c *Config) any { return &c.RedisPoolSize }},
		{Name: "REDIS_MIN_IDLE_CONNS", Default: "4", Min: 0, Max: 10000, Doc: "Idle Redis connections kept per node (≤ REDIS_POOL_SIZE).",
			field: func(c *Config) any { return &c.RedisMinIdleConns }},
		{Name: "REDIS_SENTINEL_ADDRS", Doc: "Comma-separated host:port of the Redis Sentinels, instead of REDIS_URL/REDIS_HOST; needs REDIS_MASTER_NAME. REDIS_PASSWORD and REDIS_DB apply to the master.",
			field: func(c *Config) any { return &c.RedisSentinelAddrs }},
		{Name: "REDIS_MASTER_NAME", Doc: "Name of the master the Sentinels monitor (with REDIS_SENTINEL_ADDRS only).",
			field: func(c *Config) any { return &c.RedisMasterName }},
		{Name: "REDIS_SENTINEL_PASSWORD", Secret: true, File: true, Doc: "Password of the Sentinels themselves, when they require one (with REDIS_SENTINEL_ADDRS only).",
			field: func(c *Config) any { return &c.RedisSentinelPassword }},
		{Name: "REDIS_CLUSTER_ADDRS", Doc: "Comma-separated host:port of some Redis Cluster nodes (the rest are discovered), instead of REDIS_URL/REDIS_HOST. REDIS_DB must stay 0.",
			field: func(c *Config) any { return &c.RedisClusterAddrs }},

		// Data and secrets.
		{Name: "DATA_DIR", Default: "./data", Doc: "Directory for the SQLite database and the generated encryption key (single node).",
			field: func(c *Config) any { return &c.DataDir }},
		{Name: "SQLITE_SYNCHRONOUS", Default: "full", Enum: []string{"full", "normal"},
			Doc:   "Single node: full syncs every ledger commit to disk, so an answer its client saw complete stays billed through a power loss; normal syncs only at checkpoints (a process kill still loses nothing, a power loss or OS crash may lose the last commits) and saves one disk sync per commit.",
			field: func(c *Config) any { return &c.SQLiteSynchronous }},
		{Name: "ENCRYPTION_KEY", Secret: true, File: true, check: checkMasterKey,
			Doc:   "32 bytes as 64 hex characters (openssl rand -hex 32): seals upstream credentials, proxy passwords, TOTP secrets and the API key hash key. Single node: generated into DATA_DIR/encryption.key when unset. Cluster: required, the same on every node.",
			field: func(c *Config) any { return &c.EncryptionKey }},
		{Name: "ENCRYPTION_KEY_PREVIOUS", Secret: true, File: true, check: checkPreviousKeys,
			Doc:   "Older ENCRYPTION_KEYs, comma-separated, still accepted to open stored secrets during a key rotation (see Rotating ENCRYPTION_KEY); values are always sealed under ENCRYPTION_KEY.",
			field: func(c *Config) any { return &c.EncryptionKeyPrevious }},
		{Name: "JWT_SECRET", Secret: true, File: true, check: checkJWTSecret,
			Doc:   "Signing key of login tokens (at least 32 characters). Unset: one is generated and shared through the database.",
			field: func(c *Config) any { return &c.JWTSecret }},
		{Name: "JWT_EXPIRE_HOUR", Default: "24", Min: 1, Max: 8760, Doc: "Lifetime of a login token, in hours.",
			field: func(c *Config) any { return &c.JWTExpireHour }},

		// First start and accounts.
		{Name: "ADMIN_EMAIL", Default: "admin@fluxcode.local", check: checkEmail, Doc: "E-mail of the admin created on first start.",
			field: func(c *Config) any { return &c.AdminEmail }},
		{Name: "ADMIN_PASSWORD", Secret: true, File: true, check: checkPassword,
			Doc:   "Password of the admin created on first start (at least 8 characters). Unset: one is generated and printed once, by the node that creates the admin.",
			field: func(c *Config) any { return &c.AdminPassword }},
		{Name: "REGISTRATION_ENABLED", Default: "false", Doc: "Whether anyone may register a user account.",
			field: func(c *Config) any { return &c.RegistrationEnabled }},
		{Name: "LOGIN_MAX_FAILURES_PER_EMAIL", Default: "10", Min: 1, Max: 1000,
			Doc:   "Failed logins to one e-mail, across all nodes, within LOGIN_WINDOW; further attempts get 429 until the window ends.",
			field: func(c *Config) any { return &c.LoginMaxFailuresPerEmail }},
		{Name: "LOGIN_MAX_FAILURES_PER_ADDRESS", Default: "50", Min: 1, Max: 100000,
			Doc:   "Failed logins from one client address (an IPv6 /64), across all nodes, within LOGIN_WINDOW; further attempts get 429 until the window ends.",
			field: func(c *Config) any { return &c.LoginMaxFailuresPerAddress }},
		{Name: "LOGIN_WINDOW", Default: "15m", Doc: "Window of the failed-login limits, and how long a locked e-mail or address stays locked (at most 24h).",
			field: func(c *Config) any { return &c.LoginWindow }},
		{Name: "PASSWORD_HASH_CONCURRENCY", Default: "0", Min: 0, Max: 64,
			Doc:   "Password hashes (logins, sign-ups) one node computes at once, each holding 19 MiB; more wait up to 2s, then get a retryable 503. 0 = the CPU count, from 2 to 8.",
			field: func(c *Config) any { return &c.PasswordHashConcurrency }},

		// Logs.
		{Name: "TZ", check: checkTZ, Doc: "IANA time zone of log timestamps (Asia/Shanghai); the ledger is always UTC. Empty = the system zone.",
			field: func(c *Config) any { return &c.TZ }},
		{Name: "LOG_FORMAT", Default: "text", Enum: []string{"json", "text"}, Doc: "Log line format.",
			field: func(c *Config) any { return &c.LogFormat }},
		{Name: "LOG_LEVEL", Enum: []string{"debug", "info", "warn", "error"}, Doc: "Lowest level logged; empty = debug in SERVER_MODE=debug, info otherwise.",
			field: func(c *Config) any { return &c.LogLevel }},

		// Billing.
		{Name: "PRICE_FILE", check: checkReadableFile, Doc: "A LiteLLM-format price JSON that extends and overrides the built-in prices (the admin setting model_prices goes over both).",
			field: func(c *Config) any { return &c.PriceFile }},
		{Name: "ALLOW_UNPRICED_MODELS",
			Doc:     "Serve models that have no price, billed at zero cost (their tokens are still recorded). Off: a request for such a model is refused (403, X-Fluxcode-Reject: unpriced). The admin setting allow_unpriced_models, once saved, overrides it.",
			gateway: func(g *gateway.Config) any { return &g.AllowUnpricedModels }},

		// Subscription logins.
		{Name: "CLAUDE_OAUTH_AUTHORIZE_URL", Default: login.Claude().AuthorizeURL, check: checkHTTPURL,
			Doc:   "Claude's OAuth sign-in page, opened by the operator when onboarding a Claude login.",
			field: func(c *Config) any { return &c.ClaudeOAuthAuthorizeURL }},
		{Name: "CLAUDE_OAUTH_TOKEN_URL", Default: login.Claude().TokenURL, check: checkHTTPURL,
			Doc:   "Claude's OAuth token endpoint: code exchange and token refresh.",
			field: func(c *Config) any { return &c.ClaudeOAuthTokenURL }},
		{Name: "CLAUDE_OAUTH_PROFILE_URL", Default: login.Claude().ProfileURL, check: checkHTTPURL,
			Doc:   "Claude's OAuth profile endpoint, read after onboarding to report the login's e-mail and plan.",
			field: func(c *Config) any { return &c.ClaudeOAuthProfileURL }},
		{Name: "CLAUDE_OAUTH_CLIENT_ID", Default: login.Claude().ClientID, Doc: "OAuth client id of Claude logins (Claude Code's).",
			field: func(c *Config) any { return &c.ClaudeOAuthClientID }},
		{Name: "CLAUDE_OAUTH_REDIRECT_URI", Default: login.Claude().RedirectURI, check: checkHTTPURL,
			Doc:   "Where Claude's sign-in sends the browser; its page shows the code the operator pastes back.",
			field: func(c *Config) any { return &c.ClaudeOAuthRedirectURI }},
		{Name: "OPENAI_OAUTH_AUTHORIZE_URL", Default: login.OpenAI().AuthorizeURL, check: checkHTTPURL,
			Doc:   "ChatGPT's OAuth sign-in page (auth.openai.com), opened by the operator when onboarding a ChatGPT (Codex) login.",
			field: func(c *Config) any { return &c.OpenAIOAuthAuthorizeURL }},
		{Name: "OPENAI_OAUTH_TOKEN_URL", Default: login.OpenAI().TokenURL, check: checkHTTPURL,
			Doc:   "ChatGPT's OAuth token endpoint: code exchange and token refresh of ChatGPT (Codex) logins.",
			field: func(c *Config) any { return &c.OpenAIOAuthTokenURL }},
		{Name: "OPENAI_OAUTH_CLIENT_ID", Default: login.OpenAI().ClientID, Doc: "OAuth client id of ChatGPT logins (the Codex CLI's).",
			field: func(c *Config) any { return &c.OpenAIOAuthClientID }},
		{Name: "OPENAI_OAUTH_REDIRECT_URI", Default: login.OpenAI().RedirectURI, check: checkHTTPURL,
			Doc:   "Where ChatGPT's sign-in sends the browser (the Codex CLI's local callback); the operator pastes the URL it lands on.",
			field: func(c *Config) any { return &c.OpenAIOAuthRedirectURI }},
		{Name: "GOOGLE_OAUTH_AUTHORIZE_URL", Default: login.Google("").AuthorizeURL, check: checkHTTPURL,
			Doc:   "Google's OAuth sign-in page, opened by the operator when onboarding a Gemini CLI (Login with Google) login.",
			field: func(c *Config) any { return &c.GoogleOAuthAuthorizeURL }},
		{Name: "GOOGLE_OAUTH_TOKEN_URL", Default: login.Google("").TokenURL, check: checkHTTPURL,
			Doc:   "Google's OAuth token endpoint: code exchange and token refresh of Gemini CLI logins.",
			field: func(c *Config) any { return &c.GoogleOAuthTokenURL }},
		{Name: "GOOGLE_OAUTH_USERINFO_URL", Default: login.Google("").ProfileURL, check: checkHTTPURL,
			Doc:   "Google's userinfo endpoint, read after onboarding to report a Gemini CLI login's e-mail.",
			field: func(c *Config) any { return &c.GoogleOAuthUserinfoURL }},
		{Name: "GOOGLE_OAUTH_CLIENT_ID", Default: login.Google("").ClientID, Doc: "OAuth client id of Gemini CLI logins (the Gemini CLI's installed-app client).",
			field: func(c *Config) any { return &c.GoogleOAuthClientID }},
		{Name: "GOOGLE_OAUTH_CLIENT_SECRET", Default: login.Google("").ClientSecret, Secret: true,
			Doc:   "OAuth client secret sent with Google token requests (the Gemini CLI's; Google does not treat an installed app's secret as confidential).",
			field: func(c *Config) any { return &c.GoogleOAuthClientSecret }},
		{Name: "GOOGLE_OAUTH_REDIRECT_URI", Default: login.Google("").RedirectURI, check: checkHTTPURL,
			Doc:   "Where Google's sign-in sends the browser; Code Assist's page shows the code the operator pastes back.",
			field: func(c *Config) any { return &c.GoogleOAuthRedirectURI }},
		{Name: "GEMINI_CODE_ASSIST_URL", Default: gemini.DefaultCodeAssistURL, check: checkHTTPURL,
			Doc:   "Code Assist, where a new Gemini CLI login's Cloud project is found (loadCodeAssist) or created (onboardUser). Accounts send their traffic to their own base URL, Code Assist by default.",
			field: func(c *Config) any { return &c.GeminiCodeAssistURL }},
		{Name: "OAUTH_REFRESH_INTERVAL", Default: "1m", Doc: "How often the refresh job (one node of the cluster at a time) looks for logins about to expire.",
			field: func(c *Config) any { return &c.OAuthRefreshEvery }},
		{Name: "OAUTH_REFRESH_BEFORE", Default: "10m", Doc: "How long before its access token expires a login is renewed.",
			field: func(c *Config) any { return &c.OAuthRefreshBefore }},
		{Name: "OAUTH_REFRESH_LOCK_TTL", Default: "30s", Doc: "Lock of one login's renewal, cluster-wide; a node that dies while renewing holds it at most this long.",
			field: func(c *Config) any { return &c.OAuthRefreshLockTTL }},

		// Maintenance jobs.
		{Name: "JOBS_INTERVAL", Default: "5m", Doc: "How often each maintenance job (ledger retention, subscription expiry, coordination clean-up) runs, on one node of the cluster at a time; the admin API lists their last runs (GET /api/v1/admin/jobs).",
			field: func(c *Config) any { return &c.JobsInterval }},
		{Name: "LEDGER_RETENTION_DAYS", Default: "0", Min: 0, Max: 36500, Doc: "Ledger rows older than this many days are deleted by the retention job, in small batches; 0 = keep every row. Balances and subscription windows do not change; usage figures and lists no longer count the deleted rows.",
			field: func(c *Config) any { return &c.LedgerRetentionDays }},

		// Gateway.
		{Name: "GATEWAY_SUBSCRIPTION_PAUSE_PERCENT", Min: 0, Max: 100,
			Doc:     "Pause a subscription account until its usage window resets once the upstream reports the window at or above this utilisation (95 = 95 %); 0 = never.",
			gateway: func(g *gateway.Config) any { return &g.SubscriptionPausePercent }},
		{Name: "GATEWAY_STICKY_TTL", Doc: "How long a conversation stays on the account that served it.",
			gateway: func(g *gateway.Config) any { return &g.StickyTTL }},
		{Name: "GATEWAY_ANSWER_TTL", Doc: "How long a stored OpenAI response stays bound to the account that holds it, so a request continuing it (previous_response_id) goes there.",
			gateway: func(g *gateway.Config) any { return &g.AnswerTTL }},
		{Name: "GATEWAY_MAX_ACCOUNT_SWITCHES", Min: 0, Max: 50, Doc: "Other accounts tried after a failure, before the first byte.",
			gateway: func(g *gateway.Config) any { return &g.MaxAccountSwitches }},
		{Name: "GATEWAY_WAIT_QUEUE_MAX", Min: 0, Max: 1000000, Doc: "Requests that may wait for a concurrency slot per user or key; 0 = refuse at once.",
			gateway: func(g *gateway.Config) any { return &g.WaitQueueMax }},
		{Name: "GATEWAY_WAIT_TIMEOUT", Doc: "How long a request waits for a concurrency slot.",
			gateway: func(g *gateway.Config) any { return &g.WaitTimeout }},
		{Name: "GATEWAY_SLOT_TTL", Doc: "Lease of a concurrency slot, refreshed every third of it while the request runs; a crashed node's slots free within it.",
			gateway: func(g *gateway.Config) any { return &g.SlotTTL }},
		{Name: "GATEWAY_OVERLOAD_COOLDOWN", Doc: "How long an account that answered 529 (overloaded) is skipped.",
			gateway: func(g *gateway.Config) any { return &g.OverloadCooldown }},
		{Name: "GATEWAY_RATE_LIMIT_COOLDOWN", Doc: "How long an account that answered 429 is skipped when the answer names no reset time.",
			gateway: func(g *gateway.Config) any { return &g.RateLimitCooldown }},
		{Name: "GATEWAY_BODY_READ_TIMEOUT", Default: "60s", Doc: "Gateway routes (/v1/...): longest wait for the next bytes of a request body before the request is cut (408).",
			field: func(c *Config) any { return &c.GatewayBodyReadTimeout }},
		{Name: "GATEWAY_BODY_BYTES_IN_FLIGHT", Min: 1024, Max: 1 << 50,
			Doc:     "Request-body bytes one node holds at once (read, or kept for failover until the request ends); a request past it gets a retryable 503. At least MAX_BODY_BYTES.",
			gateway: func(g *gateway.Config) any { return &g.BodyBytesInFlight }},
		{Name: "UPSTREAM_ALLOWED_NETWORKS", Doc: "Comma-separated IPs/CIDRs that account base URLs and proxies may reach although they are loopback, private, link-local or metadata addresses; empty = all those refused (SSRF guard).",
			gateway: func(g *gateway.Config) any { return &g.AllowedNetworks }},
		{Name: "UPSTREAM_CONNECT_TIMEOUT", Doc: "Bound on connecting to an upstream.",
			gateway: func(g *gateway.Config) any { return &g.ConnectTimeout }},
		{Name: "UPSTREAM_HEADER_TIMEOUT", Doc: "Bound on waiting for an upstream's response headers.",
			gateway: func(g *gateway.Config) any { return &g.HeaderTimeout }},
		{Name: "UPSTREAM_IDLE_TIMEOUT", Doc: "Bound on silence between two events of an upstream stream.",
			gateway: func(g *gateway.Config) any { return &g.IdleTimeout }},

		// Operations.
		{Name: "METRICS_TOKEN", Secret: true, File: true, check: checkMetricsToken,
			Doc:   "When set, /metrics answers only requests with Authorization: Bearer <token> (at least 16 characters). Empty: /metrics is open on a node listening on loopback only, and answers 403 on a node listening beyond it.",
			field: func(c *Config) any { return &c.MetricsToken }},
		{Name: "PPROF_ADDR", check: checkListenAddr,
			Doc:   "host:port of a separate listener serving Go's profiler (/debug/pprof/) for this node; empty = off. Loopback only (127.0.0.1:6060), unless PPROF_ALLOW_REMOTE.",
			field: func(c *Config) any { return &c.PprofAddr }},
		{Name: "PPROF_ALLOW_REMOTE", Default: "false",
			Doc:   "Let PPROF_ADDR listen on a non-loopback address. The profiler has no authentication, shows the command line and goroutine stacks, and lets any caller run CPU-costly profiles: enable only on a private network.",
			field: func(c *Config) any { return &c.PprofAllowRemote }},
	}
	defaults := gateway.Default()
	for i := range vars {
		if gw := vars[i].gateway; gw != nil {
			vars[i].field = func(c *Config) any { return gw(&c.Gateway) }
			vars[i].Default = formatDefault(gw(&defaults))
		}
	}
	return vars
}

// EnvNames lists every environment variable FluxCode reads, NAME_FILE variants and
// CONFIG_FILE included, in table order.
func EnvNames() []string {
	names := []string{"CONFIG_FILE"}
	for _, v := range Vars() {
		names = append(names, v.Name)
		if v.File {
			names = append(names, v.Name+"_FILE")
		}
	}
	return names
}

func checkPostgresURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return errors.New("must be a URL like postgres://user:password@host:5432/dbname?sslmode=disable")
	}
	return nil
}

func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") || (u.Host == "" && u.Scheme != "unix") {
		return errors.New("must be a URL like redis://:password@host:6379/0 (or rediss:// for TLS)")
	}
	return nil
}

func checkMasterKey(s string) error {
	_, err := secret.ParseMasterKey(s)
	return err
}

func checkPreviousKeys(s string) error {
	for i, k := range SplitKeys(s) {
		if _, err := secret.ParseMasterKey(k); err != nil {
			return fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	return nil
}

// SplitKeys splits a comma-separated list of master keys, dropping empty entries.
func SplitKeys(s string) []string {
	var out []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func checkJWTSecret(s string) error {
	if len(s) < 32 {
		return errors.New("must be at least 32 characters (openssl rand -hex 32)")
	}
	return nil
}

func checkEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return errors.New("must be a plain e-mail address like admin@example.com")
	}
	return nil
}

func checkPassword(s string) error {
	if len([]rune(s)) < 8 {
		return errors.New("must be at least 8 characters")
	}
	return nil
}

func checkTZ(s string) error {
	if _, err := time.LoadLocation(s); err != nil {
		return errors.New("must be an IANA time zone name like UTC or Asia/Shanghai")
	}
	return nil
}

func checkMetricsToken(s string) error {
	if len(s) < 16 {
		return errors.New("must be at least 16 characters (openssl rand -hex 32)")
	}
	return nil
}

func checkListenAddr(s string) error {
	if _, _, err := splitHostPort(s); err != nil {
		return fmt.Errorf("must be host:port like 127.0.0.1:6060: %w", err)
	}
	return nil
}

func checkReadableFile(s string) error {
	f, err := os.Open(s)
	if err != nil {
		return fmt.Errorf("must name a readable file: %w", err)
	}
	return f.Close()
}

// formatDefault writes a gateway default as the variable's default text: what parsing it
// gives back, in the short form people write ("1h", "5m", "30s").
func formatDefault(p any) string {
	switch v := p.(type) {
	case *time.Duration:
		s := v.String() // "1h0m0s", "5m0s", "30s"
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	case *int:
		return strconv.Itoa(*v)
	case *int64:
		return strconv.FormatInt(*v, 10)
	case *bool:
		return strconv.FormatBool(*v)
	case *[]netip.Prefix:
		parts := make([]string, len(*v))
		for i, pr := range *v {
			parts[i] = pr.String()
		}
		return strings.Join(parts, ",")
	}
	panic(fmt.Sprintf("config: no default format for %T", p)) // a programming error in the table
}

// checkHTTPURL accepts an absolute http(s) URL.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	return nil
}
