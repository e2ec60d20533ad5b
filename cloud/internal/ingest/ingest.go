// Package ingest runs outpost-cloud's batched durable pull consumers with
// per-agent high-water marks of outbox sequence numbers kept in the KV
// bucket names.BucketHWM.
//
// Every replica binds to the same durable consumer, so JetStream hands each
// message to one replica at a time. A replica takes what the pull consumer
// has buffered (up to Config.Batch messages) as one batch, groups it by
// agent (in stream order) and, for each agent, does one compare-and-set on
// the agent's mark (key "<Config.Name>.<agent>") for the whole batch:
//
//   - a message whose stream sequence is at or below the mark's SSeq was
//     already committed (a redelivery after a lost ack): acknowledged, not
//     processed again;
//   - a message whose outbox seq is at or below the mark's Seq for its
//     outbox incarnation is a duplicate (the agent republished it after
//     JetStream's Nats-Msg-Id window): counted and dropped;
//   - the rest are accepted: Config.Prepare may compute a new per-agent
//     state that is written with the mark, then the mark is written with
//     compare-and-set on its KV revision, then Config.Apply sees the
//     accepted messages, then they are acknowledged.
//
// Incarnations. An agent's outbox seqs grow for the life of its outbox
// file, and a wiped and recreated file starts again (at the wall clock in
// microseconds, which may be below the old mark if the clock went back).
// Decoded values that implement Incarnated name their outbox's
// incarnation, and the mark keeps Seq per incarnation: the current one in
// Seq, up to MaxRetired earlier ones in Retired. A message of another
// incarnation than the current one is a duplicate only if that incarnation
// is retired and its seq is at or below the retired mark; otherwise it is
// accepted and its incarnation becomes the current one. Messages without an
// incarnation (agents older than the field) make the incarnation "", which
// is handled like any other.
//
// A message is therefore accepted once across all replicas: two replicas
// holding the same message race on the same revision and the loser re-reads
// the mark and finds the message committed.
//
// Per-agent order. Duplicates are recognised by stream order (the agent
// publishes in seq order, so a duplicate is a message whose seq is not above
// every earlier message of the agent in the stream). Replicas process
// batches in parallel, so a replica may hold later messages of an agent
// while another still holds earlier ones; committing first would make the
// earlier ones look like duplicates. Before committing, a replica checks
// that the agent's messages it holds are contiguous in the stream and
// start right after the mark: within a clean run (first deliveries with
// consecutive consumer sequence numbers, so nobody else was handed a
// message in between) that holds without asking; otherwise it looks up the
// agent's next message in the stream (a direct get by subject, after the
// mark's SSeq and the consumer's ack floor). Messages that must wait are
// held back and retried every few milliseconds; the replica holding the
// earliest message of an agent always makes progress. After DefaultMaxHold
// they are negatively acknowledged (their predecessor may be with a replica
// that died; it comes back after the ack wait).
//
// Agents of one batch are processed concurrently (their lookups and
// compare-and-sets overlap); one agent's messages are handled in order by
// one goroutine. Prepare and Apply are called concurrently for different
// agents. Decode is called on the goroutine that delivers the messages, in
// delivery order, as they arrive: decoding the next batch overlaps the
// round trips of the current one. The marks and lookups use a NATS
// connection of their own (opened with the options of the caller's), so
// their replies do not queue behind the messages being delivered.
//
// Every message is acknowledged on its own (AckExplicit): the replicas share
// one durable, and an AckAll of a replica's last message would also
// acknowledge earlier messages another replica still holds uncommitted,
// which would lose them if that replica died. The acknowledgements of a
// batch are sent together once all its agents are committed (fire and
// forget, as always: a lost acknowledgement means a redelivery, which the
// mark recognises). The consumer leaves out a filter that equals the
// stream's only subject: the server would match every message against it.
//
// Config.Prepare must be idempotent: after a lost compare-and-set it is
// called again with the winner's state for what is still to accept (the
// second stage publishes verdicts with a Nats-Msg-Id for this reason). A
// replica that dies between commit and ack loses nothing: the redelivered
// messages are recognised as committed.
package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/names"
)

