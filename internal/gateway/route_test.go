package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/store"
)

// queryKeyProvider is a test-only protocol whose clients put the key where Gemini's do
// (x-goog-api-key, ?key=). It speaks Anthropic to the mock upstream, but forwards every
// client header and the whole query it is given, as a careless provider would: whatever
// key reaches the upstream got past the gateway.
type queryKeyProvider struct{ *anthropic.Provider }

func (queryKeyProvider) Platform() string { return store.PlatformGemini }

func (queryKeyProvider) Routes() []provider.Route {
	return []provider.Route{
		{Pattern: "POST /vq/messages", Op: provider.OpMessages},
		{Pattern: "GET /v1/models", Op: provider.OpModels}, // shared with Anthropic
		{Pattern: "/vq/", Op: provider.OpNotFound},
	}
}

func (queryKeyProvider) KeyPlaces() []provider.KeyPlace {
	return []provider.KeyPlace{{Header: "X-Goog-Api-Key"}, {Query: "key"}}
}

func (p queryKeyProvider) NewUpstreamRequest(ctx context.Context, op provider.Operation, t provider.Target, in provider.Inbound, body []byte) (*http.Request, error) {
	req, err := p.Provider.NewUpstreamRequest(ctx, op, t, in, body)
	if err != nil {
		return nil, err
	}
	for k, v := range in.Header {
		if req.Header.Get(k) == "" {
			req.Header[k] = v
		}
	}
	return req, nil
}

// WriteModels answers in a shape of its own, so a test can tell which provider answered.
func (queryKeyProvider) WriteModels(w http.ResponseWriter, ids []string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"models": ids})
}

type seamEnv struct {
	*gatewaytest.Deps
	node *gatewaytest.Node
	// anth is a tenant of an Anthropic group, gem of a Gemini group; both groups have one
	// account with a model mapping, so /v1/models is answered by the gateway.
	anth, gem *gatewaytest.Tenant
}

func newSeamEnv(t *testing.T) *seamEnv {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{
		Providers: []provider.Provider{anthropic.New(), queryKeyProvider{anthropic.New()}},
	})
	e := &seamEnv{Deps: d, node: gatewaytest.Start(t, d, testConfig(), "n1", nil)}
	e.anth = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	gg := &store.Group{Name: "gemini-group", Platform: store.PlatformGemini, BillingType: store.BillingBalance,
		RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := d.Store.CreateGroup(context.Background(), gg); err != nil {
		t.Fatal(err)
	}
	e.gem = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: gg})
	gatewaytest.NewAccount(t, d, "up-anth", []int64{e.anth.Group.ID}, func(a *store.Account) {
		a.ModelMapping = map[string]string{"claude-sonnet-5-5": "claude-sonnet-5-5"}
	})
	gatewaytest.NewAccount(t, d, "up-gem", []int64{gg.ID}, func(a *store.Account) {
		a.Platform = store.PlatformGemini
		a.ModelMapping = map[string]string{"claude-sonnet-5-5": "claude-sonnet-5-5"}
	})
	return e
}

func (e *seamEnv) do(t *testing.T, method, path string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.node.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp, string(readBody(t, resp))
}

// TestKeyPlacesOfTheProvider: a provider that declares ?key= and x-goog-api-key finds the
// key there, and neither the key nor its parameter ever reaches the upstream, even through a
// provider that forwards everything it is given. The other query parameters pass as they
// came. A key where this provider does not look (x-api-key) is not a key for its routes.
func TestKeyPlacesOfTheProvider(t *testing.T) {
	e := newSeamEnv(t)
	for i, tc := range []struct {
		name, query string
		h           http.Header
		wantQuery   string
	}{
		{"query", "?alt=sse&key=" + e.gem.Secret + "&x=%20y", nil, "alt=sse&x=%20y"},
		{"header", "?alt=sse", http.Header{"X-Goog-Api-Key": {e.gem.Secret}}, "alt=sse"},
		// A second copy of the key in another place is removed too.
		{"both", "?key=" + e.gem.Secret, http.Header{"X-Goog-Api-Key": {e.gem.Secret}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, http.MethodPost, "/vq/messages"+tc.query, tc.h, jsonBody)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := e.Mock.Requests("up-gem", i+1)
			if len(got) != i+1 {
				t.Fatalf("mock recorded %d requests, want %d", len(got), i+1)
			}
			rr := got[i]
			if rr.RawQuery != tc.wantQuery {
				t.Errorf("upstream query %q, want %q", rr.RawQuery, tc.wantQuery)
			}
			for k, v := range rr.Header {
				if strings.Contains(strings.Join(v, ","), e.gem.Secret) {
					t.Errorf("client key forwarded upstream in %s", k)
				}
			}
			if strings.Contains(rr.RawQuery, e.gem.Secret) {
				t.Errorf("client key forwarded upstream in the query")
			}
		})
	}

	resp, body := e.do(t, http.MethodPost, "/vq/messages", http.Header{"X-Api-Key": {e.gem.Secret}}, jsonBody)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "x-goog-api-key or the key query parameter") {
		t.Errorf("key in a place the provider does not declare: %d %s", resp.StatusCode, body)
	}
}

