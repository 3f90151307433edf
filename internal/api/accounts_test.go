package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Distinctive secrets: none may appear in any answer.
const (
	upstreamKey     = "sk-ant-api03-SECRET-upstream-key-0123456789"
	upstreamAccess  = "sk-ant-oat01-SECRET-access-token-abcdef"
	upstreamRefresh = "sk-ant-ort01-SECRET-refresh-token-uvwxyz"
	extraOrg        = "org-SECRET-extra-value"
	proxyPassword   = "SECRET-proxy-password-42"
)

type accountBody struct {
	ID               int64             `json:"id"`
	Name             string            `json:"name"`
	Platform         string            `json:"platform"`
	Type             string            `json:"type"`
	HasCredentials   bool              `json:"has_credentials"`
	CredentialFields []string          `json:"credential_fields"`
	BaseURL          string            `json:"base_url"`
	ProxyID          *int64            `json:"proxy_id"`
	Priority         int               `json:"priority"`
	Concurrency      int               `json:"concurrency"`
	ModelMapping     map[string]string `json:"model_mapping"`
	Status           string            `json:"status"`
	Schedulable      bool              `json:"schedulable"`
	GroupIDs         []int64           `json:"group_ids"`
	RateLimitedUntil *time.Time        `json:"rate_limited_until"`
}

