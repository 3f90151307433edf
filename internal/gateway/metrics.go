package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	reg             prometheus.Registerer
	requests        *prometheus.CounterVec   // by operation and outcome
	upstreamSeconds *prometheus.HistogramVec // time to the upstream's response headers
	failovers       *prometheus.CounterVec   // attempts that failed over, by reason
	slotWaits       prometheus.Counter       // requests that had to wait for a slot
	slotWaitSeconds prometheus.Histogram     // how long they waited
	billedRows      *prometheus.CounterVec   // ledger rows by result: written, refused, lost
	billErrors      prometheus.Counter       // failed ledger writes (each is retried)
	// billUncommitted counts complete answers sent before their row was committed.
	billUncommitted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxcode_gateway_requests_total",
			Help: "Relay requests by operation and outcome (ok, partial, client_error, upstream_error, rejected_<reason>, client_gone, or the error kind).",
		}, []string{"op", "outcome"}),
		upstreamSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fluxcode_gateway_upstream_header_seconds",
			Help:    "Time from sending a request upstream to its response headers.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"op"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxcode_gateway_failovers_total",
			Help: "Upstream attempts that failed before the first byte and moved on, by upstream status (or network, stream_error).",
		}, []string{"reason"}),
		slotWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxcode_gateway_slot_waits_total",
			Help: "Requests that waited in the queue for a concurrency slot.",
		}),
		slotWaitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fluxcode_gateway_slot_wait_seconds",
			Help:    "How long queued requests waited for a concurrency slot.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		billedRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxcode_gateway_billing_rows_total",
			Help: "Ledger rows handled by the billing batcher: written, refused (invalid) or lost (shutdown timeout).",
		}, []string{"result"}),
		billErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxcode_gateway_billing_write_errors_total",
			Help: "Ledger batch writes that failed and were retried.",
		}),
		billUncommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxcode_gateway_billing_uncommitted_answers_total",
			Help: "Complete answers sent before their ledger row was committed (the commit wait expired, or the database was failing); the rows stay queued.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.upstreamSeconds, m.failovers, m.slotWaits, m.slotWaitSeconds, m.billedRows, m.billErrors, m.billUncommitted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

// queueDepth exposes the billing queue's length.
func (m *metrics) queueDepth(depth func() float64) {
	if m.reg == nil {
		return
	}
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fluxcode_gateway_billing_queue_depth",
		Help: "Usage rows waiting to be written to the ledger.",
	}, depth))
}
