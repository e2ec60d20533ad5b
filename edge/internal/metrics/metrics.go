// Package metrics defines the agent's Prometheus metrics (all named
// outpost_edge_*, counters ending in _total) and serves them over HTTP.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the agent's own instruments. Values read from other parts
// (outbox, uplink, broker) are registered as functions with Func.
type Metrics struct {
	Reg          *prometheus.Registry
	Readings     prometheus.Counter
	PayloadBytes prometheus.Counter
	DecodeErrors *prometheus.CounterVec // label reason
	Events       *prometheus.CounterVec // labels kind, source
	Drops        prometheus.Counter
	// Judge is the time to judge one reading: window, scoring (the model's
	// Invoke for model-scored streams) and decision.
	Judge prometheus.Histogram
	// Commit is the time from an MQTT message's receipt to the outbox
	// commit of an event it caused (readings judged normal cause none).
	Commit prometheus.Histogram
}

// New registers the metrics on a new registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Reg: reg,
		Readings: prometheus.NewCounter(prometheus.CounterOpts{Name: "outpost_edge_readings_total",
			Help: "Readings decoded and judged."}),
		PayloadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "outpost_edge_mqtt_payload_bytes_total",
			Help: "MQTT payload bytes received."}),
		DecodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outpost_edge_decode_errors_total",
			Help: "Payloads that could not be decoded, by reason."}, []string{"reason"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outpost_edge_events_total",
			Help: "Events committed to the outbox, by kind and by the detector's stage that raised them (source: score, novelty, volatility, seasonal, range, stuck)."}, []string{"kind", "source"}),
		Drops: prometheus.NewCounter(prometheus.CounterOpts{Name: "outpost_edge_outbox_dropped_total",
			Help: "Records refused by the full-outbox policy since the agent started."}),
		Judge: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outpost_edge_judge_duration_seconds",
			Help:    "Time to judge one reading: window, scoring (model inference for model-scored streams) and decision.",
			Buckets: prometheus.ExponentialBuckets(100e-9, 4, 10)}), // 100 ns to 26 ms
		Commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outpost_edge_receive_to_commit_seconds",
			Help:    "Time from an MQTT message's receipt to the outbox commit of an event it caused.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 1.5, 28)}), // 25 µs to 1.4 s
	}
	reg.MustRegister(m.Readings, m.PayloadBytes, m.DecodeErrors, m.Events, m.Drops, m.Judge, m.Commit)
	return m
}

// CounterFuncWith registers a counter read from f, with constant labels.
func (m *Metrics) CounterFuncWith(name, help string, labels prometheus.Labels, f func() float64) {
	m.Reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
}

// GaugeFunc registers a gauge read from f.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter read from f.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.Reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// UplinkLag registers the uplink's lag, read from lag at every scrape:
// outpost_edge_uplink_lag_seconds, the age of the oldest outbox record
// JetStream has not acknowledged (0 when none waits), and
// outpost_edge_uplink_waiting_records, how many records wait.
func (m *Metrics) UplinkLag(lag func() (age time.Duration, waiting uint64)) {
	m.Reg.MustRegister(&lagCollector{lag: lag,
		age: prometheus.NewDesc("outpost_edge_uplink_lag_seconds",
			"Age of the oldest outbox record not yet acknowledged by JetStream (0 when none waits).", nil, nil),
		waiting: prometheus.NewDesc("outpost_edge_uplink_waiting_records",
			"Outbox records not yet acknowledged by JetStream.", nil, nil)})
}

// lagCollector reads age and waiting with one call, so they agree.
type lagCollector struct {
	lag          func() (time.Duration, uint64)
	age, waiting *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.age; ch <- c.waiting }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	age, waiting := c.lag()
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age.Seconds())
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(waiting))
}

// Serve serves /metrics on addr until ctx is done. It returns once the
// listener is open (or failed to open).
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener failed; /metrics is best effort
		}
	}()
	return ln.Addr(), nil
}
