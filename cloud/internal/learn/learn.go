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
//   - On samples, once a stream has MinRecent recent windows, and then
//     every MinRecent/4 new ones (not on every window: hundreds of tests
//     per reference would make a false alarm likely): the two-sample
//     Kolmogorov-Smirnov test between reference and recent windows on
//     three features — the window mean, the window standard deviation
//     (raw units) and the champion's error on the window (normalised
//     units, see below) — at significance Alpha (default 0.001;
//     asymptotic critical value sqrt(-ln(α/2)/2)·sqrt((n+m)/nm)). The
//     windows are not independent draws: an agent samples sliding
//     windows, which overlap or lie close together in a slowly varying
//     stream, and the reference and recent windows are each a stretch of
//     time. So n and m are the effective sample sizes of the two
//     feature series in time order (Effective: the count divided by the
//     integrated autocorrelation time), not the window counts; counting
//     windows made the test fire on stationary streams. Drift when any
//     feature's statistic exceeds its critical value.
//   - On summaries: a two-sided Page-Hinkley (CUSUM form) on the stream's
//     summary means, standardised by the mean and the long-run deviation
//     of its first DefaultRefSummaries (30) summaries, δ = 1, λ = 20. The
//     long-run deviation is the deviation times sqrt(τ), τ the summaries'
//     integrated autocorrelation time (see Effective): the sums of an
//     autocorrelated series wander τ times as far as those of independent
//     ones, and with the plain deviation the test fired on stationary
//     streams.
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
// champion's name with the next free version (one more than the largest
// stored or named in the history, rejected challengers included, so a
// label is never given twice); with Mode "auto" a rollout
// starts at once (to the agents that run the champion, see Targets, under
// the desired-models key they run it under), with "approve" it waits for
// `fleet models approve NAME@VERSION`. After every challenger (better or not) the
// reference of each stream it used becomes that stream's newest recent
// windows, so one drift gives one challenger; after a rejected (or
// failed) one, drift triggers no other for those streams for
// min(Interval, RetryAfter) (the champion held up on the new data).
//
// # Replicas
//
// Every replica with Mode auto or approve contends for a leader lease (a
// key in the KV bucket names.BucketLeaders, whose TTL expires it unless the
// holder renews it; see lease): only the holder reads samples and runs
// drift checks, the schedule, challengers and rollouts. When it dies,
// another takes over within 4/3 Lease (the key expires Lease after its
// last renewal; the others try every Lease/3); when it stops, it deletes
// the key and another takes over within Lease/3. The new leader reads the
// samples of the last Lookback, except those the challengers recorded in
// the history were judged on, and keeps their holds (see resumed). Every
// replica serves History and Approve.
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
	DefaultRefSummaries = 30
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
	// Lease is how long the replica running the loop holds its leader
	// lease without renewing it (renewed every Lease/3): the longest a
	// dead leader keeps the loop stopped. It is the TTL of the bucket
	// names.BucketLeaders, set by the replica that creates it; the others
	// use the bucket's. Default DefaultLease.
	Lease time.Duration
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
	if c.Lease <= 0 {
		c.Lease = DefaultLease
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
	// ts is the time of the window's last reading; seq orders windows
	// of the same ts by arrival.
	ts        time.Time
	seq       uint64
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
	// fresh counts the recent windows that arrived since the last drift
	// check.
	fresh int
	busy  bool
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
	// eff are the effective sizes of the reference and recent samples of
	// a KS drift (zero otherwise).
	eff [2]float64
}

// Learner runs the learning loop.
type Learner struct {
	cfg Config
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore

	mu      sync.Mutex
	seq     uint64 // windows seen (win.seq)
	streams map[string]*stream
	nets    map[string]*net // loaded champions by model id
	failed  map[string]time.Time
	devs    map[string]api.Device
	devsAt  time.Time
	// resume is what this term took over from the history (see resume),
	// by desired-models key and champion.
	resume map[[2]string]resumed

	// lease is the leader lease: the loop runs while it is held (a
	// term); nil with ModeOff.
	lease *lease
	// Term state, touched by the lease's goroutine only (startTerm,
	// endTerm).
	jobs chan job
	stop chan struct{}
	wg   sync.WaitGroup
	cons []jetstream.ConsumeContext
}

