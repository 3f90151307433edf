package billing

import (
	"os"
	"path/filepath"
	"testing"
)

// listPrice is one model's published list price in pico-dollars per token (= micro-dollars
// per million tokens: 2 USD/Mtok is 2_000_000), base and long-prompt tier.
type listPrice struct {
	input, cacheRead, cacheWrite, output int64
	above                                int64 // tier threshold in prompt tokens; 0 = none
	tierInput, tierCacheRead, tierOutput int64
}

// openAIGeminiList is every OpenAI and Gemini entry of the built-in table, checked by hand
// against the providers' price pages (USD per million tokens in the comments). OpenAI has no
// cache-write surcharge except where published (GPT-6 Sol/Luna, GPT-5.6): written tokens bill
// as input. GPT-5.4 and later bill a prompt above 272K tokens wholly at 2× input and cache,
// 1.5× output; Gemini's Pro models above 200K at their own tier prices.
var openAIGeminiList = map[string]listPrice{
	// OpenAI: input / cached input / cache write / output.
	"gpt-6.1-sol":   {2e6, 100_000, 2e6, 10e6, 272_000, 4e6, 200_000, 15e6},                 // 2 / 0.10 / — / 10
	"gpt-6-sol":     {2e6, 200_000, 2_500_000, 10e6, 272_000, 4e6, 400_000, 15e6},           // 2 / 0.20 / 2.50 / 10
	"gpt-6-luna":    {100_000, 10_000, 125_000, 500_000, 272_000, 200_000, 20_000, 750_000}, // 0.10 / 0.01 / 0.125 / 0.50
	"gpt-6-astra":   {10e6, 1e6, 10e6, 50e6, 272_000, 20e6, 2e6, 75e6},                      // 10 / (0.1×) / — / 50
	"gpt-5.6-sol":   {5e6, 500_000, 6_250_000, 30e6, 272_000, 10e6, 1e6, 45e6},              // 5 / 0.5 / 6.25 / 30
	"gpt-5.6-terra": {2e6, 200_000, 2_500_000, 12e6, 272_000, 4e6, 400_000, 18e6},           // 2 / 0.2 / 2.5 / 12
	"gpt-5.6-luna":  {200_000, 20_000, 250_000, 1_200_000, 272_000, 400_000, 40_000, 1_800_000},
	"gpt-5.5":       {5e6, 500_000, 5e6, 30e6, 272_000, 10e6, 1e6, 45e6},
	"gpt-5.4":       {2_500_000, 250_000, 2_500_000, 15e6, 272_000, 5e6, 500_000, 22_500_000},
	"gpt-5":         {1_250_000, 125_000, 1_250_000, 10e6, 0, 0, 0, 0},
	"gpt-5.1":       {1_250_000, 125_000, 1_250_000, 10e6, 0, 0, 0, 0},
	"gpt-5-mini":    {250_000, 25_000, 250_000, 2e6, 0, 0, 0, 0},
	"gpt-4.1":       {2e6, 500_000, 2e6, 8e6, 0, 0, 0, 0},
	"gpt-4o":        {2_500_000, 1_250_000, 2_500_000, 10e6, 0, 0, 0, 0},
	// Gemini (paid tier): input / cache read / output; no per-request cache write.
	"gemini-3.8-flash":       {750_000, 75_000, 750_000, 3_750_000, 0, 0, 0, 0}, // promotional until 2026-12-31
	"gemini-3.5-flash":       {1_500_000, 150_000, 1_500_000, 9e6, 0, 0, 0, 0},
	"gemini-3.5-flash-lite":  {300_000, 30_000, 300_000, 2_500_000, 0, 0, 0, 0},
	"gemini-3.1-pro-preview": {2e6, 200_000, 2e6, 12e6, 200_000, 4e6, 400_000, 18e6},
	"gemini-3.1-flash-lite":  {250_000, 25_000, 250_000, 1_500_000, 0, 0, 0, 0},
	"gemini-3-flash-preview": {500_000, 50_000, 500_000, 3e6, 0, 0, 0, 0},
	"gemini-2.5-pro":         {1_250_000, 125_000, 1_250_000, 10e6, 200_000, 2_500_000, 250_000, 15e6},
	"gemini-2.5-flash":       {300_000, 30_000, 300_000, 2_500_000, 0, 0, 0, 0},
	"gemini-2.5-flash-lite":  {100_000, 10_000, 100_000, 400_000, 0, 0, 0, 0},
}

