// Package docs keeps the README true to the code: its configuration table is the one the
// binary prints, and its test command is the one CI runs.
package docs

import (
	"os"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/config"
)

const (
	runCommand  = "go run ./cmd/fluxcode"
	testCommand = "go test -count=1 -timeout 80m ./..."
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func TestReadmeConfigTableIsCurrent(t *testing.T) {
	readme := readFile(t, "../../README.md")
	_, rest, ok := strings.Cut(readme, "<!-- config-table:begin")
	if !ok {
		t.Fatal("README has no config-table:begin marker")
	}
	_, rest, _ = strings.Cut(rest, "-->\n")
	table, _, ok := strings.Cut(rest, "<!-- config-table:end -->")
	if !ok {
		t.Fatal("README has no config-table:end marker")
	}
	var want strings.Builder
	if err := config.WriteMarkdown(&want); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(table) != strings.TrimSpace(want.String()) {
		t.Errorf("README configuration table is stale; regenerate it with `go run ./cmd/fluxcode config vars`.\ngot:\n%s\nwant:\n%s", table, want.String())
	}
	for _, name := range config.EnvNames() {
		if !strings.Contains(table, "`"+name+"`") && !strings.HasSuffix(name, "_FILE") {
			t.Errorf("README table does not mention %s", name)
		}
	}
}

func TestReadmeCommandsAreWhatCIRuns(t *testing.T) {
	readme := readFile(t, "../../README.md")
	for _, cmd := range []string{runCommand, testCommand} {
		if !strings.Contains(readme, "\n"+cmd+"\n") {
			t.Errorf("README does not show the command %q on a line of its own", cmd)
		}
	}
	ci := readFile(t, "../../.ci/run")
	lines := strings.Split(strings.TrimSpace(ci), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != testCommand {
		t.Errorf(".ci/run ends with %q, want the README's test command %q", last, testCommand)
	}
}
