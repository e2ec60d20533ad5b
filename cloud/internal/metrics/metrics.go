// Package metrics defines outpost-cloud's Prometheus metrics. Every metric
// lives on the Metrics' own registry (no package globals) under the
// outpost_cloud_ namespace; counters end in _total.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "outpost_cloud"

// latencyBuckets span 0.25 ms to 30 s, fine enough below 10 ms for p50 and
// p99 estimates of loopback latencies.
var latencyBuckets = []float64{0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

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

	// IngestMessages counts messages handled by the batched durable
	// consumers, by consumer (events, summaries, verdicts) and outcome:
	// accepted, duplicate (at or below the agent's high-water mark),
	// redelivered (already committed), invalid, deferred (an earlier message
	// of the same agent is still in flight elsewhere; negatively
	// acknowledged for redelivery).
	IngestMessages *prometheus.CounterVec
	// IngestBatches counts processed batches by consumer.
	IngestBatches *prometheus.CounterVec
	// IngestBatchSize is the number of messages per processed batch.
	IngestBatchSize *prometheus.HistogramVec
	// IngestBatchDuration is the time to process one batch (dedupe, handler,
	// high-water-mark compare-and-set, acks).
	IngestBatchDuration *prometheus.HistogramVec
	// HWMConflicts counts compare-and-set conflicts on the high-water-mark
	// bucket (another replica moved the mark first).
	HWMConflicts *prometheus.CounterVec

	// SummariesReceived counts accepted edge summaries.
	SummariesReceived prometheus.Counter
	// EdgeRawBytes and EdgeUplinkBytes sum the raw payload bytes the edges
	// received and the bytes they uplinked, from accepted summaries.
	EdgeRawBytes    prometheus.Counter
	EdgeUplinkBytes prometheus.Counter

	// Verdicts counts published verdicts by decision and model.
	Verdicts *prometheus.CounterVec
	// VerdictLatency is the time from the event's creation at the edge
	// (wire.Event.Created) to its verdict.
	VerdictLatency prometheus.Histogram
	// ScoreDuration is the time one second-stage scorer call takes, by model.
	ScoreDuration *prometheus.HistogramVec

	// AlertAttempts counts webhook POST attempts by outcome (ok, error).
	AlertAttempts *prometheus.CounterVec
	// AlertsDelivered counts alerts a webhook accepted.
	AlertsDelivered prometheus.Counter
	// AlertsDeadLettered counts alerts given up on after all retries and
	// kept in the dead-letter bucket.
	AlertsDeadLettered prometheus.Counter

	// RolloutsStarted counts rollouts started, by kind (model, config).
	RolloutsStarted *prometheus.CounterVec
	// RolloutsFinished counts rollouts reaching a final state, by state
	// (succeeded, aborted, rolled_back); a rollout rolled back after it
	// succeeded counts in both.
	RolloutsFinished *prometheus.CounterVec
	// RolloutAgents counts agents entering a rollout phase: running (the
	// agent reports the new model or config: updated), failed,
	// rolled_back, skipped (offline when the rollout started).
	RolloutAgents *prometheus.CounterVec
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
	consumer := []string{"consumer"}
	m.IngestMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "ingest_messages_total",
		Help: "Messages handled by the batched durable consumers, by consumer and outcome (accepted, duplicate, redelivered, invalid, deferred).",
	}, []string{"consumer", "outcome"})
	m.IngestBatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "ingest_batches_total",
		Help: "Batches processed by the durable consumers.",
	}, consumer)
	m.IngestBatchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "ingest_batch_messages",
		Help:    "Messages per processed batch.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000},
	}, consumer)
	m.IngestBatchDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "ingest_batch_duration_seconds",
		Help:    "Time to process one batch: dedupe, handler, high-water-mark compare-and-set, acks.",
		Buckets: latencyBuckets,
	}, consumer)
	m.HWMConflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "ingest_hwm_conflicts_total",
		Help: "Compare-and-set conflicts on the high-water-mark bucket.",
	}, consumer)
	m.SummariesReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "summaries_received_total",
		Help: "Edge summaries accepted.",
	})
	m.EdgeRawBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "edge_raw_bytes_total",
		Help: "Raw reading payload bytes the edges received, from their summaries.",
	})
	m.EdgeUplinkBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "edge_uplink_bytes_total",
		Help: "Bytes the edges published to the cloud, from their summaries.",
	})
	m.Verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "verdicts_total",
		Help: "Verdicts published, by decision and model.",
	}, []string{"decision", "model"})
	m.VerdictLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "verdict_latency_seconds",
		Help:    "Time from an event's creation at the edge to its verdict.",
		Buckets: latencyBuckets,
	})
	m.ScoreDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "score_duration_seconds",
		Help:    "Time one second-stage scorer call takes, by model.",
		Buckets: []float64{1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1},
	}, []string{"model"})
	m.AlertAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "alert_webhook_attempts_total",
		Help: "Webhook POST attempts, by outcome (ok, error).",
	}, []string{"outcome"})
	m.AlertsDelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "alerts_delivered_total",
		Help: "Confirmed-anomaly alerts a webhook accepted.",
	})
	m.AlertsDeadLettered = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "alerts_dead_lettered_total",
		Help: "Alerts given up on after all retries and kept in the dead-letter bucket.",
	})
	m.RolloutsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "rollouts_started_total",
		Help: "Rollouts started, by kind (model, config).",
	}, []string{"kind"})
	m.RolloutsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "rollouts_finished_total",
		Help: "Rollouts reaching a final state, by state (succeeded, aborted, rolled_back).",
	}, []string{"state"})
	m.RolloutAgents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "rollout_agents_total",
		Help: "Agents entering a rollout phase: running (updated), failed, rolled_back, skipped (offline at the start).",
	}, []string{"phase"})
	for _, k := range []string{"model", "config"} {
		m.RolloutsStarted.WithLabelValues(k)
	}
	for _, st := range []string{"succeeded", "aborted", "rolled_back"} {
		m.RolloutsFinished.WithLabelValues(st)
	}
	for _, ph := range []string{"running", "failed", "rolled_back", "skipped"} {
		m.RolloutAgents.WithLabelValues(ph)
	}
	for _, k := range []string{"anomaly", "uncertain"} {
		m.EventsReceived.WithLabelValues(k)
	}
	for _, o := range []string{"ok", "error"} {
		m.AlertAttempts.WithLabelValues(o)
	}
	m.Registry.MustRegister(
		m.EventsReceived, m.EventsDuplicate, m.EventsInvalid,
		m.StateMessages, m.StateInvalid, m.APIRequests,
		m.IngestMessages, m.IngestBatches, m.IngestBatchSize, m.IngestBatchDuration, m.HWMConflicts,
		m.SummariesReceived, m.EdgeRawBytes, m.EdgeUplinkBytes,
		m.Verdicts, m.VerdictLatency, m.ScoreDuration,
		m.AlertAttempts, m.AlertsDelivered, m.AlertsDeadLettered,
		m.RolloutsStarted, m.RolloutsFinished, m.RolloutAgents,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "devices_online",
			Help: "Agents whose last heartbeat is within 3 heartbeat intervals.",
		}, devicesOnline),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
