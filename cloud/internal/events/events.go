// Package events ingests edge events from the OUTPOST_EVENTS stream and
// answers queries about them.
//
// Ingest is a durable pull consumer (ConsumerName) that every replica binds
// to, so replicas share the work like a queue. Each message is acknowledged
// after it is processed. A per-agent high-water mark of outbox sequence
// numbers drops duplicates that JetStream's Nats-Msg-Id window
// (streams.DuplicateWindow) no longer catches. The high-water mark and the
// ring of latest events are in memory for now, per replica. At start the
// marks are seeded from the last stored event of each agent when that event
// was already processed (at or below the durable consumer's ack floor); the
// ring starts empty. Not caught yet: a duplicate of an agent that had
// unprocessed events at the restart, a late duplicate lower than the
// agent's last stored event when that last one was itself a duplicate, and
// duplicates handled by different replicas. Persisting the marks (e.g. in a
// KV bucket) closes these.
//
// Queries (QueryEvents) read the stream itself, not memory, so they work
// after a restart and on every replica.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// ConsumerName is the durable consumer that outpost-cloud replicas share.
const ConsumerName = "outpost-cloud-events"

// DefaultRingSize is how many latest events are kept for the dashboard.
const DefaultRingSize = 500

// Config configures the Store. Zero values mean the defaults.
type Config struct {
	// RingSize is how many latest events to keep in memory. Default
	// DefaultRingSize.
	RingSize int
	// Metrics receives the counters; required.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnEvent, if set, is called with each accepted event after it is
	// recorded and before it is acknowledged.
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
	hwm  map[string]uint64

	cc jetstream.ConsumeContext
}

// New returns a Store that reads from js.
func New(js jetstream.JetStream, cfg Config) *Store {
	if cfg.RingSize <= 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, js: js, ring: make([]api.Event, cfg.RingSize), hwm: map[string]uint64{}}
}

// Start creates or updates the durable consumer and starts consuming.
func (s *Store) Start(ctx context.Context) error {
	cons, err := s.js.CreateOrUpdateConsumer(ctx, names.StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "outpost-cloud: event ingest shared by all replicas",
		FilterSubject: names.EventsAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("events: create consumer %s: %w", ConsumerName, err)
	}
	if err := s.seedMarks(ctx, cons.CachedInfo().AckFloor.Stream); err != nil {
		return err
	}
	cc, err := cons.Consume(s.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.cfg.Logger.Warn("event consumer", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("events: consume: %w", err)
	}
	s.cc = cc
	return nil
}

// seedMarks sets the high-water marks from the stream so that dedupe
// survives a restart: for each agent whose last stored event is at or below
// the consumer's ack floor (already processed), the mark is that event's
// seq. Agents with unprocessed events start without a mark (their
// duplicates across the restart are not caught; see the package doc).
func (s *Store) seedMarks(ctx context.Context, ackFloor uint64) error {
	if ackFloor == 0 {
		return nil
	}
	stream, err := s.js.Stream(ctx, names.StreamEvents)
	if err != nil {
		return fmt.Errorf("events: stream %s: %w", names.StreamEvents, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(names.EventsAll))
	if err != nil {
		return fmt.Errorf("events: stream %s subjects: %w", names.StreamEvents, err)
	}
	seeded := 0
	for subject := range info.State.Subjects {
		raw, err := stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return fmt.Errorf("events: last event on %s: %w", subject, err)
		}
		if raw.Sequence > ackFloor {
			continue
		}
		var ev wire.Event
		if json.Unmarshal(raw.Data, &ev) != nil || ev.Agent == "" {
			continue
		}
		s.mu.Lock()
		if ev.Seq > s.hwm[ev.Agent] || !hasKey(s.hwm, ev.Agent) {
			s.hwm[ev.Agent] = ev.Seq
			seeded++
		}
		s.mu.Unlock()
	}
	s.cfg.Logger.Info("event high-water marks seeded from the stream", "agents", seeded, "ack_floor", ackFloor)
	return nil
}

func hasKey(m map[string]uint64, k string) bool {
	_, ok := m[k]
	return ok
}

// Stop stops consuming and waits for the message being handled.
func (s *Store) Stop() {
	if s.cc != nil {
		s.cc.Drain()
		<-s.cc.Closed()
		s.cc = nil
	}
}

func (s *Store) handle(msg jetstream.Msg) {
	ev, err := decode(msg)
	if err != nil {
		s.cfg.Metrics.EventsInvalid.Inc()
		s.cfg.Logger.Warn("dropping invalid event", "subject", msg.Subject(), "err", err)
		if err := msg.Term(); err != nil {
			s.cfg.Logger.Warn("term invalid event", "err", err)
		}
		return
	}
	if s.Accept(ev) {
		s.cfg.Metrics.EventsReceived.WithLabelValues(string(ev.Kind)).Inc()
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(ev)
		}
	} else {
		s.cfg.Metrics.EventsDuplicate.Inc()
		s.cfg.Logger.Debug("dropping duplicate event", "agent", ev.Agent, "seq", ev.Seq)
	}
	if err := msg.Ack(); err != nil {
		s.cfg.Logger.Warn("ack event", "agent", ev.Agent, "seq", ev.Seq, "err", err)
	}
}

