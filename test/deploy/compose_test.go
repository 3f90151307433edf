package deploy

import (
	"context"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/fluxcode/fluxcode/internal/config"
)

// composeFile pairs a compose file with the example env file an operator copies to .env.
type composeFile struct {
	name    string // docker-compose.app.yml
	example string // .env.app.example
	cluster bool   // FluxCode runs on PostgreSQL + Redis here
	// secrets must be given by the operator: ${VAR:?message} in the file, empty in the example.
	secrets []string
}

var composeFiles = []composeFile{
	{name: "docker-compose.yml", example: ".env.example"},
	{name: "docker-compose.infra.yml", example: ".env.infra.example",
		secrets: []string{"POSTGRES_PASSWORD", "REDIS_PASSWORD"}},
	{name: "docker-compose.app.yml", example: ".env.app.example", cluster: true,
		secrets: []string{"POSTGRES_PASSWORD", "REDIS_PASSWORD", "ENCRYPTION_KEY", "JWT_SECRET", "ADMIN_PASSWORD"}},
	{name: "docker-compose.node.yml", example: ".env.node.example", cluster: true,
		secrets: []string{"POSTGRES_PASSWORD", "REDIS_PASSWORD", "ENCRYPTION_KEY", "JWT_SECRET", "ADMIN_PASSWORD"}},
}

// filledSecrets are what an operator would generate for each secret (valid for FluxCode's
// own checks: a 64-hex ENCRYPTION_KEY, a JWT secret of 32+ characters, an 8+ character
// admin password).
var filledSecrets = map[string]string{
	"POSTGRES_PASSWORD": "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c",
	"REDIS_PASSWORD":    "3e5a7c9b1d3f5e7a9c9f2c4e6a8b0d1f",
	"ENCRYPTION_KEY":    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	"JWT_SECRET":        "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
	"ADMIN_PASSWORD":    "correct-horse-battery-staple",
}

// readExample parses an example env file the way docker compose reads .env.
func readExample(t testing.TB, name string) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{deployPath(name)})
	if err != nil {
		t.Fatalf("parse deploy/%s: %v", name, err)
	}
	return env
}

// filledExample is the example env with its empty secrets filled in, as an operator
// leaves it after following the comments.
func filledExample(t testing.TB, cf composeFile) map[string]string {
	t.Helper()
	env := readExample(t, cf.example)
	for _, name := range cf.secrets {
		env[name] = filledSecrets[name]
	}
	return env
}

func loadCompose(t testing.TB, file string, env map[string]string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  deployDir,
		ConfigFiles: []types.ConfigFile{{Filename: deployPath(file)}},
		Environment: env,
	})
}

func mustLoadCompose(t testing.TB, file string, env map[string]string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, file, env)
	if err != nil {
		t.Fatalf("load deploy/%s: %v", file, err)
	}
	return p
}

// rawCompose is the compose file as YAML, before interpolation.
func rawCompose(t testing.TB, file string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(readDeployFile(t, file)), &m); err != nil {
		t.Fatalf("parse deploy/%s: %v", file, err)
	}
	return m
}

// composeVariables lists the variables a compose file interpolates.
func composeVariables(t testing.TB, file string) map[string]template.Variable {
	t.Helper()
	return template.ExtractVariables(rawCompose(t, file), template.DefaultPattern)
}

