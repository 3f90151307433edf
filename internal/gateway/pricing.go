package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// RejectUnpriced: the model has no price and the operator has not allowed unpriced models.
const RejectUnpriced = "unpriced"

// pricing is what prices a request: the price table (the node's, with the admin's
// model_prices setting over it) and whether a model without a price may be served anyway,
// billed at zero cost (its tokens still recorded).
type pricing struct {
	table         *billing.Table
	allowUnpriced bool
}

// lookup finds the price of the first of models the table knows: the upstream model is
// what was consumed, the client's name the fallback for a mapping to a name the table does
// not know.
func (p pricing) lookup(models ...string) (billing.Price, bool) {
	for _, m := range models {
		if price, ok := p.table.Lookup(m); ok {
			return price, true
		}
	}
	return billing.Price{}, false
}

// pricing returns the pricing in force, from the node's cache of the admin settings
// (invalidated with them, kept as the last known value through a database outage). Settings
// never read fall back to the node's own: its table and ALLOW_UNPRICED_MODELS.
func (g *Gateway) pricing(ctx context.Context) pricing {
	p, err := g.settings.get(ctx, struct{}{}, g.loadPricing)
	if err != nil {
		g.log.WarnContext(ctx, "reading the pricing settings failed; using the node's price table", "err", err)
		return pricing{table: g.prices, allowUnpriced: g.cfg.AllowUnpricedModels}
	}
	return p
}

// loadPricing reads the pricing settings. Both were validated when written; a value that no
// longer parses is logged and left out, so it cannot stop the relay.
func (g *Gateway) loadPricing(ctx context.Context) (pricing, error) {
	p := pricing{table: g.prices, allowUnpriced: g.cfg.AllowUnpricedModels}
	allow, err := g.setting(ctx, billing.SettingAllowUnpriced)
	if err != nil {
		return p, err
	}
	if allow != "" {
		if b, perr := strconv.ParseBool(allow); perr == nil {
			p.allowUnpriced = b
		}
	}
	extra, err := g.setting(ctx, billing.SettingModelPrices)
	if err != nil {
		return p, err
	}
	if strings.TrimSpace(extra) != "" {
		t, err := billing.Load(strings.NewReader(extra))
		if err != nil {
			g.log.ErrorContext(ctx, "the model_prices setting does not parse; ignored", "err", err)
		} else {
			p.table = g.prices.Merge(t)
		}
	}
	return p, nil
}

// setting reads one admin setting; "" when it was never saved.
func (g *Gateway) setting(ctx context.Context, key string) (string, error) {
	v, err := g.store.GetSetting(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, nil
}

// unpricedError says that every account able to serve the request would serve a model
// without a price.
type unpricedError struct {
	model, upstream string
}

func (e *unpricedError) Error() string {
	name := strconv.Quote(e.model)
	if e.upstream != e.model {
		name += " (upstream model " + strconv.Quote(e.upstream) + ")"
	}
	return "FluxCode: model " + name + " has no price on this gateway, so it is not served; " +
		"an admin can price it (PRICE_FILE or the model_prices setting) or allow unpriced models"
}

// keepPriced drops the candidates whose upstream model has no price, unless unpriced
// models are allowed: an unknown model must not be served for free by accident. The
// accounts that price it still serve, so a group that maps a model differently per account
// fails over to those. Before any attempt (tried is empty), candidates that all lack a
// price are an *unpricedError, for a refusal that names the model; after one, the request
// reports that attempt's failure instead. Only billed requests are checked; the pricing they
// were checked with is the one they are billed with (c.pricing).
func (c *call) keepPriced(cands []Candidate, tried map[int64]bool) ([]Candidate, error) {
	if !c.billed() || len(cands) == 0 {
		return cands, nil
	}
	c.pricing = c.g.pricing(c.ctx())
	if c.pricing.allowUnpriced {
		return cands, nil
	}
	kept := cands[:0]
	var dropped string
	for _, cand := range cands {
		if _, ok := c.pricing.lookup(cand.Model, c.req.Model); ok {
			kept = append(kept, cand)
		} else if dropped == "" {
			dropped = cand.Model
		}
	}
	if len(kept) == 0 && len(tried) == 0 {
		return nil, &unpricedError{model: c.req.Model, upstream: dropped}
	}
	return kept, nil
}

// refuseUnpriced answers a request for a model without a price: 403, the provider's
// permission error, X-Fluxcode-Reject: unpriced. Not 400: the request itself is valid and
// would be served as it is once the operator prices the model.
func (c *call) refuseUnpriced(err *unpricedError) {
	c.reject(RejectUnpriced, provider.KindPermission, 0, err.Error(), 0)
}

// price returns the price a delivered answer is billed at. A model without one is served
// only when unpriced models are allowed: its cost is zero, and it is logged once per model.
func (c *call) price(upstreamModel string) (billing.Price, bool) {
	if c.pricing.table == nil { // not checked at scheduling (it always is for billed requests)
		c.pricing = c.g.pricing(c.ctx())
	}
	if p, ok := c.pricing.lookup(upstreamModel, c.req.Model); ok {
		return p, true
	}
	if _, warned := c.g.unpriced.LoadOrStore(upstreamModel, true); !warned {
		c.g.log.Warn("serving a model without a price (unpriced models are allowed); its usage is recorded at zero cost",
			"model", upstreamModel)
	}
	return billing.Price{}, false
}

// billed: only generation is billed (and priced); token counts and model lists are not.
func (c *call) billed() bool { return c.op == provider.OpMessages }
