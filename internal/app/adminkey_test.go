package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/secret"
)

// TestAdminKeyAndGatewayKeyStayApart: on one node, an admin API key is refused by the
// gateway in the client's own error format, and a gateway key that relays fine is refused by
// the admin API, in either header.
func TestAdminKeyAndGatewayKeyStayApart(t *testing.T) {
	mock := mockupstream.New(mockupstream.Options{})
	if err := mock.Start(); err != nil {
		t.Fatal(err)
	}
	defer mock.Close()
	const upstreamKey = "sk-ant-mock-adminkey"

	env := singleEnv(t, t.TempDir())
	env["ADMIN_PASSWORD"] = "adminkey-test-password"
	m, _ := startNode(t, env)
	base := "http://" + m.Addr()
	token := login(t, base, "admin@fluxcode.local", "adminkey-test-password")
	gatewayKey := provision(t, m.Store(), base, token, mock.URL(), upstreamKey)

	resp, b := do(t, "POST", base+"/api/v1/admin/admin-keys", token, map[string]any{"name": "automation"})
	var created struct{ Key string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &created) != nil || !strings.HasPrefix(created.Key, secret.AdminAPIKeyPrefix) {
		t.Fatalf("create admin key: %d %s", resp.StatusCode, b)
	}
	adminKey := created.Key

	send := func(req *http.Request) (int, []byte) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	relay := func(key string) (int, []byte) {
		t.Helper()
		body := `{"model":"claude-sonnet-5-5","max_tokens":20,"messages":[{"role":"user","content":"hello"}]}`
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", key)
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("content-type", "application/json")
		return send(req)
	}
	if status, b := relay(gatewayKey); status != 200 {
		t.Fatalf("the gateway key does not relay: %d %s", status, b)
	}
	status, b := relay(adminKey)
	var anth struct {
		Type  string
		Error struct{ Type string }
	}
	if status != 401 || json.Unmarshal(b, &anth) != nil || anth.Type != "error" || anth.Error.Type != "authentication_error" {
		t.Fatalf("the admin key at the gateway answered %d %s, want Anthropic's 401 authentication_error", status, b)
	}

	admin := func(set func(*http.Request)) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/admin/users", nil)
		set(req)
		return send(req)
	}
	for name, set := range map[string]func(*http.Request){
		"x-api-key": func(r *http.Request) { r.Header.Set("x-api-key", gatewayKey) },
		"Bearer":    func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+gatewayKey) },
	} {
		status, b := admin(set)
		var apiErr struct{ Error struct{ Code string } }
		if status != 401 || json.Unmarshal(b, &apiErr) != nil || apiErr.Error.Code != "unauthenticated" {
			t.Errorf("a gateway key in %s on the admin API answered %d %s, want 401 unauthenticated", name, status, b)
		}
	}
	if status, b := admin(func(r *http.Request) { r.Header.Set("x-api-key", adminKey) }); status != 200 {
		t.Fatalf("the admin key on the admin API answered %d %s", status, b)
	}
}
