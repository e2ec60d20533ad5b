// Package learn is outpost-cloud's learning loop: per-stream drift
// detection on what the agents send, challenger models trained on the
// normal windows they sample, compared with the champion, and — when
// better — quantised to int8, exported as .tflite, signed and stored by the
// model store and rolled out through the rollout controller, automatically
// or after an operator's approval. Every decision is recorded in the KV
// bucket names.BucketModelHistory (`fleet models history`, the dashboard).
//
// # Data
//
// Samples (wire.Sample, stream names.StreamSamples): the windows the agents
// judged normal, a reservoir sample within each agent's bandwidth budget
// (edge/internal/sampler). Per stream the learner keeps the first
// Reference windows as the reference (what the champion met while it was
// known to be fine) and up to MaxRecent windows after them as recent.
// Summaries (names.StreamSummaries): the mean of each stream per interval.
// Verdicts: events of the stream that the cloud confirmed or rejected (with
// their windows) from the event store.
//
// # Drift (stated tests)
//
//   - On samples, once a stream has MinRecent recent windows: the
//     two-sample Kolmogorov-Smirnov test between reference and recent
//     windows on three features — the window mean, the window standard
//     deviation (raw units) and the champion's error on the window
//     (normalised units, see below) — at significance Alpha (default
//     0.001; asymptotic critical value sqrt(-ln(α/2)/2)·sqrt((n+m)/nm)).
//     Drift when any feature's statistic exceeds its critical value.
//   - On summaries: a two-sided Page-Hinkley (CUSUM form) on the stream's
//     summary means, standardised by the mean and deviation of its first
//     RefSummaries summaries, δ = 1, λ = 20.
//
// # Challenger and "better"
//
// On drift, or every Interval for streams with MinRecent recent windows,
// a challenger of the champion's architecture (the layer sizes in its
// manifest; models/train, seeded) is trained on the first (1 - HeldOut) of
// the recent windows. The champion judges every stream its agents run it
// on under the same desired-models key (say "sensors/#"), and the
// challenger would replace it on all of them, so the windows are pooled:
// the challenger is trained and judged on the windows of every stream with
// that champion and key (the schedule trains one challenger per champion
// and key). Both models are then judged on the same data: the held-out
// recent windows plus the windows of the streams' rejected events
// (normal), and the windows of their confirmed events (anomalous). A model's
// error on a window is its reconstruction error (autoencoder: RMS of
// normalised input minus output; forecaster: |normalised value - forecast|)
// — the residual the edge divides by its running scale. The threshold T is
// the 0.99 quantile of the champion's errors on the reference windows (the
// champion's normal). The challenger is better when all hold:
//
//  1. its mean error on the normal windows is at most (1 - Margin) × the
//     champion's (default Margin 0.1);
//  2. its false-alarm rate (share of normal windows with error > T) is at
//     most the champion's;
//  3. it detects (error > T) at least the share of confirmed windows the
//     champion detects.
//
// A better challenger is quantised, exported, signed and stored as the
// champion's name with the next free version; with Mode "auto" a rollout
// starts at once (to the agents that run the champion, see Targets, under
// the desired-models key they run it under), with "approve" it waits for
// `fleet models approve NAME@VERSION`. After every challenger (better or not) the
// reference of each stream it used becomes that stream's newest recent
// windows, so one drift gives one challenger; after a rejected (or
// failed) one, drift triggers no other for those streams for
// min(Interval, RetryAfter) (the champion held up on the new data).
//
// One replica should run the loop (Mode auto or approve); every replica
// serves History and Approve.
package learn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Modes.
const (
	ModeOff     = "off"
	ModeAuto    = "auto"
	ModeApprove = "approve"
)

// Defaults.
const (
	DefaultInterval  = time.Hour
	DefaultReference = 64
	DefaultMinRecent = 48
	DefaultMaxRecent = 512
	DefaultAlpha     = 0.001
	DefaultMargin    = 0.1
	DefaultHeldOut   = 0.25
	DefaultEpochs    = 150
	DefaultLookback  = 24 * time.Hour
	// AutoTargets is RolloutTo's default: the agents that run the
	// champion (see Targets).
	AutoTargets         = "auto"
	DefaultRefSummaries = 10
	// RetryAfter is the longest a stream (and the streams that share its
	// champion and key) waits after a failed or rejected challenger before
	// drift may trigger another: min(Interval, RetryAfter); the schedule
	// may sooner.
	RetryAfter = 10 * time.Minute
	// ThresholdQuantile is the quantile of the champion's reference errors
	// both models are judged at.
	ThresholdQuantile = 0.99
	// MaxTrainExamples bounds a challenger's training set: beyond it the
	// examples (every stretch of the model's window in every training
	// window, so neighbours overlap) are thinned evenly. It bounds the
	// training time (about a second per thousand examples at 150 epochs
	// on one core).
	MaxTrainExamples = 4096
)

