// Package agent wires the edge agent's parts together: the embedded broker
// (when the profile asks for one), MQTT ingest, decoding, per-stream
// detection, the outbox, the JetStream uplink, summaries, heartbeats,
// metrics, and control (package control: model hot swap and config
// updates from the desired state; control.go).
//
// Delivery: a reading's MQTT message is acknowledged only after the reading
// was judged normal or its event was committed to the outbox (or refused by
// the stated full-outbox policy, which counts it), or, while it waits in a
// stream's reorder buffer or a video frame in its camera's open bucket,
// after a checkpoint holding it was committed (checkpoint.go). Malformed
// payloads are counted and acknowledged: they can never succeed.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/outpost-iot/outpost/edge/internal/broker"
	"github.com/outpost-iot/outpost/edge/internal/control"
	"github.com/outpost-iot/outpost/edge/internal/deadletter"
	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/edge/internal/ingest"
	"github.com/outpost-iot/outpost/edge/internal/metrics"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/edge/internal/sampler"
	"github.com/outpost-iot/outpost/edge/internal/uplink"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/detect/zscore"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus"
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
	// open, MQTT connect started), and again with the new pipeline's Agent
	// after a restart for a new config (Run).
	Ready func(*Agent)
	// TrustKey is the cloud's model-signing public key ("ed25519:<base64>",
	// outpost-edge run --trust-key FILE); it wins over the profile's
	// nats.trust_key. With neither, every model update is refused.
	TrustKey string
	// Overrides are the command-line settings; they are applied to a
	// profile the cloud sends too (Profile has them applied already).
	Overrides Overrides
	// OnJudged, if set, is called on the detection goroutine for every
	// reading judged, with the model that judged it. Tests account for
	// readings with it; it must not block.
	OnJudged func(Judged)
	// ConfigGrace is how long a profile the cloud pushed must run healthily
	// before it counts as applied (control.Config.Grace). Default 30s.
	ConfigGrace time.Duration
}

// Judged is one judgement, for Options.OnJudged.
type Judged struct {
	Stream string
	TS     time.Time
	Value  float64
	// Model is the "name@version" of the scorer that judged the reading.
	Model string
	Level detect.Level
	Score float64
	// Warm is false while the scorer was warming up (no score).
	Warm bool
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
	smp      *sampler.Sampler // normal windows for the cloud's learning loop
	decoders []topicDecoder
	dead     *deadletter.Store // bad payload samples (decoders.go)
	mqttURL  string
	// metricsAddr is where /metrics is served, if anywhere.
	metricsAddr string
	// runners hold an interpreter per model (by the profile's model
	// spec), shared by the model-scored streams: they are all judged on
	// the handler's goroutine, the agent's one detection worker.
	runners map[string]*modelscore.Runner
	// Control (control.go): the options New was given, the installed
	// profile, the desired key of the profile running, the trust key, the
	// models swapped in by desired key, and the controller.
	opts      Options
	installed profile.Profile
	configKey string
	trust     ed25519.PublicKey
	modelMu   sync.RWMutex
	over      map[string]*modelscore.Runner
	named     map[string]bool // desired keys reported in State.Models
	ctl       *control.Controller
	ctlErr    atomic.Value // string: the last control failure, "" after a success
	restartCh chan struct{}
	restartMu sync.Mutex
	wasReady  atomic.Bool // run got as far as Ready
	restarted bool        // made by Run after a previous pipeline stopped
	swaps     *prometheus.CounterVec
	onJudged  func(Judged)

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

	// decByTopic remembers decoderFor's answer per topic (handle's
	// goroutine only; decoders do not change while the agent runs).
	decByTopic map[string]decode.Decoder
	// vid is the state of video rules (video.go).
	vid videoState
}

type topicDecoder struct {
	filter string
	dec    decode.Decoder
}

type streamStats struct {
	wire.StreamSummary
	sum float64
	// sampleFill is sampleOf.AppendWindow when sampleOf is model-scored
	// (its windows are sampled), else nil; decided once per detector (a
	// method value made per reading would allocate, and Config copies).
	sampleOf   *detect.Detector
	sampleFill func([]float64) []float64
}