// Accept applies the high-water mark: it records ev and returns true when
// ev.Seq is above the highest sequence seen from ev.Agent, and returns false
// (a duplicate) otherwise.
func (s *Store) Accept(ev api.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.hwm[ev.Agent]; ok && ev.Seq <= last {
		return false
	}
	s.hwm[ev.Agent] = ev.Seq
	s.ring[s.next] = ev
	s.next = (s.next + 1) % len(s.ring)
	if s.next == 0 {
		s.full = true
	}
	return true
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

// HighWaterMark returns the highest sequence accepted from agent.
func (s *Store) HighWaterMark(agent string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hwm[agent]
}

// decode parses an event message and checks it against its subject.
func decode(msg jetstream.Msg) (api.Event, error) {
	var ev api.Event
	if err := json.Unmarshal(msg.Data(), &ev.Event); err != nil {
		return ev, fmt.Errorf("decode event JSON: %w", err)
	}
	agent, err := names.AgentFromSubject(msg.Subject())
	if err != nil {
		return ev, err
	}
	if ev.Agent != agent {
		return ev, fmt.Errorf("event agent %q does not match subject agent %q", ev.Agent, agent)
	}
	if !ev.Kind.Valid() {
		return ev, fmt.Errorf("event kind %q is not %q or %q", ev.Kind, wire.KindAnomaly, wire.KindUncertain)
	}
	if md, err := msg.Metadata(); err == nil {
		ev.StreamSeq = md.Sequence.Stream
		ev.Received = md.Timestamp.UTC()
	}
	return ev, nil
}

// QueryEvents reads events matching q from the OUTPOST_EVENTS stream with
// an ephemeral consumer. Duplicates of an agent's sequence numbers within the
// scanned range are skipped. Events come oldest first; the newest q.Limit are
// kept. The whole matching range is scanned, which is fine for the walking
// skeleton but wants an index (or a start sequence) at scale.
func (s *Store) QueryEvents(ctx context.Context, q api.EventsQuery) ([]api.Event, error) {
	return Query(ctx, s.js, q, s.cfg.Now())
}

// Query is QueryEvents on any JetStream context, with now as the reference
// for relative Since values.
func Query(ctx context.Context, js jetstream.JetStream, q api.EventsQuery, now time.Time) ([]api.Event, error) {
	start, err := q.Normalize(now)
	if err != nil {
		return nil, &api.BadRequestError{Err: err}
	}
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     names.EventsAll,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	if q.Agent != "" {
		cfg.FilterSubject = names.EventSubject(q.Agent)
	}
	if !start.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		st := start.UTC()
		cfg.OptStartTime = &st
	}
	cons, err := js.CreateConsumer(ctx, names.StreamEvents, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: query consumer on %s: %w", names.StreamEvents, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, names.StreamEvents, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	ring := make([]api.Event, 0, q.Limit)
	hwm := map[string]uint64{}
	for pending > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("events: query: %w", err)
		}
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("events: query fetch: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err == nil {
				pending = md.NumPending
			}
			ev, err := decode(msg)
			if err != nil {
				continue
			}
			if last, ok := hwm[ev.Agent]; ok && ev.Seq <= last {
				continue
			}
			hwm[ev.Agent] = ev.Seq
			if len(ring) == q.Limit {
				copy(ring, ring[1:])
				ring = ring[:len(ring)-1]
			}
			ring = append(ring, ev)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("events: query fetch: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return ring, nil
}
