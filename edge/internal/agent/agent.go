// Package agent wires the edge agent's parts together: the embedded broker
// (when the profile asks for one), MQTT ingest, decoding, per-stream
// detection, the outbox, the JetStream uplink, summaries, heartbeats and
// metrics.
//
// Delivery: a reading's MQTT message is acknowledged only after the reading
// was judged normal or its event was committed to the outbox (or refused by
// the stated full-outbox policy, which counts it), or, while it waits in a
// stream's reorder buffer, after a checkpoint holding it was committed
// (checkpoint.go). Malformed payloads are counted and acknowledged: they
// can never succeed.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/outpost-iot/outpost/edge/internal/broker"
	"github.com/outpost-iot/outpost/edge/internal/deadletter"
	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/edge/internal/ingest"
	"github.com/outpost-iot/outpost/edge/internal/metrics"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/edge/internal/uplink"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/detect/zscore"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Options configure an agent.
type Options struct {
	// Profile is the firmware profile; it must pass ValidateForRun.
	Profile profile.Profile
	// Version is the agent's build version, reported in state.
	Version string
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Ready, if set, is called once the agent is running (broker up, outbox
	// open, MQTT connect started).
	Ready func(*Agent)
}

// Agent is one running edge agent.
type Agent struct {
	p       profile.Profile
	version string
	ready   func(*Agent)
	log     *slog.Logger
	started time.Time

	met      *metrics.Metrics
	box      *outbox.Outbox
	brk      *broker.Broker
	in       *ingest.Client
	nc       *nats.Conn
	up       *uplink.Uplink
	decoders []topicDecoder
	dead     *deadletter.Store // bad payload samples (decoders.go)
	mqttURL  string
	// metricsAddr is where /metrics is served, if anywhere.
	metricsAddr string
	// runners hold an interpreter per model (by the profile's model
	// spec), shared by the model-scored streams: they are all judged on
	// the handler's goroutine, the agent's one detection worker.
	runners map[string]*modelscore.Runner

	// Handler state: touched by the ingest goroutine, read by summaries.
	mu        sync.Mutex
	detectors map[string]*detect.Detector
	// Checkpoints of the detectors (checkpoint.go): cpMu is held by handle.
	cpMu      sync.Mutex
	cpDirty   map[string]struct{}
	cpLast    time.Time
	cpAck     []ingest.Message   // acknowledged once the next checkpoint is committed
	judged    []detect.Judgement // handle's scratch: judgements of one reading
	streams   map[string]*streamStats
	errTopics map[string]map[string]uint64 // topic -> reason -> count
	rawBytes  uint64
	from      time.Time

	readings, decodeErrors, anomalies, uncertain, drops atomic.Uint64
	lateDropped, duplicates, filled, gapsReset          atomic.Uint64
	lastErr                                             atomic.Value // string
}

type topicDecoder struct {
	filter string
	dec    decode.Decoder
}

type streamStats struct {
	wire.StreamSummary
	sum float64
}

// New checks the profile and builds an agent; Run starts it.
func New(opts Options) (*Agent, error) {
	p := opts.Profile.Defaults()
	if err := p.ValidateForRun(); err != nil {
		return nil, fmt.Errorf("agent: invalid profile:\n%w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{p: p, version: opts.Version, ready: opts.Ready, log: opts.Logger.With("agent", p.Agent.ID),
		detectors: map[string]*detect.Detector{}, cpDirty: map[string]struct{}{}, streams: map[string]*streamStats{}, errTopics: map[string]map[string]uint64{}}
	reg := decode.NewRegistry()
	for _, t := range p.MQTT.Topics {
		d, err := reg.NewWith(t.Decoder, decodeOptions(t))
		if err != nil {
			return nil, fmt.Errorf("agent: topic %s: %w", t.Filter, err)
		}
		a.decoders = append(a.decoders, topicDecoder{t.Filter, d})
	}
	a.runners = map[string]*modelscore.Runner{}
	for i, s := range p.Streams {
		s = s.Defaults()
		if s.Scorer == profile.ScorerModel && a.runners[s.Model] == nil {
			m, model, err := modelscore.Load(s.Model)
			if err != nil {
				return nil, fmt.Errorf("agent: streams[%d].model: %w", i, err)
			}
			if a.runners[s.Model], err = modelscore.NewRunner(m, model); err != nil {
				return nil, fmt.Errorf("agent: streams[%d].model: %w", i, err)
			}
		}
		if _, err := a.newDetector(s); err != nil {
			return nil, fmt.Errorf("agent: stream %s: %w", s.Match, err)
		}
	}
	return a, nil
}

// newDetector builds the detector of a stream configured by s. A stream
// scored by a model gets a scorer on the model's runner, and the manifest's
// thresholds unless the profile sets them.
func (a *Agent) newDetector(s profile.Stream) (*detect.Detector, error) {
	cfg := detectConfig(s)
	if s.Scorer != profile.ScorerModel {
		return detect.New(cfg)
	}
	r := a.runners[s.Model]
	if r == nil {
		return nil, fmt.Errorf("model %q not loaded", s.Model)
	}
	if cfg.Low == 0 && cfg.High == 0 {
		cfg.Low, cfg.High = r.Manifest().Low, r.Manifest().High
	}
	return detect.NewWithScorer(cfg, modelscore.New(r))
}

// modelOf is the "name@version" that scores streams configured by s.
func (a *Agent) modelOf(s profile.Stream) string {
	if s.Scorer == profile.ScorerModel {
		if r := a.runners[s.Model]; r != nil {
			return r.Model()
		}
	}
	return zscore.Model
}

func detectConfig(s profile.Stream) detect.Config {
	c := detect.Config{Window: s.Window, Scorer: s.Scorer, Low: s.Low, High: s.High,
		CooldownReadings: s.Cooldown.Readings, CooldownDuration: s.Cooldown.Duration, Warmup: s.Warmup,
		Span: s.WindowSpan, Reorder: s.Reorder, Interval: s.Interval, GapIntervals: s.GapFactor, MaxFill: s.MaxFill,
		HalfLife: s.HalfLife, NormMean: s.NormMean, NormScale: s.NormScale}
	switch s.GapFill {
	case "hold":
		c.GapFill = detect.GapHold
	case "linear":
		c.GapFill = detect.GapLinear
	case "missing":
		c.GapFill = detect.GapMissing
	}
	switch s.Normalize {
	case "window":
		c.Normalize = detect.NormWindow
	case "online":
		c.Normalize = detect.NormOnline
	case "manifest":
		c.Normalize = detect.NormManifest
	}
	return c
}

// MQTTURL is the broker URL the agent's client uses (the embedded broker's
// when there is one). Valid after Ready.
func (a *Agent) MQTTURL() string { return a.mqttURL }

// WaitMQTT waits until the agent's MQTT client has connected and
// subscribed for the first time. Valid after Ready.
func (a *Agent) WaitMQTT(ctx context.Context) error { return a.in.WaitConnected(ctx) }

// MetricsAddr is the address /metrics is served on ("" when off). Valid
// after Ready.
func (a *Agent) MetricsAddr() string { return a.metricsAddr }

// Metrics returns the agent's metrics.
func (a *Agent) Metrics() *metrics.Metrics { return a.met }

// Run runs the agent until ctx is done, then shuts down cleanly: stops taking
// messages, commits what is queued, acknowledges what was committed, gives
// the uplink a moment to send, and closes everything.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.started = time.Now().UTC()
	a.from = a.started
	a.met = metrics.New()

	if err := os.MkdirAll(a.p.DataDir, 0o700); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	a.box, err = outbox.Open(filepath.Join(a.p.DataDir, "outbox.db"), outbox.Options{MaxBytes: a.p.Outbox.MaxBytes})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer func() {
		if a.box != nil {
			a.box.Close()
		}
	}()
	st := a.box.Stats()
	a.log.Info("outbox open", "path", filepath.Join(a.p.DataDir, "outbox.db"), "depth", st.Depth, "last_seq", st.LastSeq, "drops", st.Drops)
	a.registerFuncs()
	a.openDeadLetter()
	defer a.closeDeadLetter()
	a.restoreCheckpoint()

	a.mqttURL = a.p.MQTT.URL
	user, pass := a.p.MQTT.Username, a.p.MQTT.Password
	if e := a.p.MQTT.Embedded; e != nil {
		a.brk, err = broker.Start(broker.Config{Listen: e.Listen, Username: e.Username, Password: e.Password,
			Logger: slog.New(&levelHandler{min: slog.LevelWarn, Handler: a.log.Handler()})})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		defer a.brk.Close()
		a.mqttURL, user, pass = a.brk.URL(), e.Username, e.Password
		a.log.Info("embedded mqtt broker listening", "addr", a.brk.Addr())
		a.met.CounterFunc("outpost_edge_mqtt_broker_dropped_total", "Publishes the embedded broker dropped.",
			func() float64 { return float64(a.brk.Dropped()) })
	}

	a.nc, err = nats.Connect(a.p.NATS.URL,
		nats.Name("outpost-edge "+a.p.Agent.ID),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { a.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { a.log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
		nats.ConnectHandler(func(nc *nats.Conn) { a.log.Info("nats connected", "url", nc.ConnectedUrl()) }),
	)
	if err != nil {
		return fmt.Errorf("agent: nats %s: %w", a.p.NATS.URL, err)
	}
	defer a.nc.Close()
	a.up, err = uplink.New(a.box, uplink.Config{Agent: a.p.Agent.ID, URL: a.p.NATS.URL,
		Options: []nats.Option{nats.Name("outpost-edge " + a.p.Agent.ID + " uplink")}, Logger: a.log})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.met.CounterFunc("outpost_edge_uplink_published_total", "Outbox records acknowledged by JetStream.",
		func() float64 { return float64(a.up.Stats().Published) })
	a.met.CounterFunc("outpost_edge_uplink_published_bytes_total", "Payload bytes of records acknowledged by JetStream.",
		func() float64 { return float64(a.up.Stats().Bytes) })
	a.met.CounterFunc("outpost_edge_uplink_failures_total", "Failed uplink publish rounds.",
		func() float64 { return float64(a.up.Stats().Failures) })

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	if a.p.Metrics.Listen != "" {
		addr, err := a.met.Serve(bg, a.p.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.metricsAddr = addr.String()
		a.log.Info("metrics listening", "addr", a.metricsAddr)
	}
	upCtx, stopUp := context.WithCancel(context.Background())
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		if err := a.up.Run(upCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.setErr(err)
			a.log.Error("uplink stopped", "err", err)
		}
	}()
	defer func() { stopUp(); <-upDone }()

	filters := make([]string, len(a.p.MQTT.Topics))
	for i, t := range a.p.MQTT.Topics {
		filters[i] = t.Filter
	}
	a.in, err = ingest.Start(ingest.Config{URL: a.mqttURL, ClientID: a.p.MQTT.ClientID, Username: user, Password: pass,
		QoS: byte(*a.p.MQTT.QoS), Filters: filters, Handler: a.handle, Logger: a.log})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer a.in.Close()

	wg.Add(2)
	go func() { defer wg.Done(); a.heartbeats(bg) }()
	go func() { defer wg.Done(); a.summaries(bg) }()
	a.log.Info("agent running", "version", a.version, "mqtt", a.mqttURL, "nats", a.p.NATS.URL, "profile", a.p.Name)
	if a.ready != nil {
		a.ready(a)
	}

	<-ctx.Done()
	a.log.Info("shutting down")
	a.in.Pause()
	a.saveCheckpoint()
	a.commitSummary(time.Now().UTC())
	// Give the uplink a moment to send what is committed.
	deadline := time.Now().Add(2 * time.Second)
	for a.box.Stats().Depth > 0 && a.up.Stats().Connected && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stopUp()
	<-upDone
	stopBG()
	wg.Wait()
	a.publishState() // final state
	if a.nc.IsConnected() {
		a.nc.FlushTimeout(2 * time.Second) // NATS down: do not hold the shutdown up
	}
	if err := a.box.Close(); err != nil { // commits the queue; acks go out below
		a.log.Error("outbox close", "err", err)
	}
	a.box = nil
	a.in.Close()
	a.log.Info("stopped")
	return nil
}

func (a *Agent) registerFuncs() {
	a.met.GaugeFunc("outpost_edge_outbox_records", "Records waiting in the outbox.",
		func() float64 { return float64(a.box.Stats().Depth) })
	a.met.GaugeFunc("outpost_edge_outbox_bytes", "Bytes of records waiting in the outbox.",
		func() float64 { return float64(a.box.Stats().Bytes) })
	a.met.CounterFunc("outpost_edge_outbox_dropped_records_total", "Records refused by the full-outbox policy since the outbox was created.",
		func() float64 { return float64(a.box.Stats().Drops) })
	for _, k := range outbox.Kinds {
		k := k
		a.met.CounterFuncWith("outpost_edge_outbox_dropped_by_kind_total",
			"Records dropped by the full-outbox policy (pushed out or refused) since the outbox was created, by kind.",
			map[string]string{"kind": k.String()},
			func() float64 { return float64(a.box.Stats().ByKind[k].Dropped()) })
	}
	a.met.CounterFunc("outpost_edge_readings_late_dropped_total", "Readings dropped as later than the stream's reordering delay.",
		func() float64 { return float64(a.lateDropped.Load()) })
	a.met.CounterFunc("outpost_edge_readings_duplicate_total", "Readings dropped because their stream already had a reading at that time.",
		func() float64 { return float64(a.duplicates.Load()) })
	a.met.CounterFunc("outpost_edge_gap_filled_samples_total", "Samples stream gaps were filled with (hold, linear or missing).",
		func() float64 { return float64(a.filled.Load()) })
	a.met.CounterFunc("outpost_edge_gap_resets_total", "Gaps too long to fill, which reset a stream's window.",
		func() float64 { return float64(a.gapsReset.Load()) })
}

func (a *Agent) setErr(err error) { a.lastErr.Store(err.Error()) }

func (a *Agent) decoderFor(topic string) decode.Decoder {
	for _, d := range a.decoders {
		if profile.MatchFilter(d.filter, topic) {
			return d.dec
		}
	}
	return nil
}

// handle is called by ingest for every message, in order, on one goroutine.
func (a *Agent) handle(m ingest.Message) {
	a.cpMu.Lock()
	defer a.checkpointDue() // after the events' appends: see checkpoint.go
	a.met.PayloadBytes.Add(float64(len(m.Payload)))
	dec := a.decoderFor(m.Topic)
	var rs []decode.Reading
	err := fmt.Errorf("no decoder for topic")
	if dec != nil {
		rs, err = decode.DecodeAt(dec, m.Topic, m.Payload, time.Now())
	}
	a.mu.Lock()
	a.rawBytes += uint64(len(m.Payload))
	if err != nil {
		reason := decode.Reason(err)
		n := a.countDecodeError(m.Topic, reason)
		a.mu.Unlock()
		a.decodeErrors.Add(1)
		a.met.DecodeErrors.WithLabelValues(reason).Inc()
		if n&(n-1) == 0 { // 1st, 2nd, 4th, 8th...: bounded logging
			a.log.Warn("bad payload", "topic", m.Topic, "reason", reason, "err", err, "count", n)
		}
		a.dead.Add(m.Topic, reason, err, m.Payload) // rate limited, never blocks
		m.Ack()                                     // can never succeed
		return
	}
	type pending struct {
		ev    wire.Event
		level detect.Level
	}
	var emit []pending
	// A reading that warmed a stream up, or that waits in a stream's
	// reorder buffer, is acknowledged once a checkpoint holding it is
	// committed (checkpoint.go).
	warming := false
	for _, r := range rs {
		d := a.detector(r.Stream)
		a.cpDirty[r.Stream] = struct{}{}
		var fate detect.Fate
		t0 := time.Now()
		a.judged, fate = d.Offer(a.judged[:0], r.TS, r.Value)
		a.met.Judge.Observe(time.Since(t0).Seconds())
		s := a.stats(r.Stream)
		switch fate {
		case detect.Held:
			warming = true
		case detect.Late:
			s.LateDropped++
			a.lateDropped.Add(1)
		case detect.Duplicate:
			s.Duplicates++
			a.duplicates.Add(1)
		}
		for _, j := range a.judged {
			warming = warming || !j.Warm
			if j.Filled > 0 {
				s.Filled += uint64(j.Filled)
				a.filled.Add(uint64(j.Filled))
			}
			if j.Reset {
				s.GapsReset++
				a.gapsReset.Add(1)
			}
			if j.Value != j.Value { // a missing sample
				continue
			}
			if s.Count == 0 || j.Value < s.Min {
				s.Min = j.Value
			}
			if s.Count == 0 || j.Value > s.Max {
				s.Max = j.Value
			}
			s.Count++
			s.sum += j.Value
			if j.Level == detect.Anomaly {
				s.Anomalies++
			} else if j.Level == detect.Uncertain {
				s.Uncertain++
			}
			if j.Emit {
				kind := wire.KindAnomaly
				if j.Level == detect.Uncertain {
					kind = wire.KindUncertain
				}
				cfg := d.Config()
				window, missing := eventWindow(j.Window)
				emit = append(emit, pending{level: j.Level, ev: wire.Event{Agent: a.p.Agent.ID, Stream: r.Stream, TS: j.TS,
					Kind: kind, Score: finite(j.Score), Low: cfg.Low, High: cfg.High, Value: j.Value, Model: d.Model(),
					Window: window, Missing: missing}})
			}
		}
	}
	a.mu.Unlock()
	a.readings.Add(uint64(len(rs)))
	a.met.Readings.Add(float64(len(rs)))
	if warming {
		a.cpAck = append(a.cpAck, m)
	}
	if len(emit) == 0 {
		if !warming {
			m.Ack()
		}
		return
	}
	left := int32(len(emit))
	var failed atomic.Bool
	for _, p := range emit {
		ev := p.ev
		a.box.Append(outbox.Request{
			Kind: outboxKind(p.level),
			Key:  outbox.EventKey(ev.Stream, ev.TS),
			Build: func(seq uint64) ([]byte, error) {
				ev.Seq = seq
				ev.Created = time.Now().UTC()
				return json.Marshal(ev)
			},
			Done: func(seq uint64, err error) {
				switch {
				case err == nil:
					if ev.Kind == wire.KindAnomaly {
						a.anomalies.Add(1)
					} else {
						a.uncertain.Add(1)
					}
					a.met.Events.WithLabelValues(string(ev.Kind)).Inc()
					a.log.Info("event committed", "seq", seq, "kind", ev.Kind, "stream", ev.Stream, "score", ev.Score, "ts", ev.TS)
				case errors.Is(err, outbox.ErrDuplicate):
					// Redelivered by the broker after a crash: the event is
					// already stored (or was sent); acknowledge.
					a.log.Info("event already committed", "seq", seq, "kind", ev.Kind, "stream", ev.Stream, "ts", ev.TS)
				case errors.Is(err, outbox.ErrFull):
					a.drops.Add(1)
					a.met.Drops.Inc()
					a.mu.Lock()
					a.stats(ev.Stream).Dropped++
					a.mu.Unlock()
					a.log.Warn("outbox full: event dropped", "kind", ev.Kind, "stream", ev.Stream)
				default:
					// Not acknowledged: the broker redelivers the message.
					failed.Store(true)
					a.setErr(err)
					a.log.Error("event not committed", "stream", ev.Stream, "err", err)
				}
				if atomic.AddInt32(&left, -1) == 0 && !failed.Load() && !warming {
					m.Ack()
				}
			},
		})
	}
}

// eventWindow writes the missing samples (NaN) of a judged window as 0 and
// returns their indices, for JSON.
func eventWindow(w []float64) ([]float64, []int) {
	var missing []int
	for i, v := range w {
		if v != v {
			w[i] = 0
			missing = append(missing, i)
		}
	}
	return w, missing
}

func finite(f float64) float64 {
	if math.IsInf(f, 1) || math.IsNaN(f) {
		return math.MaxFloat64
	}
	return f
}

// countDecodeError counts a decode error per topic and reason (a.mu held)
// and returns the count. Topics are capped so bad publishers cannot grow
// the map without bound.
func (a *Agent) countDecodeError(topic, reason string) uint64 {
	m, ok := a.errTopics[topic]
	if !ok {
		if len(a.errTopics) >= 1000 {
			topic = "(other)"
			if m, ok = a.errTopics[topic]; !ok {
				m = map[string]uint64{}
				a.errTopics[topic] = m
			}
		} else {
			m = map[string]uint64{}
			a.errTopics[topic] = m
		}
	}
	m[reason]++
	a.stats(topic).DecodeErrors++
	return m[reason]
}

// DecodeErrors returns the decode error counts by topic and reason.
func (a *Agent) DecodeErrors() map[string]map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]map[string]uint64{}
	for t, m := range a.errTopics {
		out[t] = map[string]uint64{}
		for r, n := range m {
			out[t][r] = n
		}
	}
	return out
}

func (a *Agent) detector(stream string) *detect.Detector {
	d, ok := a.detectors[stream]
	if !ok {
		d, _ = a.newDetector(a.p.StreamFor(stream)) // configs checked in New
		a.detectors[stream] = d
	}
	return d
}

func (a *Agent) stats(stream string) *streamStats {
	s, ok := a.streams[stream]
	if !ok {
		s = &streamStats{StreamSummary: wire.StreamSummary{Stream: stream}}
		a.streams[stream] = s
	}
	return s
}

func (a *Agent) summaries(ctx context.Context) {
	t := time.NewTicker(a.p.SummaryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.commitSummary(now.UTC())
		}
	}
}

