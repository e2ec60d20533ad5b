package httpui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// LiveConfig configures a Live feed. Zero values mean the defaults.
type LiveConfig struct {
	// Linger is how long the feed keeps following the streams after the
	// last client left (a reloaded page reconnects within it). Default
	// 30s.
	Linger time.Duration
	// Retry is the wait before following again after a failure. Default
	// 2s.
	Retry time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c *LiveConfig) fill() {
	if c.Linger <= 0 {
		c.Linger = 30 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Live feeds a Broadcaster with the whole fleet's live events and verdicts,
// whichever replica ingested or decided them: while the broadcaster has
// clients (and Linger after the last left) it follows OUTPOST_EVENTS and
// OUTPOST_VERDICTS with ordered consumers from their ends. Each event is
// sent once (api.Event without its window), as the ingest accepts it:
// well-formed, and not a republished duplicate (a seq at or below the
// highest seen from the agent's outbox incarnation, the rule of the
// cloud's high-water marks); each verdict once (a verdict of an event
// already sent in the last 4096 is a duplicate). With no client it follows
// nothing, so it costs the ingest nothing.
//
// An event that reaches the stream is shown when it is stored, usually
// just before a replica accepts it.
type Live struct {
	cfg    LiveConfig
	js     jetstream.JetStream
	b      *Broadcaster
	notify chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	following atomic.Bool
	mu        sync.Mutex
	up        chan struct{} // closed while following
	// Per term, touched by the consumers' callbacks (one at a time each).
	cons  []jetstream.ConsumeContext
	marks map[string]uint64 // agent/incarnation → highest seq sent
	seen  *recentKeys       // verdicts sent
}

// StartLive starts feeding b with the fleet's events and verdicts from js
// while b has clients. Stop it before closing the connection.
func StartLive(js jetstream.JetStream, b *Broadcaster, cfg LiveConfig) *Live {
	cfg.fill()
	lv := &Live{cfg: cfg, js: js, b: b, notify: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		up: make(chan struct{})}
	b.watch(func() {
		select {
		case lv.notify <- struct{}{}:
		default:
		}
	}, lv.wait)
	go lv.run()
	return lv
}

// Following reports whether the feed follows the streams now (it has, or
// had within Linger, clients).
func (lv *Live) Following() bool { return lv.following.Load() }

// wait returns once the feed follows the streams, or when ctx ends or the
// feed stops.
func (lv *Live) wait(ctx context.Context) {
	lv.mu.Lock()
	up := lv.up
	lv.mu.Unlock()
	select {
	case <-up:
	case <-ctx.Done():
	case <-lv.done:
	}
}

// Stop stops following.
func (lv *Live) Stop() {
	lv.once.Do(func() { close(lv.stop) })
	<-lv.done
}

func (lv *Live) run() {
	defer close(lv.done)
	defer lv.unfollow()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var idle time.Time // when the clients went to zero while following
	for {
		select {
		case <-lv.stop:
			return
		case <-lv.notify:
		case <-timer.C:
		}
		n := lv.b.Clients()
		switch {
		case n > 0 && !lv.following.Load():
			idle = time.Time{}
			if err := lv.follow(); err != nil {
				lv.cfg.Logger.Warn("live stream: cannot follow events and verdicts; retrying", "err", err)
				lv.unfollow()
				timer.Reset(lv.cfg.Retry)
			}
		case n > 0:
			idle = time.Time{}
		case lv.following.Load() && idle.IsZero():
			idle = time.Now()
			timer.Reset(lv.cfg.Linger)
		case lv.following.Load() && time.Since(idle) >= lv.cfg.Linger:
			idle = time.Time{}
			lv.unfollow()
		}
	}
}

// follow starts the consumers.
func (lv *Live) follow() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lv.marks, lv.seen = map[string]uint64{}, newRecentKeys(4096)
	for _, f := range []struct {
		stream, subject string
		handle          func(jetstream.Msg)
	}{
		{names.StreamEvents, names.EventsAll, lv.onEvent},
		{names.StreamVerdicts, names.VerdictsAll, lv.onVerdict},
	} {
		c, err := lv.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{f.subject}, DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err != nil {
			return fmt.Errorf("follow %s: %w", f.stream, err)
		}
		cc, err := c.Consume(f.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			lv.cfg.Logger.Debug("live stream", "stream", f.stream, "err", err)
		}))
		if err != nil {
			return fmt.Errorf("follow %s: %w", f.stream, err)
		}
		lv.cons = append(lv.cons, cc)
	}
	lv.following.Store(true)
	lv.mu.Lock()
	close(lv.up)
	lv.mu.Unlock()
	lv.cfg.Logger.Debug("live stream: following events and verdicts")
	return nil
}

// unfollow stops the consumers.
func (lv *Live) unfollow() {
	for _, c := range lv.cons {
		c.Stop()
		<-c.Closed()
	}
	lv.cons = nil
	if lv.following.Swap(false) {
		lv.mu.Lock()
		lv.up = make(chan struct{})
		lv.mu.Unlock()
		lv.cfg.Logger.Debug("live stream: stopped following")
	}
}

// maxMarks bounds the agents (and incarnations) whose marks are kept; past
// it the marks start over.
const maxMarks = 100000

func (lv *Live) onEvent(msg jetstream.Msg) {
	agent, err := names.AgentFromSubject(msg.Subject())
	if err != nil {
		return
	}
	var ev api.Event
	if wire.DecodeEvent(msg.Data(), &ev.Event) != nil || ev.Agent != agent || !ev.Kind.Valid() {
		return // the ingest terminates it
	}
	k := agent + "/" + ev.Incarnation
	if m, ok := lv.marks[k]; ok && ev.Seq <= m {
		return // a republished duplicate the ingest drops
	}
	if len(lv.marks) >= maxMarks {
		clear(lv.marks)
	}
	lv.marks[k] = ev.Seq
	if md, err := msg.Metadata(); err == nil {
		ev.StreamSeq = md.Sequence.Stream
		ev.Received = md.Timestamp.UTC()
	}
	ev.Window, ev.Missing = nil, nil // the page does not show them
	lv.b.Publish(SSEEvent, ev)
}

func (lv *Live) onVerdict(msg jetstream.Msg) {
	var v wire.Verdict
	if err := json.Unmarshal(msg.Data(), &v); err != nil {
		lv.cfg.Logger.Debug("live stream: undecodable verdict", "subject", msg.Subject(), "err", err)
		return
	}
	if !lv.seen.add(v.Agent + "/" + v.Incarnation + "/" + strconv.FormatUint(v.Seq, 10)) {
		return
	}
	lv.b.Publish(SSEVerdict, v)
}

// recentKeys remembers the last n keys added.
type recentKeys struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

// add records k and reports whether it was new.
func (r *recentKeys) add(k string) bool {
	if _, ok := r.set[k]; ok {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = k
	r.next = (r.next + 1) % len(r.ring)
	r.set[k] = struct{}{}
	return true
}