// ModelStore is what the learner needs of the model store
// (cloud/internal/modelstore).
type ModelStore interface {
	Package(ctx context.Context, ref api.ModelRef) (*modelpkg.Package, api.ModelInfo, error)
	List(ctx context.Context) ([]api.ModelInfo, error)
	Push(ctx context.Context, req api.ModelPushRequest) (api.ModelDetail, error)
}

// RolloutStarter starts rollouts (cloud/internal/rollout).
type RolloutStarter interface {
	StartRollout(ctx context.Context, req api.RolloutStartRequest) (api.Rollout, error)
}

// Config configures a Learner. Zero values mean the defaults.
type Config struct {
	// Mode is ModeOff (default: History and Approve only), ModeAuto or
	// ModeApprove.
	Mode string
	// Interval is the schedule: every Interval a challenger is trained for
	// each stream with enough recent windows. Default 1h.
	Interval time.Duration
	// Models stores challengers and loads champions. Required unless off.
	Models ModelStore
	// Rollouts starts rollouts. Required unless off.
	Rollouts RolloutStarter
	// Devices lists the registry (which model an agent runs). Required
	// unless off.
	Devices func() []api.Device
	// Events gives the stream's confirmed and rejected windows; nil means
	// none.
	Events api.EventQuerier
	// RolloutTo, Canary, Bake and SwapTimeout are the rollout's
	// (api.RolloutStartRequest). RolloutTo is "all", "group=G",
	// "device=D" or AutoTargets (default; see Targets); the others default
	// to the controller's canary, no bake, the controller's swap timeout.
	RolloutTo   string
	Canary      string
	Bake        time.Duration
	SwapTimeout time.Duration
	// Reference, MinRecent and MaxRecent are window counts per stream.
	Reference, MinRecent, MaxRecent int
	// Alpha is the KS tests' significance; Margin the error gain a
	// challenger must show; HeldOut the share of recent windows it is
	// judged on.
	Alpha, Margin, HeldOut float64
	// Fit configures the training (epochs default 150, batch 32, step
	// 3e-3, seed 1).
	Fit train.Config
	// Lookback is how far back samples are read at start and verdict
	// windows are looked for. Default 24h.
	Lookback time.Duration
	// OnDecision, if set, is called with every decision recorded.
	OnDecision func(api.ModelDecision)
	Now        func() time.Time
	Logger     *slog.Logger
}

