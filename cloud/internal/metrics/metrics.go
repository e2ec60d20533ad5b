// Package metrics defines outpost-cloud's Prometheus metrics. Every metric
// lives on the Metrics' own registry (no package globals) under the
// outpost_cloud_ namespace; counters end in _total.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "outpost_cloud"

// Metrics holds the service's collectors and the registry they are on.
type Metrics struct {
	// Registry is what /metrics serves.
	Registry *prometheus.Registry
	// EventsReceived counts accepted events by kind.
	EventsReceived *prometheus.CounterVec
	// EventsDuplicate counts events dropped by the per-agent high-water mark.
	EventsDuplicate prometheus.Counter
	// EventsInvalid counts event messages that could not be decoded or
	// validated; they are terminated, not redelivered.
	EventsInvalid prometheus.Counter
	// StateMessages counts state (heartbeat) messages received.
	StateMessages prometheus.Counter
	// StateInvalid counts state messages that could not be decoded.
	StateInvalid prometheus.Counter
	// APIRequests counts API requests by transport (nats, http), endpoint
	// and outcome (ok, error).
	APIRequests *prometheus.CounterVec
}

// New returns the metrics registered on a fresh registry. devicesOnline is
// called at every scrape to report the number of online devices.
func New(devicesOnline func() float64) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		EventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_received_total",
			Help: "Edge events accepted, by kind (anomaly, uncertain).",
		}, []string{"kind"}),
		EventsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_duplicate_total",
			Help: "Edge events dropped as duplicates by the per-agent sequence high-water mark.",
		}),
		EventsInvalid: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_invalid_total",
			Help: "Edge event messages that could not be decoded or validated.",
		}),
		StateMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "state_messages_total",
			Help: "Agent state (heartbeat) messages received.",
		}),
		StateInvalid: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "state_invalid_total",
			Help: "Agent state messages that could not be decoded.",
		}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "API requests by transport (nats, http), endpoint and outcome (ok, error).",
		}, []string{"transport", "endpoint", "outcome"}),
	}
	for _, k := range []string{"anomaly", "uncertain"} {
		m.EventsReceived.WithLabelValues(k)
	}
	m.Registry.MustRegister(
		m.EventsReceived, m.EventsDuplicate, m.EventsInvalid,
		m.StateMessages, m.StateInvalid, m.APIRequests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "devices_online",
			Help: "Agents whose last heartbeat is within 3 heartbeat intervals.",
		}, devicesOnline),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
