package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestModelMapping: the account's mapping rewrites only the model field upstream; the ledger
// keeps both names and prices the upstream model.
func TestModelMapping(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-map", func(a *store.Account) {
		a.ModelMapping = map[string]string{"claude-sonnet-5-5": "claude-haiku-5-5"}
	})
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	got := string(e.Mock.Requests("up-map", 1)[0].Body)
	if want := strings.Replace(jsonBody, "claude-sonnet-5-5", "claude-haiku-5-5", 1); got != want {
		t.Fatalf("upstream body %s, want %s", got, want)
	}
	row := usageRows(t, e.Store, e.tenant.User.ID, 1)[0]
	if row.Model != "claude-sonnet-5-5" || row.UpstreamModel != "claude-haiku-5-5" {
		t.Fatalf("row models %q → %q", row.Model, row.UpstreamModel)
	}

	// A model the mapping does not name has no account to go to.
	resp = e.post(t, "/v1/messages", strings.Replace(jsonBody, "claude-sonnet-5-5", "claude-opus-5-5", 1), nil)
	if b := readBody(t, resp); resp.StatusCode != 503 {
		t.Fatalf("unmapped model: status %d: %s", resp.StatusCode, b)
	}
}

// TestOAuthAccount: a subscription account is called with its Bearer token and the headers
// such tokens need, never with the client's key.
func TestOAuthAccount(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "sk-ant-oat01-token", func(a *store.Account) {
		a.Type = store.AccountTypeOAuth
		a.Credentials = store.Credentials{AccessToken: "sk-ant-oat01-token", RefreshToken: "r"}
	})
	resp := e.post(t, "/v1/messages", streamBody, http.Header{
		"Anthropic-Beta": {"interleaved-thinking-2025-05-14"},
		"User-Agent":     {"claude-cli/2.1.332 (external, sdk-cli)"},
		"X-Stainless-Os": {"Linux"},
	})
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	h := e.Mock.Requests("sk-ant-oat01-token", 1)[0].Header
	for name, want := range map[string]string{
		"Authorization":     "Bearer sk-ant-oat01-token",
		"X-Api-Key":         "",
		"Anthropic-Beta":    "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14",
		"User-Agent":        "claude-cli/2.1.332 (external, sdk-cli)",
		"X-App":             "cli",
		"X-Stainless-Os":    "Linux",
		"Anthropic-Version": "2023-06-01",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
}

// TestModelsFromMappings: when every account of the group names its models, the group's
// list is their union; otherwise it comes from an upstream.
func TestModelsFromMappings(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-m1", func(a *store.Account) { a.ModelMapping = map[string]string{"b-model": "", "a-model": "x"} })
	e.account(t, "up-m2", func(a *store.Account) { a.ModelMapping = map[string]string{"c-model": ""} })
	models := func() []string {
		req, _ := http.NewRequest(http.MethodGet, e.node.URL+"/v1/models?beta=true", nil)
		req.Header.Set("Authorization", "Bearer "+e.tenant.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var page struct {
			Data []struct{ ID, Type string } `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if got := strings.Join(models(), ","); got != "a-model,b-model,c-model" {
		t.Fatalf("models %s", got)
	}
	if n := len(e.tap.Exchanges()); n != 0 {
		t.Fatalf("the list went upstream %d times", n)
	}
	e.account(t, "up-any", nil) // takes any model: only an upstream knows the list
	waitFor(t, func() bool { return len(models()) == 3 && len(e.tap.Exchanges()) > 0 })
	if got := e.tap.Exchanges()[0].Path; got != "/v1/models" {
		t.Fatalf("upstream path %s", got)
	}
}

// TestAccountProxy: an account with a proxy reaches its upstream through it (an HTTP proxy on
// loopback); a disabled proxy is never bypassed.
func TestAccountProxy(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		r.RequestURI = "" // a forward proxy sends the absolute URL on
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			w.Write(buf[:n])
			http.NewResponseController(w).Flush()
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(proxy.Close)
	u, _ := url.Parse(proxy.URL)
	port, _ := strconv.Atoi(u.Port())
	p := &store.Proxy{Name: "local", Protocol: "http", Host: u.Hostname(), Port: port, Status: store.StatusActive}
	if err := e.Store.CreateProxy(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	e.account(t, "up-proxied", func(a *store.Account) { a.ProxyID = &p.ID })
	for _, body := range []string{jsonBody, streamBody} {
		resp := e.post(t, "/v1/messages", body, nil)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	if n := proxied.Load(); n != 2 || e.Mock.Stats("up-proxied").Requests != 2 {
		t.Fatalf("%d requests through the proxy, %d at the upstream; want 2 and 2", n, e.Mock.Stats("up-proxied").Requests)
	}
}
