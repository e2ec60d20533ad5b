// Package verdicts is outpost-cloud's second stage on the event stream:
// every uncertain and anomalous event is re-scored by a scorer (package
// scorer) and its wire.Verdict published on names.VerdictSubject(agent)
// into OUTPOST_VERDICTS, where the agent can read it.
//
// The stage is its own batched durable consumer (ConsumerName, shared by
// the replicas; high-water marks "verdicts.<agent>" in names.BucketHWM), so
// a verdict is decided once per event across replicas, and duplicates of
// events outside JetStream's window get none. Verdicts are published with
// Nats-Msg-Id names.MsgID(agent, seq) before the mark is committed, so a
// replica that repeats the work after a lost compare-and-set or a crash
// publishes nothing twice within the stream's duplicate window.
//
// The verdict message carries the header EventSeqHeader: the event's
// sequence in OUTPOST_EVENTS, so alert sinks can send the event with it.
//
// LatencyMS is verdict time minus wire.Event.Created (the edge's outbox
// commit); when an event has no Created time, the time JetStream stored it
// is used.
package verdicts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/events"
	"github.com/outpost-iot/outpost/cloud/internal/ingest"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/scorer"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// ConsumerName is the durable consumer of the second stage.
const ConsumerName = "outpost-cloud-verdicts"

// MarkName prefixes the stage's high-water-mark keys.
const MarkName = "verdicts"

// EventSeqHeader carries the event's OUTPOST_EVENTS sequence on a verdict.
const EventSeqHeader = "Outpost-Event-Stream-Seq"

// DefaultRingSize is how many latest verdicts the Feed keeps.
const DefaultRingSize = 200

// Config configures the Stage.
type Config struct {
	// Scorer decides; required.
	Scorer scorer.Scorer
	// Batch is the most events re-scored as one batch; default
	// ingest.DefaultBatch.
	Batch int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics receives the counters; required.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
	// OnVerdict, if set, is called with each verdict after its mark is
	// committed, concurrently for different agents.
	OnVerdict func(ev api.Event, v wire.Verdict)
}

// Stage is the running second stage.
type Stage struct {
	cfg  Config
	js   jetstream.JetStream
	cons *ingest.Consumer
}

type decided struct {
	ev api.Event
	v  wire.Verdict
}

// Start starts the second stage on js.
func Start(ctx context.Context, js jetstream.JetStream, cfg Config) (*Stage, error) {
	if cfg.Scorer == nil {
		return nil, fmt.Errorf("verdicts: no scorer configured")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Stage{cfg: cfg, js: js}
	cons, err := ingest.Start(ctx, js, ingest.Config{
		Name:       MarkName,
		Stream:     names.StreamEvents,
		Durable:    ConsumerName,
		Filter:     names.EventsAll,
		SubjectFor: names.EventSubject,
		Batch:      cfg.Batch,
		Decode:     events.DecodeItem,
		Prepare:    s.prepare,
		Apply:      s.apply,
		Metrics:    cfg.Metrics,
		Logger:     cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	s.cons = cons
	return s, nil
}

// Stop stops the stage after finishing what was delivered.
func (s *Stage) Stop() {
	if s.cons != nil {
		s.cons.Stop()
		s.cons = nil
	}
}

// Decide scores ev and returns its verdict, decided at now.
func Decide(sc scorer.Scorer, ev api.Event, now time.Time) wire.Verdict {
	r := sc.Score(ev.Event)
	model := sc.Name()
	if r.Model != "" {
		model = r.Model // e.g. the video second stage of scorer.ByModel
	}
	created := ev.Created
	if created.IsZero() {
		created = ev.Received
	}
	lat := 0.0
	if !created.IsZero() {
		lat = float64(now.Sub(created)) / float64(time.Millisecond)
	}
	return wire.Verdict{
		Agent: ev.Agent, Seq: ev.Seq, Incarnation: ev.Incarnation, Stream: ev.Stream, TS: ev.TS, EdgeKind: ev.Kind,
		Decision: r.Decision, Score: r.Score, Model: model,
		LatencyMS: lat, Decided: now.UTC(), Reason: r.Reason,
	}
}

// prepare scores the accepted events and publishes their verdicts, waiting
// for the acks. It replaces each item's Value with the decision for apply.
func (s *Stage) prepare(ctx context.Context, agent string, state json.RawMessage, accepted []ingest.Item) (json.RawMessage, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(accepted))
	model := s.cfg.Scorer.Name()
	for i := range accepted {
		ev := accepted[i].Value.(api.Event)
		t0 := time.Now()
		v := Decide(s.cfg.Scorer, ev, s.cfg.Now())
		s.cfg.Metrics.ScoreDuration.WithLabelValues(model).Observe(time.Since(t0).Seconds())
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode verdict: %w", err)
		}
		msg := &nats.Msg{Subject: names.VerdictSubject(agent), Data: data, Header: nats.Header{}}
		msg.Header.Set(EventSeqHeader, strconv.FormatUint(accepted[i].SSeq, 10))
		f, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(names.MsgID(agent, ev.Seq)))
		if err != nil {
			return nil, fmt.Errorf("publish verdict %s: %w", names.MsgID(agent, ev.Seq), err)
		}
		futures = append(futures, f)
		accepted[i].Value = decided{ev: ev, v: v}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return nil, fmt.Errorf("publish verdict: %w", err)
		case <-ctx.Done():
			return nil, fmt.Errorf("publish verdict: %w", ctx.Err())
		}
	}
	return state, nil
}