// Defaults.
const (
	DefaultBatch      = 1000
	DefaultAckWait    = 5 * time.Second
	DefaultDeferDelay = 25 * time.Millisecond
	// DefaultMaxHold is how long a message is held back for order before it
	// is negatively acknowledged (its predecessor may be with a replica that
	// died; it comes back after the ack wait).
	DefaultMaxHold = 2 * time.Second
	// retryInterval is how often held messages are retried when nothing
	// new arrives.
	retryInterval = 2 * time.Millisecond
	// agentConcurrency bounds the agents of one batch processed at once.
	agentConcurrency = 128
	// maxCASAttempts bounds the compare-and-set retries of one agent in one
	// batch before its messages are deferred.
	maxCASAttempts = 8
)

// MaxRetired is how many earlier outbox incarnations of an agent a mark
// remembers.
const MaxRetired = 8

// Incarnated is a decoded value that names the incarnation of the outbox
// that gave its seq (wire.Event and wire.Summary are).
type Incarnated interface {
	OutboxIncarnation() string
}

// Mark is the value kept per consumer and agent in names.BucketHWM.
type Mark struct {
	// Seq is the highest outbox sequence accepted from the agent's
	// current outbox incarnation.
	Seq uint64 `json:"seq"`
	// Seen is true once any message was accepted (Seq 0 is a valid seq).
	Seen bool `json:"seen,omitempty"`
	// Incarnation is the current outbox incarnation ("" for agents that
	// send none).
	Incarnation string `json:"incarnation,omitempty"`
	// Retired holds the marks of earlier incarnations, oldest first, at
	// most MaxRetired.
	Retired []RetiredMark `json:"retired,omitempty"`
	// SSeq is the stream sequence of the agent's last committed message
	// (accepted, duplicate or invalid).
	SSeq uint64 `json:"sseq"`
	// State is the consumer's per-agent state (e.g. summary totals).
	State json.RawMessage `json:"state,omitempty"`
}

// RetiredMark is the last mark of an earlier outbox incarnation.
type RetiredMark struct {
	Incarnation string `json:"incarnation"`
	Seq         uint64 `json:"seq"`
}

// Admit decides on a message of incarnation inc with outbox seq seq: it
// reports whether the message is new, and if so moves the mark to it.
// Retired is copied before it changes (m may share it with a cached mark).
func (m *Mark) Admit(inc string, seq uint64) bool {
	switch {
	case !m.Seen:
		m.Seq, m.Seen, m.Incarnation = seq, true, inc
		return true
	case inc == m.Incarnation:
		if seq <= m.Seq {
			return false
		}
		m.Seq = seq
		return true
	}
	retired := make([]RetiredMark, 0, len(m.Retired)+1)
	for _, r := range m.Retired {
		if r.Incarnation == inc {
			if seq <= r.Seq {
				return false
			}
			continue // becomes the current one again
		}
		retired = append(retired, r)
	}
	retired = append(retired, RetiredMark{Incarnation: m.Incarnation, Seq: m.Seq})
	if len(retired) > MaxRetired {
		retired = retired[len(retired)-MaxRetired:]
	}
	m.Retired, m.Incarnation, m.Seq = retired, inc, seq
	return true
}

// Item is one message of a batch.
type Item struct {
	Msg   jetstream.Msg
	Agent string
	// Seq is the outbox sequence number the message carries.
	Seq uint64
	// Incarnation is the incarnation of the outbox that gave Seq ("" when
	// the value does not name one).
	Incarnation string
	// SSeq is the message's stream sequence.
	SSeq uint64
	// Value is what Config.Decode returned.
	Value any
	// Err is the decode error of an invalid message.
	Err error
	// run identifies the clean run the message arrived in (see process).
	run uint64
	// heldSince is when the message was first held back for order.
	heldSince time.Time
}