type proxyBody struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Protocol    string `json:"protocol"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Username    string `json:"username"`
	HasPassword bool   `json:"has_password"`
	Status      string `json:"status"`
}

func TestAccountsAndProxies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gid := e.newGroup("claude", nil)
	oaiGroup := e.newGroup("codex", map[string]any{"platform": "openai"})

	var p proxyBody
	e.do("POST", "/api/v1/admin/proxies", e.adminToken, map[string]any{"name": "egress", "protocol": "socks5",
		"host": "127.0.0.1", "port": 1080, "username": "bob", "password": proxyPassword}).ok(t, 201, &p)
	if !p.HasPassword || p.Username != "bob" || p.Port != 1080 || p.Protocol != "socks5" {
		t.Errorf("proxy = %+v", p)
	}

	var acc accountBody
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{
		"name": "main", "platform": "anthropic", "type": "apikey",
		"credentials": map[string]any{"api_key": upstreamKey, "extra": map[string]string{"org": extraOrg}},
		"base_url":    "http://127.0.0.1:9/", "proxy_id": p.ID, "priority": 5, "concurrency": 3,
		"model_mapping": map[string]string{"claude-x": "claude-x-2030"}, "group_ids": []int64{gid, gid},
	}).ok(t, 201, &acc)
	if !acc.HasCredentials || strings.Join(acc.CredentialFields, ",") != "api_key,extra.org" || acc.ProxyID == nil ||
		*acc.ProxyID != p.ID || acc.Priority != 5 || acc.Concurrency != 3 || acc.ModelMapping["claude-x"] != "claude-x-2030" ||
		len(acc.GroupIDs) != 1 || acc.GroupIDs[0] != gid || acc.Status != "active" || !acc.Schedulable {
		t.Errorf("account = %+v", acc)
	}
	e.wantMessage(fmt.Sprintf("group:%d", gid))
	stored, err := e.st.GetAccount(ctx, acc.ID)
	if err != nil || stored.Credentials.APIKey != upstreamKey {
		t.Fatalf("stored credentials lost: %v", err)
	}

	path := fmt.Sprintf("/api/v1/admin/accounts/%d", acc.ID)
	t.Run("UpdateKeepsCredentialsUnlessGiven", func(t *testing.T) {
		var u accountBody
		e.do("PATCH", path, e.adminToken, map[string]any{"priority": 1, "schedulable": false, "proxy_id": p.ID,
			"base_url": "http://127.0.0.1:9/", "model_mapping": nil}).ok(t, 200, &u)
		if u.Priority != 1 || u.Schedulable || u.ProxyID == nil || len(u.ModelMapping) != 0 || !u.HasCredentials {
			t.Errorf("updated = %+v", u)
		}
		e.wantMessage(fmt.Sprintf("account:%d", acc.ID))
		if s, _ := e.st.GetAccount(ctx, acc.ID); s.Credentials.APIKey != upstreamKey {
			t.Error("an update without credentials changed them")
		}
		e.do("PATCH", path, e.adminToken, map[string]any{"type": "oauth", "proxy_id": nil, "credentials": map[string]any{
			"access_token": upstreamAccess, "refresh_token": upstreamRefresh, "expires_at": "2030-01-01T00:00:00Z"}}).ok(t, 200, &u)
		if strings.Join(u.CredentialFields, ",") != "access_token,refresh_token" || u.Type != "oauth" || u.ProxyID != nil {
			t.Errorf("credential fields = %v, type %s, proxy %v", u.CredentialFields, u.Type, u.ProxyID)
		}
		if s, _ := e.st.GetAccount(ctx, acc.ID); s.Credentials.RefreshToken != upstreamRefresh || s.Credentials.APIKey != "" {
			t.Error("given credentials did not replace the old ones")
		}
	})

	t.Run("GroupKeepsItsAccountsPlatform", func(t *testing.T) {
		before := e.snapshot()
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/groups/%d", gid), e.adminToken, map[string]any{"platform": "openai"}).
			wantError(t, 409, "conflict", "platform")
		if e.snapshot() != before {
			t.Error("a refused platform change changed the store")
		}
	})

	t.Run("Recover", func(t *testing.T) {
		until := time.Now().Add(time.Hour)
		msg := "401 from upstream"
		errStatus := store.StatusError
		if err := e.st.MarkAccount(ctx, acc.ID, store.AccountMark{RateLimitedUntil: &until, Status: &errStatus, ErrorMessage: &msg}); err != nil {
			t.Fatal(err)
		}
		var before accountBody
		e.do("GET", path, e.adminToken, nil).ok(t, 200, &before)
		if before.Status != "error" || before.RateLimitedUntil == nil {
			t.Fatalf("marked account = %+v", before)
		}
		var after accountBody
		e.do("POST", path+"/recover", e.adminToken, nil).ok(t, 200, &after)
		if after.Status != "active" || after.RateLimitedUntil != nil {
			t.Errorf("recovered account = %+v", after)
		}
		e.wantMessage(fmt.Sprintf("account:%d", acc.ID))
	})

	t.Run("Refused", func(t *testing.T) {
		before := e.snapshot()
		cases := []struct {
			method, path string
			body         map[string]any
			code, field  string
		}{
			{"POST", "/api/v1/admin/accounts", map[string]any{"platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}}, "invalid_argument", "name"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey"}, "invalid_argument", "credentials"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "azure", "type": "apikey", "credentials": map[string]any{"api_key": "k"}}, "invalid_argument", "platform"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "cookie", "credentials": map[string]any{"api_key": "k"}}, "invalid_argument", "type"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"access_token": "k"}}, "invalid_argument", "credentials.api_key"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k", "password": "p"}}, "unknown_field", "password"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}, "base_url": "ftp://127.0.0.1"}, "invalid_argument", "base_url"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}, "proxy_id": 9999}, "invalid_argument", "proxy_id"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "openai", "type": "apikey", "credentials": map[string]any{"api_key": "k", "extra": map[string]string{"organization": "org-1\r\nX-Evil: 1"}}}, "invalid_argument", "credentials.extra"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}, "group_ids": []int64{oaiGroup}}, "invalid_argument", "group_ids"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}, "group_ids": []int64{9999}}, "invalid_argument", "group_ids"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}, "model_mapping": map[string]any{"a": 5}}, "invalid_argument", "model_mapping"},
			{"POST", "/api/v1/admin/accounts", map[string]any{"name": "x", "platform": "anthropic", "type": "apikey", "credentials": map[string]any{"api_key": "k"}, "priority": "high"}, "invalid_argument", "priority"},
			{"PATCH", path, map[string]any{"status": "error"}, "invalid_argument", "status"},
			{"PATCH", path, map[string]any{"type": "apikey"}, "invalid_argument", "credentials"},
			{"PATCH", path, map[string]any{"concurrency": -3}, "invalid_argument", "concurrency"},
			{"POST", "/api/v1/admin/proxies", map[string]any{"name": "x", "protocol": "ftp", "host": "127.0.0.1", "port": 1}, "invalid_argument", "protocol"},
			{"POST", "/api/v1/admin/proxies", map[string]any{"name": "x", "protocol": "http", "host": "127.0.0.1", "port": 70000}, "invalid_argument", "port"},
			{"POST", "/api/v1/admin/proxies", map[string]any{"name": "x", "protocol": "http", "host": "a/b", "port": 80}, "invalid_argument", "host"},
			{"POST", "/api/v1/admin/proxies", map[string]any{"protocol": "http", "host": "127.0.0.1", "port": 80}, "invalid_argument", "name"},
		}
		for _, c := range cases {
			e.do(c.method, c.path, e.adminToken, c.body).wantError(t, 400, c.code, c.field)
		}
		if e.snapshot() != before {
			t.Error("refused account and proxy writes changed the store")
		}
	})

	t.Run("ProxyChangesReachAccounts", func(t *testing.T) {
		creds := map[string]any{"access_token": upstreamAccess}
		e.do("PATCH", path, e.adminToken, map[string]any{"proxy_id": p.ID, "credentials": creds}).ok(t, 200, nil)
		var up proxyBody
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/proxies/%d", p.ID), e.adminToken, map[string]any{"port": 1081}).ok(t, 200, &up)
		if up.Port != 1081 || !up.HasPassword {
			t.Errorf("updated proxy = %+v", up)
		}
		e.wantMessage(fmt.Sprintf("account:%d", acc.ID))
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/proxies/%d", p.ID), e.adminToken, map[string]any{"password": nil}).ok(t, 200, &up)
		if up.HasPassword {
			t.Error("a null password did not clear it")
		}
		// Still in use: refused, naming how many accounts use it.
		r := e.do("DELETE", fmt.Sprintf("/api/v1/admin/proxies/%d", p.ID), e.adminToken, nil)
		if b := r.wantError(t, 409, "conflict", ""); !strings.Contains(b.Error.Message, "used by 1 account") {
			t.Errorf("message = %q, want the count of accounts", b.Error.Message)
		}
		e.do("PATCH", path, e.adminToken, map[string]any{"proxy_id": nil, "credentials": creds}).ok(t, 200, nil)
		e.do("DELETE", fmt.Sprintf("/api/v1/admin/proxies/%d", p.ID), e.adminToken, nil).ok(t, 204, nil)
		var a accountBody
		e.do("GET", path, e.adminToken, nil).ok(t, 200, &a)
		if a.ProxyID != nil {
			t.Errorf("account still names deleted proxy %d", *a.ProxyID)
		}
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		var l page[accountBody]
		e.do("GET", "/api/v1/admin/accounts", e.adminToken, nil).ok(t, 200, &l)
		if l.Total != 1 || l.Items[0].ID != acc.ID {
			t.Errorf("list = %+v", l)
		}
		e.do("DELETE", path, e.adminToken, nil).ok(t, 204, nil)
		e.wantMessage(fmt.Sprintf("account:%d", acc.ID))
		e.do("GET", path, e.adminToken, nil).wantError(t, 404, "not_found", "")
	})

	// Must-show: credentials are write-only. Every answer of this test, lists and single
	// reads included, is scanned.
	for _, s := range []string{upstreamKey, upstreamAccess, upstreamRefresh, extraOrg, proxyPassword} {
		if strings.Contains(e.allBodies(), s) {
			t.Errorf("secret %q appears in an API answer", s)
		}
	}
}

func TestErrorRulesAndSettings(t *testing.T) {
	e := newEnv(t)
	var rule struct {
		ID         int64  `json:"id"`
		StatusCode int    `json:"status_code"`
		Keyword    string `json:"keyword"`
		Minutes    int    `json:"minutes"`
		Enabled    bool   `json:"enabled"`
	}
	e.do("POST", "/api/v1/admin/error-rules", e.adminToken, map[string]any{"status_code": 400, "keyword": "credit balance",
		"minutes": 60}).ok(t, 201, &rule)
	if rule.StatusCode != 400 || rule.Keyword != "credit balance" || rule.Minutes != 60 || !rule.Enabled {
		t.Errorf("rule = %+v", rule)
	}
	e.wantMessage("rules:0")
	var rules struct {
		Items []struct{ ID int64 } `json:"items"`
	}
	e.do("GET", "/api/v1/admin/error-rules", e.adminToken, nil).ok(t, 200, &rules)
	if len(rules.Items) != 1 {
		t.Errorf("rules = %+v", rules)
	}
	before := e.snapshot()
	e.do("POST", "/api/v1/admin/error-rules", e.adminToken, map[string]any{"status_code": 200, "minutes": 1}).
		wantError(t, 400, "invalid_argument", "status_code")
	e.do("POST", "/api/v1/admin/error-rules", e.adminToken, map[string]any{"status_code": 429, "minutes": 0}).
		wantError(t, 400, "invalid_argument", "minutes")
	if e.snapshot() != before {
		t.Error("refused rules changed the store")
	}
	e.do("DELETE", fmt.Sprintf("/api/v1/admin/error-rules/%d", rule.ID), e.adminToken, nil).ok(t, 204, nil)
	e.wantMessage("rules:0")

	type settings struct {
		RegistrationEnabled bool   `json:"registration_enabled"`
		DefaultConcurrency  int    `json:"default_concurrency"`
		DefaultBalance      string `json:"default_balance"`
		SiteName            string `json:"site_name"`
	}
	// An internal setting (the shared JWT secret) never leaves the server.
	if err := e.st.SetSetting(context.Background(), "jwt_secret", "SECRET-jwt-value"); err != nil {
		t.Fatal(err)
	}
	var s settings
	e.do("GET", "/api/v1/admin/settings", e.adminToken, nil).ok(t, 200, &s)
	if s != (settings{DefaultBalance: "0.000000000", SiteName: "FluxCode"}) {
		t.Errorf("default settings = %+v", s)
	}
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"site_name": "Team AI", "default_concurrency": 5}).ok(t, 200, &s)
	if s != (settings{DefaultConcurrency: 5, DefaultBalance: "0.000000000", SiteName: "Team AI"}) {
		t.Errorf("saved settings = %+v", s)
	}
	before = e.snapshot()
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"jwt_secret": "mine"}).wantError(t, 400, "unknown_field", "jwt_secret")
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"site_name": "ok", "default_balance": "-1"}).
		wantError(t, 400, "invalid_argument", "default_balance")
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"registration_enabled": "yes"}).
		wantError(t, 400, "invalid_argument", "registration_enabled")
	if e.snapshot() != before {
		t.Error("refused settings changed the store")
	}
	if strings.Contains(e.allBodies(), "SECRET-jwt-value") {
		t.Error("an internal setting appears in an answer")
	}
}
