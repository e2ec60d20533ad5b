// Package uplink publishes the outbox's records to JetStream, in seq order,
// each with Nats-Msg-Id = names.MsgID(agent, seq) so that the stream drops
// duplicates, and deletes a record from the outbox only after JetStream
// acknowledged it. Publishing is asynchronous with a bounded window of
// in-flight acknowledgements; failures (NATS unreachable, no stream, time
// outs) are retried for ever with a back-off.
//
// Order: records are published in seq order and, while NATS is reachable,
// stored in that order. If one publish of a window fails and a later one
// succeeds, the failed one is stored after it on retry; the cloud orders by
// seq (its per-agent high-water mark) for that case.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/shared/names"
)

// Source is what the uplink needs of the outbox.
type Source interface {
	Pending(after uint64, max int) ([]outbox.Record, error)
	Delete(seqs ...uint64) error
	Notify() <-chan struct{}
}

// Config configures the uplink. Zero values are defaults.
type Config struct {
	// Agent is the agent id the subjects and message ids carry.
	Agent string
	// Window is the maximum of unacknowledged publishes. Default 256.
	Window int
	// AckTimeout bounds the wait for one acknowledgement. Default 10s.
	AckTimeout time.Duration
	// Backoff after a failed round. Default 1s.
	Backoff time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Stats count the uplink's work since start.
type Stats struct {
	Published uint64 // records acknowledged by JetStream
	Bytes     uint64 // payload bytes of those records
	Failures  uint64 // failed publishes
	LastError string
}

// Uplink moves outbox records to JetStream.
type Uplink struct {
	cfg Config
	js  jetstream.JetStream
	src Source
	log *slog.Logger

	published, bytes, failures atomic.Uint64
	lastErr                    atomic.Value // string
}

// New returns an uplink publishing over nc.
func New(nc *nats.Conn, src Source, cfg Config) (*Uplink, error) {
	if err := names.ValidAgentID(cfg.Agent); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.Window),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("uplink: jetstream: %w", err)
	}
	return &Uplink{cfg: cfg, js: js, src: src, log: cfg.Logger.With("component", "uplink")}, nil
}

// Stats returns the counters.
func (u *Uplink) Stats() Stats {
	s := Stats{Published: u.published.Load(), Bytes: u.bytes.Load(), Failures: u.failures.Load()}
	s.LastError, _ = u.lastErr.Load().(string)
	return s
}

// Run publishes until ctx is done. It returns ctx.Err() or an outbox error.
func (u *Uplink) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		n, err := u.round(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var oe outboxError
		if errors.As(err, &oe) {
			return err
		}
		if err != nil {
			u.failures.Add(1)
			u.lastErr.Store(err.Error())
			u.log.Warn("uplink publish failed; retrying", "err", err, "backoff", u.cfg.Backoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(u.cfg.Backoff):
			}
			continue
		}
		if n > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-u.src.Notify():
		case <-tick.C:
		}
	}
}

type outboxError struct{ error }

func (e outboxError) Unwrap() error { return e.error }

// round publishes one window of pending records and deletes the acknowledged
// ones. It returns how many were acknowledged.
func (u *Uplink) round(ctx context.Context) (int, error) {
	recs, err := u.src.Pending(0, u.cfg.Window)
	if err != nil {
		return 0, outboxError{err}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(recs))
	var firstErr error
	for _, r := range recs {
		subj := names.EventSubject(u.cfg.Agent)
		if r.Kind == outbox.KindSummary {
			subj = names.SummarySubject(u.cfg.Agent)
		}
		f, err := u.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: r.Data}, jetstream.WithMsgID(names.MsgID(u.cfg.Agent, r.Seq)))
		if err != nil {
			firstErr = fmt.Errorf("publish seq %d: %w", r.Seq, err)
			break
		}
		futures = append(futures, f)
	}
	acked := make([]uint64, 0, len(futures))
	var bytes uint64
	var cancelled error
wait:
	for i, f := range futures {
		select {
		case <-f.Ok():
			acked = append(acked, recs[i].Seq)
			bytes += uint64(len(recs[i].Data))
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = fmt.Errorf("publish seq %d: %w", recs[i].Seq, err)
			}
		case <-ctx.Done():
			// Unacknowledged records stay in the outbox; JetStream drops
			// the duplicates of any that did arrive when they are resent.
			cancelled = ctx.Err()
			break wait
		}
	}
	if err := u.src.Delete(acked...); err != nil {
		return 0, outboxError{err}
	}
	u.published.Add(uint64(len(acked)))
	u.bytes.Add(bytes)
	if cancelled != nil {
		return len(acked), cancelled
	}
	return len(acked), firstErr
}
