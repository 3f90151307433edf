package billing

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

// mustLoad parses a price table from JSON text.
func mustLoad(tb testing.TB, json string) *Table {
	tb.Helper()
	t, err := Load(strings.NewReader(json))
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return t
}

// mustLookup finds model in t.
func mustLookup(tb testing.TB, t *Table, model string) Price {
	tb.Helper()
	p, ok := t.Lookup(model)
	if !ok {
		tb.Fatalf("Lookup(%q): not found", model)
	}
	return p
}

// liteLLMFile is the January 2026 copy of LiteLLM's price file
// (BerriAI/litellm model_prices_and_context_window.json, MIT), gzipped.
const liteLLMFile = "testdata/litellm_model_prices_2026-01.json.gz"

// readLiteLLM returns the decompressed LiteLLM price file.
func readLiteLLM(tb testing.TB) []byte {
	tb.Helper()
	f, err := os.Open(liteLLMFile)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// loadLiteLLM loads the LiteLLM price file.
func loadLiteLLM(tb testing.TB) *Table {
	tb.Helper()
	t, err := Load(bytes.NewReader(readLiteLLM(tb)))
	if err != nil {
		tb.Fatalf("Load(LiteLLM file): %v", err)
	}
	return t
}

const pico = 1 // rates below are written in pico-dollars per token; 1 USD/Mtok = 1_000_000

func TestParseRateExact(t *testing.T) {
	tests := []struct {
		text string
		want int64
	}{
		{"3e-06", 3_000_000},
		{"1.25e-07", 125_000},
		{"1e-08", 10_000},
		{"3.75E-06", 3_750_000},
		{"0.000015", 15_000_000},
		{"1.875e-05", 18_750_000},
		{"6.25e-08", 62_500},
		{"0", 0},
		{"0.0", 0},
		{"-0", 0},
		{"1e-12", 1},
		{"1.5e-12", 2},                        // half a pico-dollar rounds up
		{"1.4999e-12", 1},                     // less than half rounds down
		{"4e-13", 0},                          // below half a pico-dollar
		{"2.9999900000000002e-06", 2_999_990}, // LiteLLM float noise
		{"1.5000020000000002e-05", 15_000_020},
		{"1e-9999", 0},
		{"1000", 1000 * 1_000_000_000_000},
	}
	for _, tt := range tests {
		got, err := parseRate([]byte(tt.text))
		if err != nil || got != tt.want*pico {
			t.Errorf("parseRate(%s) = %d, %v; want %d", tt.text, got, err, tt.want)
		}
	}
	for _, bad := range []string{`"3e-06"`, `-1e-06`, `true`, `null`, `{}`, `1e400`, `1000.000000000001`, `1e+`, `.5`} {
		if got, err := parseRate([]byte(bad)); err == nil {
			t.Errorf("parseRate(%s) = %d, nil; want an error", bad, got)
		}
	}
}

func TestDefaultOpus55ByHand(t *testing.T) {
	p := mustLookup(t, Default(), "claude-opus-5-5")
	// 4 / 5 / 8 / 0.20 / 20 USD per million tokens.
	want := Rates{Input: 4_000_000, CacheWrite5m: 5_000_000, CacheWrite1h: 8_000_000, CacheRead: 200_000, Output: 20_000_000}
	if p.Rates != want || len(p.Tiers) != 0 || p.Provider != "anthropic" {
		t.Fatalf("claude-opus-5-5 = %+v; want rates %+v, no tiers, provider anthropic", p, want)
	}
	// 1000 in $0.004 + 500 out $0.01 + 2000 5m writes $0.01 + 300 1h writes
	// $0.0024 + 10000 reads $0.002 = $0.0284.
	got := Cost(p, Tokens{Input: 1000, Output: 500, CacheCreation5m: 2000, CacheCreation1h: 300, CacheRead: 10000})
	if got != 28_400_000 {
		t.Errorf("cost = %d nanos (%s USD), want 28400000 (0.0284)", got, FormatUSD(got))
	}
	// Claude Code itself reports $0.00014 for 10 in + 5 out.
	if got := Cost(p, Tokens{Input: 10, Output: 5}); FormatUSD(got) != "0.000140000" {
		t.Errorf("10 in + 5 out = %s USD, want 0.000140000", FormatUSD(got))
	}
}

func TestDefaultCoversCurrentModels(t *testing.T) {
	table := Default()
	tests := []struct {
		model string
		want  Rates
	}{
		{"claude-opus-4-5-20251101", Rates{Input: 5e6, CacheWrite5m: 6_250_000, CacheWrite1h: 10e6, CacheRead: 500_000, Output: 25e6}},
		{"claude-opus-4-1-20250805", Rates{Input: 15e6, CacheWrite5m: 18_750_000, CacheWrite1h: 30e6, CacheRead: 1_500_000, Output: 75e6}},
		{"claude-sonnet-5-5", Rates{Input: 2e6, CacheWrite5m: 2_500_000, CacheWrite1h: 4e6, CacheRead: 100_000, Output: 10e6}},
		{"claude-sonnet-4-6", Rates{Input: 3e6, CacheWrite5m: 3_750_000, CacheWrite1h: 6e6, CacheRead: 300_000, Output: 15e6}},
		{"claude-haiku-4-5-20251001", Rates{Input: 1e6, CacheWrite5m: 1_250_000, CacheWrite1h: 2e6, CacheRead: 100_000, Output: 5e6}},
		{"claude-mythos-5-2", Rates{Input: 8e6, CacheWrite5m: 10e6, CacheWrite1h: 16e6, CacheRead: 200_000, Output: 40e6}},
		// OpenAI and Gemini entries carry every rate: no cache-write surcharge (writes bill as
		// input) unless published, as for gpt-6-sol.
		{"gpt-6.1-sol", Rates{Input: 2e6, CacheWrite5m: 2e6, CacheWrite1h: 2e6, CacheRead: 100_000, Output: 10e6}},
		{"gpt-6-sol", Rates{Input: 2e6, CacheWrite5m: 2_500_000, CacheWrite1h: 2_500_000, CacheRead: 200_000, Output: 10e6}},
		// gpt-6-astra publishes no cached price → 0.1× input, the family's rule.
		{"gpt-6-astra", Rates{Input: 10e6, CacheWrite5m: 10e6, CacheWrite1h: 10e6, CacheRead: 1e6, Output: 50e6}},
		{"gpt-5-mini", Rates{Input: 250_000, CacheWrite5m: 250_000, CacheWrite1h: 250_000, CacheRead: 25_000, Output: 2e6}},
		{"gemini-3.8-flash", Rates{Input: 750_000, CacheWrite5m: 750_000, CacheWrite1h: 750_000, CacheRead: 75_000, Output: 3_750_000}},
		{"gemini-2.5-flash-lite", Rates{Input: 100_000, CacheWrite5m: 100_000, CacheWrite1h: 100_000, CacheRead: 10_000, Output: 400_000}},
	}
	for _, tt := range tests {
		if p := mustLookup(t, table, tt.model); p.Rates != tt.want {
			t.Errorf("%s = %+v, want %+v", tt.model, p.Rates, tt.want)
		}
	}
}

func TestTiers(t *testing.T) {
	table := Default()
	t.Run("Haiku55WholeRequestAbove100k", func(t *testing.T) {
		p := mustLookup(t, table, "claude-haiku-5-5")
		if got := Cost(p, Tokens{Input: 100_000, Output: 1000}); got != 10_500_000 {
			t.Errorf("prompt of exactly 100k: %d nanos, want 10500000 (base rates)", got)
		}
		if got := Cost(p, Tokens{Input: 100_001, Output: 1000}); got != 52_500_500 {
			t.Errorf("prompt of 100001: %d nanos, want 52500500 (tier rates for the whole request)", got)
		}
		// Cache reads and writes count towards the prompt.
		tier := p.RatesFor(100_001)
		if got := Cost(p, Tokens{Input: 50_000, CacheRead: 40_000, CacheCreation1h: 10_001}); got != store.Nanos((50_000*tier.Input+40_000*tier.CacheRead+10_001*tier.CacheWrite1h+500)/1000) {
			t.Errorf("cached prompt over 100k: %d nanos, want tier rates", got)
		}
		// The 1h tier price is not in the file: base 1h × tier input / base input = $1.00.
		want := Rates{Input: 500_000, Output: 2_500_000, CacheWrite5m: 625_000, CacheWrite1h: 1_000_000, CacheRead: 50_000}
		if tier != want {
			t.Errorf("haiku-5-5 tier = %+v, want %+v", tier, want)
		}
	})
	t.Run("GPT272k", func(t *testing.T) {
		p := mustLookup(t, table, "gpt-6-sol")
		want := Rates{Input: 4e6, Output: 15e6, CacheWrite5m: 5e6, CacheWrite1h: 5e6, CacheRead: 400_000}
		if got := p.RatesFor(272_001); got != want {
			t.Errorf("gpt-6-sol above 272k = %+v, want %+v", got, want)
		}
		if got := p.RatesFor(272_000); got != p.Rates {
			t.Errorf("gpt-6-sol at 272k = %+v, want base", got)
		}
	})
	t.Run("SeveralTiersHighestExceededWins", func(t *testing.T) {
		tt := mustLoad(t, `{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
			"input_cost_per_token_above_272k_tokens": 3e-06, "input_cost_per_token_above_128k_tokens": 2e-06}}`)
		p := mustLookup(t, tt, "m")
		for prompt, wantIn := range map[int64]int64{128_000: 1e6, 128_001: 2e6, 272_000: 2e6, 272_001: 3e6} {
			if got := p.RatesFor(prompt); got.Input != wantIn || got.Output != 2e6 {
				t.Errorf("prompt %d: %+v, want input %d output 2000000", prompt, got, wantIn)
			}
		}
	})
}

func TestMissingCachePrices(t *testing.T) {
	p := mustLookup(t, mustLoad(t, `{"m": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05}}`), "m")
	want := Rates{Input: 3e6, Output: 15e6, CacheWrite5m: 3_750_000, CacheWrite1h: 6e6, CacheRead: 300_000}
	if p.Rates != want {
		t.Errorf("derived = %+v, want %+v", p.Rates, want)
	}
	p = mustLookup(t, mustLoad(t, `{"m": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
		"cache_read_input_token_cost": 0, "cache_creation_input_token_cost": 0.0}}`), "m")
	if p.CacheRead != 0 || p.CacheWrite5m != 0 || p.CacheWrite1h != 6e6 {
		t.Errorf("present zeros = %+v; want zeros kept and 1h derived", p.Rates)
	}
	// Derived rates round half-up to a pico-dollar: 1 × 1.25 = 1.25 → 1, 2 × 1.25 = 2.5 → 3.
	for in, want5m := range map[string]int64{"1e-12": 1, "2e-12": 3} {
		p := mustLookup(t, mustLoad(t, `{"m": {"input_cost_per_token": `+in+`}}`), "m")
		if p.CacheWrite5m != want5m {
			t.Errorf("input %s: 5m = %d, want %d", in, p.CacheWrite5m, want5m)
		}
	}
}

func TestLoadLiteLLMFile(t *testing.T) {
	table := loadLiteLLM(t)
	// 2218 entries: sample_spec and 325 per-image/per-second entries without
	// token prices are left out.
	if table.Len() != 1892 {
		t.Errorf("Len = %d, want 1892", table.Len())
	}
	tests := []struct {
		model string
		want  Rates
		tiers []Tier
	}{
		{"claude-sonnet-4-5", Rates{Input: 3e6, Output: 15e6, CacheWrite5m: 3_750_000, CacheWrite1h: 6e6, CacheRead: 300_000},
			[]Tier{{Above: 200_000, Rates: Rates{Input: 6e6, Output: 22_500_000, CacheWrite5m: 7_500_000, CacheWrite1h: 12e6, CacheRead: 600_000}}}},
		{"claude-opus-4-5", Rates{Input: 5e6, Output: 25e6, CacheWrite5m: 6_250_000, CacheWrite1h: 10e6, CacheRead: 500_000}, nil},
		{"gpt-5", Rates{Input: 1_250_000, Output: 10e6, CacheWrite5m: 1_562_500, CacheWrite1h: 2_500_000, CacheRead: 125_000}, nil},
		{"gemini/gemini-2.5-pro", Rates{Input: 1_250_000, Output: 10e6, CacheWrite5m: 1_562_500, CacheWrite1h: 2_500_000, CacheRead: 312_500},
			[]Tier{{Above: 200_000, Rates: Rates{Input: 2_500_000, Output: 15e6, CacheWrite5m: 3_125_000, CacheWrite1h: 5e6, CacheRead: 625_000}}}},
		{"databricks/databricks-claude-3-7-sonnet", Rates{Input: 2_999_990, Output: 15_000_020, CacheWrite5m: 3_749_988, CacheWrite1h: 5_999_980, CacheRead: 299_999}, nil},
		{"gemini/gemini-1.5-pro-latest", Rates{Input: 3_500_000, Output: 1_050_000, CacheWrite5m: 4_375_000, CacheWrite1h: 7e6, CacheRead: 350_000},
			[]Tier{{Above: 128_000, Rates: Rates{Input: 7e6, Output: 21e6, CacheWrite5m: 8_750_000, CacheWrite1h: 14e6, CacheRead: 700_000}}}},
	}
	for _, tt := range tests {
		p := mustLookup(t, table, tt.model)
		if p.Model != tt.model || p.Rates != tt.want || !equalTiers(p.Tiers, tt.tiers) {
			t.Errorf("%s = %+v\nwant rates %+v tiers %+v", tt.model, p, tt.want, tt.tiers)
		}
	}
	for _, model := range []string{"sample_spec", "256-x-256/dall-e-2"} {
		if p, ok := table.Lookup(model); ok {
			t.Errorf("Lookup(%q) = %+v; want it left out (no token prices)", model, p)
		}
	}
	// A bare Gemini name that LiteLLM keys only under "gemini/".
	if p := mustLookup(t, table, "gemini-flash-latest"); p.Model != "gemini/gemini-flash-latest" || p.CacheRead != 75_000 {
		t.Errorf("gemini-flash-latest → %s %+v, want gemini/gemini-flash-latest", p.Model, p.Rates)
	}
}

func equalTiers(a, b []Tier) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLoadRejectsMalformed(t *testing.T) {
	tests := map[string]string{
		"Empty":           ``,
		"Truncated":       `{"m": {"input_cost_per_token": 3e-06}`,
		"NotAnObject":     `[]`,
		"Null":            `null`,
		"TrailingGarbage": `{} {}`,
		"EntryNotObject":  `{"m": 5}`,
		"PriceAsString":   `{"m": {"input_cost_per_token": "3e-06"}}`,
		"NegativePrice":   `{"m": {"input_cost_per_token": 3e-06, "output_cost_per_token": -1e-06}}`,
		"TierAsString":    `{"m": {"input_cost_per_token": 3e-06, "input_cost_per_token_above_200k_tokens": "x"}}`,
		"Absurd":          `{"m": {"input_cost_per_token": 1e30}}`,
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			if tbl, err := Load(strings.NewReader(text)); err == nil {
				t.Fatalf("Load(%s) = %d models, nil error; want an error", text, tbl.Len())
			}
		})
	}
	_, err := Load(strings.NewReader(`{"good": {"input_cost_per_token": 1e-06}, "bad-model": {"output_cost_per_token": "0.1"}}`))
	if err == nil || !strings.Contains(err.Error(), "bad-model") || !strings.Contains(err.Error(), "output_cost_per_token") {
		t.Errorf("error %v; want it to name the model and the field", err)
	}
}

