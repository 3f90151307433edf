package app_test

import (
	"net/http"
	"testing"
)

// The failed-login limits set in the configuration are the ones a node enforces: with
// LOGIN_MAX_FAILURES_PER_EMAIL=3 the fourth attempt is refused even with the right password,
// for as long as LOGIN_WINDOW (the built-in defaults, 10 and 15m, would let it through).
func TestConfiguredLoginLimits(t *testing.T) {
	env := singleEnv(t, t.TempDir())
	env["ADMIN_EMAIL"] = "admin@example.com"
	env["ADMIN_PASSWORD"] = "admin-password-1"
	env["LOGIN_MAX_FAILURES_PER_EMAIL"] = "3"
	env["LOGIN_WINDOW"] = "1h"
	env["PASSWORD_HASH_CONCURRENCY"] = "2"
	m, _ := startNode(t, env)
	base := "http://" + m.Addr()

	for i := range 3 {
		resp, body := do(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "wrong-password"})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d %s, want 401", i+1, resp.StatusCode, body)
		}
	}
	resp, body := do(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "admin-password-1"})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3600" {
		t.Errorf("login after 3 failures: %d Retry-After=%q %s, want 429 with Retry-After 3600",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
