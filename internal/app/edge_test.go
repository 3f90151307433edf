package app_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

// TestNotFoundIsValidJSON: a 404 for any path is valid JSON in the path's protocol shape,
// even when the path is not UTF-8 or holds quotes (/v1/%ff gave invalid JSON before).
func TestNotFoundIsValidJSON(t *testing.T) {
	m, _ := startNode(t, singleEnv(t, t.TempDir()))
	// Other paths belong to the web console (an HTML page for any of its routes).
	for _, path := range []string{"/v1/%ff", "/v1/%22%5C%00", "/v1", "/api/v1/%ff%fe", "/api/v1/x%22y"} {
		resp, err := http.Get("http://" + m.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Type  string
			Error struct{ Type, Code, Message string }
		}
		if resp.StatusCode != 404 || !json.Valid(b) || json.Unmarshal(b, &body) != nil {
			t.Errorf("GET %s: %d %q, want 404 and valid JSON", path, resp.StatusCode, b)
			continue
		}
		if strings.HasPrefix(path, "/v1") {
			if body.Type != "error" || body.Error.Type != "not_found_error" {
				t.Errorf("GET %s: %s, want Anthropic's error shape", path, b)
			}
		} else if body.Error.Code != "not_found" || body.Error.Message == "" {
			t.Errorf("GET %s: %s, want the API's error shape", path, b)
		}
	}
}

// rawConn opens a connection to the node and writes s.
func rawConn(t *testing.T, addr, s string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	return c
}

// answerWithin reads a response from c, failing if the node neither answers nor closes the
// connection within d.
func answerWithin(t *testing.T, c net.Conn, d time.Duration) (*http.Response, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the node kept the connection open for %v without answering", d)
	}
	if err != nil {
		return nil, nil // closed without an answer: cut off, which is also fine
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestTricklingBodyTimesOut: a client that sends headers and a few body bytes, then nothing,
// is answered 408 (gateway routes, in Anthropic's shape) or cut off (API) once a read has
// waited longer than the route's body-read timeout; before, the connection stayed open for
// ever.
func TestTricklingBodyTimesOut(t *testing.T) {
	mock := mockupstream.New(mockupstream.Options{})
	if err := mock.Start(); err != nil {
		t.Fatal(err)
	}
	defer mock.Close()
	env := singleEnv(t, t.TempDir())
	env["ADMIN_PASSWORD"] = "trickle-test-password"
	env["GATEWAY_BODY_READ_TIMEOUT"] = "700ms"
	env["SERVER_BODY_READ_TIMEOUT"] = "300ms"
	m, out := startNode(t, env)
	defer func() {
		if t.Failed() {
			t.Log(out.String())
		}
	}()
	base := "http://" + m.Addr()
	token := login(t, base, "admin@fluxcode.local", "trickle-test-password")
	key := provision(t, m.Store(), base, token, mock.URL(), "sk-ant-mock-trickle")

	c := rawConn(t, m.Addr(), "POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Api-Key: "+key+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":")
	// A trickle that keeps each read under the timeout is not cut: send a byte a few times.
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		if _, err := io.WriteString(c, " "); err != nil {
			t.Fatalf("a slow but moving body was cut: %v", err)
		}
	}
	resp, b := answerWithin(t, c, 15*time.Second)
	if resp == nil || resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), `"type":"error"`) {
		t.Errorf("stalled gateway body: %v %s, want 408 in Anthropic's shape", resp, b)
	}

	c = rawConn(t, m.Addr(), "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em")
	answerWithin(t, c, 15*time.Second)
}

// TestConnectionLimit: with SERVER_MAX_CONNS connections open, one more gets a clear 503 in
// its protocol's JSON shape and is closed; once a connection closes, new ones are served.
func TestConnectionLimit(t *testing.T) {
	env := singleEnv(t, t.TempDir())
	env["SERVER_MAX_CONNS"] = "2"
	m, _ := startNode(t, env)
	held := []net.Conn{rawConn(t, m.Addr(), ""), rawConn(t, m.Addr(), "")}

	for path, want := range map[string]string{"/v1/models": `"type":"overloaded_error"`, "/health": `"code":"unavailable"`} {
		c := rawConn(t, m.Addr(), "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, b := answerWithin(t, c, 15*time.Second)
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Fluxcode-Reject") != "connections" ||
			resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), want) || !json.Valid(b) {
			t.Errorf("connection over the limit, %s: %v %s", path, resp, b)
		}
	}

	held[0].Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + m.Addr() + "/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a connection closed, new ones are still refused: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDataFilesPrivate: a single node's database files are 0600 (made so when they were
// wider), and a DATA_DIR open to other users is warned about.
func TestDataFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	env := singleEnv(t, dir)
	m, out := startNode(t, env)
	if !strings.Contains(out.String(), "DATA_DIR is accessible to other users") {
		t.Errorf("no warning about a 0755 DATA_DIR in:\n%s", out)
	}
	checkPrivate := func() {
		t.Helper()
		for _, name := range []string{"fluxcode.db", "fluxcode.db-wal", "fluxcode.db-shm", "encryption.key"} {
			st, err := os.Stat(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) && name != "fluxcode.db" && name != "encryption.key" {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
			}
		}
	}
	checkPrivate()

	if err := m.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "fluxcode.db"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, out = startNode(t, env)
	checkPrivate()
	if !strings.Contains(out.String(), "made it private") {
		t.Errorf("no warning about the 0644 database in:\n%s", out)
	}
	fmt.Fprint(io.Discard, out) // keep out for failure messages above
}