func (c *Config) fill() {
	if c.Mode == "" {
		c.Mode = ModeOff
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.RolloutTo == "" {
		c.RolloutTo = AutoTargets
	}
	if c.Reference <= 0 {
		c.Reference = DefaultReference
	}
	if c.MinRecent <= 0 {
		c.MinRecent = DefaultMinRecent
	}
	if c.MaxRecent < c.MinRecent {
		c.MaxRecent = max(DefaultMaxRecent, c.MinRecent)
	}
	if c.Alpha <= 0 {
		c.Alpha = DefaultAlpha
	}
	if c.Margin <= 0 {
		c.Margin = DefaultMargin
	}
	if c.HeldOut <= 0 || c.HeldOut >= 1 {
		c.HeldOut = DefaultHeldOut
	}
	if c.Fit.Epochs <= 0 {
		c.Fit.Epochs = DefaultEpochs
	}
	if c.Fit.Batch <= 0 {
		c.Fit.Batch = 32
	}
	if c.Fit.LR <= 0 {
		c.Fit.LR = 3e-3
	}
	if c.Fit.Seed == 0 {
		c.Fit.Seed = 1
	}
	if c.Lookback <= 0 {
		c.Lookback = DefaultLookback
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ParseMode checks a --learn value.
func ParseMode(s string) (string, error) {
	switch s {
	case "", ModeOff:
		return ModeOff, nil
	case ModeAuto, ModeApprove:
		return s, nil
	}
	return "", fmt.Errorf("learn mode %q: use auto, approve or off", s)
}

// win is one sampled window with its features.
type win struct {
	vals      []float64
	mean, std float64
	err       float64 // the champion's error; NaN when not computed
	errFor    string  // the champion err was computed for
}

// stream is the learner's state of one sensor stream.
type stream struct {
	name     string
	champion string // model id the agents run
	previous string // the champion before the last promotion
	key      string // desired-models key the champion runs under
	ref      []*win
	recent   []*win
	busy     bool
	// hold: no drift-triggered challenger before this time (after a
	// failure).
	hold time.Time
	// summaries: Page-Hinkley on summary means.
	sumRef []float64
	ph     *PageHinkley
}

// job is a challenger to train.
type job struct {
	stream  string
	trigger string
	drift   *api.DriftReport
}

// Learner runs the learning loop.
type Learner struct {
	cfg Config
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore

	mu      sync.Mutex
	streams map[string]*stream
	nets    map[string]*net // loaded champions by model id
	failed  map[string]time.Time
	devs    map[string]api.Device
	devsAt  time.Time

	jobs chan job
	stop chan struct{}
	wg   sync.WaitGroup
	cons []jetstream.ConsumeContext
}

// Start binds to the history bucket (streams.Ensure creates it) and, unless
// the mode is off, starts reading samples and summaries and the schedule.
func Start(ctx context.Context, js jetstream.JetStream, cfg Config) (*Learner, error) {
	cfg.fill()
	if _, err := ParseMode(cfg.Mode); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, names.BucketModelHistory)
	if err != nil {
		return nil, fmt.Errorf("learn: KV bucket %s: %w", names.BucketModelHistory, err)
	}
	l := &Learner{cfg: cfg, js: js, kv: kv, streams: map[string]*stream{}, nets: map[string]*net{},
		failed: map[string]time.Time{}, jobs: make(chan job, 64), stop: make(chan struct{})}
	if cfg.Mode == ModeOff {
		return l, nil
	}
	if cfg.Models == nil || cfg.Rollouts == nil || cfg.Devices == nil {
		return nil, errors.New("learn: Models, Rollouts and Devices are required to learn")
	}
	if l.obj, err = js.ObjectStore(ctx, names.ObjectModels); err != nil {
		return nil, fmt.Errorf("learn: object store %s: %w", names.ObjectModels, err)
	}
	since := cfg.Now().Add(-cfg.Lookback)
	samples, err := js.OrderedConsumer(ctx, names.StreamSamples, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.SamplesAll}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return nil, fmt.Errorf("learn: consume %s: %w", names.StreamSamples, err)
	}
	cc, err := samples.Consume(func(m jetstream.Msg) { l.onSample(m.Subject(), m.Data()) })
	if err != nil {
		return nil, fmt.Errorf("learn: consume %s: %w", names.StreamSamples, err)
	}
	l.cons = append(l.cons, cc)
	sums, err := js.OrderedConsumer(ctx, names.StreamSummaries, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.SummariesAll}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err == nil {
		cc, err = sums.Consume(func(m jetstream.Msg) { l.onSummary(m.Data()) })
	}
	if err != nil {
		l.Stop()
		return nil, fmt.Errorf("learn: consume %s: %w", names.StreamSummaries, err)
	}
	l.cons = append(l.cons, cc)
	l.wg.Add(1)
	go l.run()
	cfg.Logger.Info("learning loop started", "mode", cfg.Mode, "interval", cfg.Interval, "rollout_to", cfg.RolloutTo)
	return l, nil
}

// Stop stops the loop; a challenger being trained is finished first.
func (l *Learner) Stop() {
	for _, c := range l.cons {
		c.Stop()
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// Mode is the learner's mode.
func (l *Learner) Mode() string { return l.cfg.Mode }

func (l *Learner) run() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.schedule()
		case j := <-l.jobs:
			l.challenge(j)
		}
	}
}