// Result is what one commit decided for one agent's messages of a batch.
type Result struct {
	Accepted   []Item
	Duplicates []Item
	Invalid    []Item
	// State is the state written with the mark.
	State json.RawMessage
}

// Config configures a Consumer. Name, Stream, Durable, Filter, SubjectFor
// and Decode are required.
type Config struct {
	// Name labels metrics and prefixes the mark keys ("<Name>.<agent>").
	Name string
	// Stream, Durable and Filter select the durable consumer.
	Stream, Durable, Filter string
	// SubjectFor returns the subject an agent's messages are on.
	SubjectFor func(agent string) string
	// Batch is the most messages processed as one batch. Default
	// DefaultBatch.
	Batch int
	// AckWait is the consumer's ack wait. Default DefaultAckWait.
	AckWait time.Duration
	// DeferDelay is the redelivery delay of messages held back for order.
	// Default DefaultDeferDelay.
	DeferDelay time.Duration
	// Decode parses a message of agent and returns its outbox seq and value.
	Decode func(msg jetstream.Msg, agent string) (seq uint64, value any, err error)
	// Prepare, if set, computes the agent's new state from its previous
	// state and the accepted items, before the commit. It must be
	// idempotent. It may replace the Value of accepted items; Apply sees
	// the replacements. An error defers the agent's messages.
	Prepare func(ctx context.Context, agent string, state json.RawMessage, accepted []Item) (json.RawMessage, error)
	// Apply, if set, is called after the commit and before the acks.
	Apply func(agent string, r Result)
	// Metrics receives the counters; required.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
}

type cached struct {
	mark Mark
	rev  uint64
	// run is the clean run of the last committed message when every
	// message of the agent up to it was handled here; 0 when unknown.
	run uint64
}

// Consumer is a running batched durable consumer.
type Consumer struct {
	cfg    Config
	kv     jetstream.KeyValue // on side: the marks of the batches
	mainKV jetstream.KeyValue // on the caller's connection, for Mark
	stream jetstream.Stream
	cons   jetstream.Consumer
	cc     jetstream.ConsumeContext
	ch     chan delivery
	done   chan struct{}
	side   *nats.Conn

	// Used by the loop goroutine and the per-agent goroutines it starts;
	// mu guards marks, held, ackFloor and floorAt.
	mu       sync.Mutex
	marks    map[string]cached
	ackFloor uint64
	floorAt  time.Time
	held     []Item // held back for order, retried with the next batch
	runID    uint64 // current clean run
	prevCS   uint64 // consumer sequence of the last first delivery; 0 after a redelivery

	// Used by the loop goroutine only: a batch's items by agent.
	groupOf map[string]int // agent -> index in groups and order
	groups  [][]Item
	order   []string
}

// Key returns the mark key of agent for the consumer called name.
func Key(name, agent string) string { return name + "." + agent }

