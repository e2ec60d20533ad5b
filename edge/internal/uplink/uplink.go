// Package uplink publishes the outbox's records to JetStream, strictly in
// seq order, each with Nats-Msg-Id = names.MsgID(agent, seq) so that the
// stream drops duplicates, and deletes a record from the outbox only after
// JetStream acknowledged it. The deletion rides on the outbox's next group
// commit instead of a synced transaction of its own (a crash before that
// commit resends the record, which the cloud drops as a duplicate by its
// message id or high-water mark). Publishing is asynchronous with a sliding
// window of in-flight acknowledgements; failures (NATS unreachable, no
// stream, time outs) are retried for ever with a back-off.
//
// Order. A record may reach the stream only after every record before it
// did. Three things could break that with a plain async publisher, and the
// uplink rules each out:
//
//   - A connection that drops loses what was in its socket while later
//     publishes, buffered by the client during the reconnect, go out on the
//     next connection. The uplink therefore uses its own connection with
//     reconnects (and the reconnect buffer) off: once it breaks, every later
//     publish on it fails, and the uplink dials a new one.
//   - The client library retries a publish that met "no responders" later,
//     behind those published meanwhile. Library retries are off.
//   - On any failure the uplink stops publishing, waits until every
//     publish in flight has settled (acknowledged, failed or timed out), and
//     starts again from the first record not acknowledged. Records of the
//     failed window that did land are resent with their message ids and
//     dropped by JetStream's duplicate window; the cloud's per-agent
//     high-water mark of seqs covers resends after that window.
//
// What remains is a failure of one publish inside one healthy connection
// followed by the success of a later one (a server-side rejection of a
// single message): the uplink cannot undo that, so it counts it in
// Stats.OutOfOrder and logs it.
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
	// DeleteLater deletes acknowledged records in the source's next
	// commit (see outbox.Outbox.DeleteLater); Pending no longer returns
	// them.
	DeleteLater(seqs ...uint64) error
	Notify() <-chan struct{}
}

// Config configures the uplink. Zero values are defaults.
type Config struct {
	// Agent is the agent id the subjects and message ids carry.
	Agent string
	// URL is the NATS server (or comma-separated servers) to publish to.
	URL string
	// Options are extra connection options (name, credentials, TLS). The
	// uplink always turns reconnects off: it dials a new connection itself.
	Options []nats.Option
	// Window is the maximum of unacknowledged publishes. Default 256.
	Window int
	// AckTimeout bounds the wait for one acknowledgement. Default 10s.
	AckTimeout time.Duration
	// Backoff after a failure. Default 1s.
	Backoff time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Stats count the uplink's work since start.
type Stats struct {
	Published uint64 // records acknowledged by JetStream
	Bytes     uint64 // payload bytes of those records
	Failures  uint64 // failed rounds (connects or publishes)
	// OutOfOrder counts records acknowledged while an earlier record of the
	// same window had failed (see the package doc).
	OutOfOrder uint64
	// Connected reports whether the uplink's connection is up.
	Connected bool
	LastError string
}

// Uplink moves outbox records to JetStream.
type Uplink struct {
	cfg Config
	src Source
	log *slog.Logger

	published, bytes, failures, outOfOrder atomic.Uint64
	connected                              atomic.Bool
	lastErr                                atomic.Value // string
	lag                                    lagTracker
}

// New returns an uplink that publishes src's records to the NATS server at
// cfg.URL. Run starts it.
func New(src Source, cfg Config) (*Uplink, error) {
	if err := names.ValidAgentID(cfg.Agent); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("uplink: no NATS URL")
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
	return &Uplink{cfg: cfg, src: src, log: cfg.Logger.With("component", "uplink")}, nil
}

// Stats returns the counters.
func (u *Uplink) Stats() Stats {
	s := Stats{Published: u.published.Load(), Bytes: u.bytes.Load(), Failures: u.failures.Load(),
		OutOfOrder: u.outOfOrder.Load(), Connected: u.connected.Load()}
	s.LastError, _ = u.lastErr.Load().(string)
	return s
}

type outboxError struct{ error }

func (e outboxError) Unwrap() error { return e.error }

// conn is one connection of the uplink; closed is closed when it is.
type conn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	closed chan struct{}
}

