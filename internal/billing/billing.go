// Package billing prices AI requests exactly: a model price table in
// LiteLLM's JSON format, and the cost of a request's token counts in whole
// nano-dollars.
//
// Rates are integers in pico-dollars (1e-12 USD) per token, read from the
// JSON number text itself (no float64 step), so 3e-06 is exactly 3,000,000.
// A cost sums token × rate products in 128 bits and rounds once, half-up, to
// nano-dollars (store.Nanos). Nothing here touches a float.
package billing

import (
	"math"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Tokens are one request's usage, bucketed the way Anthropic reports it.
// Input excludes the cache buckets: a meter for a protocol whose input count
// includes cached tokens (OpenAI, Gemini) subtracts them before billing.
// Reasoning ("thinking") tokens belong in Output, which is how providers bill
// them.
type Tokens struct {
	Input           int64
	Output          int64
	CacheCreation5m int64 // prompt-cache writes kept 5 minutes
	CacheCreation1h int64 // prompt-cache writes kept 1 hour
	CacheRead       int64
}

// Prompt is the size of the prompt that price tiers are measured by:
// input plus cache reads and writes (Anthropic's long-prompt rule; Gemini's
// and OpenAI's prompt counts include cached tokens the same way).
func (t Tokens) Prompt() int64 {
	var sum int64
	for _, v := range []int64{t.Input, t.CacheRead, t.CacheCreation5m, t.CacheCreation1h} {
		if v > 0 {
			if sum > math.MaxInt64-v {
				return math.MaxInt64
			}
			sum += v
		}
	}
	return sum
}

// Rates are per-token prices in pico-dollars (1e-12 USD).
type Rates struct {
	Input        int64
	Output       int64
	CacheWrite5m int64
	CacheWrite1h int64
	CacheRead    int64
}

// Tier holds the rates that apply to a whole request when its prompt is
// larger than Above tokens (LiteLLM's *_above_200k_tokens fields).
type Tier struct {
	Above int64
	Rates
}

// Price is one model's entry in a Table. Treat it as read-only: Tiers may
// share memory with the table.
type Price struct {
	Model    string // the table key it was found under
	Provider string // LiteLLM's litellm_provider, e.g. "anthropic"
	Rates           // for prompts no larger than the first tier's threshold
	Tiers    []Tier // ascending by Above
}

// RatesFor returns the rates for a request whose prompt has the given
// number of tokens: those of the highest tier it exceeds, else the base.
func (p Price) RatesFor(prompt int64) Rates {
	for i := len(p.Tiers) - 1; i >= 0; i-- {
		if prompt > p.Tiers[i].Above {
			return p.Tiers[i].Rates
		}
	}
	return p.Rates
}

// Cost is the list price of usage t at price p, in nano-dollars: every
// bucket times its rate summed exactly in pico-dollars, then rounded half-up
// once. Negative counts or rates count as zero (a metering bug must never
// become a credit); a sum beyond int64 saturates at math.MaxInt64.
func Cost(p Price, t Tokens) store.Nanos {
	r := p.RatesFor(t.Prompt())
	var sum u128
	sum = sum.addMul(nonNegative(t.Input), nonNegative(r.Input))
	sum = sum.addMul(nonNegative(t.Output), nonNegative(r.Output))
	sum = sum.addMul(nonNegative(t.CacheCreation5m), nonNegative(r.CacheWrite5m))
	sum = sum.addMul(nonNegative(t.CacheCreation1h), nonNegative(r.CacheWrite1h))
	sum = sum.addMul(nonNegative(t.CacheRead), nonNegative(r.CacheRead))
	return store.Nanos(sum.divRound(picoPerNano))
}

// Admin settings (store keys) that change pricing on every node: the gateway reads them,
// the admin API validates and writes them.
const (
	// SettingModelPrices holds a LiteLLM-format JSON object whose entries extend and
	// override the node's price table (the built-in one and PRICE_FILE).
	SettingModelPrices = "model_prices"
	// SettingAllowUnpriced is "true" when models without a price may be served, billed at
	// zero cost; unset, the configuration (ALLOW_UNPRICED_MODELS) decides.
	SettingAllowUnpriced = "allow_unpriced_models"
)
