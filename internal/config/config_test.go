package config_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
)

const (
	testKey    = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	testSecret = "jwt-secret-that-is-long-enough-0123456789"
)

func mustLoad(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	c, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatalf("Load(%v): %v", env, err)
	}
	return c
}

// clusterEnv is a valid cluster configuration that tests extend.
func clusterEnv() map[string]string {
	return map[string]string{
		"DATABASE_HOST":     "10.0.0.10",
		"DATABASE_PASSWORD": "pg-pass-WORD",
		"REDIS_HOST":        "10.0.0.10",
		"REDIS_PASSWORD":    "redis-pass-WORD",
		"ENCRYPTION_KEY":    testKey,
	}
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, nil)
	if c.Mode() != config.ModeSingle {
		t.Errorf("Mode() = %q, want single", c.Mode())
	}
	if c.ServerPort != 8080 || c.ServerHost != "0.0.0.0" || c.Addr() != "0.0.0.0:8080" {
		t.Errorf("listen = %s:%d (%s), want 0.0.0.0:8080", c.ServerHost, c.ServerPort, c.Addr())
	}
	if c.AdminEmail != "admin@fluxcode.local" || c.JWTExpireHour != 24 || c.JWTTTL() != 24*time.Hour {
		t.Errorf("admin/jwt defaults = %q %d", c.AdminEmail, c.JWTExpireHour)
	}
	if c.DataDir != "./data" || c.SQLitePath() != filepath.Join("data", "fluxcode.db") {
		t.Errorf("data dir = %q, sqlite = %q", c.DataDir, c.SQLitePath())
	}
	if c.Gateway.SlotTTL != 8*time.Second || c.Gateway.MaxBodyBytes != 32<<20 || c.RegistrationEnabled {
		t.Errorf("gateway defaults = %v %d %v", c.Gateway.SlotTTL, c.Gateway.MaxBodyBytes, c.RegistrationEnabled)
	}
	if c.PostgresDSN() != "" || c.RedisConfigured() {
		t.Errorf("single mode has PostgreSQL %q or Redis", c.PostgresDSN())
	}
}