// Start binds to the history bucket (streams.Ensure creates it) and, unless
// the mode is off, contends for the leader lease (names.LeaderLearn in
// names.BucketLeaders): while this replica holds it, it reads samples and
// summaries and runs drift checks, the schedule, challengers and rollouts.
// A replica that takes over reads the samples of the last Lookback again,
// except those its predecessor's challengers used (see resumed).
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
		failed: map[string]time.Time{}, jobs: make(chan job, 64)}
	if cfg.Mode == ModeOff {
		return l, nil
	}
	if cfg.Models == nil || cfg.Rollouts == nil || cfg.Devices == nil {
		return nil, errors.New("learn: Models, Rollouts and Devices are required to learn")
	}
	if l.obj, err = js.ObjectStore(ctx, names.ObjectModels); err != nil {
		return nil, fmt.Errorf("learn: object store %s: %w", names.ObjectModels, err)
	}
	lkv, ttl, err := leaders(ctx, js, cfg.Lease)
	if err != nil {
		return nil, err
	}
	if ttl != cfg.Lease {
		cfg.Logger.Info("learn: the leader lease is the TTL of the existing bucket", "bucket", names.BucketLeaders, "lease", ttl, "configured", cfg.Lease)
	}
	l.lease = startLease(lkv, names.LeaderLearn, ttl, cfg.Logger, l.startTerm, l.endTerm)
	cfg.Logger.Info("learning loop started; it runs on the replica holding the leader lease", "mode", cfg.Mode, "interval", cfg.Interval, "rollout_to", cfg.RolloutTo, "lease", ttl)
	return l, nil
}

// startTerm starts the loop when this replica takes the leader lease:
// the consumers of samples (from Lookback ago) and summaries, and the
// worker.
func (l *Learner) startTerm() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := l.cfg
	res, err := l.readResume(ctx)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.resume = res
	l.mu.Unlock()
	since := cfg.Now().Add(-cfg.Lookback)
	samples, err := l.js.OrderedConsumer(ctx, names.StreamSamples, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.SamplesAll}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return fmt.Errorf("learn: consume %s: %w", names.StreamSamples, err)
	}
	cc, err := samples.Consume(func(m jetstream.Msg) {
		stored := time.Now()
		if md, err := m.Metadata(); err == nil {
			stored = md.Timestamp
		}
		l.onSample(m.Subject(), m.Data(), stored)
	})
	if err != nil {
		return fmt.Errorf("learn: consume %s: %w", names.StreamSamples, err)
	}
	l.cons = append(l.cons, cc)
	sums, err := l.js.OrderedConsumer(ctx, names.StreamSummaries, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.SummariesAll}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err == nil {
		cc, err = sums.Consume(func(m jetstream.Msg) { l.onSummary(m.Data()) })
	}
	if err != nil {
		l.endTerm()
		return fmt.Errorf("learn: consume %s: %w", names.StreamSummaries, err)
	}
	l.cons = append(l.cons, cc)
	l.stop = make(chan struct{})
	l.wg.Add(1)
	go l.run(l.stop)
	cfg.Logger.Info("learn: this replica leads the learning loop", "mode", cfg.Mode)
	return nil
}

// endTerm stops the loop when the lease is lost or released: the
// consumers, then the worker (a challenger being trained is finished, but
// neither stored nor rolled out: see challenge); the streams' state is
// dropped (the next leader rebuilds it from the samples).
func (l *Learner) endTerm() {
	for _, c := range l.cons {
		c.Stop()
		<-c.Closed()
	}
	l.cons = nil
	if l.stop != nil {
		close(l.stop)
		l.stop = nil
	}
	l.wg.Wait()
	for len(l.jobs) > 0 {
		<-l.jobs
	}
	l.mu.Lock()
	l.streams = map[string]*stream{}
	l.mu.Unlock()
}

// Leading reports whether this replica runs the learning loop (holds the
// leader lease); false with ModeOff.
func (l *Learner) Leading() bool { return l.lease != nil && l.lease.Held() }

// leading is Leading; a Learner made without Start (tests) leads.
func (l *Learner) leading() bool { return l.lease == nil || l.lease.Held() }

// Stop stops the loop and releases the leader lease; a challenger being
// trained is finished first.
func (l *Learner) Stop() {
	if l.lease != nil {
		l.lease.Stop()
	}
}

// Mode is the learner's mode.
func (l *Learner) Mode() string { return l.cfg.Mode }

