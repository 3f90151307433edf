// Package startup tests FluxCode as operators run it: the built binary, started from a fresh
// directory, alone on SQLite or three at once on one PostgreSQL and Redis.
package startup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startupBound bounds every wait for a node: far above a normal start, only there so a broken
// node fails the test instead of hanging it.
const startupBound = 90 * time.Second

// buildFluxcode builds cmd/fluxcode into a temporary directory and returns the binary's path.
func buildFluxcode(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "fluxcode")
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/fluxcode/fluxcode/cmd/fluxcode")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fluxcode: %v\n%s", err, out)
	}
	return bin
}

// output collects a process's stdout and stderr.
type output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// node is one fluxcode process.
type node struct {
	name string
	addr string // host:port it serves on
	cmd  *exec.Cmd
	out  *output
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// newNode prepares (without starting) `fluxcode serve` in dir with exactly env (plus PATH and
// HOME), serving on addr.
func newNode(t *testing.T, bin, name, dir, addr string, env map[string]string) *node {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	n := &node{name: name, addr: addr, cmd: cmd, out: &output{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.out, n.out
	// Die with the test binary, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Cleanup(func() {
		if n.cmd.Process == nil {
			return
		}
		select {
		case <-n.done:
		default:
			n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", n.name, n.out)
		}
	})
	return n
}

func (n *node) start() error {
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.done)
	}()
	return nil
}

func (n *node) base() string { return "http://" + n.addr }

// waitHealthy polls /health until it answers 200; it fails if the process exits first.
func (n *node) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(startupBound)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(n.base() + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-n.done:
			t.Fatalf("%s exited before it was healthy (%v):\n%s", n.name, n.err, n.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %s (last error %v):\n%s", n.name, startupBound, err, n.out)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal %s: %v", n.name, err)
	}
	select {
	case <-n.done:
	case <-time.After(startupBound):
		t.Fatalf("%s did not stop after SIGTERM", n.name)
	}
	if n.err != nil {
		t.Errorf("%s exited with %v after SIGTERM:\n%s", n.name, n.err, n.out)
	}
}

var passwordLine = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(app.AdminPasswordLine) + ` email=(\S+) password=(\S+)$`)

// passwordLines returns every generated-password line's (email, password).
func passwordLines(s string) [][2]string {
	var out [][2]string
	for _, m := range passwordLine.FindAllStringSubmatch(s, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// call sends a JSON request and returns the status and body.
func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// login signs in through the JSON API and returns the token.
func login(t *testing.T, base, email, password string) string {
	t.Helper()
	code, body := call(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password})
	if code != 200 {
		t.Fatalf("login at %s: %d %s", base, code, body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("login body %s: %v", body, err)
	}
	return tok.Token
}

// runCLI runs a fluxcode subcommand to completion and returns its exit code and output.
func runCLI(t *testing.T, bin string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startupBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("fluxcode %s: %v", strings.Join(args, " "), err)
	return -1, ""
}
