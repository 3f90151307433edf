package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// mountGateway starts the relay with its providers and registers their routes (and the
// 404s under their prefixes). Its
// Close, which flushes pending billing, runs when the node closes, after the HTTP server has
// stopped taking requests.
func (m *Main) mountGateway(mux *http.ServeMux, logins gateway.Logins) error {
	prices, err := billing.Open(m.cfg.PriceFile)
	if err != nil {
		return fmt.Errorf("load prices (PRICE_FILE): %w", err)
	}
	g, err := gateway.New(gateway.Options{
		// OpenAI and Gemini join here.
		Providers: []provider.Provider{anthropic.New(), openai.New(), gemini.New()},
		Store:     m.store,
		Coord:     m.coord,
		Keys:      m.keys,
		Prices:    prices,
		Logger:    m.logger,
		Metrics:   m.registry,
		Config:    m.cfg.Gateway,
		NodeName:  m.nodeName,
		Logins:    logins,
	})
	if err != nil {
		return fmt.Errorf("start the gateway: %w", err)
	}
	m.closers = append(m.closers, g.Close)
	m.gw = g
	g.Routes(mux)
	return nil
}

// gatewayTester runs the API's account tests through this node's gateway, which is built
// after the API's handler.
type gatewayTester struct{ m *Main }

func (t gatewayTester) TestAccount(ctx context.Context, acct *store.Account, model string) gateway.AccountTest {
	if t.m.gw == nil {
		return gateway.AccountTest{Model: model, Error: "the gateway is not running on this node"}
	}
	return t.m.gw.TestAccount(ctx, acct, model)
}
