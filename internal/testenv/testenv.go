// Package testenv starts the real servers FluxCode's tests run against —
// PostgreSQL, Redis and Caddy — as child processes on free loopback ports,
// and runs the programs under test: BuildBinary builds a main package once
// per test binary, NewProcess/StartProcess run it with its output captured
// (WaitLine, WaitReady, Kill, Terminate), Run runs a command to completion.
// CallJSON, Login and JSONLines talk to and read the programs they start.
//
// Nothing here is a fake: every server is the Debian binary, started with a
// private temporary directory, its output captured into a log file whose tail
// appears in every failure message. A missing binary fails the test with the
// Debian package to install; it is never a skip.
//
// Processes are started in their own process group with Pdeathsig=SIGKILL, so
// they die with the test binary even when it is killed; t.Cleanup (or Main,
// for the shared PostgreSQL server) stops them and removes their directories.
//
// Use Main as the body of TestMain in every package that calls PostgresDSN:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Main runs the tests, stops the servers shared by the whole test binary
// (see PostgresDSN), removes the binaries BuildBinary built and exits with
// the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	shared.stop()
	builds.remove()
	os.Exit(code)
}

// RequireBinary returns the path of the executable name (a bare name looked
// up in PATH, or an absolute path). When it is missing the test fails with the
// Debian package that provides it; it never skips.
func RequireBinary(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := findBinary(name)
	if err != nil {
		t.Fatalf("testenv: %s not found: install the Debian package %s (apt-get install %s)", name, debianPackage, debianPackage)
	}
	return path
}

// findBinary is RequireBinary without a test, for servers started outside any
// one test's lifetime.
func findBinary(name string) (string, error) {
	if strings.Contains(name, "/") {
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not an executable file", name)
		}
		return name, nil
	}
	return exec.LookPath(name)
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn returns a TCP port that was free on the loopback address ip a
// moment ago. Any non-loopback ip fails the test: tests never listen beyond
// the machine.
func FreePortOn(t testing.TB, ip string) int {
	t.Helper()
	port, err := freePortOn(ip)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

func freePortOn(ip string) (int, error) {
	addr := net.ParseIP(ip)
	if addr == nil || !addr.IsLoopback() {
		return 0, fmt.Errorf("free port on %q: only loopback addresses are allowed", ip)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func loopbackAddr(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
