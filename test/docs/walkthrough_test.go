package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// walkthroughBound is how long the whole walkthrough may take before it counts as hung.
const walkthroughBound = 3 * time.Minute

// TestReadmeWalkthrough runs the README's curl walkthrough as written: every shell block
// between the walkthrough markers, in order, in one bash with -e and pipefail, in a fresh
// directory holding the freshly built fluxcode and mockupstream binaries, on free loopback
// ports. It then checks what the walkthrough printed: the account test, the relayed answer,
// the ledger row, the balance it left and the account's figures.
func TestReadmeWalkthrough(t *testing.T) {
	bash := testenv.RequireBinary(t, "bash", "bash")
	testenv.RequireBinary(t, "curl", "curl")
	testenv.RequireBinary(t, "jq", "jq")
	script := walkthroughScript(t, readFile(t, "../../README.md"))

	dir := t.TempDir()
	for name, pkg := range map[string]string{"fluxcode": "github.com/fluxcode/fluxcode/cmd/fluxcode",
		"mockupstream": "github.com/fluxcode/fluxcode/cmd/mockupstream"} {
		b, err := os.ReadFile(testenv.BuildBinary(t, pkg))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"PORT": strconv.Itoa(testenv.FreePort(t)), "MOCK_PORT": strconv.Itoa(testenv.FreePort(t))}
	// The script's own process group holds the servers it starts in the background, so the
	// end of the test kills them even when the script fails before its last line.
	p := testenv.NewProcess(t, bash, testenv.ProcessOptions{Name: "walkthrough",
		Args: []string{"-euo", "pipefail", "-c", script}, Dir: dir, Env: env})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(walkthroughBound):
		t.Fatalf("the walkthrough still runs after %s; it printed:\n%s", walkthroughBound, p.Output())
	}
	out := p.Output()
	if p.Err() != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "fluxcode.log"))
		t.Fatalf("the walkthrough failed (%v); it printed:\n%s\nfluxcode.log:\n%s", p.Err(), out, testenv.LastLines(string(log), 40))
	}
	t.Logf("the walkthrough printed:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"ok": true,\s*"status_code": 200`),                   // the account test
		regexp.MustCompile(`"model": "claude-haiku-4-5",\s*"reply": "[^"]+"`),    // the relayed answer
		regexp.MustCompile(`"total": 1,\s*"first": \{\s*"model": "claude-haiku`), // the ledger row
		regexp.MustCompile(`"4\.9\d+"`),                                          // the balance after
		regexp.MustCompile(`"requests": 1,`),                                     // the account's figures
		regexp.MustCompile(`"isValid": true`),                                    // GET /v1/usage
	} {
		if !want.MatchString(out) {
			t.Errorf("the walkthrough's output does not show %s:\n%s", want, out)
		}
	}
}

var shellBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// walkthroughScript joins the shell blocks between the README's walkthrough markers.
func walkthroughScript(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- walkthrough:begin -->")
	if !ok {
		t.Fatal("README has no walkthrough:begin marker")
	}
	section, _, ok := strings.Cut(rest, "<!-- walkthrough:end -->")
	if !ok {
		t.Fatal("README has no walkthrough:end marker")
	}
	var blocks []string
	for _, m := range shellBlock.FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) < 5 {
		t.Fatalf("the walkthrough has %d shell blocks; want the whole path from start to usage", len(blocks))
	}
	return strings.Join(blocks, "\n")
}
