package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processBound bounds every wait on a node process (start, stop): far above a normal one,
// only there so a broken node fails the test instead of hanging it.
const processBound = 90 * time.Second

// buildFluxcode builds cmd/fluxcode once for the test into a temporary directory.
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

// node is one `fluxcode serve` process on its own loopback address.
type node struct {
	name string
	ip   string
	port int
	env  map[string]string

	cmd  *exec.Cmd
	out  *output
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// newNode prepares (without starting) a node serving on ip:port with exactly env (plus
// PATH and HOME), working in dir. It is killed when t ends, its output logged on failure.
func newNode(t *testing.T, bin, name, ip string, port int, dir string, env map[string]string) *node {
	t.Helper()
	n := &node{name: name, ip: ip, port: port, env: env, out: &output{}, done: make(chan struct{})}
	n.cmd = exec.Command(bin, "serve")
	n.cmd.Dir = dir
	n.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for _, k := range sortedKeys(env) {
		n.cmd.Env = append(n.cmd.Env, k+"="+env[k])
	}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	// Die with the test binary, whatever happens to it. (Pdeathsig follows the forking
	// thread; nothing in this package locks a goroutine to a thread, so none exits early.)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Cleanup(func() {
		if n.cmd.Process == nil {
			return
		}
		select {
		case <-n.done:
		default:
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("output of %s without its access log lines (last 40):\n%s", n.name, lastLines(notable(n.out.String()), 40))
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

func (n *node) addr() string { return net.JoinHostPort(n.ip, strconv.Itoa(n.port)) }
func (n *node) base() string { return "http://" + n.addr() }

// alive reports whether the process is still running.
func (n *node) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// waitHealthy polls /health until it answers 200; it fails if the process exits first.
func (n *node) waitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(processBound)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(n.base() + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.done:
			t.Fatalf("%s exited before it was healthy (%v):\n%s", n.name, n.err, lastLines(n.out.String(), 60))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %s (last error %v):\n%s", n.name, processBound, err, lastLines(n.out.String(), 60))
		}
	}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it to be gone.
func (n *node) kill(t testing.TB) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", n.name, err)
	}
	select {
	case <-n.done:
	case <-time.After(processBound):
		t.Fatalf("%s still running after SIGKILL", n.name)
	}
}

// logRecord is the part of a JSON log line the harness reads.
type logRecord struct {
	Msg     string `json:"msg"`
	Level   string `json:"level"`
	Path    string `json:"path"`
	Status  int    `json:"status"`
	Version string `json:"version"`
}

// logRecords parses the node's JSON log lines (other lines, like the password line, are
// skipped).
func (n *node) logRecords(t testing.TB) []logRecord {
	t.Helper()
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(n.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var rec logRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("%s log line %q: %v", n.name, line, err)
		}
		out = append(out, rec)
	}
	return out
}

// served counts the requests for path this node answered (its access log).
func (n *node) served(t testing.TB, path string) int {
	t.Helper()
	count := 0
	for _, r := range n.logRecords(t) {
		if r.Msg == "http request" && r.Path == path {
			count++
		}
	}
	return count
}

// notable drops the access log lines of answered requests from a node's output, leaving
// what a failure message needs: warnings, errors, 5xx answers, start and stop.
func notable(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		var r logRecord
		if json.Unmarshal([]byte(line), &r) == nil && r.Msg == "http request" && r.Status < 500 {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