// invalidValues gives, per variable whose text is checked beyond its type, values it refuses.
var invalidValues = map[string][]string{
	"CLAUDE_OAUTH_AUTHORIZE_URL": {"not a url", "ftp://h/x"},
	"CLAUDE_OAUTH_TOKEN_URL":     {"/relative"},
	"CLAUDE_OAUTH_PROFILE_URL":   {"h:80"},
	"CLAUDE_OAUTH_REDIRECT_URI":  {"urn:x"},
	"OPENAI_OAUTH_AUTHORIZE_URL": {"not a url"},
	"OPENAI_OAUTH_TOKEN_URL":     {"/relative"},
	"OPENAI_OAUTH_REDIRECT_URI":  {"urn:x"},
	"GOOGLE_OAUTH_AUTHORIZE_URL": {"not a url"},
	"GOOGLE_OAUTH_TOKEN_URL":     {"/relative"},
	"GOOGLE_OAUTH_USERINFO_URL":  {"h:80"},
	"GOOGLE_OAUTH_REDIRECT_URI":  {"urn:x"},
	"GEMINI_CODE_ASSIST_URL":     {"ftp://h/x"},
	"DATABASE_URL":               {"mysql://u:p@h/db", "not a url", "postgres:///nohost"},
	"REDIS_URL":                  {"http://h:6379", "h:6379"},
	"ENCRYPTION_KEY":             {"short", "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
	"ENCRYPTION_KEY_PREVIOUS":    {"short", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff,short"},
	"JWT_SECRET":                 {"too-short"},
	"ADMIN_EMAIL":                {"nobody", "Admin <a@b.c>"},
	"ADMIN_PASSWORD":             {"short"},
	"TZ":                         {"Mars/Olympus_Mons"},
	"PRICE_FILE":                 {"/nonexistent/prices.json"},
	"METRICS_TOKEN":              {"short-token"},
	// Not host:port, a bad port, or (PPROF_ALLOW_REMOTE unset) not loopback.
	"PPROF_ADDR": {"6060", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":6060", "0.0.0.0:6060", "10.0.0.5:6060", "[::]:6060", "example.com:6060"},
}

// TestEveryInvalidValueNamesTheVariable feeds every typed variable values of the wrong shape
// and every checked string its refused values: Load must fail naming the variable, and
// enums must list what they accept.
func TestEveryInvalidValueNamesTheVariable(t *testing.T) {
	for _, v := range config.Vars() {
		var bad []string
		switch v.Type() {
		case "integer":
			bad = []string{"abc", "1.5", "9999999999999999999999"}
			if v.Max > v.Min {
				bad = append(bad, strconv.FormatInt(v.Min-1, 10), strconv.FormatInt(v.Max+1, 10))
			}
		case "bool":
			bad = []string{"maybe", "2", "enabled"}
		case "duration":
			bad = []string{"soon", "0", "-5s", "0s", "10 minutes"}
		case "list of IPs/CIDRs":
			bad = []string{"not-an-ip", "10.0.0.0/33", "10.0.0.1,proxy.local"}
		case "list of host:port":
			bad = []string{"cache", "cache:port", "cache:0", ":6379", "cache:6379,cache", "cache:65536"}
		case "string":
			bad = invalidValues[v.Name]
		default: // an enum
			bad = []string{"bogus", strings.ToUpper(v.Enum[0]) + "X"}
		}
		if len(bad) == 0 {
			if _, listed := invalidValues[v.Name]; !listed && v.Name != "SERVER_HOST" && !freeText[v.Name] {
				t.Errorf("%s: no invalid values tested; add them to invalidValues or freeText", v.Name)
			}
			continue
		}
		for _, val := range bad {
			t.Run(v.Name+"="+val, func(t *testing.T) {
				_, err := config.Load(config.MapEnv(map[string]string{v.Name: val}))
				if err == nil {
					t.Fatalf("Load accepted %s=%q", v.Name, val)
				}
				if !strings.Contains(err.Error(), v.Name) {
					t.Errorf("error %q does not name %s", err, v.Name)
				}
				for _, e := range v.Enum {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("error %q does not list accepted value %q", err, e)
					}
				}
			})
		}
	}
}

// freeText variables accept any string.
var freeText = map[string]bool{
	"NODE_NAME": true, "DATABASE_HOST": true, "DATABASE_USER": true, "DATABASE_PASSWORD": true,
	"DATABASE_DBNAME": true, "REDIS_HOST": true, "REDIS_PASSWORD": true, "DATA_DIR": true,
	"REDIS_MASTER_NAME": true, "REDIS_SENTINEL_PASSWORD": true, "CLAUDE_OAUTH_CLIENT_ID": true,
	"OPENAI_OAUTH_CLIENT_ID": true, "GOOGLE_OAUTH_CLIENT_ID": true, "GOOGLE_OAUTH_CLIENT_SECRET": true,
}

func TestValidValuesParse(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"SERVER_PORT":          "0",
		"SERVER_MODE":          "debug",
		"REGISTRATION_ENABLED": "yes",
		"GATEWAY_WAIT_TIMEOUT": "90",
		"GATEWAY_STICKY_TTL":   "1h30m",
		"TRUSTED_PROXIES":      " 10.0.0.0/8, 127.0.0.1 ,::1,172.16.5.4/12",
		"TZ":                   "Asia/Shanghai",
		"ADMIN_PASSWORD":       "correct horse battery",
		"JWT_SECRET":           testSecret,
		"ENCRYPTION_KEY":       testKey,
	})
	if c.ServerPort != 0 || !c.RegistrationEnabled || c.Gateway.WaitTimeout != 90*time.Second || c.Gateway.StickyTTL != 90*time.Minute {
		t.Errorf("parsed %d %v %v %v", c.ServerPort, c.RegistrationEnabled, c.Gateway.WaitTimeout, c.Gateway.StickyTTL)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	if want := "10.0.0.0/8 127.0.0.1/32 ::1/128 172.16.0.0/12"; strings.Join(got, " ") != want {
		t.Errorf("TrustedProxies = %v, want %s", got, want)
	}
	if c.Location().String() != "Asia/Shanghai" {
		t.Errorf("Location = %v", c.Location())
	}
	if c.SlogLevel().String() != "DEBUG" {
		t.Errorf("debug mode without LOG_LEVEL: level %v, want DEBUG", c.SlogLevel())
	}
	if lvl := mustLoad(t, map[string]string{"SERVER_MODE": "debug", "LOG_LEVEL": "warn"}).SlogLevel(); lvl.String() != "WARN" {
		t.Errorf("LOG_LEVEL=warn gave %v", lvl)
	}
}