// Start creates or updates the durable consumer and starts consuming.
func Start(ctx context.Context, js jetstream.JetStream, cfg Config) (*Consumer, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.DeferDelay <= 0 {
		cfg.DeferDelay = DefaultDeferDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Consumer{cfg: cfg, marks: map[string]cached{}, groupOf: map[string]int{}, done: make(chan struct{})}
	var err error
	// Marks and lookups use a connection of their own (same options): on
	// the consuming connection their replies would queue behind the
	// messages the server is delivering, and every batch waits for them.
	opts := js.Conn().Opts
	opts.Name += " ingest " + cfg.Name
	if c.side, err = opts.Connect(); err != nil {
		return nil, fmt.Errorf("ingest %s: connect: %w", cfg.Name, err)
	}
	defer func() {
		if c.cc == nil {
			c.side.Close()
		}
	}()
	sjs, err := jetstream.New(c.side)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", cfg.Name, err)
	}
	if c.mainKV, err = js.KeyValue(ctx, names.BucketHWM); err != nil {
		return nil, fmt.Errorf("ingest %s: KV bucket %s: %w", cfg.Name, names.BucketHWM, err)
	}
	if c.kv, err = sjs.KeyValue(ctx, names.BucketHWM); err != nil {
		return nil, fmt.Errorf("ingest %s: KV bucket %s: %w", cfg.Name, names.BucketHWM, err)
	}
	if c.stream, err = sjs.Stream(ctx, cfg.Stream); err != nil {
		return nil, fmt.Errorf("ingest %s: stream %s: %w", cfg.Name, cfg.Stream, err)
	}
	// A filter that selects the whole stream is left out: with it the
	// server matches every message's subject against it before delivery.
	filter := cfg.Filter
	if subj := c.stream.CachedInfo().Config.Subjects; len(subj) == 1 && subj[0] == filter {
		filter = ""
	}
	c.cons, err = js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "outpost-cloud: " + cfg.Name + ", shared by all replicas",
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.Batch * 8,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ingest %s: create consumer %s on %s: %w", cfg.Name, cfg.Durable, cfg.Stream, err)
	}
	c.ackFloor = c.cons.CachedInfo().AckFloor.Stream
	c.floorAt = time.Now()
	c.ch = make(chan delivery, cfg.Batch*2)
	cc, err := c.cons.Consume(func(m jetstream.Msg) { c.ch <- c.prepare(m) },
		jetstream.PullMaxMessages(cfg.Batch*2),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			cfg.Logger.Debug("ingest consumer", "consumer", cfg.Name, "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("ingest %s: consume: %w", cfg.Name, err)
	}
	c.cc = cc
	go c.loop()
	return c, nil
}

// Stop stops pulling, processes and acknowledges what was already
// delivered, and returns when done.
func (c *Consumer) Stop() {
	if c.cc == nil {
		return
	}
	c.cc.Drain()
	<-c.cc.Closed()
	close(c.ch)
	<-c.done
	c.side.Close()
	c.cc = nil
}

// Mark reads the committed mark of agent.
func (c *Consumer) Mark(ctx context.Context, agent string) (Mark, error) {
	m, _, err := loadMark(ctx, c.mainKV, Key(c.cfg.Name, agent))
	return m, err
}

func loadMark(ctx context.Context, kv jetstream.KeyValue, key string) (Mark, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Mark{}, 0, nil
	}
	if err != nil {
		return Mark{}, 0, fmt.Errorf("read mark %s: %w", key, err)
	}
	var m Mark
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return Mark{}, 0, fmt.Errorf("decode mark %s: %w", key, err)
	}
	return m, e.Revision(), nil
}

// delivery is a delivered message with what the delivering goroutine
// found out about it.
type delivery struct {
	msg   jetstream.Msg
	agent string
	md    MsgMeta
	err   error // no agent or metadata
	seq   uint64
	inc   string
	value any
	derr  error // Config.Decode's error
}

// prepare runs on the delivering goroutine, in delivery order: it parses
// the subject and metadata and decodes the message, so that decoding
// overlaps the processing of the previous batch (its compare-and-sets).
func (c *Consumer) prepare(m jetstream.Msg) delivery {
	d := delivery{msg: m}
	if d.agent, d.err = names.AgentFromSubject(m.Subject()); d.err != nil {
		return d
	}
	if d.md, d.err = Meta(m); d.err != nil {
		return d
	}
	d.seq, d.value, d.derr = c.cfg.Decode(m, d.agent)
	if v, ok := d.value.(Incarnated); ok {
		d.inc = v.OutboxIncarnation()
	}
	return d
}

