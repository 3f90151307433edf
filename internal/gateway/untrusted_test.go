package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
)

// errorBody is an answer in Anthropic's error format.
type errorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestDuplicateModelKeyRefused: a body naming the model twice would be billed as the first
// (cheap) model while a last-key-wins upstream serves the second (expensive) one, past the
// account's mapping too. It is refused with a 400 in Anthropic's format; nothing reaches the
// upstream and nothing is billed.
func TestDuplicateModelKeyRefused(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-haiku-only", func(a *store.Account) {
		a.ModelMapping = map[string]string{"claude-haiku-5-5": "claude-haiku-5-5"}
	})
	for name, body := range map[string]string{
		"Plain":   `{"model":"claude-haiku-5-5","max_tokens":300,"messages":[{"role":"user","content":"hi"}],"model":"claude-opus-5-5"}`,
		"Escaped": `{"model":"claude-haiku-5-5","max_tokens":300,"messages":[{"role":"user","content":"hi"}],"mod\u0065l":"claude-opus-5-5"}`,
		"Stream":  `{"model":"claude-haiku-5-5","stream":false,"max_tokens":300,"messages":[],"stream":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.post(t, "/v1/messages", body, nil)
			raw := readBody(t, resp)
			var got errorBody
			if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != 400 || got.Type != "error" || got.Error.Type != "invalid_request_error" {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
		})
	}
	if n := e.Mock.Stats("up-haiku-only").Requests; n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
	usageRows(t, e.Store, e.tenant.User.ID, 0)
}