func TestLookupNormalisation(t *testing.T) {
	table := Default()
	tests := map[string]string{
		"claude-sonnet-4-5-20250929":   "claude-sonnet-4-5-20250929",
		"Claude-Opus-5-5":              "claude-opus-5-5",
		"  claude-opus-5-5 ":           "claude-opus-5-5",
		"anthropic/claude-opus-5-5":    "claude-opus-5-5",
		"claude-opus-4-6[1m]":          "claude-opus-4-6",
		"claude-opus-5-5-20261101":     "claude-opus-5-5",
		"claude-sonnet-4-5@20250929":   "claude-sonnet-4-5",
		"claude-opus-4-6-20260205[1m]": "claude-opus-4-6",
		"gpt-4o-2024-08-06":            "gpt-4o",
		"openai/gpt-5.4":               "gpt-5.4",
		"gemini/gemini-2.5-pro":        "gemini-2.5-pro",
		"models/gemini-2.5-flash":      "gemini-2.5-flash",
		"projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro": "gemini-2.5-pro",
	}
	for in, want := range tests {
		if p, ok := table.Lookup(in); !ok || p.Model != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", in, p.Model, ok, want)
		}
	}
	for _, unknown := range []string{"", "no-such-model", "claude-opus-9", "gpt-4o-mini-2024", "[1m]", "/", "claude-opus-5-5-2026110"} {
		if p, ok := table.Lookup(unknown); ok {
			t.Errorf("Lookup(%q) = %q; want not found", unknown, p.Model)
		}
	}
}