func (s *Stage) apply(_ string, r ingest.Result) {
	m := s.cfg.Metrics
	for _, it := range r.Accepted {
		d, ok := it.Value.(decided)
		if !ok {
			continue
		}
		m.Verdicts.WithLabelValues(string(d.v.Decision), d.v.Model).Inc()
		m.VerdictLatency.Observe(d.v.LatencyMS / 1000)
		if s.cfg.OnVerdict != nil {
			s.cfg.OnVerdict(d.ev, d.v)
		}
	}
}

// Feed keeps the latest verdicts for the dashboard by following
// OUTPOST_VERDICTS with an ordered consumer (every replica sees all of
// them), starting from the last verdict of each agent.
type Feed struct {
	mu   sync.Mutex
	ring []wire.Verdict
	next int
	full bool
	cc   jetstream.ConsumeContext
	log  *slog.Logger
}

// StartFeed follows the verdicts stream, keeping ringSize verdicts
// (DefaultRingSize when 0).
func StartFeed(ctx context.Context, js jetstream.JetStream, ringSize int, logger *slog.Logger) (*Feed, error) {
	if ringSize <= 0 {
		ringSize = DefaultRingSize
	}
	if logger == nil {
		logger = slog.Default()
	}
	f := &Feed{ring: make([]wire.Verdict, ringSize), log: logger}
	cons, err := js.OrderedConsumer(ctx, names.StreamVerdicts, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.VerdictsAll},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("verdicts: feed consumer on %s: %w", names.StreamVerdicts, err)
	}
	f.cc, err = cons.Consume(func(msg jetstream.Msg) {
		var v wire.Verdict
		if err := json.Unmarshal(msg.Data(), &v); err != nil {
			f.log.Warn("verdict feed: undecodable verdict", "subject", msg.Subject(), "err", err)
			return
		}
		f.add(v)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		f.log.Debug("verdict feed", "err", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("verdicts: feed consume: %w", err)
	}
	return f, nil
}

func (f *Feed) add(v wire.Verdict) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ring[f.next] = v
	f.next = (f.next + 1) % len(f.ring)
	if f.next == 0 {
		f.full = true
	}
}

// Latest returns up to n of the latest verdicts, newest first (all kept
// when n <= 0).
func (f *Feed) Latest(n int) []wire.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	size := f.next
	if f.full {
		size = len(f.ring)
	}
	if n <= 0 || n > size {
		n = size
	}
	out := make([]wire.Verdict, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, f.ring[(f.next-i+len(f.ring))%len(f.ring)])
	}
	return out
}

// Stop stops following the stream.
func (f *Feed) Stop() {
	if f.cc != nil {
		f.cc.Stop()
		<-f.cc.Closed()
		f.cc = nil
	}
}
