package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/ingest"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// QueryEvents reads events matching q from the OUTPOST_EVENTS stream with
// an ephemeral consumer and joins each with its verdict. Duplicates of an
// agent's sequence numbers within the scanned range are skipped. Events
// come oldest first; the newest q.Limit are kept. The whole matching range
// is scanned, which wants an index (or a start sequence) at scale.
func (s *Store) QueryEvents(ctx context.Context, q api.EventsQuery) ([]api.Event, error) {
	return Query(ctx, s.js, q, s.cfg.Now())
}

// QueryVerdicts reads verdicts matching q (Since compares with when the
// verdict was stored) from OUTPOST_VERDICTS, oldest first, the newest
// q.Limit.
func (s *Store) QueryVerdicts(ctx context.Context, q api.EventsQuery) ([]wire.Verdict, error) {
	return QueryVerdicts(ctx, s.js, q, s.cfg.Now())
}

// Query is QueryEvents on any JetStream context, with now as the reference
// for relative Since values.
func Query(ctx context.Context, js jetstream.JetStream, q api.EventsQuery, now time.Time) ([]api.Event, error) {
	start, err := q.Normalize(now)
	if err != nil {
		return nil, &api.BadRequestError{Err: err}
	}
	filter := names.EventsAll
	if q.Agent != "" {
		filter = names.EventSubject(q.Agent)
	}
	ring := make([]api.Event, 0, q.Limit)
	hwm := map[string]*ingest.Mark{} // per agent, by outbox incarnation as ingest keeps them
	err = scan(ctx, js, names.StreamEvents, filter, start, func(msg jetstream.Msg) {
		ev, err := decode(msg)
		if err != nil {
			return
		}
		mk := hwm[ev.Agent]
		if mk == nil {
			mk = &ingest.Mark{}
			hwm[ev.Agent] = mk
		}
		if !mk.Admit(ev.Incarnation, ev.Seq) {
			return
		}
		if len(ring) == q.Limit {
			copy(ring, ring[1:])
			ring = ring[:len(ring)-1]
		}
		ring = append(ring, ev)
	})
	if err != nil || len(ring) == 0 {
		return ring, err
	}
	// Join verdicts: they are stored after their events, so scanning from
	// the first listed event's storage time finds them all.
	want := make(map[string]int, len(ring))
	for i, ev := range ring {
		want[names.MsgID(ev.Agent, ev.Seq)+"/"+ev.Incarnation] = i
	}
	vfilter := names.VerdictsAll
	if q.Agent != "" {
		vfilter = names.VerdictSubject(q.Agent)
	}
	err = scan(ctx, js, names.StreamVerdicts, vfilter, ring[0].Received, func(msg jetstream.Msg) {
		var v wire.Verdict
		if json.Unmarshal(msg.Data(), &v) != nil {
			return
		}
		if i, ok := want[names.MsgID(v.Agent, v.Seq)+"/"+v.Incarnation]; ok {
			ring[i].Verdict = string(v.Decision)
			score := v.Score
			ring[i].VerdictScore = &score
			ring[i].VerdictModel = v.Model
			ring[i].VerdictReason = v.Reason
		}
	})
	return ring, err
}

// QueryVerdicts is Store.QueryVerdicts on any JetStream context.
func QueryVerdicts(ctx context.Context, js jetstream.JetStream, q api.EventsQuery, now time.Time) ([]wire.Verdict, error) {
	start, err := q.Normalize(now)
	if err != nil {
		return nil, &api.BadRequestError{Err: err}
	}
	filter := names.VerdictsAll
	if q.Agent != "" {
		filter = names.VerdictSubject(q.Agent)
	}
	ring := make([]wire.Verdict, 0, q.Limit)
	err = scan(ctx, js, names.StreamVerdicts, filter, start, func(msg jetstream.Msg) {
		var v wire.Verdict
		if json.Unmarshal(msg.Data(), &v) != nil {
			return
		}
		if len(ring) == q.Limit {
			copy(ring, ring[1:])
			ring = ring[:len(ring)-1]
		}
		ring = append(ring, v)
	})
	return ring, err
}

// scan feeds every message of stream on filter stored at or after start
// (from the beginning when start is zero) to fn, oldest first, through an
// ephemeral consumer.
func scan(ctx context.Context, js jetstream.JetStream, stream, filter string, start time.Time, fn func(jetstream.Msg)) error {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     filter,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	if !start.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		st := start.UTC()
		cfg.OptStartTime = &st
	}
	cons, err := js.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("events: query consumer on %s: %w", stream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, stream, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("events: query %s: %w", stream, err)
		}
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("events: query fetch %s: %w", stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if md, err := msg.Metadata(); err == nil {
				pending = md.NumPending
			}
			fn(msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("events: query fetch %s: %w", stream, err)
		}
		if got == 0 {
			break
		}
	}
	return nil
}
