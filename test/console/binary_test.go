package console

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestFreshCloneServesConsole: a clone of the committed tree, built with `go build` alone and
// no Node on the PATH, serves the console (the built app is committed and embedded).
func TestFreshCloneServesConsole(t *testing.T) {
	root := repoRoot(t)
	gitBin := testenv.RequireBinary(t, "git", "git")
	goBin := testenv.RequireBinary(t, "go", "golang")
	clone := filepath.Join(t.TempDir(), "fluxcode")
	if out, err := exec.Command(gitBin, "clone", "-q", "--no-hardlinks", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(clone, "web", "node_modules")); err == nil {
		t.Fatal("the clone has web/node_modules; it must not be committed")
	}
	bin := filepath.Join(t.TempDir(), "fluxcode")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/fluxcode")
	build.Dir = clone
	// Only Go's own directory on the PATH: no node, no npm.
	build.Env = append(os.Environ(), "PATH="+filepath.Dir(goBin), "GOFLAGS=-mod=readonly", "GOPROXY=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fluxcode in a fresh clone: %v\n%s", err, out)
	}

	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	p := testenv.StartProcess(t, bin, testenv.ProcessOptions{Name: "fluxcode", Args: []string{"serve"}, Dir: t.TempDir(),
		Env: map[string]string{"SERVER_HOST": "127.0.0.1", "SERVER_PORT": strings.TrimPrefix(addr, "127.0.0.1:"), "DATA_DIR": t.TempDir()}})
	p.WaitReady(t, testenv.HTTPReady("http://"+addr+"/health"))

	get := func(path string) (*http.Response, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/")
	if resp.StatusCode != 200 || !strings.Contains(page, `<div id="app">`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	script := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindStringSubmatch(page)
	if script == nil {
		t.Fatalf("no script in the page:\n%s", page)
	}
	resp, js := get(script[1])
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || len(js) < 1000 {
		t.Fatalf("GET %s: %d %s, %d bytes", script[1], resp.StatusCode, resp.Header.Get("Content-Type"), len(js))
	}
	if err := p.Terminate(t); err != nil {
		t.Errorf("fluxcode exited with %v:\n%s", err, p.Output())
	}
}