func (c *Consumer) loop() {
	defer close(c.done)
	batch := make([]delivery, 0, c.cfg.Batch)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		batch = batch[:0]
		if len(c.held) == 0 {
			m, ok := <-c.ch
			if !ok {
				return
			}
			batch = append(batch, m)
		} else {
			retry.Reset(retryInterval)
			select {
			case m, ok := <-c.ch:
				if !ok {
					// Stopping: hand what is held to the other replicas.
					for _, it := range c.held {
						_ = it.Msg.Nak()
					}
					c.count("deferred", len(c.held))
					return
				}
				batch = append(batch, m)
			case <-retry.C:
			}
			retry.Stop()
		}
	fill:
		for len(batch) < c.cfg.Batch {
			select {
			case m, ok := <-c.ch:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		c.process(batch)
	}
}

func (c *Consumer) count(outcome string, n int) {
	if n > 0 {
		c.cfg.Metrics.IngestMessages.WithLabelValues(c.cfg.Name, outcome).Add(float64(n))
	}
}

func (c *Consumer) process(batch []delivery) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Items grouped by agent, in order of first appearance; the group
	// slices are reused from batch to batch (nothing keeps them after the
	// batch: held items are copied).
	clear(c.groupOf)
	order := c.order[:0]
	add := func(it Item) {
		i, ok := c.groupOf[it.Agent]
		if !ok {
			i = len(order)
			c.groupOf[it.Agent] = i
			order = append(order, it.Agent)
			if i == len(c.groups) {
				c.groups = append(c.groups, nil)
			}
			c.groups[i] = c.groups[i][:0]
		}
		c.groups[i] = append(c.groups[i], it)
	}
	for _, it := range c.held {
		add(it)
	}
	c.held = c.held[:0]
	for _, d := range batch {
		m, agent, md := d.msg, d.agent, d.md
		if d.err != nil {
			c.count("invalid", 1)
			c.cfg.Logger.Warn("ingest: message without agent or metadata", "consumer", c.cfg.Name, "subject", m.Subject())
			_ = m.Term()
			continue
		}
		// A clean run is a stretch of first deliveries with consecutive
		// consumer sequences: nobody else was handed a message in between,
		// so within a run an agent's messages are contiguous in the stream.
		cs := md.ConsumerSeq
		if md.NumDelivered != 1 || c.prevCS == 0 || cs != c.prevCS+1 {
			c.runID++
		}
		c.prevCS = cs
		if md.NumDelivered != 1 {
			c.prevCS = 0
		}
		add(Item{Msg: m, Agent: agent, Seq: d.seq, Incarnation: d.inc, SSeq: md.StreamSeq, Value: d.value, Err: d.derr, run: c.runID})
	}
	c.order = order
	// Agents are independent: their round trips (lookups, compare-and-set,
	// verdict publishes) overlap.
	// The acknowledgements are sent together once every agent is done:
	// written in one burst they leave in a few large writes instead of
	// many small ones.
	var wg sync.WaitGroup
	sem := make(chan struct{}, agentConcurrency)
	acks := make([][]jetstream.Msg, len(order))
	for i, agent := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			acks[i] = c.processAgent(ctx, agent, c.groups[i])
		}()
	}
	wg.Wait()
	for _, l := range acks {
		for _, m := range l {
			_ = m.Ack()
		}
	}
	for i := range order {
		clear(c.groups[i]) // let the messages go
	}
	if len(batch) == 0 {
		return
	}
	c.cfg.Metrics.IngestBatches.WithLabelValues(c.cfg.Name).Inc()
	c.cfg.Metrics.IngestBatchSize.WithLabelValues(c.cfg.Name).Observe(float64(len(batch)))
	c.cfg.Metrics.IngestBatchDuration.WithLabelValues(c.cfg.Name).Observe(time.Since(start).Seconds())
}

// hold keeps items for the next round: an earlier message of their agent
// is with another replica, which commits it soon. Items held longer than
// DefaultMaxHold are negatively acknowledged instead.
func (c *Consumer) hold(items []Item) {
	now := time.Now()
	for _, it := range items {
		if it.heldSince.IsZero() {
			it.heldSince = now
			c.count("held", 1)
		} else if now.Sub(it.heldSince) > DefaultMaxHold {
			c.deferItems([]Item{it})
			continue
		}
		c.mu.Lock()
		c.held = append(c.held, it)
		c.mu.Unlock()
	}
}

func (c *Consumer) getMark(agent string) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cm, ok := c.marks[agent]
	return cm, ok
}

func (c *Consumer) setMark(agent string, cm cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marks[agent] = cm
}