func (u *Uplink) dial() (*conn, error) {
	c := &conn{closed: make(chan struct{})}
	opts := append([]nats.Option{}, u.cfg.Options...)
	opts = append(opts,
		nats.NoReconnect(),
		nats.ReconnectBufSize(-1),
		nats.Timeout(u.cfg.AckTimeout),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
	nc, err := nats.Connect(u.cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", u.cfg.URL, err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(u.cfg.Window),
		jetstream.WithPublishAsyncTimeout(u.cfg.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.nc, c.js = nc, js
	return c, nil
}

// Run publishes until ctx is done. It returns ctx.Err() or an outbox error.
func (u *Uplink) Run(ctx context.Context) error {
	var c *conn
	var streak uint64 // failures since the last acknowledgement
	u.probe()         // what is in the outbox now counts from now
	defer func() {
		if c != nil {
			c.nc.Close()
		}
		u.connected.Store(false)
	}()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var err error
		if c == nil || c.nc.IsClosed() {
			c, err = u.dial()
		}
		if err == nil {
			u.connected.Store(true)
			err = u.pump(ctx, c, func() { streak = 0 })
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var oe outboxError
		if errors.As(err, &oe) {
			return err
		}
		u.failures.Add(1)
		u.lastErr.Store(err.Error())
		streak++
		if streak&(streak-1) == 0 { // 1st, 2nd, 4th, 8th... failure in a row: bounded logging
			u.log.Warn("uplink failed; retrying", "err", err, "backoff", u.cfg.Backoff, "failures_in_a_row", streak)
		}
		if c != nil && (errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, errClosed) || errors.Is(err, jetstream.ErrAsyncPublishTimeout)) {
			// A time out may mean a half-dead connection: start afresh.
			c.nc.Close()
		}
		if c != nil && c.nc.IsClosed() {
			u.connected.Store(false)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(u.cfg.Backoff):
		}
		u.probe()
	}
}

var errClosed = errors.New("connection closed")

type flight struct {
	seq  uint64
	size int
	f    jetstream.PubAckFuture
}

// pump publishes over c until a failure, which it returns after every
// publish in flight has settled and the acknowledged records are deleted.
func (u *Uplink) pump(ctx context.Context, c *conn, progress func()) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var (
		buf      []outbox.Record // read from the outbox, not yet published
		inflight []flight        // published, oldest first
		acked    []uint64        // acknowledged, not yet deleted
		last     uint64          // last seq published on this connection
		failed   error
		failSeq  uint64
		bytes    uint64
	)
	flush := func() error {
		if len(acked) == 0 {
			return nil
		}
		if err := u.src.DeleteLater(acked...); err != nil {
			return outboxError{err}
		}
		u.lag.ack(acked[len(acked)-1])
		u.published.Add(uint64(len(acked)))
		u.bytes.Add(bytes)
		acked, bytes = acked[:0], 0
		return nil
	}
	for {
		// Publish while the window has room.
		for failed == nil && len(inflight) < u.cfg.Window {
			if len(buf) == 0 {
				recs, err := u.src.Pending(last, u.cfg.Window)
				if err != nil {
					return outboxError{err}
				}
				if len(recs) == 0 {
					break
				}
				u.lag.read(recs[0].Seq, recs[len(recs)-1].Seq, time.Now())
				buf = recs
			}
			r := buf[0]
			subj := names.EventSubject(u.cfg.Agent)
			if r.Kind == outbox.KindSummary {
				subj = names.SummarySubject(u.cfg.Agent)
			}
			f, err := c.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: r.Data},
				jetstream.WithMsgID(names.MsgID(u.cfg.Agent, r.Seq)), jetstream.WithRetryAttempts(0))
			if err != nil {
				failed, failSeq = fmt.Errorf("publish seq %d: %w", r.Seq, err), r.Seq
				break
			}
			buf = buf[1:]
			last = r.Seq
			inflight = append(inflight, flight{r.Seq, len(r.Data), f})
		}
		if len(inflight) == 0 {
			if err := flush(); err != nil {
				return err
			}
			if failed != nil {
				return failed
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.closed:
				return errClosed
			case <-u.src.Notify():
			case <-tick.C:
			}
			continue
		}
		// Wait for the oldest publish in flight.
		fl := inflight[0]
		select {
		case <-fl.f.Ok():
			if failed != nil && fl.seq > failSeq {
				u.outOfOrder.Add(1)
				u.log.Error("record acknowledged after an earlier one failed: it may precede it in the stream",
					"seq", fl.seq, "failed_seq", failSeq)
			}
			acked = append(acked, fl.seq)
			bytes += uint64(fl.size)
			progress()
		case err := <-fl.f.Err():
			if failed == nil {
				failed, failSeq = fmt.Errorf("publish seq %d: %w", fl.seq, err), fl.seq
			}
		case <-c.closed:
			if failed == nil {
				failed, failSeq = fmt.Errorf("publish seq %d: %w", fl.seq, errClosed), fl.seq
			}
			// Nothing more can arrive on this connection: what is in flight
			// stays in the outbox and is resent on the next one.
			inflight = nil
			continue
		case <-ctx.Done():
			// Unacknowledged records stay in the outbox; JetStream drops
			// the duplicates of any that did arrive when they are resent.
			if err := flush(); err != nil {
				return err
			}
			return ctx.Err()
		}
		inflight = inflight[1:]
		if len(acked) >= u.cfg.Window/2 || len(inflight) == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
