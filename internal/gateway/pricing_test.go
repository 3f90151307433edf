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
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/store"
)

// unpricedModel is a model no price table knows.
const unpricedModel = "claude-unpriced-9"

func bodyFor(model string) string {
	return strings.Replace(jsonBody, "claude-sonnet-5-5", model, 1)
}

// checkUnpricedRefusal asserts the gateway's refusal of an unpriced model: 403 in Anthropic's
// shape, marked as the gateway's, naming the model.
func checkUnpricedRefusal(t *testing.T, resp *http.Response, names ...string) {
	t.Helper()
	var e anthropicError
	b := readBody(t, resp)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	if resp.StatusCode != 403 || e.Type != "error" || e.Error.Type != "permission_error" ||
		resp.Header.Get(gateway.HeaderReject) != gateway.RejectUnpriced || resp.Header.Get("X-Should-Retry") != "false" {
		t.Fatalf("status %d, %s %q, body %s; want 403 permission_error, %s: unpriced, no retry",
			resp.StatusCode, gateway.HeaderReject, resp.Header.Get(gateway.HeaderReject), b, gateway.HeaderReject)
	}
	for _, name := range names {
		if !strings.Contains(e.Error.Message, `"`+name+`"`) {
			t.Errorf("message %q does not name %q", e.Error.Message, name)
		}
	}
}