// schedule trains a challenger for every champion and key with an idle
// stream with enough recent windows (one per champion and key: the
// challenger is trained on the windows of all its streams, see challenge).
func (l *Learner) schedule() {
	l.mu.Lock()
	var all []string
	for n := range l.streams {
		all = append(all, n)
	}
	sort.Strings(all)
	var names []string
	picked := map[[2]string]bool{}
	for _, n := range all {
		s := l.streams[n]
		if !s.busy && len(s.recent) >= l.cfg.MinRecent && s.champion != "" && !picked[[2]string{s.key, s.champion}] {
			s.busy = true
			picked[[2]string{s.key, s.champion}] = true
			names = append(names, n)
		}
	}
	l.mu.Unlock()
	for _, n := range names {
		l.challenge(job{stream: n, trigger: "schedule"})
	}
}

// device returns the registry's record of agent (refreshed at most every
// second).
func (l *Learner) device(agent string) (api.Device, bool) {
	now := time.Now()
	if l.devs == nil || now.Sub(l.devsAt) > time.Second {
		l.devs = map[string]api.Device{}
		for _, d := range l.cfg.Devices() {
			l.devs[d.ID] = d
		}
		l.devsAt = now
	}
	d, ok := l.devs[agent]
	return d, ok
}

// modelFor returns the key of d's models that covers stream and the model
// under it: the stream itself, else the first pattern (sorted) matching it
// ("*" matches every stream; otherwise an MQTT filter).
func modelFor(d api.Device, stream string) (key, model string) {
	if m, ok := d.Models[stream]; ok {
		return stream, m
	}
	keys := make([]string, 0, len(d.Models))
	for k := range d.Models {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "*" || matchFilter(k, stream) {
			return k, d.Models[k]
		}
	}
	return "", ""
}

// matchFilter reports whether MQTT filter f matches topic t.
func matchFilter(f, t string) bool {
	fs, ts := strings.Split(f, "/"), strings.Split(t, "/")
	for i, p := range fs {
		if p == "#" {
			return true
		}
		if i >= len(ts) || (p != "+" && p != ts[i]) {
			return false
		}
	}
	return len(fs) == len(ts)
}

