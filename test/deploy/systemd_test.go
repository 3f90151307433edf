package deploy

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// unitSettings reads a systemd unit as key → values (a key may repeat).
func unitSettings(t testing.TB, text string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not key=value", line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func TestSystemdUnitIsHardenedAndReadsItsEnvironmentFile(t *testing.T) {
	unit := unitSettings(t, readDeployFile(t, "fluxcode.service"))
	for k, want := range map[string]string{
		"ExecStart":       "/usr/local/bin/fluxcode serve",
		"User":            "fluxcode",
		"StateDirectory":  "fluxcode",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"ProtectHome":     "yes",
		"PrivateTmp":      "yes",
		"EnvironmentFile": "-/etc/fluxcode/fluxcode.env",
		"Restart":         "on-failure",
	} {
		if got := unit[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, want %q", k, got, want)
		}
	}
	if got := unit["CapabilityBoundingSet"]; len(got) != 1 || got[0] != "" {
		t.Errorf("CapabilityBoundingSet = %v, want empty (no capabilities)", got)
	}
	// DATA_DIR is the state directory systemd creates for the service user.
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	for _, e := range unit["Environment"] {
		name, value, _ := strings.Cut(e, "=")
		if !known[name] {
			t.Errorf("Environment=%s: FluxCode does not read %s", e, name)
		}
		if name == "DATA_DIR" && value != "/var/lib/"+unit["StateDirectory"][0] {
			t.Errorf("DATA_DIR=%s, want the StateDirectory /var/lib/%s", value, unit["StateDirectory"][0])
		}
	}
	// Stopping waits longer than FluxCode lets streams finish.
	defaults, err := config.Load(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(unit["TimeoutStopSec"][0])
	if err != nil || stop <= defaults.ShutdownTimeout {
		t.Errorf("TimeoutStopSec = %v, want more than SERVER_SHUTDOWN_TIMEOUT %v", unit["TimeoutStopSec"], defaults.ShutdownTimeout)
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testenv.RequireBinary(t, "systemd-analyze", "systemd")
	// The unit names /usr/local/bin/fluxcode; verify a copy naming the freshly built binary,
	// since systemd-analyze checks that ExecStart's program exists.
	text := strings.Replace(readDeployFile(t, "fluxcode.service"), "ExecStart=/usr/local/bin/fluxcode", "ExecStart="+fluxcodeBinary(t), 1)
	unit := writeTemp(t, "fluxcode.service", text)
	res := testenv.Run(t, analyze, testenv.ProcessOptions{Args: []string{"verify", unit}, InheritEnv: true})
	// Any output is a warning (an unknown key, a bad value): the unit must produce none.
	if res.ExitCode != 0 || len(strings.TrimSpace(res.Output)) > 0 {
		t.Errorf("systemd-analyze verify: exit %d\n%s", res.ExitCode, res.Output)
	}
}

func TestSystemdEnvExampleNamesOnlyFluxCodeVariables(t *testing.T) {
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	example := readExample(t, "fluxcode.env.example")
	if len(example) == 0 {
		t.Fatal("deploy/fluxcode.env.example sets nothing")
	}
	for name := range example {
		if !known[name] {
			t.Errorf("fluxcode.env.example sets %s, which FluxCode does not read", name)
		}
	}
	env := map[string]string{"DATA_DIR": "/var/lib/fluxcode"}
	for k, v := range example {
		env[k] = v
	}
	if _, err := config.Load(config.MapEnv(env)); err != nil {
		t.Errorf("the example does not load: %v", err)
	}
}