// New checks the profile and builds an agent; Run starts it. When the
// cloud gave the agent a profile before (control.go), kept in the data
// directory, New builds the agent with that profile instead of
// opts.Profile (its agent id and data directory stay opts.Profile's, and
// opts.Overrides apply to it).
func New(opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	installed := opts.Profile.Defaults()
	text, key, ok, refused, why, err := control.StartConfig(controlDir(installed))
	if err != nil {
		opts.Logger.Error("applied config not read; running the installed profile", "err", err)
	}
	if refused != "" {
		opts.Logger.Error("config refused; back to the profile before it", "config", refused, "back_to", key, "why", why)
	}
	if ok {
		a, err := newCandidate(opts, installed, key, text)
		if err == nil {
			return a, nil
		}
		opts.Logger.Error("applied config does not run; back to the profile before it", "config", key, "err", err)
		if err := control.DropConfig(controlDir(installed), err); err != nil {
			opts.Logger.Error("applied config not dropped", "err", err)
		} else {
			return New(opts) // the profile before it, or the installed one
		}
	}
	return build(opts, installed, "")
}

// build builds an agent running profile p, the desired config key (""
// the installed profile).
func build(opts Options, p profile.Profile, key string) (*Agent, error) {
	p = p.Defaults()
	if err := p.ValidateForRun(); err != nil {
		return nil, fmt.Errorf("agent: invalid profile:\n%w", err)
	}
	a := &Agent{p: p, version: opts.Version, ready: opts.Ready, log: opts.Logger.With("agent", p.Agent.ID),
		detectors: map[string]*detect.Detector{}, cpDirty: map[string]struct{}{}, streams: map[string]*streamStats{}, errTopics: map[string]map[string]uint64{},
		opts: opts, installed: opts.Profile.Defaults(), configKey: key, over: map[string]*modelscore.Runner{}, named: map[string]bool{},
		restartCh: make(chan struct{}), onJudged: opts.OnJudged}
	if err := a.setTrustKey(); err != nil {
		return nil, err
	}
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
			if a.runners[s.Model], err = newRunner(m, model); err != nil { // video.go
				return nil, fmt.Errorf("agent: streams[%d].model: %w", i, err)
			}
		}
		if _, err := a.newDetector("", s); err != nil {
			return nil, fmt.Errorf("agent: stream %s: %w", s.Match, err)
		}
	}
	return a, nil
}

// newDetector builds the detector of stream (a name; "" for the rule
// alone) configured by s. A stream scored by a model gets a scorer on the
// model's runner (the one control swapped in for the stream, its rule or
// "*", else the profile's), and the manifest's thresholds unless the
// profile sets them.
func (a *Agent) newDetector(stream string, s profile.Stream) (*detect.Detector, error) {
	cfg := detectConfig(s)
	if s.Scorer != profile.ScorerModel {
		return detect.New(cfg)
	}
	r := a.runnerFor(stream, s)
	if r == nil {
		return nil, fmt.Errorf("model %q not loaded", s.Model)
	}
	cfg.Low, cfg.High = thresholds(s, r)
	if r.IsVector() {
		return a.newVectorDetector(cfg, r) // video.go
	}
	return detect.NewWithScorer(cfg, modelScorer(s, r))
}

// modelScorer is the scorer of stream s on model r: its raw score is the
// model's error itself with score "residual" (for the likelihood stage),
// else the error over its running scale.
func modelScorer(s profile.Stream, r *modelscore.Runner) *modelscore.Scorer {
	if s.Score == profile.ScoreResidual {
		return modelscore.NewResidual(r)
	}
	return modelscore.New(r)
}

// thresholds are the low and high thresholds of stream s scored by r: the
// profile's when it sets them, else the model manifest's.
func thresholds(s profile.Stream, r *modelscore.Runner) (low, high float64) {
	if s.Low == 0 && s.High == 0 {
		return r.Manifest().Low, r.Manifest().High
	}
	return s.Low, s.High
}

// modelOf is the "name@version" that scores stream ("" the rule alone)
// configured by s.
func (a *Agent) modelOf(stream string, s profile.Stream) string {
	if s.Scorer == profile.ScorerModel {
		if r := a.runnerFor(stream, s); r != nil {
			return r.Model()
		}
	}
	return zscore.Model
}