func TestEmptyEnvironmentValueIsUnset(t *testing.T) {
	c := mustLoad(t, map[string]string{"SERVER_PORT": "", "ADMIN_PASSWORD": "", "JWT_SECRET": ""})
	if c.ServerPort != 8080 || c.AdminPassword != "" || c.JWTSecret != "" {
		t.Errorf("empty values not treated as unset: port %d", c.ServerPort)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileAndEnvironmentPrecedence(t *testing.T) {
	jwtFile := writeFile(t, "jwt", "  file-jwt-secret-that-is-long-enough-xyz\n")
	cfgFile := writeFile(t, "fluxcode.yaml", `
server_port: 9000
log_format: json
log_level: warn
trusted_proxies:
  - 10.0.0.0/8
  - 192.168.1.1
jwt_secret_file: `+jwtFile+`
admin_email: ops@example.com
tz: ~
`)

	t.Run("file over default", func(t *testing.T) {
		c := mustLoad(t, map[string]string{"CONFIG_FILE": cfgFile})
		if c.ServerPort != 9000 || c.LogFormat != "json" || c.AdminEmail != "ops@example.com" || len(c.TrustedProxies) != 2 {
			t.Errorf("file values not applied: %d %q %q %v", c.ServerPort, c.LogFormat, c.AdminEmail, c.TrustedProxies)
		}
		if c.JWTSecret != "file-jwt-secret-that-is-long-enough-xyz" {
			t.Errorf("jwt_secret_file: got %q", c.JWTSecret)
		}
		if c.TZ != "" {
			t.Errorf("null tz gave %q", c.TZ)
		}
	})
	t.Run("environment over file", func(t *testing.T) {
		c := mustLoad(t, map[string]string{"CONFIG_FILE": cfgFile, "SERVER_PORT": "9100", "JWT_SECRET": testSecret, "LOG_FORMAT": ""})
		if c.ServerPort != 9100 || c.JWTSecret != testSecret {
			t.Errorf("env did not win: port %d", c.ServerPort)
		}
		if c.LogFormat != "json" {
			t.Errorf("empty env LOG_FORMAT hid the file's value: %q", c.LogFormat)
		}
		r := c.Redacted()
		if !strings.Contains(r, "SERVER_PORT=9100") || !strings.Contains(r, "# env") || !strings.Contains(r, "# config file") {
			t.Errorf("Redacted does not show sources:\n%s", r)
		}
	})
	t.Run("env _FILE over file value", func(t *testing.T) {
		pw := writeFile(t, "pw", "from-env-file-pw\n")
		c := mustLoad(t, map[string]string{"CONFIG_FILE": cfgFile, "ADMIN_PASSWORD_FILE": pw})
		if c.AdminPassword != "from-env-file-pw" {
			t.Errorf("ADMIN_PASSWORD_FILE: got %q", c.AdminPassword)
		}
	})
	t.Run("invalid file value names the variable and the file", func(t *testing.T) {
		bad := writeFile(t, "bad.yaml", "server_mode: fast\n")
		_, err := config.Load(config.MapEnv(map[string]string{"CONFIG_FILE": bad}))
		if err == nil || !strings.Contains(err.Error(), "SERVER_MODE") || !strings.Contains(err.Error(), "config file") {
			t.Errorf("err = %v", err)
		}
	})
	for name, content := range map[string]string{
		"unknown key":   "server_prot: 80\n",
		"nested map":    "server_port:\n  value: 80\n",
		"not a mapping": "- a\n- b\n",
		"both forms":    "jwt_secret: " + testSecret + "\njwt_secret_file: /x\n",
		"bad yaml":      "server_port: [\n",
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", content)
			if _, err := config.Load(config.MapEnv(map[string]string{"CONFIG_FILE": p})); err == nil {
				t.Errorf("Load accepted %q", content)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := config.Load(config.MapEnv(map[string]string{"CONFIG_FILE": "/nonexistent.yaml"}))
		if err == nil || !strings.Contains(err.Error(), "CONFIG_FILE") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("env NAME and NAME_FILE both set", func(t *testing.T) {
		_, err := config.Load(config.MapEnv(map[string]string{"JWT_SECRET": testSecret, "JWT_SECRET_FILE": jwtFile}))
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET_FILE") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("unreadable _FILE", func(t *testing.T) {
		_, err := config.Load(config.MapEnv(map[string]string{"REDIS_PASSWORD_FILE": "/nonexistent"}))
		if err == nil || !strings.Contains(err.Error(), "REDIS_PASSWORD_FILE") {
			t.Errorf("err = %v", err)
		}
	})
}

// wantRefused requires Load to refuse env with an error containing each of want.
func wantRefused(t *testing.T, env map[string]string, want ...string) {
	t.Helper()
	_, err := config.Load(config.MapEnv(env))
	if err == nil {
		t.Fatalf("Load accepted %v", env)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

func TestCrossFieldRules(t *testing.T) {
	with := func(changes map[string]string) map[string]string {
		env := clusterEnv()
		for k, v := range changes {
			if v == "-" {
				delete(env, k)
			} else {
				env[k] = v
			}
		}
		return env
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"cluster without redis":       {with(map[string]string{"REDIS_HOST": "-"}), []string{"REDIS_URL", "REDIS_HOST"}},
		"cluster without key":         {with(map[string]string{"ENCRYPTION_KEY": "-"}), []string{"ENCRYPTION_KEY"}},
		"database url and host":       {with(map[string]string{"DATABASE_URL": "postgres://u@h/db"}), []string{"DATABASE_URL", "DATABASE_HOST"}},
		"redis url and host":          {with(map[string]string{"REDIS_URL": "redis://h:6379"}), []string{"REDIS_URL", "REDIS_HOST"}},
		"idle above open":             {with(map[string]string{"DATABASE_MAX_OPEN_CONNS": "5", "DATABASE_MAX_IDLE_CONNS": "6"}), []string{"DATABASE_MAX_IDLE_CONNS"}},
		"redis idle above pool":       {with(map[string]string{"REDIS_POOL_SIZE": "2", "REDIS_MIN_IDLE_CONNS": "3"}), []string{"REDIS_MIN_IDLE_CONNS"}},
		"redis without postgres":      {map[string]string{"REDIS_HOST": "127.0.0.1"}, []string{"REDIS_HOST", "DATABASE_URL"}},
		"sentinel without postgres":   {map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "m"}, []string{"REDIS_SENTINEL_ADDRS", "DATABASE_URL"}},
		"pprof on every interface":    {map[string]string{"PPROF_ADDR": ":6060"}, []string{"PPROF_ADDR", "PPROF_ALLOW_REMOTE"}},
		"zero pool size":              {with(map[string]string{"DATABASE_MAX_OPEN_CONNS": "0"}), []string{"DATABASE_MAX_OPEN_CONNS"}},
		"several problems all listed": {map[string]string{"SERVER_PORT": "x", "LOG_LEVEL": "loud"}, []string{"SERVER_PORT", "LOG_LEVEL"}},
	} {
		t.Run(name, func(t *testing.T) { wantRefused(t, tc.env, tc.want...) })
	}

	c := mustLoad(t, clusterEnv())
	if !c.Cluster() || c.RedisAddr() != "10.0.0.10:6379" || c.RedisMode() != config.RedisStandalone {
		t.Errorf("cluster = %v, redis %q (%s)", c.Cluster(), c.RedisAddr(), c.RedisMode())
	}
}

// TestRedisDeployments: REDIS_URL, REDIS_HOST, Sentinel and Cluster are four ways to name
// Redis; exactly one may be configured, and each mode's own variables only with it.
func TestRedisDeployments(t *testing.T) {
	// withRedis is a cluster environment whose Redis is configured by redis alone.
	withRedis := func(redis map[string]string) map[string]string {
		env := clusterEnv()
		delete(env, "REDIS_HOST")
		delete(env, "REDIS_PASSWORD")
		for k, v := range redis {
			env[k] = v
		}
		return env
	}
	sentinel := map[string]string{"REDIS_SENTINEL_ADDRS": "10.0.0.1:26379, 10.0.0.2:26379,[fd00::3]:26379", "REDIS_MASTER_NAME": "fluxmaster"}

	t.Run("sentinel", func(t *testing.T) {
		env := withRedis(sentinel)
		env["REDIS_SENTINEL_PASSWORD"] = "sentinel-pass-WORD"
		env["REDIS_PASSWORD"] = "master-pass-WORD"
		env["REDIS_DB"] = "3"
		c := mustLoad(t, env)
		if c.RedisMode() != config.RedisSentinel || !c.RedisConfigured() || c.RedisAddr() != "" {
			t.Errorf("mode %q configured %v addr %q", c.RedisMode(), c.RedisConfigured(), c.RedisAddr())
		}
		if got := strings.Join(c.RedisSentinelAddrs, " "); got != "10.0.0.1:26379 10.0.0.2:26379 [fd00::3]:26379" {
			t.Errorf("sentinel addrs = %q", got)
		}
		if c.RedisMasterName != "fluxmaster" || c.RedisSentinelPassword != "sentinel-pass-WORD" || c.RedisDB != 3 {
			t.Errorf("master %q, sentinel password %q, db %d", c.RedisMasterName, c.RedisSentinelPassword, c.RedisDB)
		}
		r := c.Redacted()
		if strings.Contains(r, "sentinel-pass-WORD") || !strings.Contains(r, "REDIS_SENTINEL_PASSWORD=***") {
			t.Errorf("Redacted does not hide the sentinel password:\n%s", r)
		}
	})
	t.Run("sentinel from the config file, password from a file", func(t *testing.T) {
		pw := writeFile(t, "sentinel-pw", "file-sentinel-pw\n")
		f := writeFile(t, "c.yaml", "redis_sentinel_addrs:\n  - s1:26379\n  - s2:26379\nredis_master_name: m1\nredis_sentinel_password_file: "+pw+"\n")
		env := withRedis(map[string]string{"CONFIG_FILE": f})
		c := mustLoad(t, env)
		if strings.Join(c.RedisSentinelAddrs, ",") != "s1:26379,s2:26379" || c.RedisMasterName != "m1" || c.RedisSentinelPassword != "file-sentinel-pw" {
			t.Errorf("from file: %v %q %q", c.RedisSentinelAddrs, c.RedisMasterName, c.RedisSentinelPassword)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := mustLoad(t, withRedis(map[string]string{"REDIS_CLUSTER_ADDRS": "n1:7000,n2:7001", "REDIS_PASSWORD": "pw"}))
		if c.RedisMode() != config.RedisCluster || strings.Join(c.RedisClusterAddrs, ",") != "n1:7000,n2:7001" {
			t.Errorf("mode %q addrs %v", c.RedisMode(), c.RedisClusterAddrs)
		}
	})
	t.Run("url", func(t *testing.T) {
		if c := mustLoad(t, withRedis(map[string]string{"REDIS_URL": "redis://cache:6379/0"})); c.RedisMode() != config.RedisStandalone {
			t.Errorf("mode %q", c.RedisMode())
		}
	})
	if c := mustLoad(t, nil); c.RedisMode() != "" || c.RedisConfigured() {
		t.Errorf("single node: redis mode %q", c.RedisMode())
	}

	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return withRedis(out)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"none":                     {withRedis(nil), []string{"REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS"}},
		"host and sentinel":        {merge(sentinel, map[string]string{"REDIS_HOST": "cache"}), []string{"REDIS_HOST", "REDIS_SENTINEL_ADDRS", "one way only"}},
		"url and cluster":          {merge(map[string]string{"REDIS_URL": "redis://c:6379", "REDIS_CLUSTER_ADDRS": "n1:7000"}), []string{"REDIS_URL", "REDIS_CLUSTER_ADDRS"}},
		"sentinel and cluster":     {merge(sentinel, map[string]string{"REDIS_CLUSTER_ADDRS": "n1:7000"}), []string{"REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS"}},
		"sentinel without master":  {merge(map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379"}), []string{"REDIS_MASTER_NAME"}},
		"master without sentinel":  {merge(map[string]string{"REDIS_HOST": "cache", "REDIS_MASTER_NAME": "m"}), []string{"REDIS_MASTER_NAME", "REDIS_SENTINEL_ADDRS"}},
		"sentinel pw, no sentinel": {merge(map[string]string{"REDIS_CLUSTER_ADDRS": "n1:7000", "REDIS_SENTINEL_PASSWORD": "x"}), []string{"REDIS_SENTINEL_PASSWORD"}},
		"cluster with a database":  {merge(map[string]string{"REDIS_CLUSTER_ADDRS": "n1:7000", "REDIS_DB": "2"}), []string{"REDIS_DB", "database 0"}},
	} {
		t.Run("refused: "+name, func(t *testing.T) { wantRefused(t, tc.env, tc.want...) })
	}
}

// TestPprofAndMetricsSettings: the profiler listens on loopback unless explicitly allowed
// elsewhere; both are off (empty) by default.
func TestPprofAndMetricsSettings(t *testing.T) {
	c := mustLoad(t, nil)
	if c.PprofAddr != "" || c.PprofAllowRemote || c.MetricsToken != "" {
		t.Errorf("defaults: pprof %q remote %v metrics token %q", c.PprofAddr, c.PprofAllowRemote, c.MetricsToken)
	}
	for _, addr := range []string{"127.0.0.1:6060", "127.0.0.2:0", "[::1]:6060", "localhost:6060", "LOCALHOST:1"} {
		if c := mustLoad(t, map[string]string{"PPROF_ADDR": addr}); c.PprofAddr != addr {
			t.Errorf("PPROF_ADDR=%s gave %q", addr, c.PprofAddr)
		}
	}
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060"} {
		c := mustLoad(t, map[string]string{"PPROF_ADDR": addr, "PPROF_ALLOW_REMOTE": "true"})
		if c.PprofAddr != addr || !c.PprofAllowRemote {
			t.Errorf("allowed remote PPROF_ADDR=%s gave %q", addr, c.PprofAddr)
		}
	}
	c = mustLoad(t, map[string]string{"METRICS_TOKEN": "metrics-token-0123456789"})
	if c.MetricsToken != "metrics-token-0123456789" || strings.Contains(c.Redacted(), "metrics-token-0123456789") {
		t.Errorf("METRICS_TOKEN = %q; Redacted:\n%s", c.MetricsToken, c.Redacted())
	}
}

func TestPostgresDSNFromParts(t *testing.T) {
	env := clusterEnv()
	env["DATABASE_PASSWORD"] = "p@ss:w/rd?"
	env["DATABASE_USER"] = "flux"
	env["DATABASE_DBNAME"] = "prod"
	env["DATABASE_SSLMODE"] = "disable"
	c := mustLoad(t, env)
	u, err := url.Parse(c.PostgresDSN())
	if err != nil {
		t.Fatalf("DSN %q does not parse: %v", c.PostgresDSN(), err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "postgres" || u.Host != "10.0.0.10:5432" || u.Path != "/prod" || u.User.Username() != "flux" ||
		pw != "p@ss:w/rd?" || u.Query().Get("sslmode") != "disable" {
		t.Errorf("DSN = %q", c.PostgresDSN())
	}
	env = clusterEnv()
	delete(env, "DATABASE_HOST")
	env["DATABASE_URL"] = "postgresql://a:b@db:6543/x"
	if got := mustLoad(t, env).PostgresDSN(); got != env["DATABASE_URL"] {
		t.Errorf("DSN = %q, want DATABASE_URL", got)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	env := clusterEnv()
	delete(env, "DATABASE_HOST")
	delete(env, "REDIS_HOST")
	env["DATABASE_URL"] = "postgres://flux:url-pg-SECRET@db:5432/x?sslmode=disable"
	env["REDIS_URL"] = "redis://:url-redis-SECRET@cache:6379/0"
	env["JWT_SECRET"] = testSecret
	env["ADMIN_PASSWORD"] = "admin-pass-SECRET"
	c := mustLoad(t, env)
	r := c.Redacted()
	for _, s := range []string{"url-pg-SECRET", "url-redis-SECRET", "pg-pass-WORD", "redis-pass-WORD", testKey, testSecret, "admin-pass-SECRET"} {
		if strings.Contains(r, s) {
			t.Errorf("Redacted shows secret %q:\n%s", s, r)
		}
	}
	for _, s := range []string{"mode: cluster", "DATABASE_URL=postgres://flux:***@db:5432/x", "REDIS_URL=redis://:***@cache:6379/0", "JWT_SECRET=***", "ENCRYPTION_KEY=***", "DATABASE_PASSWORD=***"} {
		if !strings.Contains(r, s) {
			t.Errorf("Redacted lacks %q:\n%s", s, r)
		}
	}
	if !strings.Contains(mustLoad(t, nil).Redacted(), "JWT_SECRET= ") {
		t.Errorf("an unset secret should show empty")
	}
}

// TestTableCoversConfig checks that EnvNames and the Markdown table list every variable.
func TestTableCoversConfig(t *testing.T) {
	names := map[string]bool{}
	for _, n := range config.EnvNames() {
		if names[n] {
			t.Errorf("EnvNames lists %s twice", n)
		}
		names[n] = true
	}
	if !names["CONFIG_FILE"] {
		t.Error("EnvNames lacks CONFIG_FILE")
	}
	for _, v := range config.Vars() {
		if !names[v.Name] {
			t.Errorf("EnvNames lacks %s", v.Name)
		}
		if v.File && !names[v.Name+"_FILE"] {
			t.Errorf("EnvNames lacks %s_FILE", v.Name)
		}
		if v.Doc == "" {
			t.Errorf("%s has no doc", v.Name)
		}
	}
	for _, want := range []string{"SERVER_HOST", "SERVER_PORT", "SERVER_MODE", "DATABASE_HOST", "DATABASE_PORT",
		"DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_DBNAME", "DATABASE_SSLMODE", "DATABASE_MAX_OPEN_CONNS",
		"DATABASE_MAX_IDLE_CONNS", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_POOL_SIZE",
		"REDIS_MIN_IDLE_CONNS", "JWT_SECRET", "JWT_EXPIRE_HOUR", "ADMIN_EMAIL", "ADMIN_PASSWORD", "TZ", "LOG_FORMAT",
		"LOG_LEVEL", "DATABASE_URL", "REDIS_URL", "DATA_DIR", "ENCRYPTION_KEY", "CONFIG_FILE", "TRUSTED_PROXIES",
		"REGISTRATION_ENABLED", "PRICE_FILE", "NODE_NAME", "GATEWAY_STICKY_TTL", "GATEWAY_MAX_ACCOUNT_SWITCHES",
		"GATEWAY_WAIT_QUEUE_MAX", "GATEWAY_WAIT_TIMEOUT", "GATEWAY_SLOT_TTL", "GATEWAY_OVERLOAD_COOLDOWN",
		"GATEWAY_RATE_LIMIT_COOLDOWN", "UPSTREAM_CONNECT_TIMEOUT", "UPSTREAM_HEADER_TIMEOUT", "UPSTREAM_IDLE_TIMEOUT",
		"MAX_BODY_BYTES"} {
		if !names[want] {
			t.Errorf("EnvNames lacks agreed name %s", want)
		}
	}

	var md strings.Builder
	if err := config.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars() {
		if !strings.Contains(md.String(), "`"+v.Name+"`") {
			t.Errorf("markdown table lacks %s", v.Name)
		}
	}
}

func TestLoginProtectionSettings(t *testing.T) {
	c := mustLoad(t, nil)
	if c.LoginMaxFailuresPerEmail != 10 || c.LoginMaxFailuresPerAddress != 50 || c.LoginWindow != 15*time.Minute || c.PasswordHashConcurrency != 0 {
		t.Errorf("defaults = %d, %d, %s, %d; want 10, 50, 15m0s, 0 (automatic)",
			c.LoginMaxFailuresPerEmail, c.LoginMaxFailuresPerAddress, c.LoginWindow, c.PasswordHashConcurrency)
	}
	c = mustLoad(t, map[string]string{"LOGIN_MAX_FAILURES_PER_EMAIL": "3", "LOGIN_MAX_FAILURES_PER_ADDRESS": "200",
		"LOGIN_WINDOW": "1h", "PASSWORD_HASH_CONCURRENCY": "4"})
	if c.LoginMaxFailuresPerEmail != 3 || c.LoginMaxFailuresPerAddress != 200 || c.LoginWindow != time.Hour || c.PasswordHashConcurrency != 4 {
		t.Errorf("parsed = %d, %d, %s, %d; want 3, 200, 1h0m0s, 4",
			c.LoginMaxFailuresPerEmail, c.LoginMaxFailuresPerAddress, c.LoginWindow, c.PasswordHashConcurrency)
	}
	if c := mustLoad(t, map[string]string{"LOGIN_WINDOW": "24h"}); c.LoginWindow != 24*time.Hour {
		t.Errorf("LOGIN_WINDOW=24h parsed as %s", c.LoginWindow)
	}
	// A zero limit would lock every login out; a day-long lock lets anyone keep an owner out.
	wantRefused(t, map[string]string{"LOGIN_MAX_FAILURES_PER_EMAIL": "0"}, "LOGIN_MAX_FAILURES_PER_EMAIL", "from 1 to 1000")
	wantRefused(t, map[string]string{"LOGIN_MAX_FAILURES_PER_ADDRESS": "0"}, "LOGIN_MAX_FAILURES_PER_ADDRESS")
	wantRefused(t, map[string]string{"LOGIN_WINDOW": "25h"}, "LOGIN_WINDOW", "at most 24h")
	wantRefused(t, map[string]string{"PASSWORD_HASH_CONCURRENCY": "65"}, "PASSWORD_HASH_CONCURRENCY", "from 0 to 64")
}
