// Package wire defines the messages that edge agents and the cloud exchange
// over NATS. Every message is JSON; times are RFC 3339 in UTC. Fields are only
// ever added, never renamed, so that agents and cloud of different versions
// keep understanding each other.
package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind says why the edge forwarded a window.
type Kind string

// Event kinds.
const (
	// KindAnomaly: the edge score reached the high threshold.
	KindAnomaly Kind = "anomaly"
	// KindUncertain: the edge score fell between the low and high thresholds;
	// the cloud's heavier model decides.
	KindUncertain Kind = "uncertain"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == KindAnomaly || k == KindUncertain }

// Event is an anomalous or uncertain reading that the edge forwards, published
// on names.EventSubject(agent) with Nats-Msg-Id names.MsgID(agent, seq).
type Event struct {
	// Agent is the id of the agent that judged the reading.
	Agent string `json:"agent"`
	// Seq is the agent's outbox sequence number: strictly increasing per
	// agent and Incarnation. A new outbox starts at the wall clock in
	// microseconds, so a wiped outbox's seqs usually continue above the
	// old ones.
	Seq uint64 `json:"seq"`
	// Incarnation identifies the outbox that gave Seq: a random id made
	// with the outbox file. A wiped and recreated outbox has a new one, and
	// the cloud keeps its duplicate high-water mark per agent and
	// incarnation. Empty from agents (or outboxes) older than the field.
	Incarnation string `json:"incarnation,omitempty"`
	// Stream names the sensor stream, e.g. "sensors/press-1/temp".
	Stream string `json:"stream"`
	// TS is the reading's own time (not the time it was received or sent).
	TS time.Time `json:"ts"`
	// Kind is anomaly or uncertain.
	Kind Kind `json:"kind"`
	// Score is the edge model's score for the window ending at this reading.
	Score float64 `json:"score"`
	// Low and High are the thresholds the score was judged against.
	Low  float64 `json:"low"`
	High float64 `json:"high"`
	// Value is the reading's value.
	Value float64 `json:"value"`
	// Model is the scorer that produced Score, as "name@version".
	Model string `json:"model"`
	// Source says which stage of the edge's detector gave Score: "score"
	// (the scorer's own score, or its anomaly likelihood), a channel that
	// raised it ("novelty", "volatility", "seasonal"), or "range" (the
	// reading lay outside the stream's range so far). Empty from agents
	// older than the field.
	Source string `json:"source,omitempty"`
	// Window holds the raw values of the window that was scored, oldest first,
	// ending with Value, so that the cloud can re-score it.
	Window []float64 `json:"window,omitempty"`
	// Missing lists the indices of Window that hold no reading (a gap the
	// profile fills as missing); those values are written as 0.
	Missing []int `json:"missing,omitempty"`
	// Features (events of a vector model, e.g. ae-video on a camera's
	// buckets) holds the raw feature vectors the model read for the
	// buckets up to and including the event's, oldest first, flattened:
	// len(Features)/F rows of F values in the order of the model
	// manifest's feature_names (F = its features), at most the model's
	// window of rows (fewer while a camera starts). With the model
	// the cloud can re-score the event's bucket from them.
	Features []float64 `json:"features,omitempty"`
	// FeaturesMissing lists the indices of Features the bucket did not
	// have (e.g. area_mean of a bucket with no object); those values are
	// written as 0.
	FeaturesMissing []int `json:"features_missing,omitempty"`
	// Created is when the agent committed the event to its outbox.
	Created time.Time `json:"created"`
}

// StreamSummary is the per-interval account of one stream.
type StreamSummary struct {
	Stream       string  `json:"stream"`
	Count        uint64  `json:"count"`
	Min          float64 `json:"min"`
	Max          float64 `json:"max"`
	Mean         float64 `json:"mean"`
	Anomalies    uint64  `json:"anomalies"`
	Uncertain    uint64  `json:"uncertain"`
	Dropped      uint64  `json:"dropped"`
	DecodeErrors uint64  `json:"decode_errors"`
	// LateDropped and Duplicates are readings the reorder stage dropped:
	// older than the reordering delay allows, or with a timestamp already
	// taken. Filled is the samples gaps were filled with; GapsReset the
	// gaps too long to fill, which reset the stream's window.
	LateDropped uint64 `json:"late_dropped,omitempty"`
	Duplicates  uint64 `json:"duplicates,omitempty"`
	Filled      uint64 `json:"filled,omitempty"`
	GapsReset   uint64 `json:"gaps_reset,omitempty"`
}

// Summary is an agent's periodic account of its streams, published on
// names.SummarySubject(agent) through the outbox like events.
type Summary struct {
	Agent string `json:"agent"`
	Seq   uint64 `json:"seq"`
	// Incarnation identifies the outbox that gave Seq, as Event.Incarnation.
	Incarnation string `json:"incarnation,omitempty"`
	// From and To bound the interval the summary covers.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// RawBytes is the payload bytes the agent received in the interval;
	// UplinkBytes what it published to the cloud.
	RawBytes    uint64          `json:"raw_bytes"`
	UplinkBytes uint64          `json:"uplink_bytes"`
	Streams     []StreamSummary `json:"streams"`
}

