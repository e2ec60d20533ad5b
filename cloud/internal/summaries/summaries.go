// Package summaries ingests the agents' periodic summaries from
// OUTPOST_SUMMARIES with an ingest.Consumer (durable ConsumerName, shared by
// the replicas, high-water marks "summaries.<agent>" in names.BucketHWM).
// The per-agent totals (Totals) are the state written with the mark by the
// same compare-and-set, so each summary counts exactly once across
// replicas, and every replica reads the totals back from the bucket (the
// registry watches it).
package summaries

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/ingest"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// ConsumerName is the durable consumer of summaries.
const ConsumerName = "outpost-cloud-summaries"

// MarkName prefixes the summaries' high-water-mark keys.
const MarkName = "summaries"

// Totals is an agent's account from all its accepted summaries.
type Totals struct {
	Summaries   uint64                      `json:"summaries"`
	RawBytes    uint64                      `json:"raw_bytes"`
	UplinkBytes uint64                      `json:"uplink_bytes"`
	LastTo      time.Time                   `json:"last_to"`
	Streams     map[string]*api.StreamStats `json:"streams,omitempty"`
}

// Add accounts for s.
func (t *Totals) Add(s wire.Summary) {
	t.Summaries++
	t.RawBytes += s.RawBytes
	t.UplinkBytes += s.UplinkBytes
	if s.To.After(t.LastTo) {
		t.LastTo = s.To
	}
	if t.Streams == nil {
		t.Streams = map[string]*api.StreamStats{}
	}
	for _, ss := range s.Streams {
		st := t.Streams[ss.Stream]
		if st == nil {
			st = &api.StreamStats{Stream: ss.Stream}
			t.Streams[ss.Stream] = st
		}
		st.Count += ss.Count
		st.Anomalies += ss.Anomalies
		st.Uncertain += ss.Uncertain
		st.Dropped += ss.Dropped
		st.DecodeErrors += ss.DecodeErrors
		if !s.To.Before(st.LatestTo) {
			st.Latest, st.LatestTo = ss, s.To
		}
	}
}

// StreamList returns the streams sorted by name.
func (t *Totals) StreamList() []api.StreamStats {
	out := make([]api.StreamStats, 0, len(t.Streams))
	for _, s := range t.Streams {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

// DecodeMark returns the totals kept in a summaries mark value.
func DecodeMark(value []byte) (Totals, error) {
	var m ingest.Mark
	var t Totals
	if err := json.Unmarshal(value, &m); err != nil {
		return t, fmt.Errorf("summaries: decode mark: %w", err)
	}
	if len(m.State) == 0 {
		return t, nil
	}
	if err := json.Unmarshal(m.State, &t); err != nil {
		return t, fmt.Errorf("summaries: decode totals: %w", err)
	}
	return t, nil
}

// Config configures the consumer.
type Config struct {
	// Batch is the most summaries processed as one batch.
	Batch   int
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Consumer is the running summaries consumer.
type Consumer struct {
	cons *ingest.Consumer
}

// Start starts consuming summaries.
func Start(ctx context.Context, js jetstream.JetStream, cfg Config) (*Consumer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := cfg.Metrics
	cons, err := ingest.Start(ctx, js, ingest.Config{
		Name:       MarkName,
		Stream:     names.StreamSummaries,
		Durable:    ConsumerName,
		Filter:     names.SummariesAll,
		SubjectFor: names.SummarySubject,
		Batch:      cfg.Batch,
		Decode: func(msg jetstream.Msg, agent string) (uint64, any, error) {
			var s wire.Summary
			if err := json.Unmarshal(msg.Data(), &s); err != nil {
				return 0, nil, fmt.Errorf("decode summary JSON: %w", err)
			}
			if s.Agent != agent {
				return s.Seq, nil, fmt.Errorf("summary agent %q does not match subject agent %q", s.Agent, agent)
			}
			return s.Seq, s, nil
		},
		Prepare: func(_ context.Context, _ string, state json.RawMessage, accepted []ingest.Item) (json.RawMessage, error) {
			var t Totals
			if len(state) > 0 {
				if err := json.Unmarshal(state, &t); err != nil {
					return nil, fmt.Errorf("decode totals: %w", err)
				}
			}
			for _, it := range accepted {
				t.Add(it.Value.(wire.Summary))
			}
			return json.Marshal(t)
		},
		Apply: func(_ string, r ingest.Result) {
			for _, it := range r.Accepted {
				s := it.Value.(wire.Summary)
				m.SummariesReceived.Inc()
				m.EdgeRawBytes.Add(float64(s.RawBytes))
				m.EdgeUplinkBytes.Add(float64(s.UplinkBytes))
			}
		},
		Metrics: m,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("summaries: %w", err)
	}
	return &Consumer{cons: cons}, nil
}

// Stop stops after processing what was delivered.
func (c *Consumer) Stop() {
	if c.cons != nil {
		c.cons.Stop()
		c.cons = nil
	}
}

// Totals reads the committed totals of agent.
func (c *Consumer) Totals(ctx context.Context, agent string) (Totals, error) {
	m, err := c.cons.Mark(ctx, agent)
	if err != nil {
		return Totals{}, err
	}
	var t Totals
	if len(m.State) > 0 {
		err = json.Unmarshal(m.State, &t)
	}
	return t, err
}
