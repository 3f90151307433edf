package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

const childPkg = "github.com/fluxcode/fluxcode/internal/testenv/testdata/child"

// expectFatal runs f with a testing.TB whose Fatalf stops f, and returns the
// message (empty when f did not fail).
func expectFatal(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopped); !ok {
					panic(r)
				}
			}
		}()
		f(rec)
	}()
	return rec.msg
}

func TestBuildBinaryOncePerOptions(t *testing.T) {
	a := BuildBinary(t, childPkg)
	if b := BuildBinary(t, childPkg); b != a {
		t.Errorf("second build of the same package: %s, want the cached %s", b, a)
	}
	tagged := BuildBinary(t, childPkg, BuildFlags("-ldflags", "-X main.version=v1.2.3"), BuildEnv("CGO_ENABLED=0"))
	if tagged == a {
		t.Fatalf("a build with other flags returned the same binary %s", a)
	}
	if got := Run(t, a, ProcessOptions{Args: []string{"version"}}).Stdout; got != "unset\n" {
		t.Errorf("plain build: version %q", got)
	}
	if got := Run(t, tagged, ProcessOptions{Args: []string{"version"}}).Stdout; got != "v1.2.3\n" {
		t.Errorf("build with -ldflags: version %q, want v1.2.3", got)
	}
	msg := expectFatal(t, func(tb testing.TB) { BuildBinary(tb, "github.com/fluxcode/fluxcode/no/such/package") })
	if !strings.Contains(msg, "no/such/package") {
		t.Errorf("a failed build: %q; want go build's error", msg)
	}
}

func TestRunReportsExitCodeAndOutputs(t *testing.T) {
	bin := BuildBinary(t, childPkg)
	res := Run(t, bin, ProcessOptions{Args: []string{"exit", "3"}})
	if res.ExitCode != 3 || res.Stdout != "to stdout\n" || res.Stderr != "to stderr\n" {
		t.Errorf("exit 3: %+v", res)
	}
	if !strings.Contains(res.Output, "to stdout\n") || !strings.Contains(res.Output, "to stderr\n") {
		t.Errorf("combined output %q lacks a stream", res.Output)
	}
	if res := Run(t, bin, ProcessOptions{Args: []string{"exit", "0"}}); res.ExitCode != 0 {
		t.Errorf("exit 0: %+v", res)
	}
}

func TestProcessEnvironment(t *testing.T) {
	bin := BuildBinary(t, childPkg)
	t.Setenv("TESTENV_FROM_TEST", "inherited")
	dir := t.TempDir()
	names := []string{"env", "PATH", "HOME", "TESTENV_FROM_TEST", "ONLY"}
	res := Run(t, bin, ProcessOptions{Args: names, Dir: dir, Env: map[string]string{"ONLY": "given"}})
	want := fmt.Sprintf("PATH=%s\nHOME=%s\nTESTENV_FROM_TEST=\nONLY=given\n", os.Getenv("PATH"), dir)
	if res.Stdout != want {
		t.Errorf("exact environment:\n%s\nwant\n%s", res.Stdout, want)
	}
	res = Run(t, bin, ProcessOptions{Args: names, InheritEnv: true, Env: map[string]string{"HOME": "/nowhere", "ONLY": "given"}})
	want = fmt.Sprintf("PATH=%s\nHOME=/nowhere\nTESTENV_FROM_TEST=inherited\nONLY=given\n", os.Getenv("PATH"))
	if res.Stdout != want {
		t.Errorf("inherited environment:\n%s\nwant\n%s", res.Stdout, want)
	}
}

func TestProcessWaitsAndTerminates(t *testing.T) {
	bin := BuildBinary(t, childPkg)
	p := NewProcess(t, bin, ProcessOptions{Name: "server", Args: []string{"serve"}})
	if p.Running() || p.Pid() != 0 {
		t.Fatal("a process runs before Start")
	}
	StartAll(t, p)
	if err := p.Start(); err == nil {
		t.Error("a second Start succeeded")
	}
	m := p.WaitLine(t, regexp.MustCompile(`^listening (\S+)$`))
	if m[0] != "listening "+m[1] || !strings.HasPrefix(m[1], "127.0.0.1:") {
		t.Fatalf("WaitLine = %q", m)
	}
	p.WaitReady(t, HTTPReady("http://"+m[1]+"/health"))
	if !p.Running() || p.Pid() <= 0 {
		t.Fatalf("Running() = %v, Pid() = %d after a start", p.Running(), p.Pid())
	}
	if pgid, err := syscall.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Errorf("Getpgid = %d, %v; want its own process group", pgid, err)
	}
	if err := p.Terminate(t); err != nil {
		t.Errorf("Terminate: %v, want a clean exit", err)
	}
	if p.Running() {
		t.Error("Running() after Terminate")
	}
	if out := p.Output(); !strings.HasSuffix(out, "stopping\n") {
		t.Errorf("output %q does not end with the program's last line", out)
	}
}

