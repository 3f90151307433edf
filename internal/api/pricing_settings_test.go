package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/billing"
)

// TestPricingSettings: allow_unpriced_models defaults to the configuration until saved;
// model_prices takes only what the gateway's price loader reads, and every node is told.
func TestPricingSettings(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.AllowUnpricedModels = true })
	type settings struct {
		AllowUnpricedModels bool            `json:"allow_unpriced_models"`
		ModelPrices         json.RawMessage `json:"model_prices"`
	}
	var s settings
	e.do("GET", "/api/v1/admin/settings", e.adminToken, nil).ok(t, 200, &s)
	if !s.AllowUnpricedModels || string(s.ModelPrices) != "{}" {
		t.Fatalf("defaults = allow %v, prices %s; want the configuration's true and {}", s.AllowUnpricedModels, s.ModelPrices)
	}

	prices := `{"house-model": {"input_cost_per_token": 1e-06,
		"output_cost_per_token": 2e-06}}`
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{
		"allow_unpriced_models": false, "model_prices": json.RawMessage(prices)}).ok(t, 200, &s)
	e.wantMessage("settings:0")
	const compact = `{"house-model":{"input_cost_per_token":1e-06,"output_cost_per_token":2e-06}}`
	if s.AllowUnpricedModels || string(s.ModelPrices) != compact {
		t.Fatalf("saved = allow %v, prices %s", s.AllowUnpricedModels, s.ModelPrices)
	}
	ctx := context.Background()
	for key, want := range map[string]string{billing.SettingAllowUnpriced: "false", billing.SettingModelPrices: compact} {
		if got, err := e.st.GetSetting(ctx, key); err != nil || got != want {
			t.Errorf("stored %s = %q, %v; want %q", key, got, err, want)
		}
	}

	before := e.snapshot()
	for _, bad := range []string{`[]`, `null`, `{"m": {"input_cost_per_token": "1e-06"}}`, `{"m": {"output_cost_per_token": -1}}`, `"x"`} {
		e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"model_prices": json.RawMessage(bad)}).
			wantError(t, 400, "invalid_argument", "model_prices")
	}
	if e.snapshot() != before {
		t.Error("refused prices changed the store")
	}
}
