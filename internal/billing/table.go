package billing

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// defaultPrices is the built-in table: current Anthropic, OpenAI and Gemini
// list prices (each entry's "source" says where from) in LiteLLM's format.
//
//go:embed prices.json
var defaultPrices []byte

// LiteLLM field names this package reads; every other field is ignored.
const (
	fieldProvider     = "litellm_provider"
	fieldInput        = "input_cost_per_token"
	fieldOutput       = "output_cost_per_token"
	fieldCacheWrite5m = "cache_creation_input_token_cost"
	fieldCacheWrite1h = "cache_creation_input_token_cost_above_1hr"
	fieldCacheRead    = "cache_read_input_token_cost"
	// A tier field is a rate field + "_above_<N>k_tokens" (N×1000 tokens).
	tierPrefix = "_above_"
	tierSuffix = "k_tokens"
)

// maxRate bounds a per-token price at 1000 USD, in pico-dollars: far above
// any real price, and low enough that derived rates cannot overflow.
const maxRate = 1000 * 1_000_000_000_000

// Table maps model names to prices. It is immutable once built and safe for
// concurrent use.
type Table struct {
	prices map[string]Price
	folded map[string]string // lower-cased key → key, for case-insensitive hits
}

// Default returns the built-in price table.
func Default() *Table {
	t, err := Load(bytes.NewReader(defaultPrices))
	if err != nil {
		// The embedded file is part of the source; TestDefault proves it parses.
		panic(fmt.Sprintf("billing: embedded prices.json: %v", err))
	}
	return t
}

// Open returns the built-in table extended and overridden by the LiteLLM
// file at path (PRICE_FILE); an empty path gives the built-in table alone.
func Open(path string) (*Table, error) {
	t := Default()
	if path == "" {
		return t, nil
	}
	extra, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	return t.Merge(extra), nil
}

// LoadFile reads a LiteLLM-format price file.
func LoadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("price file: %w", err)
	}
	defer f.Close()
	t, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("price file %s: %w", path, err)
	}
	return t, nil
}

// Load reads a price table in LiteLLM's model_prices_and_context_window.json
// format: an object of model name → entry, prices in USD per token.
//
// Rules, beyond LiteLLM's own field meanings:
//   - "sample_spec" and entries with neither an input nor an output price
//     (image, audio-per-second, search models) are left out, so Lookup
//     reports them unknown rather than free.
//   - A missing cache price follows Anthropic's rules from the input price:
//     5-minute write 1.25×, 1-hour write 2×, read 0.1×. A present 0 is 0.
//   - A price finer than a pico-dollar is rounded half-up to one (some
//     entries carry float noise such as 2.9999900000000002e-06).
//   - Tier fields (*_above_200k_tokens, *_above_272k_tokens, …) make a tier
//     whose omitted input or output rate is the base rate, and whose omitted
//     cache rates are the base cache rates scaled by tier input / base input
//     (the "whole request at 2×" rules scale every bucket alike).
//   - Any rate that is not a non-negative JSON number is an error naming the
//     model and field.
func Load(r io.Reader) (*Table, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("price table: read: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("price table: want a JSON object of model entries")
	}
	t := &Table{prices: make(map[string]Price, len(raw))}
	for model, body := range raw {
		if model == "sample_spec" {
			continue
		}
		p, ok, err := parseEntry(model, body)
		if err != nil {
			return nil, fmt.Errorf("price table: model %q: %w", model, err)
		}
		if ok {
			t.prices[model] = p
		}
	}
	t.index()
	return t, nil
}

// index builds the case-folded key map; where two keys fold alike the
// smallest key wins, so lookups never depend on map order.
func (t *Table) index() {
	keys := t.Models()
	t.folded = make(map[string]string, len(keys))
	for _, k := range keys {
		f := strings.ToLower(k)
		if _, taken := t.folded[f]; !taken {
			t.folded[f] = k
		}
	}
}