// commitSummary commits a summary of the streams since the last one.
func (a *Agent) commitSummary(now time.Time) {
	a.mu.Lock()
	sum := wire.Summary{Agent: a.p.Agent.ID, From: a.from, To: now, RawBytes: a.rawBytes}
	for _, s := range a.streams {
		ss := s.StreamSummary
		if ss.Count > 0 {
			ss.Mean = s.sum / float64(ss.Count)
		}
		sum.Streams = append(sum.Streams, ss)
	}
	a.streams = map[string]*streamStats{}
	a.rawBytes = 0
	a.from = now
	a.mu.Unlock()
	if len(sum.Streams) == 0 {
		return
	}
	sort.Slice(sum.Streams, func(i, j int) bool { return sum.Streams[i].Stream < sum.Streams[j].Stream })
	if a.up != nil {
		sum.UplinkBytes = a.up.Stats().Bytes
	}
	_, err := a.box.AppendWait(outbox.KindSummary, func(seq uint64) ([]byte, error) {
		sum.Seq = seq
		return json.Marshal(sum)
	})
	switch {
	case errors.Is(err, outbox.ErrFull):
		a.drops.Add(1)
		a.met.Drops.Inc()
		a.log.Warn("outbox full: summary dropped")
	case err != nil:
		a.setErr(err)
		a.log.Error("summary not committed", "err", err)
	}
}