// TestDefaultOpenAIAndGeminiPrices checks every OpenAI and Gemini entry of the built-in
// table against the list, both ways: a new entry needs its line here.
func TestDefaultOpenAIAndGeminiPrices(t *testing.T) {
	table := Default()
	seen := 0
	for _, model := range table.Models() {
		p := mustLookup(t, table, model)
		if p.Provider != "openai" && p.Provider != "gemini" {
			continue
		}
		seen++
		want, ok := openAIGeminiList[model]
		if !ok {
			t.Errorf("%s (%s) is in prices.json but not checked here", model, p.Provider)
			continue
		}
		base := Rates{Input: want.input, Output: want.output, CacheWrite5m: want.cacheWrite, CacheWrite1h: want.cacheWrite, CacheRead: want.cacheRead}
		if p.Rates != base {
			t.Errorf("%s base = %+v, want %+v", model, p.Rates, base)
		}
		if want.above == 0 {
			if len(p.Tiers) != 0 {
				t.Errorf("%s has tiers %+v, want none", model, p.Tiers)
			}
			continue
		}
		// The tier's cache write scales with its input, like every bucket of the request.
		tierWrite := mulDivRound(want.cacheWrite, want.tierInput, want.input)
		tier := Rates{Input: want.tierInput, Output: want.tierOutput, CacheWrite5m: tierWrite, CacheWrite1h: tierWrite, CacheRead: want.tierCacheRead}
		if len(p.Tiers) != 1 || p.Tiers[0].Above != want.above || p.Tiers[0].Rates != tier {
			t.Errorf("%s tiers = %+v, want above %d: %+v", model, p.Tiers, want.above, tier)
		}
	}
	if seen != len(openAIGeminiList) {
		t.Errorf("the built-in table has %d OpenAI and Gemini models, the list %d", seen, len(openAIGeminiList))
	}
}

// TestProviderUsagePricedByHand prices OpenAI's and Gemini's usage as their meters hand it
// over: OpenAI's input_tokens include cached_tokens and output_tokens include reasoning;
// Gemini's promptTokenCount includes cachedContentTokenCount, and thoughtsTokenCount is billed
// as output beside candidatesTokenCount. The meter subtracts the cached tokens from the input
// (Tokens.Input excludes them) and adds the thoughts to the output.
func TestProviderUsagePricedByHand(t *testing.T) {
	table := Default()
	tests := []struct {
		name  string
		model string
		usage Tokens
		want  string // USD
	}{
		// input_tokens 10,000 of which cached 8,000; output_tokens 500 of which reasoning 200:
		// 2,000 × $2/M + 8,000 × $0.10/M + 500 × $10/M.
		{"OpenAICachedInput", "gpt-6.1-sol", Tokens{Input: 2_000, CacheRead: 8_000, Output: 500}, "0.009800000"},
		// input_tokens 300,000 of which cached 100,000: the prompt counts the cached tokens,
		// so the whole request is above 272K: 200,000 × $4/M + 100,000 × $0.20/M + 1,000 × $15/M.
		{"OpenAIAbove272kCountsCached", "gpt-6.1-sol", Tokens{Input: 200_000, CacheRead: 100_000, Output: 1_000}, "0.835000000"},
		// The same request without its cache is below the threshold.
		{"OpenAIBelow272k", "gpt-6.1-sol", Tokens{Input: 200_000, Output: 1_000}, "0.410000000"},
		// A dated snapshot name prices as its model.
		{"OpenAISnapshot", "gpt-6-sol-2026-09-03", Tokens{Input: 1_000, CacheCreation5m: 1_000, Output: 100}, "0.005500000"},
		// promptTokenCount 250,000 of which cachedContentTokenCount 50,000; candidates 1,000
		// and thoughts 3,000, both output; prompt above 200K: the tier for the whole request:
		// 200,000 × $4/M + 50,000 × $0.40/M + 4,000 × $18/M.
		{"GeminiThoughtsAbove200k", "gemini-3.1-pro-preview", Tokens{Input: 200_000, CacheRead: 50_000, Output: 4_000}, "0.892000000"},
		// promptTokenCount exactly 200,000: base rates. 150,000 × $2/M + 50,000 × $0.20/M + 4,000 × $12/M.
		{"GeminiAt200k", "gemini-3.1-pro-preview", Tokens{Input: 150_000, CacheRead: 50_000, Output: 4_000}, "0.358000000"},
		// Gemini CLI's path names the model as "models/…".
		{"GeminiFlashThoughts", "models/gemini-3.8-flash", Tokens{Input: 9_000, CacheRead: 1_000, Output: 2_000}, "0.014325000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLookup(t, table, tt.model)
			if got := FormatUSD(Cost(p, tt.usage)); got != tt.want {
				t.Errorf("%s %+v = %s USD, want %s", tt.model, tt.usage, got, tt.want)
			}
		})
	}
}

