package deploy

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// The deploy docs must stay true: every file they name exists, every variable is one a
// compose file, an example or FluxCode reads (with a value FluxCode accepts), every
// docker compose command names a real file, env file and service, every fluxcode command
// exists, and every upstream line they show is one Caddy accepts.

var deployDocs = []string{"MULTI_HOST.md", "MULTI_HOST.en.md", "README.md"}

var (
	codeBlock = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	codeSpan  = regexp.MustCompile("`([^`\n]+)`")
	varName   = regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b`)
	assign    = regexp.MustCompile(`\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)=([^\s` + "`" + `，、（）)]*)`)
	fileName  = regexp.MustCompile(`(?:^|[\s/` + "`" + `])((?:docker-compose[\w.]*\.yml)|(?:\.env(?:\.\w+)?\.example)|Caddyfile\.multihost|Dockerfile|fluxcode\.service|fluxcode\.env\.example|MULTI_HOST(?:\.en)?\.md)`)
)

// docCode returns the commands of a doc's code blocks, one per line (continuations joined,
// comments dropped), and the text of its code spans.
func docCode(doc string) (lines []string, spans []string) {
	for _, m := range codeBlock.FindAllStringSubmatch(doc, -1) {
		block := strings.ReplaceAll(m[1], "\\\n", " ")
		for _, l := range strings.Split(block, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
	}
	for _, m := range codeSpan.FindAllStringSubmatch(doc, -1) {
		spans = append(spans, m[1])
	}
	return lines, spans
}

// knownVariables are the names a doc may show: FluxCode's, and those the compose files and
// example env files use.
func knownVariables(t testing.TB) map[string]bool {
	t.Helper()
	// CGO_ENABLED: the build of the binary the README shows. GO_IMAGE, RUNTIME_IMAGE and
	// BINARY_FROM: the Dockerfile's build arguments; DEBIAN_MIRROR and LOCAL_IMAGES_CACHE:
	// deploy/local-images.sh's settings.
	known := map[string]bool{"CGO_ENABLED": true}
	for _, arg := range regexp.MustCompile(`(?m)^ARG (\w+)=`).FindAllStringSubmatch(readDeployFile(t, "Dockerfile"), -1) {
		known[arg[1]] = true
	}
	for _, v := range regexp.MustCompile(`\$\{(\w+):-`).FindAllStringSubmatch(readDeployFile(t, "local-images.sh"), -1) {
		known[v[1]] = true
	}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	for _, cf := range composeFiles {
		for n := range composeVariables(t, cf.name) {
			known[n] = true
		}
		// And what the compose files set for their services' own programs (REDISCLI_AUTH).
		services, _ := rawCompose(t, cf.name)["services"].(map[string]any)
		for _, svc := range services {
			env, _ := svc.(map[string]any)["environment"].(map[string]any)
			for n := range env {
				known[n] = true
			}
		}
		for n := range readExample(t, cf.example) {
			known[n] = true
		}
	}
	return known
}

func TestDocsNameOnlyRealFilesAndVariables(t *testing.T) {
	known := knownVariables(t)
	fluxVars := map[string]bool{}
	for _, v := range config.Vars() {
		fluxVars[v.Name] = true
	}
	for _, name := range deployDocs {
		t.Run(name, func(t *testing.T) {
			doc := readDeployFile(t, name)
			for _, m := range fileName.FindAllStringSubmatch(doc, -1) {
				if _, err := os.Stat(deployPath(m[1])); err != nil {
					t.Errorf("names deploy/%s, which does not exist", m[1])
				}
			}
			lines, spans := docCode(doc)
			code := strings.Join(append(lines, spans...), "\n")
			for _, v := range varName.FindAllString(code, -1) {
				if !known[v] {
					t.Errorf("shows %s, which no compose file, example or FluxCode reads", v)
				}
			}
			// A value shown for a FluxCode variable is one FluxCode accepts.
			for _, m := range assign.FindAllStringSubmatch(code, -1) {
				v, val := m[1], m[2]
				if !fluxVars[v] || val == "" || strings.Contains(val, "...") {
					continue
				}
				if _, err := config.Load(config.MapEnv(map[string]string{v: val})); err != nil && strings.Contains(err.Error(), v+" (from") {
					t.Errorf("shows %s=%s, which FluxCode refuses: %v", v, val, err)
				}
			}
		})
	}
}

// composeCommand is one "docker compose ..." line of a doc.
type composeCommand struct {
	line, envFile, file, sub string
	args                     []string
}

func parseComposeCommand(line string) (composeCommand, bool) {
	fields := strings.Fields(line)
	if len(fields) < 3 || fields[0] != "docker" || fields[1] != "compose" {
		return composeCommand{}, false
	}
	c := composeCommand{line: line, file: "docker-compose.yml"}
	rest := fields[2:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		flag := rest[0]
		if len(rest) < 2 {
			break
		}
		switch flag {
		case "-f":
			c.file = rest[1]
		case "--env-file":
			c.envFile = rest[1]
		}
		rest = rest[2:]
	}
	if len(rest) > 0 {
		c.sub, c.args = rest[0], rest[1:]
	}
	return c, true
}

func TestDocsComposeCommandsWork(t *testing.T) {
	subcommands := []string{"up", "ps", "logs", "down", "exec", "restart", "build", "config"}
	checked := 0
	for _, name := range deployDocs {
		t.Run(name, func(t *testing.T) {
			lines, _ := docCode(readDeployFile(t, name))
			// Env files exist, or an earlier "cp" of the doc made them from one that does.
			made := map[string]bool{}
			for _, l := range lines {
				if f := strings.Fields(l); len(f) == 3 && f[0] == "cp" {
					if _, err := os.Stat(deployPath(f[1])); err != nil {
						t.Errorf("%q copies deploy/%s, which does not exist", l, f[1])
					}
					made[f[2]] = true
					continue
				}
				c, ok := parseComposeCommand(l)
				if !ok {
					continue
				}
				checked++
				if !slices.Contains(subcommands, c.sub) {
					t.Errorf("%q: unexpected subcommand %q", l, c.sub)
				}
				if _, err := os.Stat(deployPath(c.file)); err != nil {
					t.Errorf("%q: no deploy/%s", l, c.file)
					continue
				}
				if c.envFile != "" && !made[c.envFile] {
					t.Errorf("%q: %s is not made by an earlier cp in the doc", l, c.envFile)
				}
				services, _ := rawCompose(t, c.file)["services"].(map[string]any)
				for _, svc := range composeServiceArgs(c) {
					if _, ok := services[svc]; !ok {
						t.Errorf("%q: %s has no service %q (it has %v)", l, c.file, svc, slices.Sorted(maps.Keys(services)))
					}
				}
			}
		})
	}
	if checked < 30 {
		t.Errorf("found only %d docker compose commands in the docs; the parser no longer sees them", checked)
	}
}

// composeServiceArgs picks the service names out of a compose subcommand's arguments.
func composeServiceArgs(c composeCommand) []string {
	var out []string
	for i := 0; i < len(c.args); i++ {
		a := c.args[i]
		switch {
		case a == "|":
			return out
		case a == "--scale":
			i++
		case strings.HasPrefix(a, "-"):
		case c.sub == "exec":
			return append(out, a) // the rest is the command run in the container
		default:
			out = append(out, a)
		}
	}
	return out
}

func TestDocsFluxcodeCommandsExist(t *testing.T) {
	res := testenv.Run(t, fluxcodeBinary(t), testenv.ProcessOptions{Args: []string{"help"}, InheritEnv: true})
	if res.ExitCode != 0 {
		t.Fatalf("fluxcode help: exit %d\n%s", res.ExitCode, res.Output)
	}
	help := strings.ReplaceAll(res.Output, "fluxcode [serve]", "fluxcode serve") // the default command
	invocation := regexp.MustCompile(`(?:^|[\s/])fluxcode ((?:[a-z][\w-]*)(?: [a-z][\w-]*)?)((?: --?[a-z][\w-]*(?: [^\s'"|]+)?)*)`)
	flag := regexp.MustCompile(`--?[a-z][\w-]*`)
	checked := 0
	for _, name := range deployDocs {
		t.Run(name, func(t *testing.T) {
			lines, spans := docCode(readDeployFile(t, name))
			for _, l := range append(lines, spans...) {
				if strings.HasPrefix(l, "docker compose") && !strings.Contains(l, " exec ") {
					continue // the compose service "fluxcode", not the binary
				}
				for _, m := range invocation.FindAllStringSubmatch(l, -1) {
					words := strings.Fields(m[1])
					cmd := "fluxcode " + words[0]
					if words[0] == "admin" || words[0] == "config" {
						cmd = "fluxcode " + m[1]
					}
					checked++
					if !strings.Contains(help, cmd+" ") && !strings.Contains(help, cmd+"\n") {
						t.Errorf("%q: %q is not a fluxcode command (see fluxcode help)", l, cmd)
					}
					for _, f := range flag.FindAllString(m[2], -1) {
						if !strings.Contains(help, f+" ") {
							t.Errorf("%q: fluxcode has no flag %s", l, f)
						}
					}
				}
			}
		})
	}
	if checked < 10 {
		t.Errorf("found only %d fluxcode commands in the docs; the pattern no longer matches them", checked)
	}
}

func TestDocsUpstreamLinesAdapt(t *testing.T) {
	line := regexp.MustCompile(`(?m)^FLUXCODE_UPSTREAMS=(.+)$`)
	seen := 0
	for _, name := range append(deployDocs, ".env.app.example") {
		for _, m := range line.FindAllStringSubmatch(readDeployFile(t, name), -1) {
			seen++
			value := strings.TrimSpace(m[1])
			cfg, err := adapt(t, map[string]string{"FLUXCODE_UPSTREAMS": value})
			if err != nil {
				t.Errorf("%s: FLUXCODE_UPSTREAMS=%s does not adapt: %v", name, value, err)
				continue
			}
			want := strings.Fields(strings.TrimPrefix(value, "to "))
			if got := dials(findHandler(cfg, "reverse_proxy")); !slices.Equal(got, want) {
				t.Errorf("%s: FLUXCODE_UPSTREAMS=%s gives upstreams %v, want %v", name, value, got, want)
			}
		}
	}
	if seen == 0 {
		t.Fatal("the docs show no FLUXCODE_UPSTREAMS line")
	}
}

func TestDocsConfigCheckLineWorks(t *testing.T) {
	// README's systemd check, run against the example env file instead of /etc.
	bin := fluxcodeBinary(t)
	want := "sudo sh -c 'set -a; . /etc/fluxcode/fluxcode.env; DATA_DIR=/var/lib/fluxcode /usr/local/bin/fluxcode config check'"
	if !strings.Contains(readDeployFile(t, "README.md"), want) {
		t.Fatalf("README.md no longer shows %s", want)
	}
	script := strings.NewReplacer(
		"/etc/fluxcode/fluxcode.env", deployPath("fluxcode.env.example"),
		"/var/lib/fluxcode", t.TempDir(),
		"/usr/local/bin/fluxcode", bin,
	).Replace(strings.TrimSuffix(strings.TrimPrefix(want, "sudo sh -c '"), "'"))
	res := testenv.Run(t, "/bin/sh", testenv.ProcessOptions{Args: []string{"-c", script}, Env: map[string]string{"PATH": "/usr/bin:/bin"}})
	if res.ExitCode != 0 || !strings.Contains(res.Output, "configuration is valid") {
		t.Errorf("sh -c %q: exit %d\n%s", script, res.ExitCode, res.Output)
	}
}