func (a *Agent) heartbeats(ctx context.Context) {
	a.publishState()
	t := time.NewTicker(a.p.Agent.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.publishState()
		}
	}
}

// State returns the agent's current state message.
func (a *Agent) State() wire.State {
	st := a.box.Stats()
	s := wire.State{
		Agent: a.p.Agent.ID, TS: time.Now().UTC(), Heartbeat: wire.Duration(a.p.Agent.Heartbeat), Version: a.version,
		Profile: a.p.Name, Revision: a.p.Revision, Group: a.p.Agent.Group, Started: a.started,
		Models:   map[string]string{},
		Readings: a.readings.Load(), DecodeErrors: a.decodeErrors.Load(), Anomalies: a.anomalies.Load(), Uncertain: a.uncertain.Load(),
		OutboxDepth: st.Depth, OutboxBytes: st.Bytes, Drops: st.Drops, DropsByKind: dropsByKind(st),
	}
	for _, p := range a.p.Streams {
		s.Models[p.Match] = a.modelOf(p.Defaults())
	}
	if e, ok := a.lastErr.Load().(string); ok {
		s.LastError = e
	} else if a.up != nil {
		s.LastError = a.up.Stats().LastError
	}
	return s
}

func (a *Agent) publishState() {
	b, err := json.Marshal(a.State())
	if err != nil {
		a.log.Error("state", "err", err)
		return
	}
	if err := a.nc.Publish(names.StateSubject(a.p.Agent.ID), b); err != nil {
		a.log.Warn("state publish", "err", err)
	}
}

// levelHandler drops records below min (mochi logs every connection at info).
type levelHandler struct {
	min slog.Level
	slog.Handler
}

func (h *levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelHandler{h.min, h.Handler.WithAttrs(as)}
}

func (h *levelHandler) WithGroup(n string) slog.Handler {
	return &levelHandler{h.min, h.Handler.WithGroup(n)}
}