// TestUnpricedModelRefused: a model without a price is refused before anything goes
// upstream, and nothing is billed; a token count of it is not billed, so it is relayed.
func TestUnpricedModelRefused(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-any", nil)
	checkUnpricedRefusal(t, e.post(t, "/v1/messages", bodyFor(unpricedModel), nil), unpricedModel)
	checkUnpricedRefusal(t, e.post(t, "/v1/messages", strings.Replace(streamBody, "claude-sonnet-5-5", unpricedModel, 1), nil), unpricedModel)
	if got := e.Mock.Requests("up-any", 10); len(got) != 0 {
		t.Fatalf("the upstream received %d requests for an unpriced model", len(got))
	}
	if resp := e.post(t, "/v1/messages/count_tokens", bodyFor(unpricedModel), nil); resp.StatusCode != 200 {
		t.Fatalf("count_tokens of an unpriced model: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	// A priced model is served as before, and is the only row.
	if resp := e.post(t, "/v1/messages", jsonBody, nil); resp.StatusCode != 200 {
		t.Fatalf("priced model: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if row := usageRows(t, e.Store, e.tenant.User.ID, 1)[0]; row.Model != "claude-sonnet-5-5" || row.Cost <= 0 {
		t.Fatalf("row %s cost %d", row.Model, row.Cost)
	}
}

// TestUnpricedMappingFailsOver: the price is checked per account, on the model the account
// maps to. An account that would serve an unpriced model is passed over for one that prices
// it; when none does, the refusal names both names.
func TestUnpricedMappingFailsOver(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-unpriced", func(a *store.Account) {
		a.Priority = 1 // ranked first
		a.ModelMapping = map[string]string{"team-model": unpricedModel, "alias-only": unpricedModel}
	})
	e.account(t, "up-priced", func(a *store.Account) {
		a.Priority = 2
		a.ModelMapping = map[string]string{"team-model": "claude-haiku-5-5"}
	})
	if resp := e.post(t, "/v1/messages", bodyFor("team-model"), nil); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if n := len(e.Mock.Requests("up-unpriced", 10)); n != 0 {
		t.Errorf("the account mapping to an unpriced model received %d requests", n)
	}
	row := usageRows(t, e.Store, e.tenant.User.ID, 1)[0]
	want := billing.Cost(mustPrice(t, "claude-haiku-5-5"), rowUsage(row))
	if row.UpstreamModel != "claude-haiku-5-5" || row.Cost != want || want <= 0 {
		t.Errorf("row %s → %s cost %d, want claude-haiku-5-5 at %d", row.Model, row.UpstreamModel, row.Cost, want)
	}
	checkUnpricedRefusal(t, e.post(t, "/v1/messages", bodyFor("alias-only"), nil), "alias-only", unpricedModel)
}

// TestUnpricedAllowedOrPriced: the operator serves an unpriced model by allowing unpriced
// models (configuration, or the admin setting, which wins once saved) or by pricing it in
// the model_prices setting; every node follows a settings change.
func TestUnpricedAllowedOrPriced(t *testing.T) {
	ctx := context.Background()
	setting := func(t *testing.T, e *env, key, value string) {
		t.Helper()
		if err := e.Store.SetSetting(ctx, key, value); err != nil {
			t.Fatal(err)
		}
		if err := invalidate.Publish(ctx, e.Coord, invalidate.Settings, 0); err != nil {
			t.Fatal(err)
		}
	}
	// served waits until the node follows the settings and serves the unpriced model.
	served := func(t *testing.T, e *env) store.Usage {
		t.Helper()
		waitFor(t, func() bool {
			resp := e.post(t, "/v1/messages", bodyFor(unpricedModel), nil)
			readBody(t, resp)
			return resp.StatusCode == 200
		})
		row := usageRows(t, e.Store, e.tenant.User.ID, 1)[0]
		if row.UpstreamModel != unpricedModel || row.InputTokens <= 0 {
			t.Fatalf("row %+v", row)
		}
		return row
	}

	t.Run("Configuration", func(t *testing.T) {
		cfg := testConfig()
		cfg.AllowUnpricedModels = true
		e := newEnv(t, cfg, gatewaytest.TenantOptions{})
		e.account(t, "up-1", nil)
		if row := served(t, e); row.Cost != 0 || row.Charged != 0 {
			t.Errorf("cost %d charged %d, want zero", row.Cost, row.Charged)
		}
		// The admin's saved "false" overrides the configuration.
		setting(t, e, billing.SettingAllowUnpriced, "false")
		waitFor(t, func() bool {
			resp := e.post(t, "/v1/messages", bodyFor(unpricedModel), nil)
			readBody(t, resp)
			return resp.StatusCode == 403
		})
		checkUnpricedRefusal(t, e.post(t, "/v1/messages", bodyFor(unpricedModel), nil), unpricedModel)
	})
	t.Run("Setting", func(t *testing.T) {
		e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
		e.account(t, "up-1", nil)
		checkUnpricedRefusal(t, e.post(t, "/v1/messages", bodyFor(unpricedModel), nil), unpricedModel)
		setting(t, e, billing.SettingAllowUnpriced, "true")
		if row := served(t, e); row.Cost != 0 {
			t.Errorf("cost %d, want zero", row.Cost)
		}
	})
	t.Run("PricedBySetting", func(t *testing.T) {
		e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
		e.account(t, "up-1", nil)
		prices := `{"` + unpricedModel + `": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}`
		setting(t, e, billing.SettingModelPrices, prices)
		row := served(t, e)
		table, err := billing.Load(strings.NewReader(prices))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := table.Lookup(unpricedModel)
		if want := billing.Cost(p, rowUsage(row)); row.Cost != want || want <= 0 {
			t.Errorf("cost %d, want %d (the setting's price)", row.Cost, want)
		}
	})
}

func mustPrice(t *testing.T, model string) billing.Price {
	t.Helper()
	p, ok := billing.Default().Lookup(model)
	if !ok {
		t.Fatalf("no built-in price for %s", model)
	}
	return p
}

// TestUnpricedRefusalInTheRoutesProtocol: on an OpenAI route the refusal is OpenAI's error
// shape, on a Gemini route Google's, with the same header and status.
func TestUnpricedRefusalInTheRoutesProtocol(t *testing.T) {
	t.Run("Gemini", func(t *testing.T) {
		d := gatewaytest.NewDeps(t, gatewaytest.Deps{Providers: []provider.Provider{anthropic.New(), gemini.New()}})
		node := gatewaytest.Start(t, d, testConfig(), "n1", nil)
		g := &store.Group{Name: "gemini-group", Platform: store.PlatformGemini, BillingType: store.BillingBalance,
			RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
		if err := d.Store.CreateGroup(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: g})
		gatewaytest.NewAccount(t, d, "gm-any", []int64{g.ID}, func(a *store.Account) { a.Platform = store.PlatformGemini })
		for _, method := range []string{"generateContent", "streamGenerateContent?alt=sse"} {
			req, err := http.NewRequest("POST", node.URL+"/v1beta/models/gemini-unpriced-9:"+method,
				strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Goog-Api-Key", ten.Secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
					Status  string `json:"status"`
				} `json:"error"`
			}
			b := readBody(t, resp)
			resp.Body.Close()
			if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != 403 || e.Error.Code != 403 ||
				e.Error.Status != "PERMISSION_DENIED" || resp.Header.Get(gateway.HeaderReject) != gateway.RejectUnpriced ||
				!strings.Contains(e.Error.Message, `"gemini-unpriced-9"`) {
				t.Errorf("%s: status %d, reject %q: %s", method, resp.StatusCode, resp.Header.Get(gateway.HeaderReject), b)
			}
		}
		if n := len(d.Mock.Requests("gm-any", 10)); n != 0 {
			t.Errorf("the upstream received %d requests", n)
		}
	})
	e := newOAIEnv(t)
	e.account(t, "oa-any", 1)
	for _, path := range []string{"/v1/responses", "/v1/chat/completions"} {
		resp := e.do(t, "POST", path, strings.Replace(oaiChat, "gpt-6-sol", "gpt-unpriced-9", 1), bearer(e.oai.Secret))
		typ, msg, code := openAIError(t, readBody(t, resp))
		if resp.StatusCode != 403 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectUnpriced ||
			typ != "invalid_request_error" || code == nil || *code != "permission_denied" || !strings.Contains(msg, `"gpt-unpriced-9"`) {
			t.Errorf("%s: status %d, reject %q, %s/%v %q", path, resp.StatusCode, resp.Header.Get(gateway.HeaderReject), typ, code, msg)
		}
	}
	if n := len(e.Mock.Requests("oa-any", 10)); n != 0 {
		t.Errorf("the upstream received %d requests", n)
	}
}