func detectConfig(s profile.Stream) detect.Config {
	c := detect.Config{Window: s.Window, Scorer: s.Scorer, Low: s.Low, High: s.High,
		CooldownReadings: s.Cooldown.Readings, CooldownDuration: s.Cooldown.Duration, Warmup: s.Warmup,
		Span: s.WindowSpan, Reorder: s.Reorder, Interval: s.Interval, GapIntervals: s.GapFactor, MaxFill: s.MaxFill,
		HalfLife: s.HalfLife, NormMean: s.NormMean, NormScale: s.NormScale,
		Likelihood:  detect.LikelihoodConfig{Window: s.Likelihood.Window, Average: s.Likelihood.Average, Floor: s.Likelihood.Floor},
		ScoreHigh:   s.ScoreHigh,
		Novelty:     detect.NoveltyConfig{Bins: s.Novelty.Bins, Length: s.Novelty.Length, High: s.Novelty.High, Holdoff: s.Novelty.Holdoff},
		Volatility:  detect.VolatilityConfig{Average: s.Volatility.Average, High: s.Volatility.High},
		Seasonal:    detect.SeasonalConfig{Average: s.Seasonal.Average, High: s.Seasonal.High, Period: s.Seasonal.Period},
		RangeMargin: s.RangeMargin, RangeWarmup: s.RangeWarmup, StuckRun: s.StuckRun}
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
//
// When control applies a new config (control.go), the pipeline shuts down
// the same way and Run starts a new one with the new profile, in process
// (Options.Ready is called again with it): MQTT messages not yet
// acknowledged are redelivered to it (persistent session), and stream
// state carries over through the checkpoint.
func (a *Agent) Run(ctx context.Context) error {
	for {
		restart, err := a.run(ctx)
		// The pipeline stopped without crashing: its starts on probation
		// no longer count against its profile (control.StartConfig).
		if serr := control.StoppedCleanly(controlDir(a.installed)); serr != nil {
			a.log.Error("clean stop not recorded", "err", serr)
		}
		if err != nil && a.configKey != "" && !a.wasReady.Load() && ctx.Err() == nil {
			// The profile the cloud sent does not start (a port in use...):
			// back to the installed one, and that config is refused.
			a.log.Error("the profile the cloud sent does not start; back to the profile before it", "config", a.configKey, "err", err)
			if derr := control.DropConfig(controlDir(a.installed), err); derr != nil {
				return err
			}
			restart = true
		} else if err != nil || !restart || ctx.Err() != nil {
			return err
		}
		n, err := New(a.opts)
		if err != nil {
			return err
		}
		n.restarted = true
		a.log.Info("pipeline restarting", "profile", n.p.Name, "revision", n.p.Revision, "config", n.configKey)
		a = n
	}
}

// run runs one pipeline until ctx is done or control asks for a restart
// (restart true).
func (a *Agent) run(ctx context.Context) (restart bool, err error) {
	a.started = time.Now().UTC()
	a.from = a.started
	a.met = metrics.New()

	if err := os.MkdirAll(a.p.DataDir, 0o700); err != nil {
		return false, fmt.Errorf("agent: data dir: %w", err)
	}
	cm := newCommitMetrics(a.met.Reg) // commitmetrics.go
	a.box, err = outbox.Open(filepath.Join(a.p.DataDir, "outbox.db"), outbox.Options{MaxBytes: a.p.Outbox.MaxBytes,
		OnCommit: cm.observe})
	if err != nil {
		return false, fmt.Errorf("agent: %w", err)
	}
	defer a.box.Close() // idempotent; the box stays readable (State) after it
	st := a.box.Stats()
	a.log.Info("outbox open", "path", filepath.Join(a.p.DataDir, "outbox.db"), "depth", st.Depth, "last_seq", st.LastSeq, "drops", st.Drops)
	a.registerFuncs()
	a.openDeadLetter()
	defer a.closeDeadLetter()

	a.mqttURL = a.p.MQTT.URL
	user, pass := a.p.MQTT.Username, a.p.MQTT.Password
	if e := a.p.MQTT.Embedded; e != nil {
		bcfg := broker.Config{Listen: e.Listen, Username: e.Username, Password: e.Password,
			Logger: slog.New(&levelHandler{min: slog.LevelWarn, Handler: a.log.Handler()})}
		a.brk, err = broker.Start(bcfg)
		for i := 0; err != nil && a.restarted && i < 30; i++ {
			time.Sleep(100 * time.Millisecond) // see the metrics server below
			a.brk, err = broker.Start(bcfg)
		}
		if err != nil {
			return false, fmt.Errorf("agent: %w", err)
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
		return false, fmt.Errorf("agent: nats %s: %w", a.p.NATS.URL, err)
	}
	defer a.nc.Close()
	a.up, err = uplink.New(a.box, uplink.Config{Agent: a.p.Agent.ID, URL: a.p.NATS.URL,
		Options: []nats.Option{nats.Name("outpost-edge " + a.p.Agent.ID + " uplink")}, Logger: a.log})
	if err != nil {
		return false, fmt.Errorf("agent: %w", err)
	}
	a.met.UplinkLag(a.up.Lag)
	scfg := sampler.ConfigFrom(a.p.Uplink)
	scfg.Logger = a.log.With("component", "sampler")
	scfg.ModelOf = func(stream string) string { return a.modelOf(stream, a.p.StreamFor(stream)) }
	a.smp, err = sampler.New(a.nc, a.p.Agent.ID, scfg)
	if err != nil {
		return false, fmt.Errorf("agent: %w", err)
	}
	defer a.smp.Close()
	a.met.CounterFunc("outpost_edge_samples_sent_total", "Normal windows uploaded for the cloud's learning loop.",
		func() float64 { return float64(a.smp.Stats().Sent) })
	a.met.CounterFunc("outpost_edge_samples_sent_bytes_total", "Bytes of normal windows uploaded for the cloud's learning loop.",
		func() float64 { return float64(a.smp.Stats().SentBytes) })
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
		for i := 0; err != nil && a.restarted && i < 30; i++ {
			// The previous pipeline's server may still be letting go of
			// the port.
			time.Sleep(100 * time.Millisecond)
			addr, err = a.met.Serve(bg, a.p.Metrics.Listen)
		}
		if err != nil {
			return false, fmt.Errorf("agent: %w", err)
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

	// Models swapped in before, then stream state: both before readings
	// flow (a checkpoint names the model it was made with).
	if err := a.startControl(); err != nil {
		return false, fmt.Errorf("agent: %w", err)
	}
	a.restoreCheckpoint()

	filters := make([]string, len(a.p.MQTT.Topics))
	for i, t := range a.p.MQTT.Topics {
		filters[i] = t.Filter
	}
	var tlsCfg *tls.Config // mqtt.tls: a private CA, a client certificate
	if a.p.MQTT.TLS != nil {
		if tlsCfg, err = a.p.MQTT.TLS.Load(""); err != nil { // server name: mqtt.tls.server_name, else the URL's host
			return false, fmt.Errorf("agent: %w", err)
		}
	}
	a.in, err = ingest.Start(ingest.Config{URL: a.mqttURL, ClientID: a.p.MQTT.ClientID, Username: user, Password: pass,
		QoS: byte(*a.p.MQTT.QoS), Filters: filters, Handler: a.handle, Logger: a.log,
		KeepAlive: a.p.MQTT.KeepAlive, MaxPacket: a.p.MQTT.MaxPacket, TLS: tlsCfg})
	if err != nil {
		return false, fmt.Errorf("agent: %w", err)
	}
	defer a.in.Close()

	wg.Add(3)
	go func() { defer wg.Done(); a.heartbeats(bg) }()
	go func() { defer wg.Done(); a.summaries(bg) }()
	go func() { defer wg.Done(); a.ctl.Run(bg) }()
	a.log.Info("agent running", "version", a.version, "mqtt", a.mqttURL, "nats", a.p.NATS.URL, "profile", a.p.Name)
	a.wasReady.Store(true)
	if a.ready != nil {
		a.ready(a)
	}

	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case <-a.restartCh:
		restart = true
		a.log.Info("shutting down the pipeline for a new config")
	}
	a.in.Pause()
	a.saveCheckpoint()
	a.commitSummary(time.Now().UTC())
	// Give the uplink a moment to send what is committed (also while it
	// is still dialing: a failed dial counts a failure), committing the
	// deletions it queued (outbox.DeleteLater) as it goes.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		a.box.Flush()
		if st := a.up.Stats(); a.box.Stats().Depth == 0 || (!st.Connected && st.Failures > 0) {
			break
		}
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
	a.in.Close()
	a.log.Info("stopped")
	return restart, nil
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
	if d, ok := a.decByTopic[topic]; ok {
		return d
	}
	var dec decode.Decoder
	for _, d := range a.decoders {
		if profile.MatchFilter(d.filter, topic) {
			dec = d.dec
			break
		}
	}
	if a.decByTopic == nil || len(a.decByTopic) >= maxDecoderCache {
		a.decByTopic = map[string]decode.Decoder{} // bounded: topics are the publishers' to choose
	}
	a.decByTopic[topic] = dec
	return dec
}

// maxDecoderCache bounds the topics whose decoder handle remembers.
const maxDecoderCache = 4096

// errNoDecoder is the decode error of a topic no decoder is configured for.
var errNoDecoder = errors.New("no decoder for topic")

// handle is called by ingest for every message, in order, on one goroutine.
func (a *Agent) handle(m ingest.Message) {
	a.cpMu.Lock()
	defer a.checkpointDue() // after the events' appends: see checkpoint.go
	recv := time.Now()      // receive → commit latency runs from here
	a.met.PayloadBytes.Add(float64(len(m.Payload)))
	dec := a.decoderFor(m.Topic)
	var rs []decode.Reading
	err := errNoDecoder
	if dec != nil {
		rs, err = decode.DecodeAt(dec, m.Topic, m.Payload, recv)
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
	// reorder buffer, or a video frame held in its camera's open bucket, is
	// acknowledged once a checkpoint holding it is committed
	// (checkpoint.go).
	judge, warming := a.vectorReadings(rs) // video rules: video.go
	warming = warming || videoHolds(dec)
	for _, r := range judge {
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
			if a.onJudged != nil {
				a.onJudged(Judged{Stream: r.Stream, TS: j.TS, Value: j.Value, Model: d.Model(), Level: j.Level, Score: j.Score, Warm: j.Warm})
			}
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
			} else if j.Warm {
				// A sample of the windows of model-scored streams judged
				// normal trains the cloud's challengers.
				if s.sampleOf != d {
					s.sampleOf, s.sampleFill = d, nil
					if d.Config().Scorer == profile.ScorerModel {
						s.sampleFill = d.AppendWindow
					}
				}
				if s.sampleFill != nil {
					a.smp.OfferFunc(r.Stream, j.TS, s.sampleFill)
				}
			}
			if j.Emit {
				kind := wire.KindAnomaly
				if j.Level == detect.Uncertain {
					kind = wire.KindUncertain
				}
				cfg := d.Config()
				w := j.Window
				if n := a.p.StreamFor(r.Stream).AnomalyWindow; kind == wire.KindAnomaly && n > 0 && len(w) > n {
					w = w[len(w)-n:]
				}
				window, missing := eventWindow(w)
				feats, featsMissing := a.eventFeatures(d, j.TS) // a camera's buckets: video.go
				emit = append(emit, pending{level: j.Level, ev: wire.Event{Agent: a.p.Agent.ID, Stream: r.Stream, TS: j.TS,
					Kind: kind, Score: finite(j.Score), Low: cfg.Low, High: cfg.High, Value: j.Value, Model: d.Model(),
					Source: j.Source.String(), Window: window, Missing: missing, Features: feats, FeaturesMissing: featsMissing}})
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
				ev.Seq, ev.Incarnation = seq, a.box.Incarnation()
				ev.Created = time.Now().UTC()
				return json.Marshal(ev)
			},
			Done: func(seq uint64, err error) {
				switch {
				case err == nil:
					a.met.Commit.Observe(time.Since(recv).Seconds())
					if ev.Kind == wire.KindAnomaly {
						a.anomalies.Add(1)
					} else {
						a.uncertain.Add(1)
					}
					a.met.Events.WithLabelValues(string(ev.Kind), ev.Source).Inc()
					// Debug: Done runs on the outbox's writer goroutine, and
					// a log write per event delayed the commits behind it.
					a.log.Debug("event committed", "seq", seq, "kind", ev.Kind, "stream", ev.Stream, "score", ev.Score, "ts", ev.TS)
				case errors.Is(err, outbox.ErrDuplicate):
					// Redelivered by the broker after a crash: the event is
					// already stored (or was sent); acknowledge.
					a.log.Debug("event already committed", "seq", seq, "kind", ev.Kind, "stream", ev.Stream, "ts", ev.TS)
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
	// Let the outbox's writer take the events now: with one P (GOMAXPROCS
	// 1) it would otherwise wait until this reader blocks.
	runtime.Gosched()
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
		d, _ = a.newDetector(stream, a.p.StreamFor(stream)) // configs checked in New
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
		sum.Seq, sum.Incarnation = seq, a.box.Incarnation()
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
		s.Models[p.Match] = a.modelOf("", p.Defaults())
	}
	a.modelMu.RLock()
	named := make([]string, 0, len(a.named))
	for key := range a.named {
		named = append(named, key)
	}
	a.modelMu.RUnlock()
	for _, key := range named {
		if m := a.RunningModel(key); m != "" {
			s.Models[key] = m
		}
	}
	a.controlState(&s) // control.go
	if e, _ := a.ctlErr.Load().(string); e != "" {
		s.LastError = e
	} else if e, ok := a.lastErr.Load().(string); ok {
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