func (l *Learner) run(stop <-chan struct{}) {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		default:
		}
		select {
		case <-stop:
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

// resumed is what a new leader takes over from the history for a champion
// under a desired-models key: after is when its last challenger was
// judged (the samples stored before it were used, and the references
// started over after it: they are not read again), or when it was
// promoted itself (no earlier sample was judged by it); hold is when drift
// may trigger a challenger again after a rejected or failed one.
type resumed struct{ after, hold time.Time }

// readResume reads the history for resume.
func (l *Learner) readResume(ctx context.Context) (map[[2]string]resumed, error) {
	lister, err := l.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("learn: read the model history: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	out := map[[2]string]resumed{}
	for _, k := range keys {
		e, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("learn: read the model history: %w", err)
		}
		var d api.ModelDecision
		if json.Unmarshal(e.Value(), &d) != nil || d.Key == "" || d.Champion == "" {
			continue
		}
		id := [2]string{d.Key, d.Champion}
		r := out[id]
		switch d.Kind {
		case api.DecisionRejected, api.DecisionAwaitingApproval, api.DecisionPromoted:
			if d.Time.After(r.after) {
				r.after = d.Time
			}
		}
		switch d.Kind {
		case api.DecisionRejected, api.DecisionFailed:
			if h := d.Time.Add(min(l.cfg.Interval, RetryAfter)); h.After(r.hold) {
				r.hold = h
			}
		}
		out[id] = r
		if d.Kind == api.DecisionPromoted && d.Challenger != "" {
			// No sample before its rollout started was judged by it.
			id := [2]string{d.Key, d.Challenger}
			r := out[id]
			if d.Time.After(r.after) {
				r.after = d.Time
			}
			out[id] = r
		}
	}
	return out, nil
}

// onSample files one sample message (stored: when JetStream stored it).
func (l *Learner) onSample(subject string, data []byte, stored time.Time) {
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
	res := l.resume[[2]string{key, model}]
	if stored.Before(res.after) {
		return // a challenger of the last leader used it
	}
	st := l.streams[s.Stream]
	if st == nil || (model != st.champion && model != st.previous && !st.busy) {
		// New stream, or the operator gave it another model: start over.
		st = &stream{name: s.Stream, champion: model, key: key, hold: res.hold}
		l.streams[s.Stream] = st
	}
	if model != st.champion {
		return // an agent that has not swapped yet
	}
	if rep, eff := l.add(st, s.TS, s.Window); rep != nil {
		st.busy = true
		l.queue(job{stream: st.name, trigger: "drift", drift: rep, eff: eff})
	}
}

// checkEvery is how many new recent windows a stream gathers between two
// drift checks: a quarter of MinRecent. Each check is a test at Alpha on
// mostly the same windows as the last; checking on every window would
// test hundreds of times for each reference and make a false alarm
// likely (the checks of one reference are not independent, so their
// family-wise error is well below their count times Alpha).
func (l *Learner) checkEvery() int { return max(1, l.cfg.MinRecent/4) }

// add files window vals (last reading at ts) under st (l.mu held): into
// the reference until it is full, then into the recent windows; it
// returns the drift report (and the effective sizes, see drift) when a
// check is due and finds drift.
func (l *Learner) add(st *stream, ts time.Time, vals []float64) (*api.DriftReport, [2]float64) {
	mean, std := meanStd(vals)
	l.seq++
	w := &win{ts: ts, seq: l.seq, vals: vals, mean: mean, std: std, err: math.NaN()}
	if len(st.ref) < l.cfg.Reference {
		st.ref = append(st.ref, w)
		return nil, [2]float64{}
	}
	st.recent = append(st.recent, w)
	st.fresh++
	if len(st.recent) > l.cfg.MaxRecent {
		st.recent = st.recent[len(st.recent)-l.cfg.MaxRecent:]
	}
	if st.busy || len(st.recent) < l.cfg.MinRecent || st.fresh < l.checkEvery() || l.cfg.Now().Before(st.hold) {
		return nil, [2]float64{}
	}
	st.fresh = 0
	return l.drift(st)
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
// that drifted. Each feature is compared between the reference and the
// recent windows, each taken in time order for their effective sample
// sizes (Effective): windows sampled close together are not independent
// draws, and the critical value is that of the effective sizes.
//
// It also returns the effective sizes of the two samples that drifted.
func (l *Learner) drift(st *stream) (*api.DriftReport, [2]float64) {
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
	ref, recent := inTime(st.ref), inTime(st.recent)
	for _, f := range feats {
		var a, b []float64
		for _, w := range ref {
			if v, ok := f.f(w); ok {
				a = append(a, v)
			}
		}
		for _, w := range recent {
			if v, ok := f.f(w); ok {
				b = append(b, v)
			}
		}
		if len(a) < 8 || len(b) < 8 {
			continue
		}
		na, nb := Effective(a), Effective(b)
		d, c := KS(a, b), KSCriticalEff(l.cfg.Alpha, na, nb)
		if d > c {
			return &api.DriftReport{Test: "ks", Feature: f.name, Statistic: d, Critical: c, Reference: len(a), Recent: len(b)}, [2]float64{na, nb}
		}
	}
	return nil, [2]float64{}
}

// inTime returns ws ordered by the time of their last reading (then by
// arrival).
func inTime(ws []*win) []*win {
	out := append([]*win(nil), ws...)
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].ts.Equal(out[j].ts) {
			return out[i].ts.Before(out[j].ts)
		}
		return out[i].seq < out[j].seq
	})
	return out
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
				tau := float64(len(st.sumRef)) / Effective(st.sumRef)
				st.ph = &PageHinkley{Mean: m, Std: sd * math.Sqrt(tau), Delta: 1, Lambda: 20}
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
