// Package console drives the web console in a real browser (Debian's chromium through
// playwright-core) against a real single-node server on SQLite and the mock Anthropic
// upstream: the scenario is web/e2e/console.mjs.
package console

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// repoRoot is two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireBrowserTools fails (never skips) when node, chromium or web/node_modules are
// missing, saying what to install. It returns node's path.
func requireBrowserTools(t *testing.T, root string) string {
	t.Helper()
	node := testenv.RequireBinary(t, "node", "nodejs")
	testenv.RequireBinary(t, "/usr/bin/chromium", "chromium")
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("web/node_modules/playwright-core is missing: run `npm ci` in web/ (apt-get install npm for npm itself)")
	}
	return node
}

var passwordLine = regexp.MustCompile(regexp.QuoteMeta(app.AdminPasswordLine) + ` email=(\S+) password=(\S+)`)

// TestConsoleInBrowser: the admin signs in with the generated password and must replace it,
// creates a group, an account on the mock upstream, a Claude login through the mock's
// OAuth server (a refused code is reported at its field) and a user with a balance; the user signs
// in (a Chinese-preferring browser gets Chinese), creates a key; a request through the
// gateway with that key shows on both dashboards with its cost; the language switch changes
// the text; a form error names the field in the API's words; an account is edited (a new
// base URL needs the key again); the user list filters on the server; the overview shows
// the error rate; deleting asks in the in-page dialog; the user enrols two-factor sign-in
// (the page's QR code decodes to the otpauth address) and signs in with a code; no CSP
// violation happens.
// With FLUXCODE_SCREENSHOTS=1 the screenshots go to docs/screenshots/, else to a temp dir.
func TestConsoleInBrowser(t *testing.T) {
	root := repoRoot(t)
	node := requireBrowserTools(t, root)
	// zbarimg decodes the QR code the two-factor page draws.
	zbar := testenv.RequireBinary(t, "zbarimg", "zbar-tools")

	mock := mockupstream.New(mockupstream.Options{})
	if err := mock.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mock.Close() })
	// Subscription answers report their usage windows, so the accounts page shows a Claude
	// login's windows with real figures once traffic went through it.
	if err := mock.SetDefaultScript(mockupstream.Script{Unified: &mockupstream.Unified{FiveHour: 0.42, SevenDay: 0.63}}); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Load(config.MapEnv(map[string]string{
		"SERVER_HOST": "127.0.0.1",
		"SERVER_PORT": "0",
		"DATA_DIR":    t.TempDir(),
		"LOG_LEVEL":   "warn",
		// The mock upstream listens on loopback, which the SSRF guard refuses by default.
		"UPSTREAM_ALLOWED_NETWORKS": "127.0.0.1/32",
		// Claude sign-ins go to the mock's OAuth server.
		"CLAUDE_OAUTH_AUTHORIZE_URL": mock.URL() + "/oauth/authorize",
		"CLAUDE_OAUTH_TOKEN_URL":     mock.URL() + "/v1/oauth/token",
		"CLAUDE_OAUTH_PROFILE_URL":   mock.URL() + "/api/oauth/profile",
		// And ChatGPT (Codex) sign-ins too.
		"OPENAI_OAUTH_AUTHORIZE_URL": mock.URL() + "/oauth/authorize",
		"OPENAI_OAUTH_TOKEN_URL":     mock.URL() + "/oauth/token",
		// And Gemini CLI (Google) sign-ins, with Code Assist's project discovery.
		"GOOGLE_OAUTH_AUTHORIZE_URL": mock.URL() + "/o/oauth2/v2/auth",
		"GOOGLE_OAUTH_TOKEN_URL":     mock.URL() + "/token",
		"GOOGLE_OAUTH_USERINFO_URL":  mock.URL() + "/oauth2/v2/userinfo",
		"GEMINI_CODE_ASSIST_URL":     mock.URL(),
	}))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	out := &testenv.Buffer{}
	m := app.New(cfg, out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	match := passwordLine.FindStringSubmatch(out.String())
	if match == nil {
		t.Fatalf("no generated admin password in the output:\n%s", out)
	}

	shots := t.TempDir()
	if os.Getenv("FLUXCODE_SCREENSHOTS") == "1" {
		shots = filepath.Join(root, "docs", "screenshots")
	}
	runCtx, stop := context.WithTimeout(context.Background(), 10*time.Minute)
	defer stop()
	cmd := exec.CommandContext(runCtx, node, filepath.Join(root, "web", "e2e", "console.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(),
		"BASE_URL=http://"+m.Addr(),
		"MOCK_URL="+mock.URL(),
		"ADMIN_EMAIL="+match[1],
		"ADMIN_PASSWORD="+match[2],
		"SCREENSHOTS="+shots,
		"CHROMIUM=/usr/bin/chromium",
		"ZBARIMG="+zbar,
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	err = cmd.Run()
	t.Logf("browser scenario:\n%s", logs.String())
	if err != nil {
		t.Fatalf("browser scenario failed: %v\nserver output:\n%s", err, out)
	}
}