func (c *Consumer) dropMark(agent string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.marks, agent)
}

func (c *Consumer) deferItems(items []Item) {
	for _, it := range items {
		_ = it.Msg.NakWithDelay(c.cfg.DeferDelay)
	}
	c.count("deferred", len(items))
}

// processAgent decides on and commits one agent's messages of a batch and
// returns the messages to acknowledge.
func (c *Consumer) processAgent(ctx context.Context, agent string, items []Item) (acks []jetstream.Msg) {
	key := Key(c.cfg.Name, agent)
	// Stream order; a second copy of one message (redelivered while the
	// first waited here) goes back for later.
	bySSeq := func(a, b Item) int { return cmp.Compare(a.SSeq, b.SSeq) }
	if !slices.IsSortedFunc(items, bySSeq) {
		slices.SortStableFunc(items, bySSeq)
	}
	uniq := items[:0]
	for i, it := range items {
		if i > 0 && it.SSeq == items[i-1].SSeq {
			c.deferItems([]Item{it})
			continue
		}
		uniq = append(uniq, it)
	}
	items = uniq
	cm, fresh := c.getMark(agent)
	fresh = !fresh
	if fresh {
		m, rev, err := loadMark(ctx, c.kv, key)
		if err != nil {
			c.cfg.Logger.Warn("ingest: read mark", "consumer", c.cfg.Name, "agent", agent, "err", err)
			c.deferItems(items)
			return acks
		}
		cm = cached{mark: m, rev: rev}
	}
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		rest := items[:0] // filtered in place: items is this goroutine's own
		for _, it := range items {
			if it.SSeq <= cm.mark.SSeq {
				acks = append(acks, it.Msg)
				c.count("redelivered", 1)
				continue
			}
			rest = append(rest, it)
		}
		items = rest
		if len(items) == 0 {
			c.setMark(agent, cm)
			return acks
		}
		n, err := c.contiguous(ctx, agent, cm, items)
		if err != nil {
			c.cfg.Logger.Warn("ingest: order check", "consumer", c.cfg.Name, "agent", agent, "err", err)
		}
		if n == 0 && err == nil && !fresh {
			// The cached mark may be stale (another replica committed
			// since): read it again before holding messages back.
			m, rev, err := loadMark(ctx, c.kv, key)
			if err == nil {
				cm, fresh = cached{mark: m, rev: rev}, true
				continue
			}
		}
		if n == 0 {
			cm.run = 0
			c.setMark(agent, cm)
			if err != nil {
				c.deferItems(items)
			} else {
				c.hold(items)
			}
			return acks
		}
		commit, later := items[:n], items[n:]
		r := Result{Accepted: make([]Item, 0, n)}
		next := cm.mark
		for _, it := range commit {
			switch {
			case it.Err != nil:
				r.Invalid = append(r.Invalid, it)
			case !next.Admit(it.Incarnation, it.Seq):
				r.Duplicates = append(r.Duplicates, it)
			default:
				r.Accepted = append(r.Accepted, it)
			}
		}
		next.SSeq = commit[n-1].SSeq
		if c.cfg.Prepare != nil && len(r.Accepted) > 0 {
			state, err := c.cfg.Prepare(ctx, agent, cm.mark.State, r.Accepted)
			if err != nil {
				c.cfg.Logger.Warn("ingest: prepare", "consumer", c.cfg.Name, "agent", agent, "err", err)
				cm.run = 0
				c.setMark(agent, cm)
				c.deferItems(items)
				return acks
			}
			next.State = state
		}
		r.State = next.State
		data, err := json.Marshal(next)
		if err != nil {
			c.cfg.Logger.Error("ingest: encode mark", "err", err)
			c.deferItems(items)
			return acks
		}
		var rev uint64
		if cm.rev == 0 {
			rev, err = c.kv.Create(ctx, key, data)
		} else {
			rev, err = c.kv.Update(ctx, key, data, cm.rev)
		}
		if err == nil {
			run := commit[n-1].run
			if len(later) > 0 {
				run = 0
			}
			c.setMark(agent, cached{mark: next, rev: rev, run: run})
			if c.cfg.Apply != nil {
				c.cfg.Apply(agent, r)
			}
			for _, it := range r.Accepted {
				acks = append(acks, it.Msg)
			}
			for _, it := range r.Duplicates {
				acks = append(acks, it.Msg)
			}
			for _, it := range r.Invalid {
				c.cfg.Logger.Warn("ingest: dropping invalid message", "consumer", c.cfg.Name, "subject", it.Msg.Subject(), "err", it.Err)
				_ = it.Msg.Term()
			}
			c.count("accepted", len(r.Accepted))
			c.count("duplicate", len(r.Duplicates))
			c.count("invalid", len(r.Invalid))
			c.hold(later)
			return acks
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			c.cfg.Logger.Warn("ingest: write mark", "consumer", c.cfg.Name, "agent", agent, "err", err)
			c.dropMark(agent)
			c.deferItems(items)
			return acks
		}
		// Another replica moved the mark: re-read and decide again.
		c.cfg.Metrics.HWMConflicts.WithLabelValues(c.cfg.Name).Inc()
		m, rev, err := loadMark(ctx, c.kv, key)
		if err != nil {
			c.cfg.Logger.Warn("ingest: re-read mark", "consumer", c.cfg.Name, "agent", agent, "err", err)
			c.dropMark(agent)
			c.deferItems(items)
			return acks
		}
		cm, fresh = cached{mark: m, rev: rev}, true
	}
	c.dropMark(agent)
	c.deferItems(items)
	return acks
}

