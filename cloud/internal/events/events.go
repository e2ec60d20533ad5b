// Package events ingests edge events from the OUTPOST_EVENTS stream and
// answers queries about them.
//
// Ingest is an ingest.Consumer (batched durable pull consumer
// ConsumerName, shared by every replica) with per-agent high-water marks in
// the KV bucket names.BucketHWM under "events.<agent>": an event is
// accepted once across all replicas, duplicates that JetStream's Nats-Msg-Id
// window (streams.DuplicateWindow) no longer catches are dropped and
// counted, invalid events are terminated and counted. The ring of latest
// accepted events is in memory, per replica.
//
// Queries (QueryEvents) read the stream itself, not memory, so they work
// after a restart and on every replica; they join each event with its
// verdict from OUTPOST_VERDICTS when there is one.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/ingest"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// ConsumerName is the durable consumer that outpost-cloud replicas share.
const ConsumerName = "outpost-cloud-events"

// MarkName prefixes the events' high-water-mark keys.
const MarkName = "events"

// DefaultRingSize is how many latest events are kept for the dashboard.
const DefaultRingSize = 500

// DefaultBatch is the most events processed as one batch. It is larger
// than ingest.DefaultBatch: an event costs little to process, and with many
// agents a batch holds few events per agent, so the batch size sets how
// many high-water-mark writes (one per agent and batch) an event costs.
// Batches are what the consumer has buffered, so a light load still makes
// small batches.
const DefaultBatch = 4000

// Config configures the Store. Zero values mean the defaults.
type Config struct {
	// RingSize is how many latest events to keep in memory. Default
	// DefaultRingSize.
	RingSize int
	// Batch is the most events processed as one batch; default
	// DefaultBatch.
	Batch int
	// Metrics receives the counters; required.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnEvent, if set, is called with each accepted event after its mark is
	// committed and before it is acknowledged. It must not block long; it
	// is called concurrently for different agents, in seq order per agent.
	OnEvent func(api.Event)
}

// Store ingests events and keeps the latest ones.
type Store struct {
	cfg Config
	js  jetstream.JetStream

	mu   sync.Mutex
	ring []api.Event // circular, oldest at next when full
	next int
	full bool

	cons *ingest.Consumer
}

// New returns a Store that reads from js.
func New(js jetstream.JetStream, cfg Config) *Store {
	if cfg.RingSize <= 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, js: js, ring: make([]api.Event, cfg.RingSize)}
}

// Start creates or updates the durable consumer and starts consuming.
func (s *Store) Start(ctx context.Context) error {
	cons, err := ingest.Start(ctx, s.js, ingest.Config{
		Name:       MarkName,
		Stream:     names.StreamEvents,
		Durable:    ConsumerName,
		Filter:     names.EventsAll,
		SubjectFor: names.EventSubject,
		Batch:      s.cfg.Batch,
		Decode:     decodeItemPtr,
		Apply:      s.apply,
		Metrics:    s.cfg.Metrics,
		Logger:     s.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	s.cons = cons
	return nil
}

// DecodeItem is the ingest.Config.Decode of events: the value is an
// api.Event.
func DecodeItem(msg jetstream.Msg, agent string) (uint64, any, error) {
	ev, err := decodeFor(msg, agent)
	return ev.Seq, ev, err
}

// decodeItemPtr is the Store's ingest.Config.Decode: the value is an
// *api.Event, one allocation per event where an api.Event in an interface
// takes two (the decoded event and its copy in the interface).
func decodeItemPtr(msg jetstream.Msg, agent string) (uint64, any, error) {
	ev := new(api.Event)
	err := decodeInto(msg, agent, ev)
	return ev.Seq, ev, err
}

// Stop stops consuming after processing what was delivered.
func (s *Store) Stop() {
	if s.cons != nil {
		s.cons.Stop()
		s.cons = nil
	}
}

func (s *Store) apply(agent string, r ingest.Result) {
	m := s.cfg.Metrics
	// Counters are added once per agent and batch, not per event.
	var anomalies, uncertain int
	s.mu.Lock()
	for _, it := range r.Accepted {
		ev := it.Value.(*api.Event)
		s.recordLocked(*ev)
		if ev.Kind == wire.KindAnomaly {
			anomalies++
		} else {
			uncertain++
		}
	}
	s.mu.Unlock()
	if s.cfg.OnEvent != nil {
		for _, it := range r.Accepted {
			s.cfg.OnEvent(*it.Value.(*api.Event))
		}
	}
	if anomalies > 0 {
		m.EventsReceived.WithLabelValues(string(wire.KindAnomaly)).Add(float64(anomalies))
	}
	if uncertain > 0 {
		m.EventsReceived.WithLabelValues(string(wire.KindUncertain)).Add(float64(uncertain))
	}
	if len(r.Duplicates) > 0 {
		m.EventsDuplicate.Add(float64(len(r.Duplicates)))
		for _, it := range r.Duplicates {
			s.cfg.Logger.Debug("dropping duplicate event", "agent", agent, "seq", it.Seq)
		}
	}
	if len(r.Invalid) > 0 {
		m.EventsInvalid.Add(float64(len(r.Invalid)))
	}
}

func (s *Store) record(ev api.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordLocked(ev)
}

func (s *Store) recordLocked(ev api.Event) {
	s.ring[s.next] = ev
	s.next = (s.next + 1) % len(s.ring)
	if s.next == 0 {
		s.full = true
	}
}

// Latest returns up to n of the latest accepted events, newest first.
func (s *Store) Latest(n int) []api.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := s.next
	if s.full {
		size = len(s.ring)
	}
	if n <= 0 || n > size {
		n = size
	}
	out := make([]api.Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, s.ring[(s.next-i+len(s.ring))%len(s.ring)])
	}
	return out
}

// HighWaterMark returns the highest sequence accepted from agent, as
// committed in the KV bucket (0 when none).
func (s *Store) HighWaterMark(ctx context.Context, agent string) (uint64, error) {
	if s.cons == nil {
		return 0, errors.New("events: not started")
	}
	m, err := s.cons.Mark(ctx, agent)
	return m.Seq, err
}

// decode parses an event message and checks it against its subject.
func decode(msg jetstream.Msg) (api.Event, error) {
	agent, err := names.AgentFromSubject(msg.Subject())
	if err != nil {
		return api.Event{}, err
	}
	return decodeFor(msg, agent)
}

// decodeFor is decode for a message whose subject names agent.
func decodeFor(msg jetstream.Msg, agent string) (api.Event, error) {
	var ev api.Event
	err := decodeInto(msg, agent, &ev)
	return ev, err
}

// decodeInto is decodeFor into ev.
func decodeInto(msg jetstream.Msg, agent string, ev *api.Event) error {
	if err := wire.DecodeEvent(msg.Data(), &ev.Event); err != nil {
		return fmt.Errorf("decode event JSON: %w", err)
	}
	if ev.Agent != agent {
		return fmt.Errorf("event agent %q does not match subject agent %q", ev.Agent, agent)
	}
	if !ev.Kind.Valid() {
		return fmt.Errorf("event kind %q is not %q or %q", ev.Kind, wire.KindAnomaly, wire.KindUncertain)
	}
	if md, err := ingest.Meta(msg); err == nil {
		ev.StreamSeq = md.StreamSeq
		ev.Received = md.Timestamp.UTC()
	}
	return nil
}