// State is an agent's heartbeat and reported state, published on
// names.StateSubject(agent). The cloud keeps the last one per agent.
type State struct {
	Agent string `json:"agent"`
	// TS is when the state was sent.
	TS time.Time `json:"ts"`
	// Heartbeat is the interval the agent sends state at; the cloud calls the
	// agent offline after missing a few.
	Heartbeat Duration `json:"heartbeat"`
	// Version is the agent's build version.
	Version string `json:"version"`
	// Profile and Revision identify the firmware profile in force.
	Profile  string `json:"profile"`
	Revision int64  `json:"revision"`
	// Config is the desired config key (Desired.Config) of the profile in
	// force, "" for the profile the agent was installed with.
	Config string `json:"config,omitempty"`
	// ConfigStatus is "applying" while a pushed profile is on probation
	// (it runs, and must judge readings healthily for a grace period), then
	// "applied". A profile that fails its probation is replaced by the
	// previous one, and LastError says why.
	ConfigStatus string `json:"config_status,omitempty"`
	// Group is the fleet group the profile puts the agent in, if any.
	Group   string    `json:"group,omitempty"`
	Started time.Time `json:"started"`
	// Models maps stream (or stream pattern) to the model as "name@version".
	Models map[string]string `json:"models,omitempty"`
	// Readings and DecodeErrors count since start.
	Readings     uint64 `json:"readings"`
	DecodeErrors uint64 `json:"decode_errors"`
	Anomalies    uint64 `json:"anomalies"`
	Uncertain    uint64 `json:"uncertain"`
	// OutboxDepth and OutboxBytes describe what waits to be uplinked.
	OutboxDepth uint64 `json:"outbox_depth"`
	OutboxBytes uint64 `json:"outbox_bytes"`
	// Drops counts outbox records dropped by the full-outbox policy since the
	// outbox was created.
	Drops uint64 `json:"drops"`
	// DropsByKind splits Drops by what was dropped ("summary", "uncertain",
	// "anomaly"), so the cloud sees whether the drop policy reached
	// anomalies.
	DropsByKind map[string]uint64 `json:"drops_by_kind,omitempty"`
	LastError   string            `json:"last_error,omitempty"`
}

// Decision is the cloud's judgement of a forwarded window.
type Decision string

// Decisions.
const (
	Confirmed Decision = "confirmed"
	Rejected  Decision = "rejected"
)

// Verdict is the cloud's decision on one event, published on
// names.VerdictSubject(agent).
type Verdict struct {
	Agent    string    `json:"agent"`
	Seq      uint64    `json:"seq"`
	Stream   string    `json:"stream"`
	TS       time.Time `json:"ts"`
	EdgeKind Kind      `json:"edge_kind"`
	Decision Decision  `json:"decision"`
	Score    float64   `json:"score"`
	Model    string    `json:"model"`
	// LatencyMS is the time from the event's creation at the edge to the
	// verdict, in milliseconds.
	LatencyMS float64   `json:"latency_ms"`
	Decided   time.Time `json:"decided"`
	// Reason says why, when the decision was not made by re-scoring the
	// window (e.g. the event carried no window); empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Incarnation is the event's Incarnation (Agent, Incarnation and Seq
	// identify the event).
	Incarnation string `json:"incarnation,omitempty"`
}

// OutboxIncarnation returns e.Incarnation (the cloud's ingest reads it
// through an interface of its own).
func (e Event) OutboxIncarnation() string { return e.Incarnation }

// OutboxIncarnation returns s.Incarnation.
func (s Summary) OutboxIncarnation() string { return s.Incarnation }

// Duration is a time.Duration that encodes in JSON as a Go duration string
// ("5s") and decodes from either such a string or a number of seconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("wire: duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("wire: duration must be a string like \"5s\" or a number of seconds, got %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Sample is one normal window an agent's reservoir sampler uploads for the
// cloud's learning loop, published on names.SampleSubject(agent) into the
// stream names.StreamSamples. Samples are best effort: they do not go
// through the outbox, and what does not fit the profile's bandwidth budget
// is not sent.
type Sample struct {
	Agent string `json:"agent"`
	// Stream names the sensor stream the window came from.
	Stream string `json:"stream"`
	// TS is the time of the window's last reading.
	TS time.Time `json:"ts"`
	// Window holds the raw values of a window the agent judged normal,
	// oldest first.
	Window []float64 `json:"window"`
	// Offered is how many normal windows of the stream the sampler was
	// offered in the interval this one was drawn from (uniformly).
	Offered uint64 `json:"offered"`
	// Model is the model that judged the window normal, "name@version",
	// when the agent says; empty otherwise.
	Model string `json:"model,omitempty"`
	// Sent is when the agent published the sample.
	Sent time.Time `json:"sent"`
}
