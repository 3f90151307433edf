package cluster

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// buildFluxcode builds cmd/fluxcode (once per test binary).
func buildFluxcode(t *testing.T) string {
	return testenv.BuildBinary(t, "github.com/fluxcode/fluxcode/cmd/fluxcode")
}

// node is one `fluxcode serve` process on its own loopback address.
type node struct {
	*testenv.Process
	name string
	ip   string
	port int
	env  map[string]string
}

// newNode prepares (without starting) a node serving on ip:port with exactly env (plus PATH
// and HOME), working in dir. It is killed when t ends, its output logged on failure.
func newNode(t *testing.T, bin, name, ip string, port int, dir string, env map[string]string) *node {
	t.Helper()
	p := testenv.NewProcess(t, bin, testenv.ProcessOptions{
		Name: name, Args: []string{"serve"}, Dir: dir, Env: env,
		FailureLog: func(out string) string { return testenv.LastLines(notable(out), 40) },
	})
	return &node{Process: p, name: name, ip: ip, port: port, env: env}
}

func (n *node) addr() string { return net.JoinHostPort(n.ip, strconv.Itoa(n.port)) }
func (n *node) base() string { return "http://" + n.addr() }

// alive reports whether the process is still running.
func (n *node) alive() bool { return n.Running() }

// waitHealthy polls /health until it answers 200; it fails if the process exits first.
func (n *node) waitHealthy(t testing.TB) {
	t.Helper()
	n.WaitReady(t, testenv.HTTPReady(n.base()+"/health"))
}

// kill ends the process with SIGKILL, as a crash would, and waits for it to be gone.
func (n *node) kill(t testing.TB) { n.Kill(t) }

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
	return testenv.JSONLines[logRecord](t, n.Output())
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