func serviceEnv(t testing.TB, p *types.Project, service string) map[string]string {
	t.Helper()
	svc, ok := p.Services[service]
	if !ok {
		t.Fatalf("%s: no service %q", p.Name, service)
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

func TestComposeFilesLoadWithTheirExamples(t *testing.T) {
	known := map[string]bool{}
	for _, name := range config.EnvNames() {
		known[name] = true
	}
	for _, cf := range composeFiles {
		t.Run(cf.name, func(t *testing.T) {
			p := mustLoadCompose(t, cf.name, filledExample(t, cf))

			for name, svc := range p.Services {
				hc := svc.HealthCheck
				if hc == nil || hc.Disable || len(hc.Test) == 0 {
					t.Errorf("service %s has no health check", name)
				}
				if svc.Restart != "unless-stopped" {
					t.Errorf("service %s: restart = %q, want unless-stopped", name, svc.Restart)
				}
			}

			svc, ok := p.Services["fluxcode"]
			if !ok {
				return // the state host runs no FluxCode
			}
			env := serviceEnv(t, p, "fluxcode")
			for name := range env {
				if !known[name] {
					t.Errorf("fluxcode sets %s, which FluxCode does not read (config.EnvNames)", name)
				}
			}
			// The binary must accept the environment the compose file hands it.
			cfg, err := config.Load(config.MapEnv(env))
			if err != nil {
				t.Fatalf("config.Load of the fluxcode environment: %v", err)
			}
			if cfg.Cluster() != cf.cluster {
				t.Errorf("mode = %s, want cluster=%v", cfg.Mode(), cf.cluster)
			}
			if cfg.ServerPort != 8080 || cfg.DataDir != "/data" {
				t.Errorf("SERVER_PORT=%d DATA_DIR=%q, want 8080 and /data (the image's EXPOSE and VOLUME)", cfg.ServerPort, cfg.DataDir)
			}
			if got := strings.Join(svc.HealthCheck.Test, " "); !strings.Contains(got, "fluxcode health") {
				t.Errorf("fluxcode health check = %q, want it to run fluxcode health", got)
			}
		})
	}
}

func TestComposeClusterNodesShareTheStateHostSettings(t *testing.T) {
	for _, cf := range composeFiles {
		if !cf.cluster {
			continue
		}
		t.Run(cf.name, func(t *testing.T) {
			example := filledExample(t, cf)
			cfg := fluxcodeConfig(t, mustLoadCompose(t, cf.name, example))
			// The state host's variable names (POSTGRES_*) reach FluxCode's (DATABASE_*).
			want := map[string][2]string{
				"database host":     {cfg.DatabaseHost, example["DATABASE_HOST"]},
				"database user":     {cfg.DatabaseUser, example["POSTGRES_USER"]},
				"database password": {cfg.DatabasePassword, example["POSTGRES_PASSWORD"]},
				"database name":     {cfg.DatabaseName, example["POSTGRES_DB"]},
				"redis host":        {cfg.RedisHost, example["REDIS_HOST"]},
				"redis password":    {cfg.RedisPassword, example["REDIS_PASSWORD"]},
				"encryption key":    {cfg.EncryptionKey, example["ENCRYPTION_KEY"]},
				"jwt secret":        {cfg.JWTSecret, example["JWT_SECRET"]},
				"admin password":    {cfg.AdminPassword, example["ADMIN_PASSWORD"]},
			}
			for what, gw := range want {
				if gw[0] != gw[1] || gw[0] == "" {
					t.Errorf("%s = %q, want %q from the example", what, gw[0], gw[1])
				}
			}
			if cfg.DatabaseMaxOpenConns != 10 {
				t.Errorf("DATABASE_MAX_OPEN_CONNS = %d, want the example's 2C/2G value 10", cfg.DatabaseMaxOpenConns)
			}
		})
	}
}

func TestComposeAppAndNodeRunTheSameFluxCode(t *testing.T) {
	// The two files repeat the FluxCode service; a drift between them would make nodes
	// differ. Messages of ${VAR:?message} may differ, and so may the trusted proxy.
	app := fluxcodeService(t, "docker-compose.app.yml")
	node := fluxcodeService(t, "docker-compose.node.yml")
	message := regexp.MustCompile(`:\?[^}]*}`)
	appEnv, nodeEnv := app["environment"].(map[string]any), node["environment"].(map[string]any)
	keys := slices.Sorted(maps.Keys(appEnv))
	if nk := slices.Sorted(maps.Keys(nodeEnv)); !slices.Equal(keys, nk) {
		t.Fatalf("environment keys differ:\napp:  %v\nnode: %v", keys, nk)
	}
	for _, k := range keys {
		if k == "TRUSTED_PROXIES" {
			continue
		}
		a := message.ReplaceAllString(asString(appEnv[k]), ":?}")
		n := message.ReplaceAllString(asString(nodeEnv[k]), ":?}")
		if a != n {
			t.Errorf("%s: app %q, node %q", k, a, n)
		}
	}
	for _, k := range []string{"image", "build", "healthcheck", "stop_grace_period", "volumes", "restart", "extra_hosts", "ulimits"} {
		if a, n := yamlString(t, app[k]), yamlString(t, node[k]); a != n {
			t.Errorf("%s differs:\napp:\n%s\nnode:\n%s", k, a, n)
		}
	}
}

func fluxcodeService(t testing.TB, file string) map[string]any {
	t.Helper()
	services, _ := rawCompose(t, file)["services"].(map[string]any)
	svc, ok := services["fluxcode"].(map[string]any)
	if !ok {
		t.Fatalf("deploy/%s has no fluxcode service", file)
	}
	return svc
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

func yamlString(t testing.TB, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestComposeSecretsAreRequiredWithAMessage(t *testing.T) {
	for _, cf := range composeFiles {
		t.Run(cf.name, func(t *testing.T) {
			raw := readDeployFile(t, cf.name)
			vars := composeVariables(t, cf.name)
			example := readExample(t, cf.example)
			for _, name := range cf.secrets {
				v, ok := vars[name]
				if !ok {
					t.Errorf("%s is not used", name)
					continue
				}
				if !v.Required {
					t.Errorf("%s is not required: use ${%s:?message}", name, name)
				}
				// Every use carries the form ${NAME:?message} with a message that says what to do.
				// (Only this variable: ${NAME_OTHER} is another one.)
				uses := regexp.MustCompile(`\$\{`+name+`([^A-Za-z0-9_}][^}]*)?\}`).FindAllStringSubmatch(raw, -1)
				for _, u := range uses {
					if !strings.HasPrefix(u[1], ":?") || len(strings.TrimSpace(u[1][2:])) < 10 {
						t.Errorf("${%s%s}: want ${%s:?<what to set>}", name, u[1], name)
					}
				}
				// The example leaves it empty: a copied example never runs with a known secret.
				if val, ok := example[name]; !ok || val != "" {
					t.Errorf("%s: %s=%q, want it present and empty", cf.example, name, val)
				}
			}
			// No other secret-looking variable gets a default value baked into the file.
			for name, v := range vars {
				if looksSecret(name) && v.DefaultValue != "" {
					t.Errorf("%s has a default value in %s; secrets must come from .env", name, cf.name)
				}
			}
		})
	}
}

func looksSecret(name string) bool {
	for _, s := range []string{"PASSWORD", "SECRET", "KEY"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

func TestComposeMissingSecretFailsWithItsMessage(t *testing.T) {
	for _, cf := range composeFiles {
		t.Run(cf.name, func(t *testing.T) {
			if len(cf.secrets) == 0 {
				// Single host: the example as it is must be enough.
				mustLoadCompose(t, cf.name, readExample(t, cf.example))
				return
			}
			// The example as copied, secrets still empty: compose refuses.
			if _, err := loadCompose(t, cf.name, readExample(t, cf.example)); err == nil {
				t.Errorf("loading with the unfilled example succeeded; want a required-variable error")
			}
			for _, name := range cf.secrets {
				for _, how := range []string{"unset", "empty"} {
					env := filledExample(t, cf)
					if how == "unset" {
						delete(env, name)
					} else {
						env[name] = ""
					}
					_, err := loadCompose(t, cf.name, env)
					if err == nil {
						t.Errorf("%s %s: load succeeded, want an error", name, how)
						continue
					}
					if want := name + " is required"; !strings.Contains(err.Error(), want) {
						t.Errorf("%s %s: error %q does not say %q", name, how, err, want)
					}
				}
			}
		})
	}
}

func TestComposeExamplesMatchTheirFiles(t *testing.T) {
	for _, cf := range composeFiles {
		t.Run(cf.name, func(t *testing.T) {
			vars := composeVariables(t, cf.name)
			example := readExample(t, cf.example)
			var missing, unused []string
			for name := range vars {
				if _, ok := example[name]; !ok {
					missing = append(missing, name)
				}
			}
			for name := range example {
				if _, ok := vars[name]; !ok {
					unused = append(unused, name)
				}
			}
			sort.Strings(missing)
			sort.Strings(unused)
			// Every variable the file reads is listed (with its default) in the example, so
			// the example is the complete list of settings; nothing in it is dead.
			if len(missing) > 0 {
				t.Errorf("%s lacks variables %s uses: %v", cf.example, cf.name, missing)
			}
			if len(unused) > 0 {
				t.Errorf("%s defines variables %s never reads: %v", cf.example, cf.name, unused)
			}
			for name, v := range vars {
				if v.Required {
					if val, ok := example[name]; !ok {
						t.Errorf("%s: required %s is not defined", cf.example, name)
					} else if val == "" && !slices.Contains(cf.secrets, name) {
						t.Errorf("%s: required %s is empty and is not a secret the operator generates", cf.example, name)
					}
				}
			}
		})
	}
}

func TestComposeInfraPublishesOnTheBindHosts(t *testing.T) {
	cf := composeFiles[1]
	env := filledExample(t, cf)
	env["POSTGRES_BIND_HOST"], env["POSTGRES_EXPOSE_PORT"] = "10.0.0.10", "15432"
	env["REDIS_BIND_HOST"], env["REDIS_EXPOSE_PORT"] = "10.0.0.10", "16379"
	p := mustLoadCompose(t, cf.name, env)

	wantPort(t, p, "postgres", "10.0.0.10", "15432", 5432)
	wantPort(t, p, "redis", "10.0.0.10", "16379", 6379)

	pg := p.Services["postgres"]
	if got := strings.Join(pg.HealthCheck.Test, " "); !strings.Contains(got, "pg_isready") {
		t.Errorf("postgres health check %q does not use pg_isready", got)
	}
	redis := p.Services["redis"]
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--requirepass " + env["REDIS_PASSWORD"], "--appendonly yes"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	if got := strings.Join(redis.HealthCheck.Test, " "); strings.Contains(got, env["REDIS_PASSWORD"]) {
		t.Errorf("redis health check puts the password on its command line: %q", got)
	}
	if v := pg.Environment["POSTGRES_PASSWORD"]; v == nil || *v != env["POSTGRES_PASSWORD"] {
		t.Errorf("postgres does not get POSTGRES_PASSWORD from .env")
	}
}

func TestComposeAppPublishesOnlyCaddy(t *testing.T) {
	cf := composeFiles[2]
	env := filledExample(t, cf)
	env["HTTP_PORT"], env["HTTPS_PORT"] = "8080", "8443"
	p := mustLoadCompose(t, cf.name, env)

	wantPort(t, p, "caddy", "", "8080", 80)
	wantPort(t, p, "caddy", "", "8443", 443)
	if ports := p.Services["fluxcode"].Ports; len(ports) != 0 {
		t.Errorf("fluxcode publishes %v; only Caddy may reach it", ports)
	}
	caddy := p.Services["caddy"]
	if dep, ok := caddy.DependsOn["fluxcode"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("caddy does not wait for a healthy fluxcode: %+v", caddy.DependsOn)
	}
	mounted := false
	for _, v := range caddy.Volumes {
		if v.Target == "/etc/caddy/Caddyfile" && strings.HasSuffix(v.Source, "Caddyfile.multihost") && v.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("caddy does not mount Caddyfile.multihost read-only at /etc/caddy/Caddyfile: %+v", caddy.Volumes)
	}

	// Unset in .env, the Caddy settings fall back to the documented defaults; an empty
	// CADDY_ADDRESS must not reach Caddy as "" (that would drop the site address).
	caddyEnv := serviceEnv(t, p, "caddy")
	for k, want := range map[string]string{
		"CADDY_ADDRESS": ":80", "FLUXCODE_UPSTREAMS": "dynamic a fluxcode 8080", "CADDY_STICKY_COOKIE": "on",
	} {
		if caddyEnv[k] != want {
			t.Errorf("caddy %s = %q with the example, want %q", k, caddyEnv[k], want)
		}
	}

	// FluxCode believes X-Forwarded-For exactly from the compose network Caddy is on.
	net, ok := p.Networks["default"]
	if !ok || len(net.Ipam.Config) != 1 {
		t.Fatalf("the default network has no fixed subnet: %+v", p.Networks)
	}
	subnet, err := netip.ParsePrefix(net.Ipam.Config[0].Subnet)
	if err != nil {
		t.Fatalf("subnet: %v", err)
	}
	cfg := fluxcodeConfig(t, p)
	if len(cfg.TrustedProxies) != 1 || cfg.TrustedProxies[0] != subnet {
		t.Errorf("TRUSTED_PROXIES = %v, want the compose network %v", cfg.TrustedProxies, subnet)
	}
}

func TestComposeNodePublishesOnNodeBindHost(t *testing.T) {
	cf := composeFiles[3]
	env := filledExample(t, cf)
	env["NODE_BIND_HOST"], env["NODE_PORT"] = "10.0.0.12", "8081"
	p := mustLoadCompose(t, cf.name, env)
	wantPort(t, p, "fluxcode", "10.0.0.12", "8081", 8080)

	cfg := fluxcodeConfig(t, p)
	want := netip.MustParsePrefix(env["TRUSTED_PROXIES"] + "/32")
	if len(cfg.TrustedProxies) != 1 || cfg.TrustedProxies[0] != want {
		t.Errorf("TRUSTED_PROXIES = %v, want the entry host %v", cfg.TrustedProxies, want)
	}
}

// fluxcodeConfig is the configuration FluxCode reads from the environment the compose
// project gives its fluxcode service.
func fluxcodeConfig(t testing.TB, p *types.Project) config.Config {
	t.Helper()
	cfg, err := config.Load(config.MapEnv(serviceEnv(t, p, "fluxcode")))
	if err != nil {
		t.Fatalf("config.Load of the fluxcode environment of %s: %v", p.Name, err)
	}
	return cfg
}

func wantPort(t testing.TB, p *types.Project, service, hostIP, published string, target uint32) {
	t.Helper()
	for _, port := range p.Services[service].Ports {
		if port.Target == target && port.Protocol == "tcp" {
			if port.HostIP != hostIP || port.Published != published {
				t.Errorf("%s publishes %s:%s->%d, want %s:%s", service, port.HostIP, port.Published, target, hostIP, published)
			}
			return
		}
	}
	t.Errorf("%s does not publish port %d/tcp", service, target)
}