// Merge returns a table holding t's entries with over's added; an entry in
// both is over's, whole (fields are not mixed between the two). Entries are
// the same model when their names match ignoring case and a provider prefix
// ("gemini/gemini-2.5-pro" in LiteLLM's file replaces the built-in
// "gemini-2.5-pro"), so an override always wins the lookup.
func (t *Table) Merge(over *Table) *Table {
	m := &Table{prices: make(map[string]Price, len(t.prices)+len(over.prices))}
	replaced := make(map[string]bool, len(over.prices))
	for k := range over.prices {
		replaced[bareName(k)] = true
	}
	for k, p := range t.prices {
		if !replaced[bareName(k)] {
			m.prices[k] = p
		}
	}
	for k, p := range over.prices {
		m.prices[k] = p
	}
	m.index()
	return m
}

// Len is the number of priced models.
func (t *Table) Len() int { return len(t.prices) }

// Models returns the table's keys, sorted.
func (t *Table) Models() []string {
	keys := make([]string, 0, len(t.prices))
	for k := range t.prices {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// rateFields are the base rate fields in Rates order.
var rateFields = [...]string{fieldInput, fieldOutput, fieldCacheWrite5m, fieldCacheWrite1h, fieldCacheRead}

// rateSet is a Rates being parsed: which fields were present.
type rateSet struct {
	v   [len(rateFields)]int64
	has [len(rateFields)]bool
}

func (s rateSet) rates() Rates {
	return Rates{Input: s.v[0], Output: s.v[1], CacheWrite5m: s.v[2], CacheWrite1h: s.v[3], CacheRead: s.v[4]}
}

// parseEntry reads one model entry; ok is false for entries left out.
func parseEntry(model string, body json.RawMessage) (Price, bool, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Price{}, false, fmt.Errorf("want an object: %w", err)
	}
	var base rateSet
	tiers := map[int64]*rateSet{}
	for name, value := range fields {
		idx, above, ok := parseRateField(name)
		if !ok {
			continue
		}
		rate, err := parseRate(value)
		if err != nil {
			return Price{}, false, fmt.Errorf("%s: %w", name, err)
		}
		set := &base
		if above > 0 {
			if tiers[above] == nil {
				tiers[above] = &rateSet{}
			}
			set = tiers[above]
		}
		set.v[idx], set.has[idx] = rate, true
	}
	if !base.has[0] && !base.has[1] {
		return Price{}, false, nil
	}
	p := Price{Model: model, Rates: resolveBase(base)}
	if v, ok := fields[fieldProvider]; ok {
		_ = json.Unmarshal(v, &p.Provider) // informational; a non-string leaves it empty
	}
	for above, set := range tiers {
		p.Tiers = append(p.Tiers, Tier{Above: above, Rates: resolveTier(p.Rates, *set)})
	}
	sort.Slice(p.Tiers, func(i, j int) bool { return p.Tiers[i].Above < p.Tiers[j].Above })
	return p, true, nil
}

// parseRateField recognises a base rate field (above = 0) or a tier field
// "<rate field>_above_<N>k_tokens" (above = N×1000).
func parseRateField(name string) (idx int, above int64, ok bool) {
	rate := name
	if strings.HasSuffix(name, tierSuffix) {
		i := strings.LastIndex(name, tierPrefix)
		if i < 0 {
			return 0, 0, false
		}
		n, err := strconv.ParseInt(name[i+len(tierPrefix):len(name)-len(tierSuffix)], 10, 64)
		if err != nil || n <= 0 || n > 1<<40 {
			return 0, 0, false
		}
		rate, above = name[:i], n*1000
	}
	for i, f := range rateFields {
		if rate == f {
			return i, above, true
		}
	}
	return 0, 0, false
}

// parseRate reads a USD-per-token JSON number into pico-dollars per token.
func parseRate(value json.RawMessage) (int64, error) {
	text := string(bytes.TrimSpace(value))
	neg, digits, exp, err := splitDecimal(text, true)
	if err != nil {
		return 0, fmt.Errorf("want a number, got %s: %w", text, err)
	}
	mag, _, err := scaleDigits(digits, exp+picoDigits)
	if err != nil || mag > maxRate {
		return 0, fmt.Errorf("%s USD per token is out of range", text)
	}
	if neg && mag != 0 {
		return 0, fmt.Errorf("negative price %s", text)
	}
	return int64(mag), nil
}

// resolveBase fills missing base rates: input and output default to 0,
// cache rates follow Anthropic's multipliers of the input rate.
func resolveBase(s rateSet) Rates {
	r := s.rates()
	if !s.has[2] {
		r.CacheWrite5m = mulDivRound(r.Input, 5, 4)
	}
	if !s.has[3] {
		r.CacheWrite1h = r.Input * 2
	}
	if !s.has[4] {
		r.CacheRead = mulDivRound(r.Input, 1, 10)
	}
	return r
}

// resolveTier fills a tier's missing rates from the base (see Load).
func resolveTier(base Rates, s rateSet) Rates {
	r := s.rates()
	if !s.has[0] {
		r.Input = base.Input
	}
	if !s.has[1] {
		r.Output = base.Output
	}
	scale := func(v int64) int64 {
		if base.Input == 0 {
			return v
		}
		return mulDivRound(v, r.Input, base.Input)
	}
	if !s.has[2] {
		r.CacheWrite5m = scale(base.CacheWrite5m)
	}
	if !s.has[3] {
		r.CacheWrite1h = scale(base.CacheWrite1h)
	}
	if !s.has[4] {
		r.CacheRead = scale(base.CacheRead)
	}
	return r
}

// mulDivRound is v×num/den rounded half-up, for non-negative rates no
// larger than maxRate (so the product cannot overflow 128 bits).
func mulDivRound(v, num, den int64) int64 {
	return u128{}.addMul(uint64(v), uint64(num)).divRound(uint64(den))
}

// Lookup finds the price of model. It tries, in order, each of these forms
// of the name and stops at the first hit:
//
//  1. the name as given;
//  2. lower-cased and trimmed;
//  3. without a bracketed suffix: "claude-opus-4-6[1m]" → "claude-opus-4-6";
//  4. without a provider or path prefix, keeping the last path segment:
//     "anthropic/claude-sonnet-4-5", "models/gemini-2.5-pro",
//     "projects/p/locations/l/publishers/google/models/gemini-2.5-pro";
//  5. without a version suffix: "-20250929", "-2024-08-06", "@20250929".
//
// Each form is tried as a key, case-insensitively, then with the prefixes
// "anthropic/", "openai/" and "gemini/" (LiteLLM keys some models so).
// Unknown models return false; what to do then is the caller's decision.
func (t *Table) Lookup(model string) (Price, bool) {
	if p, ok := t.prices[model]; ok {
		return p, true
	}
	name := strings.ToLower(strings.TrimSpace(model))
	if p, ok := t.find(name); ok {
		return p, true
	}
	if strings.HasSuffix(name, "]") {
		if i := strings.LastIndexByte(name, '['); i > 0 {
			name = name[:i]
			if p, ok := t.find(name); ok {
				return p, true
			}
		}
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
		if p, ok := t.find(name); ok {
			return p, true
		}
	}
	if base, ok := stripVersion(name); ok {
		return t.find(base)
	}
	return Price{}, false
}

var lookupPrefixes = [...]string{"anthropic/", "openai/", "gemini/"}

// bareName is a table key lower-cased and without one of lookupPrefixes: the
// name Lookup reaches it by.
func bareName(key string) string {
	k := strings.ToLower(key)
	for _, prefix := range lookupPrefixes {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			return rest
		}
	}
	return k
}

// find tries name as a key, case-insensitively, then under each prefix.
func (t *Table) find(name string) (Price, bool) {
	if name == "" {
		return Price{}, false
	}
	if k, ok := t.folded[name]; ok {
		return t.prices[k], true
	}
	for _, prefix := range lookupPrefixes {
		if k, ok := t.folded[prefix+name]; ok {
			return t.prices[k], true
		}
	}
	return Price{}, false
}

// stripVersion removes a trailing snapshot version: "@anything",
// "-YYYYMMDD" or "-YYYY-MM-DD".
func stripVersion(name string) (string, bool) {
	if i := strings.LastIndexByte(name, '@'); i > 0 {
		return name[:i], true
	}
	if n := len(name); n > 9 && name[n-9] == '-' && allDigits(name[n-8:]) {
		return name[:n-9], true
	}
	if n := len(name); n > 11 && name[n-11] == '-' && allDigits(name[n-10:n-6]) &&
		name[n-6] == '-' && allDigits(name[n-5:n-3]) && name[n-3] == '-' && allDigits(name[n-2:]) {
		return name[:n-11], true
	}
	return "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
