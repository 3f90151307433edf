package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// callTimeout bounds one CallJSON round trip.
const callTimeout = 30 * time.Second

// CallJSON sends a request to a JSON API and returns the status and body:
// body (when not nil) is sent as JSON, token (when not empty) as a bearer
// token. It goes through http.DefaultClient. Only a request that gets no
// answer fails the test.
func CallJSON(t testing.TB, method, url, token string, body any) (int, []byte) {
	t.Helper()
	resp, b := DoJSON(t, method, url, token, body)
	return resp.StatusCode, b
}

// DoJSON is CallJSON for a test that reads the answer's headers too: the
// response comes with its body already read (and closed).
func DoJSON(t testing.TB, method, url, token string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("%s %s: encode the body: %v", method, url, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return resp, b
}

// MustCallJSON is CallJSON that requires the status want and decodes the
// answer into out (unless out is nil).
func MustCallJSON(t testing.TB, method, url, token string, body any, want int, out any) {
	t.Helper()
	code, b := CallJSON(t, method, url, token, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
}

// Login signs in to the FluxCode API at base (http://host:port) and returns
// the token.
func Login(t testing.TB, base, email, password string) string {
	t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	MustCallJSON(t, http.MethodPost, base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, http.StatusOK, &tok)
	if tok.Token == "" {
		t.Fatalf("login at %s gave no token", base)
	}
	return tok.Token
}

// JSONLines decodes the lines of output that are JSON objects (a JSON log)
// into T, skipping every other line. A line that starts with "{" but does
// not decode fails the test.
func JSONLines[T any](t testing.TB, output string) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var rec T
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read log lines: %v", err)
	}
	return out
}