// TestSharedRouteChosenByGroup: GET /v1/models, declared by both providers, is answered by
// the provider of the key's group, and each finds the key in its own places.
func TestSharedRouteChosenByGroup(t *testing.T) {
	e := newSeamEnv(t)
	resp, body := e.do(t, http.MethodGet, "/v1/models", http.Header{"X-Api-Key": {e.anth.Secret}}, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"type":"model"`) {
		t.Errorf("Anthropic group: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, http.MethodGet, "/v1/models?key="+e.gem.Secret, nil, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `{"models":["claude-sonnet-5-5"]}`) {
		t.Errorf("Gemini group: %d %s", resp.StatusCode, body)
	}

	// A group of a platform no provider of the route serves is refused before any upstream.
	og := &store.Group{Name: "openai-group", Platform: store.PlatformOpenAI, BillingType: store.BillingBalance,
		RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := e.Store.CreateGroup(context.Background(), og); err != nil {
		t.Fatal(err)
	}
	oa := gatewaytest.NewTenant(t, e.Deps, gatewaytest.TenantOptions{Group: og})
	resp, body = e.do(t, http.MethodGet, "/v1/models", http.Header{"Authorization": {"Bearer " + oa.Secret}}, "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "serves openai") {
		t.Errorf("OpenAI group: %d %s", resp.StatusCode, body)
	}
	// A Gemini key on an Anthropic-only route is refused the same way.
	resp, body = e.do(t, http.MethodPost, "/v1/messages", http.Header{"X-Api-Key": {e.gem.Secret}}, jsonBody)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("Gemini key on /v1/messages: %d %s", resp.StatusCode, body)
	}
}

// TestNotFoundPerProvider: a path under a provider's prefix that no route serves is a 404
// in that provider's format, with the gateway's request id.
func TestNotFoundPerProvider(t *testing.T) {
	e := newSeamEnv(t)
	for _, path := range []string{"/v1/nope", "/v1", "/vq/nope"} {
		resp, body := e.do(t, http.MethodGet, path, nil, "")
		var got struct {
			Type  string `json:"type"`
			Error struct {
				Type string `json:"type"`
			} `json:"error"`
			RequestID string `json:"request_id"`
		}
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal([]byte(body), &got) != nil ||
			got.Error.Type != "not_found_error" || got.RequestID != resp.Header.Get(gateway.HeaderRequestID) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestRouteTableConflicts: two providers for one platform, or one pattern meaning two
// operations, are refused when the gateway is built.
func TestRouteTableConflicts(t *testing.T) {
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
	for name, provs := range map[string][]provider.Provider{
		"same platform":  {anthropic.New(), anthropic.New()},
		"two operations": {anthropic.New(), conflictProvider{queryKeyProvider{anthropic.New()}}},
	} {
		_, err := gateway.New(gateway.Options{Providers: provs, Store: d.Store, Coord: d.Coord, Keys: d.Keys, Prices: billing.Default()})
		if err == nil {
			t.Errorf("%s: gateway built", name)
		}
	}
}

type conflictProvider struct{ queryKeyProvider }

func (conflictProvider) Routes() []provider.Route {
	return []provider.Route{{Pattern: "POST /v1/messages", Op: provider.OpCountTokens}}
}
