package api_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

type policyBody struct {
	AllowedModels []string `json:"allowed_models"`
	AllowedIPs    []string `json:"allowed_ips"`
	RPMLimit      int64    `json:"rpm_limit"`
	TPMLimit      int64    `json:"tpm_limit"`
}

// TestKeyPolicy: an admin sets a key's allowed models, addresses and per-minute limits, and a
// user's; they are validated, stored and shown; the key's owner cannot change them.
func TestKeyPolicy(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { checkKeyPolicy(t, newEnvOn(t, filepath.Join(t.TempDir(), "api.db"))) })
	t.Run("Postgres", func(t *testing.T) { checkKeyPolicy(t, newEnvOn(t, testenv.PostgresDSN(t))) })
}

func checkKeyPolicy(t *testing.T, e *env) {
	gid := e.newGroup("default", nil)
	uid, token := e.newUser("p@example.com")
	var k keyBody
	e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &k)
	var fresh policyBody
	e.do("GET", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, nil).ok(t, 200, &fresh)
	if fresh.AllowedModels == nil || len(fresh.AllowedModels) != 0 || len(fresh.AllowedIPs) != 0 || fresh.RPMLimit != 0 {
		t.Fatalf("a new key's policy = %+v, want empty lists and no limits", fresh)
	}
	path := fmt.Sprintf("/api/v1/admin/keys/%d", k.ID)
	var got policyBody
	e.do("PATCH", path, e.adminToken, map[string]any{"allowed_models": []string{"claude-sonnet-*", "gpt-6-sol"},
		"allowed_ips": []string{"10.1.2.3/8", "::ffff:192.0.2.7"}, "rpm_limit": 60, "tpm_limit": 100000}).ok(t, 200, &got)
	want := policyBody{AllowedModels: []string{"claude-sonnet-*", "gpt-6-sol"}, AllowedIPs: []string{"10.0.0.0/8", "192.0.2.7"},
		RPMLimit: 60, TPMLimit: 100000}
	if !slices.Equal(got.AllowedModels, want.AllowedModels) || !slices.Equal(got.AllowedIPs, want.AllowedIPs) ||
		got.RPMLimit != want.RPMLimit || got.TPMLimit != want.TPMLimit {
		t.Fatalf("policy = %+v, want %+v", got, want)
	}
	e.wantMessage(fmt.Sprintf("key:%d", k.ID))
	var reread policyBody
	e.do("GET", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, nil).ok(t, 200, &reread)
	if !slices.Equal(reread.AllowedModels, want.AllowedModels) || !slices.Equal(reread.AllowedIPs, want.AllowedIPs) || reread.RPMLimit != 60 {
		t.Fatalf("stored policy = %+v, want %+v", reread, want)
	}
	for _, bad := range []map[string]any{
		{"allowed_models": []string{"claude-*-opus"}},
		{"allowed_models": []string{""}},
		{"allowed_ips": []string{"10.0.0.300"}},
		{"rpm_limit": -1},
	} {
		for field := range bad {
			e.do("PATCH", path, e.adminToken, bad).wantError(t, 400, "invalid_argument", field)
		}
	}
	e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, map[string]any{"rpm_limit": 0}).wantError(t, 403, "forbidden", "")

	var u struct {
		RPMLimit int64 `json:"rpm_limit"`
		TPMLimit int64 `json:"tpm_limit"`
	}
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", uid), e.adminToken, map[string]any{"rpm_limit": 30, "tpm_limit": 5000}).ok(t, 200, &u)
	if u.RPMLimit != 30 || u.TPMLimit != 5000 {
		t.Fatalf("user limits = %+v", u)
	}
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", uid), e.adminToken, map[string]any{"tpm_limit": -5}).wantError(t, 400, "invalid_argument", "tpm_limit")
}