func TestProcessKill(t *testing.T) {
	p := StartProcess(t, BuildBinary(t, childPkg), ProcessOptions{Args: []string{"serve"}})
	p.WaitLine(t, regexp.MustCompile(`^listening `))
	p.Kill(t)
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("exit status after Kill: %v, want killed by SIGKILL", p.Err())
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Kill")
	}
}

func TestProcessWaitsFailWhenItExits(t *testing.T) {
	bin := BuildBinary(t, childPkg)
	p := StartProcess(t, bin, ProcessOptions{Name: "quitter", Args: []string{"exit", "4"}})
	msg := expectFatal(t, func(tb testing.TB) { p.WaitLine(tb, regexp.MustCompile(`^listening`)) })
	if !strings.Contains(msg, "quitter exited") || !strings.Contains(msg, "to stderr") {
		t.Errorf("WaitLine on a program that exited: %q", msg)
	}
	msg = expectFatal(t, func(tb testing.TB) {
		p.WaitReady(tb, func() error { return errors.New("never ready") })
	})
	if !strings.Contains(msg, "quitter exited before it was ready") || !strings.Contains(msg, "exit status 4") {
		t.Errorf("WaitReady on a program that exited: %q", msg)
	}
	// A line that did arrive is found even after the program exited.
	if m := p.WaitLine(t, regexp.MustCompile(`^to (stdout)$`)); m[1] != "stdout" {
		t.Errorf("WaitLine = %q", m)
	}
}

func TestCallJSONAndLogin(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		switch {
		case r.URL.Path == "/api/v1/auth/login" && in["password"] == "right":
			json.NewEncoder(w).Encode(map[string]string{"token": "tok-" + in["email"]})
		case r.URL.Path == "/api/v1/auth/login":
			http.Error(w, `{"error":"bad password"}`, http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusTeapot)
			json.NewEncoder(w).Encode(map[string]string{
				"method": r.Method, "auth": r.Header.Get("Authorization"),
				"type": r.Header.Get("Content-Type"), "name": in["name"],
			})
		}
	}))
	defer srv.Close()

	code, body := CallJSON(t, "PUT", srv.URL+"/x", "tk", map[string]string{"name": "n"})
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil || code != http.StatusTeapot {
		t.Fatalf("CallJSON: %d %s %v", code, body, err)
	}
	if got["method"] != "PUT" || got["auth"] != "Bearer tk" || got["type"] != "application/json" || got["name"] != "n" {
		t.Errorf("the server saw %v", got)
	}
	_, body = CallJSON(t, "GET", srv.URL+"/x", "", nil)
	if err := json.Unmarshal(body, &got); err != nil || got["auth"] != "" || got["type"] != "" {
		t.Errorf("a bodiless call without a token: %v %v", got, err)
	}
	resp, _ := DoJSON(t, "GET", srv.URL+"/x", "", nil)
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("Content-Type") == "" {
		t.Errorf("DoJSON: %d %v", resp.StatusCode, resp.Header)
	}
	MustCallJSON(t, "GET", srv.URL+"/x", "", nil, http.StatusTeapot, &got)
	if msg := expectFatal(t, func(tb testing.TB) { MustCallJSON(tb, "GET", srv.URL+"/x", "", nil, http.StatusOK, nil) }); !strings.Contains(msg, "418") {
		t.Errorf("MustCallJSON with the wrong status: %q", msg)
	}

	if tok := Login(t, srv.URL, "a@b.c", "right"); tok != "tok-a@b.c" {
		t.Errorf("Login = %q", tok)
	}
	if msg := expectFatal(t, func(tb testing.TB) { Login(tb, srv.URL, "a@b.c", "wrong") }); !strings.Contains(msg, "401") {
		t.Errorf("Login with a wrong password: %q", msg)
	}
}

func TestJSONLines(t *testing.T) {
	type rec struct {
		Msg string `json:"msg"`
	}
	got := JSONLines[rec](t, "plain line\n{\"msg\":\"a\"}\n\n{\"msg\":\"b\",\"x\":1}\nlast")
	if len(got) != 2 || got[0].Msg != "a" || got[1].Msg != "b" {
		t.Errorf("JSONLines = %+v", got)
	}
	if msg := expectFatal(t, func(tb testing.TB) { JSONLines[rec](tb, "{broken\n") }); !strings.Contains(msg, "{broken") {
		t.Errorf("a broken JSON line: %q", msg)
	}
}

func TestReadRepoFile(t *testing.T) {
	if got := ReadRepoFile(t, "go.mod"); !strings.HasPrefix(got, "module github.com/fluxcode/fluxcode\n") {
		t.Errorf("go.mod starts %q", got[:min(len(got), 40)])
	}
	if p := RepoPath(t, "deploy/Caddyfile.multihost"); !strings.HasSuffix(p, "/deploy/Caddyfile.multihost") {
		t.Errorf("RepoPath = %q", p)
	}
	if msg := expectFatal(t, func(tb testing.TB) { ReadRepoFile(tb, "no/such/file") }); !strings.Contains(msg, "no/such/file") {
		t.Errorf("a missing file: %q", msg)
	}
}