func (l *Learner) onSample(subject string, data []byte) {
	agent, err := names.AgentFromSubject(subject)
	if err != nil {
		return
	}
	var s wire.Sample
	if err := json.Unmarshal(data, &s); err != nil || s.Agent != agent || s.Stream == "" || len(s.Window) < 2 {
		l.cfg.Logger.Debug("learn: sample refused", "subject", subject, "err", err)
		return
	}
	for _, v := range s.Window {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.device(agent)
	if !ok {
		return
	}
	key, model := modelFor(d, s.Stream)
	if s.Model != "" {
		model = s.Model // what judged the window, when the agent says
	}
	if model == "" || key == "" {
		return
	}
	st := l.streams[s.Stream]
	if st == nil || (model != st.champion && model != st.previous && !st.busy) {
		// New stream, or the operator gave it another model: start over.
		st = &stream{name: s.Stream, champion: model, key: key}
		l.streams[s.Stream] = st
	}
	if model != st.champion {
		return // an agent that has not swapped yet
	}
	mean, std := meanStd(s.Window)
	w := &win{vals: s.Window, mean: mean, std: std, err: math.NaN()}
	if len(st.ref) < l.cfg.Reference {
		st.ref = append(st.ref, w)
		return
	}
	st.recent = append(st.recent, w)
	if len(st.recent) > l.cfg.MaxRecent {
		st.recent = st.recent[len(st.recent)-l.cfg.MaxRecent:]
	}
	if st.busy || len(st.recent) < l.cfg.MinRecent || l.cfg.Now().Before(st.hold) {
		return
	}
	if rep := l.drift(st); rep != nil {
		st.busy = true
		l.queue(job{stream: st.name, trigger: "drift", drift: rep})
	}
}

// queue hands j to the worker without blocking the consumer.
func (l *Learner) queue(j job) {
	select {
	case l.jobs <- j:
	default:
		if st := l.streams[j.stream]; st != nil {
			st.busy = false // the queue is full: the schedule retries
		}
	}
}

// drift runs the KS tests on st (l.mu held) and returns the first feature
// that drifted.
func (l *Learner) drift(st *stream) *api.DriftReport {
	n := l.champion(st.champion)
	feats := []struct {
		name string
		f    func(w *win) (float64, bool)
	}{
		{"window_mean", func(w *win) (float64, bool) { return w.mean, true }},
		{"window_std", func(w *win) (float64, bool) { return w.std, true }},
		{"champion_error", func(w *win) (float64, bool) {
			if n == nil {
				return 0, false
			}
			if w.errFor != st.champion {
				e, ok := n.errOf(w.vals)
				if !ok {
					return 0, false
				}
				w.err, w.errFor = e, st.champion
			}
			return w.err, true
		}},
	}
	for _, f := range feats {
		var a, b []float64
		for _, w := range st.ref {
			if v, ok := f.f(w); ok {
				a = append(a, v)
			}
		}
		for _, w := range st.recent {
			if v, ok := f.f(w); ok {
				b = append(b, v)
			}
		}
		if len(a) < 8 || len(b) < 8 {
			continue
		}
		d, c := KS(a, b), KSCritical(l.cfg.Alpha, len(a), len(b))
		if d > c {
			return &api.DriftReport{Test: "ks", Feature: f.name, Statistic: d, Critical: c, Reference: len(a), Recent: len(b)}
		}
	}
	return nil
}

// champion returns the loaded model id (l.mu held), or nil when it cannot
// be loaded (logged).
func (l *Learner) champion(id string) *net {
	if n, ok := l.nets[id]; ok {
		return n
	}
	if at, ok := l.failed[id]; ok && time.Since(at) < time.Minute {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := l.load(ctx, id)
	if err != nil {
		l.cfg.Logger.Warn("learn: cannot load the champion; no error feature, no challenger (retried in a minute)", "model", id, "err", err)
		l.failed[id] = time.Now()
		return nil
	}
	l.nets[id] = n
	return n
}

// load reads model id's package from the store (or the stock model of that
// id built into the binary) and its models/manifest manifest.
func (l *Learner) load(ctx context.Context, id string) (*net, error) {
	name, version, err := wire.ParseModelID(id)
	if err != nil {
		return nil, err
	}
	pkg, _, err := l.cfg.Models.Package(ctx, api.ModelRef{Name: name, Version: version})
	if err != nil {
		model, mj, serr := stock.Files(name)
		if serr != nil {
			return nil, err
		}
		m, perr := manifest.Parse(mj)
		if perr != nil || m.Version != version {
			return nil, err
		}
		return newNet(m, model)
	}
	m, err := manifest.Parse(pkg.Manifest)
	if err != nil {
		return nil, fmt.Errorf("the package of %s carries no model manifest (window, normalisation...): %w", id, err)
	}
	m.Name, m.Version = name, version
	if err := m.Check(pkg.Model); err != nil {
		return nil, err
	}
	return newNet(m, pkg.Model)
}

func (l *Learner) onSummary(data []byte) {
	var s wire.Summary
	if json.Unmarshal(data, &s) != nil {
		return
	}
	var notes []api.ModelDecision
	defer func() {
		for _, d := range notes {
			l.record(context.Background(), d)
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ss := range s.Streams {
		st := l.streams[ss.Stream]
		if st == nil || ss.Count == 0 || math.IsNaN(ss.Mean) || math.IsInf(ss.Mean, 0) {
			continue
		}
		if st.ph == nil {
			st.sumRef = append(st.sumRef, ss.Mean)
			if len(st.sumRef) >= DefaultRefSummaries {
				m, sd := meanStd(st.sumRef)
				st.ph = &PageHinkley{Mean: m, Std: sd, Delta: 1, Lambda: 20}
			}
			continue
		}
		v, drift := st.ph.Add(ss.Mean)
		if !drift || st.busy || l.cfg.Now().Before(st.hold) {
			continue
		}
		st.ph, st.sumRef = nil, nil // a new reference after this drift
		if len(st.recent) < l.cfg.MinRecent {
			notes = append(notes, api.ModelDecision{Kind: api.DecisionDrift, Stream: st.name, Key: st.key, Champion: st.champion,
				Trigger: "drift", Drift: &api.DriftReport{Test: "page-hinkley", Feature: "summary_mean", Statistic: v, Critical: 20, Reference: DefaultRefSummaries, Recent: 1},
				Reason: fmt.Sprintf("only %d recent sampled windows, %d needed to train a challenger", len(st.recent), l.cfg.MinRecent)})
			continue
		}
		st.busy = true
		l.queue(job{stream: st.name, trigger: "drift", drift: &api.DriftReport{Test: "page-hinkley", Feature: "summary_mean", Statistic: v, Critical: 20, Reference: DefaultRefSummaries, Recent: 1}})
	}
}