// TestOpenSharedSampleFile uses LiteLLM's own file (the January 2026 copy) as PRICE_FILE:
// its entries override the built-in ones of the same model, and the built-in models it lacks
// stay priced. (TestMergeReplacesPrefixedName: also when the file keys a model under a
// provider prefix.)
func TestOpenSharedSampleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model_prices_and_context_window.json")
	if err := os.WriteFile(path, readLiteLLM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	table, err := Open(path)
	if err != nil {
		t.Fatalf("Open(LiteLLM file): %v", err)
	}
	// Newer than the file: still the built-in price.
	if p := mustLookup(t, table, "gpt-6.1-sol"); p.Model != "gpt-6.1-sol" || p.CacheRead != 100_000 {
		t.Errorf("gpt-6.1-sol = %s %+v, want the built-in entry", p.Model, p.Rates)
	}
	// In both: the file's entry, whole (its missing cache write is derived, 1.25× input).
	if p := mustLookup(t, table, "gpt-5"); p.CacheWrite5m != 1_562_500 {
		t.Errorf("gpt-5 = %+v, want the file's entry", p.Rates)
	}
	// LiteLLM's older copy lists a higher cache-read price for gemini-2.5-flash-lite: the
	// operator's file wins.
	if p := mustLookup(t, table, "gemini-2.5-flash-lite"); p.CacheRead != 25_000 {
		t.Errorf("gemini-2.5-flash-lite = %+v, want the file's cache read 25000", p.Rates)
	}
	if table.Len() < loadLiteLLM(t).Len() {
		t.Errorf("Len = %d, want at least the file's", table.Len())
	}
}

func TestMergeReplacesPrefixedName(t *testing.T) {
	base := mustLoad(t, `{"gemini-x": {"input_cost_per_token": 1e-06}, "gpt-y": {"input_cost_per_token": 1e-06}}`)
	over := mustLoad(t, `{"gemini/Gemini-X": {"input_cost_per_token": 3e-06}}`)
	m := base.Merge(over)
	if p := mustLookup(t, m, "gemini-x"); p.Model != "gemini/Gemini-X" || p.Input != 3e6 {
		t.Errorf("gemini-x = %s %+v; want the override", p.Model, p.Rates)
	}
	if p := mustLookup(t, m, "gpt-y"); p.Input != 1e6 || m.Len() != 2 {
		t.Errorf("gpt-y = %+v, Len %d; want the base entry kept and 2 models", p.Rates, m.Len())
	}
}