// contiguous returns how many of items (sorted by stream sequence, all
// above the mark) can be committed now: the first must be the agent's next
// message in the stream after the mark, and each further one the next after
// its predecessor. Within a clean run that holds without asking the server;
// across runs it is checked with a direct lookup of the agent's next
// message.
func (c *Consumer) contiguous(ctx context.Context, agent string, cm cached, items []Item) (int, error) {
	if cm.run == 0 || items[0].run != cm.run {
		first, err := c.isNext(ctx, agent, cm.mark.SSeq, items[0].SSeq)
		if err != nil || !first {
			return 0, err
		}
	}
	subject := c.cfg.SubjectFor(agent)
	for n := 1; n < len(items); n++ {
		if items[n].run == items[n-1].run {
			continue
		}
		raw, err := c.stream.GetMsg(ctx, items[n-1].SSeq+1, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return n, fmt.Errorf("look up next message of %s after %d: %w", agent, items[n-1].SSeq, err)
		}
		if raw.Sequence != items[n].SSeq {
			return n, nil
		}
	}
	return len(items), nil
}

// isNext reports whether the agent's first uncommitted message in the
// stream is the one at stream sequence first, i.e. no earlier message of the
// agent after the mark is still in flight (on another replica, or waiting
// for redelivery).
func (c *Consumer) isNext(ctx context.Context, agent string, markSSeq, first uint64) (bool, error) {
	for refreshed := false; ; refreshed = true {
		c.mu.Lock()
		floor, floorAt := c.ackFloor, c.floorAt
		c.mu.Unlock()
		from := max(markSSeq, floor) + 1
		if first <= from {
			return true, nil
		}
		raw, err := c.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(c.cfg.SubjectFor(agent)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("look up next message of %s after %d: %w", agent, from-1, err)
		}
		if raw.Sequence >= first {
			return true, nil
		}
		// An earlier message exists. It is in flight unless it was
		// acknowledged since we last read the consumer's ack floor.
		if refreshed || time.Since(floorAt) < 20*time.Millisecond {
			return false, nil
		}
		info, err := c.cons.Info(ctx)
		if err != nil {
			return false, fmt.Errorf("consumer info: %w", err)
		}
		c.mu.Lock()
		c.ackFloor, c.floorAt = info.AckFloor.Stream, time.Now()
		c.mu.Unlock()
	}
}