func TestMergeAndOpen(t *testing.T) {
	base := Default()
	over := mustLoad(t, `{"claude-opus-5-5": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
		"house-model": {"input_cost_per_token": 5e-07, "output_cost_per_token": 1e-06}}`)
	merged := base.Merge(over)
	if merged.Len() != base.Len()+1 {
		t.Errorf("merged Len = %d, want %d", merged.Len(), base.Len()+1)
	}
	if p := mustLookup(t, merged, "claude-opus-5-5"); p.Input != 1e6 || p.CacheWrite1h != 2e6 {
		t.Errorf("overridden entry = %+v; want the file's entry whole (1h derived from its input)", p.Rates)
	}
	if p := mustLookup(t, merged, "House-Model"); p.Input != 500_000 {
		t.Errorf("added entry = %+v", p.Rates)
	}
	if p := mustLookup(t, base, "claude-opus-5-5"); p.Input != 4e6 {
		t.Errorf("Merge changed its receiver: %+v", p.Rates)
	}

	dir := t.TempDir()
	path := dir + "/prices.json"
	if err := os.WriteFile(path, []byte(`{"house-model": {"input_cost_per_token": 5e-07}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	opened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := opened.Lookup("house-model"); !ok || opened.Len() != base.Len()+1 {
		t.Errorf("Open(file): house-model found %v, Len %d; want the default extended", ok, opened.Len())
	}
	if plain, err := Open(""); err != nil || plain.Len() != base.Len() {
		t.Errorf(`Open("") = %v; want the default table`, err)
	}
	if _, err := Open(dir + "/missing.json"); err == nil {
		t.Error("Open(missing file) succeeded")
	}
	if err := os.WriteFile(path, []byte(`{"m": `), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(malformed) = %v; want an error naming the file", err)
	}
}

func TestCostRounding(t *testing.T) {
	p := Price{Rates: Rates{Input: 10, Output: 1, CacheRead: 3}} // pico-dollars per token
	tests := []struct {
		tokens Tokens
		want   store.Nanos
	}{
		{Tokens{Input: 49}, 0},                            // 490 pico
		{Tokens{Input: 50}, 1},                            // 500 pico: half rounds up
		{Tokens{Input: 149}, 1},                           // 1490 pico
		{Tokens{Input: 150}, 2},                           // 1500 pico
		{Tokens{Input: 40, Output: 50, CacheRead: 17}, 1}, // 400+50+51 = 501: summed before rounding
		{Tokens{Output: 499}, 0},
		{Tokens{}, 0},
		{Tokens{Input: -1000, Output: 600}, 1}, // negative counts are zero
	}
	for _, tt := range tests {
		if got := Cost(p, tt.tokens); got != tt.want {
			t.Errorf("Cost(%+v) = %d, want %d", tt.tokens, got, tt.want)
		}
	}
	if got := Cost(Price{Rates: Rates{Input: -5, Output: 1000}}, Tokens{Input: 1000, Output: 1}); got != 1 {
		t.Errorf("negative rate: %d, want it counted as zero (1)", got)
	}
}

// bigCost is Cost computed with arbitrary precision, as the oracle.
func bigCost(r Rates, t Tokens) *big.Int {
	sum := new(big.Int)
	for _, pair := range [][2]int64{{t.Input, r.Input}, {t.Output, r.Output}, {t.CacheCreation5m, r.CacheWrite5m}, {t.CacheCreation1h, r.CacheWrite1h}, {t.CacheRead, r.CacheRead}} {
		sum.Add(sum, new(big.Int).Mul(big.NewInt(max(pair[0], 0)), big.NewInt(max(pair[1], 0))))
	}
	sum.Add(sum, big.NewInt(500))
	return sum.Quo(sum, big.NewInt(1000))
}

func TestCostOverflowSafe(t *testing.T) {
	huge := Price{Rates: Rates{Input: maxRate, Output: maxRate, CacheWrite5m: maxRate, CacheWrite1h: maxRate, CacheRead: maxRate}}
	all := Tokens{Input: math.MaxInt64, Output: math.MaxInt64, CacheCreation5m: math.MaxInt64, CacheCreation1h: math.MaxInt64, CacheRead: math.MaxInt64}
	if got := Cost(huge, all); got != math.MaxInt64 {
		t.Errorf("cost beyond int64 = %d, want saturation at MaxInt64", got)
	}
	// Products that overflow int64 but whose sum fits in int64 nanos are exact.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		r := Rates{Input: rng.Int64N(maxRate), Output: rng.Int64N(maxRate), CacheWrite5m: rng.Int64N(1e9), CacheWrite1h: rng.Int64N(1e9), CacheRead: rng.Int64N(1e7)}
		tk := Tokens{Input: rng.Int64N(1 << 40), Output: rng.Int64N(1 << 40), CacheCreation5m: rng.Int64N(1 << 50), CacheCreation1h: rng.Int64N(1 << 20), CacheRead: rng.Int64N(1 << 62)}
		want := bigCost(r, tk)
		if !want.IsInt64() {
			want = big.NewInt(math.MaxInt64)
		}
		if got := Cost(Price{Rates: r}, tk); int64(got) != want.Int64() {
			t.Fatalf("Cost(%+v, %+v) = %d, want %s", r, tk, got, want)
		}
	}
}

func TestApplyMultiplier(t *testing.T) {
	tests := []struct {
		cost store.Nanos
		ppm  int64
		want store.Nanos
	}{
		{1000, 1_500_000, 1500},
		{123_456_789, 1_000_000, 123_456_789},
		{1, 500_000, 1}, // exactly half rounds up
		{1, 499_999, 0},
		{3, 333_333, 1}, // 0.999999
		{7, 0, 0},
		{-1, 500_000, -1}, // half rounds away from zero
		{-3, 500_000, -2},
		{math.MaxInt64, 1_000_000, math.MaxInt64},
		{math.MaxInt64, 2_000_000, math.MaxInt64},
		{math.MinInt64, 1_000_000, math.MinInt64},
		{math.MinInt64, 2_000_000, math.MinInt64},
		{math.MaxInt64, -3_000_000, math.MinInt64},
		{9_223_372_036_854, 1_000_000_001, 9_223_372_046_077_372}, // × 1000.000001
	}
	for _, tt := range tests {
		if got := ApplyMultiplier(tt.cost, tt.ppm); got != tt.want {
			t.Errorf("ApplyMultiplier(%d, %d) = %d, want %d", tt.cost, tt.ppm, got, tt.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		cost, ppm := rng.Int64N(1<<62), rng.Int64N(10_000_000)
		prod := new(big.Int).Mul(big.NewInt(cost), big.NewInt(ppm))
		prod.Add(prod, big.NewInt(500_000)).Quo(prod, big.NewInt(1_000_000))
		want := int64(math.MaxInt64)
		if prod.IsInt64() {
			want = prod.Int64()
		}
		if got := ApplyMultiplier(store.Nanos(cost), ppm); int64(got) != want {
			t.Fatalf("ApplyMultiplier(%d, %d) = %d, want %d", cost, ppm, got, want)
		}
	}
}

func TestFormatParseUSD(t *testing.T) {
	format := map[store.Nanos]string{
		1_234_567_890: "1.234567890",
		0:             "0.000000000",
		-5:            "-0.000000005",
		28_400_000:    "0.028400000",
		12e9:          "12.000000000",
		math.MaxInt64: "9223372036.854775807",
		math.MinInt64: "-9223372036.854775808",
	}
	for n, want := range format {
		if got := FormatUSD(n); got != want {
			t.Errorf("FormatUSD(%d) = %q, want %q", n, got, want)
		}
	}
	parse := map[string]store.Nanos{
		"1.234567890":           1_234_567_890,
		"12":                    12e9,
		"-0.5":                  -500_000_000,
		"+1.5":                  1_500_000_000,
		".25":                   250_000_000,
		"0":                     0,
		"1.0000000000":          1e9, // trailing zeros lose nothing
		"007.1":                 7_100_000_000,
		"9223372036.854775807":  math.MaxInt64,
		"-9223372036.854775807": -math.MaxInt64,
	}
	for s, want := range parse {
		if got, err := ParseUSD(s); err != nil || got != want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "-", "+", ".", "1.", "abc", "1e3", "1.0000000001", "1,5", " 1", "1 ", "--1", "9223372036.854775808", "99999999999"} {
		if got, err := ParseUSD(bad); err == nil {
			t.Errorf("ParseUSD(%q) = %d, nil; want an error", bad, got)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10000 {
		n := store.Nanos(rng.Int64() - math.MaxInt64/2)
		if got, err := ParseUSD(FormatUSD(n)); err != nil || got != n {
			t.Fatalf("round trip of %d via %q = %d, %v", n, FormatUSD(n), got, err)
		}
	}
}

func TestDefaultParses(t *testing.T) {
	table := Default()
	if table.Len() < 50 {
		t.Errorf("default table has %d models", table.Len())
	}
	for _, m := range table.Models() {
		p := mustLookup(t, table, m)
		if p.Input <= 0 || p.Output <= 0 || p.Provider == "" {
			t.Errorf("%s: %+v; want input and output prices and a provider", m, p)
		}
	}
}

func BenchmarkCost(b *testing.B) {
	p := mustLookup(b, Default(), "claude-sonnet-4-5")
	tk := Tokens{Input: 12_345, Output: 2_345, CacheCreation5m: 3_000, CacheCreation1h: 100, CacheRead: 150_000}
	b.ReportAllocs()
	var sink store.Nanos
	for b.Loop() {
		sink += Cost(p, tk)
	}
	_ = sink
}

func BenchmarkLookup(b *testing.B) {
	table := loadLiteLLM(b).Merge(Default())
	for _, model := range []string{"claude-sonnet-4-5-20250929", "anthropic/claude-opus-5-5", "claude-opus-4-6-20260205[1m]"} {
		b.Run(model, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := table.Lookup(model); !ok {
					b.Fatal("not found")
				}
			}
		})
	}
}
