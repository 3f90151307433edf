package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/invalidate"
)

// The settings an admin may read and write. Other keys in the settings table (the shared JWT
// secret, for one) are internal and never leave the server.
const (
	settingRegistration       = "registration_enabled"
	settingDefaultConcurrency = "default_concurrency"
	settingDefaultBalance     = "default_balance"
	settingSiteName           = "site_name"
)

// settingsView holds the effective value of every admin setting.
type settingsView struct {
	RegistrationEnabled bool   `json:"registration_enabled"`
	DefaultConcurrency  int    `json:"default_concurrency"`
	DefaultBalance      money  `json:"default_balance"`
	SiteName            string `json:"site_name"`
	RequireTwoFactor    bool   `json:"require_2fa_for_admins"`
	// AllowUnpricedModels serves models without a price at zero cost instead of refusing
	// them; ModelPrices is a LiteLLM-format price object over the built-in table and
	// PRICE_FILE. The gateway of every node reads both (billing.Setting*).
	AllowUnpricedModels bool            `json:"allow_unpriced_models"`
	ModelPrices         json.RawMessage `json:"model_prices"`
}

// loadSettings reads the admin settings, with defaults for those never saved. Registration
// and unpriced models default to the configuration (REGISTRATION_ENABLED,
// ALLOW_UNPRICED_MODELS) until an admin saves a value.
func (a *api) loadSettings(ctx context.Context) (settingsView, error) {
	all, err := a.store.ListSettings(ctx)
	if err != nil {
		return settingsView{}, err
	}
	v := settingsView{RegistrationEnabled: a.regOn(), SiteName: "FluxCode",
		AllowUnpricedModels: a.allowUnpriced, ModelPrices: json.RawMessage(`{}`)}
	// Stored values were validated when written; an unreadable one keeps its default.
	if s, ok := all[settingRegistration]; ok {
		if b, err := strconv.ParseBool(s); err == nil {
			v.RegistrationEnabled = b
		}
	}
	if n, err := strconv.Atoi(all[settingDefaultConcurrency]); err == nil {
		v.DefaultConcurrency = n
	}
	if n, ok := parseDecimal(all[settingDefaultBalance], moneyScale); ok {
		v.DefaultBalance = money(n)
	}
	if s, ok := all[settingSiteName]; ok {
		v.SiteName = s
	}
	v.RequireTwoFactor, _ = strconv.ParseBool(all[settingRequire2FA])
	if b, err := strconv.ParseBool(all[billing.SettingAllowUnpriced]); err == nil {
		v.AllowUnpricedModels = b
	}
	if s := all[billing.SettingModelPrices]; s != "" {
		v.ModelPrices = json.RawMessage(s)
	}
	return v, nil
}

func (a *api) registrationOpen(ctx context.Context) (bool, error) {
	s, err := a.loadSettings(ctx)
	return s.RegistrationEnabled, err
}

func (a *api) getSettings(w http.ResponseWriter, r *http.Request) {
	v, err := a.loadSettings(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type settingsReq struct {
	RegistrationEnabled *bool   `json:"registration_enabled"`
	DefaultConcurrency  *int    `json:"default_concurrency"`
	DefaultBalance      *money  `json:"default_balance"`
	SiteName            *string `json:"site_name"`
	RequireTwoFactor    *bool   `json:"require_2fa_for_admins"`
	AllowUnpricedModels *bool   `json:"allow_unpriced_models"`
	// ModelPrices replaces the whole saved object; {} removes every price it held.
	ModelPrices json.RawMessage `json:"model_prices"`
}

// putSettings saves the settings present in the body; absent ones keep their values. Every
// value is validated before any is written.
func (a *api) putSettings(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req settingsReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	set := map[string]string{}
	if req.RegistrationEnabled != nil {
		set[settingRegistration] = strconv.FormatBool(*req.RegistrationEnabled)
	}
	if req.DefaultConcurrency != nil {
		if err := checkConcurrency("default_concurrency", *req.DefaultConcurrency); err != nil {
			a.writeError(w, r, err)
			return
		}
		set[settingDefaultConcurrency] = strconv.Itoa(*req.DefaultConcurrency)
	}
	if req.DefaultBalance != nil {
		if *req.DefaultBalance < 0 {
			a.writeError(w, r, invalid("default_balance", "default_balance must not be negative"))
			return
		}
		set[settingDefaultBalance] = formatDecimal(int64(*req.DefaultBalance), moneyScale)
	}
	if req.SiteName != nil {
		name, err := checkText("site_name", *req.SiteName, true, maxNameLen)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		set[settingSiteName] = name
	}
	if req.RequireTwoFactor != nil {
		if err := a.checkCanRequire2FA(ctx, *req.RequireTwoFactor); err != nil {
			a.writeError(w, r, err)
			return
		}
		set[settingRequire2FA] = strconv.FormatBool(*req.RequireTwoFactor)
	}
	if req.AllowUnpricedModels != nil {
		set[billing.SettingAllowUnpriced] = strconv.FormatBool(*req.AllowUnpricedModels)
	}
	if req.ModelPrices != nil {
		prices, err := checkModelPrices(req.ModelPrices)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		set[billing.SettingModelPrices] = prices
	}
	for k, v := range set {
		if err := a.store.SetSetting(ctx, k, v); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if len(set) > 0 {
		a.publish(ctx, invalidate.Settings, 0)
	}
	a.getSettings(w, r)
}

// checkModelPrices validates a model_prices value with the gateway's own loader and returns
// it compacted: an object of model name → LiteLLM price entry (USD per token).
func checkModelPrices(raw json.RawMessage) (string, error) {
	if _, err := billing.Load(bytes.NewReader(raw)); err != nil {
		return "", invalid("model_prices", "model_prices must be a LiteLLM-format price object "+
			`({"model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}): %v`, err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", invalid("model_prices", "model_prices: %v", err)
	}
	return b.String(), nil
}
