package app

import (
	"fmt"
	"net/http"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
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
	g.Routes(mux)
	return nil
}
