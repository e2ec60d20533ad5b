package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/outpost-iot/outpost/edge/internal/control"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// The agent as control's Target (package control): model hot swap and
// config restarts.
//
// Hot swap: the detection goroutine (ingest's handler, handle) holds cpMu
// for the whole judging of a message. SwapModel takes cpMu too, so a swap
// happens between two messages: every reading is judged by exactly one
// model, none is dropped or judged twice, and readings keep flowing
// meanwhile (they wait for the lock, in order). Each detector of the
// streams concerned keeps its window, reorder buffer, gap state and
// incident (detect.Detector.SwapScorer); the model's own running state
// (its input window and residual scale) starts afresh and is rebuilt at
// once from the raw readings the detector's window holds, so a model whose
// window plus warm-up fit in the stream's window (the stock profile: 32 +
// 64 of 96) scores the very next reading. A model-specific state is never
// carried from one model to another. The new model's thresholds apply
// unless the profile sets its own.
//
// Streams of a desired key: "*" means every stream the profile scores with
// a model; a key equal to a profile rule's match pattern means the streams
// of that rule; any other key is one stream's name (no wildcard), which a
// rule scored by a model must take (not a video rule: its cameras share
// the rule's model). The most specific key wins: the stream's own name,
// then its rule's pattern, then "*", then the profile's model. A swap for
// a stream's name re-scores that stream alone; removing the key sends it
// back to the model of its pattern (or "*", or the profile's). The
// installed model named under a pattern or a stream's name is swapped in
// like any other, so that it wins over the less specific keys.
// The runner swapped in is an interpreter of its own, made and test-run
// by control before the swap, and from then on used only on the detection
// goroutine. A swap costs the detection goroutine, per stream, the model
// invocations that rebuild its scorer (BenchmarkSwapModel: about 0.2 ms a
// stream with the stock model), and queues a checkpoint of the swapped
// streams. The keys the desired state names are reported in State.Models
// (the installed model too, when it is the one named); a key it no longer
// names goes back to the installed model and is no longer reported.
//
// Config: control stores the profile in the data directory and calls
// Restart; Run shuts the pipeline down cleanly and builds a new one from
// it (New), keeping the agent id, the data directory and the command-line
// overrides. A pushed profile that sets another agent id or data directory
// is refused (neither can change in process). The new pipeline runs the
// profile on probation (State.ConfigStatus "applying") until it has judged
// readings healthily for Options.ConfigGrace (control's package comment
// says what healthy is), then "applied". A stored profile that does not
// start, fails its probation, or is started on probation a fourth time
// without a clean stop in between (control.StartConfig: the process
// crashed on it), goes back to the profile before it (the
// last applied one, else the installed one), and is refused
// (control.DropConfig; LastError says why).

// controlDir is where control keeps what it applied.
func controlDir(p profile.Profile) string { return filepath.Join(p.DataDir, "control") }

// setTrustKey parses the trust key: Options.TrustKey, else the profile's.
func (a *Agent) setTrustKey() error {
	text, from := a.opts.TrustKey, "--trust-key"
	if text == "" {
		text, from = a.p.NATS.TrustKey, "nats.trust_key"
	}
	if strings.TrimSpace(text) == "" {
		return nil
	}
	k, err := modelpkg.ParsePublicKey(text)
	if err != nil {
		return fmt.Errorf("agent: %s: %w", from, err)
	}
	a.trust = k
	return nil
}

// newCandidate builds an agent running the profile text the cloud sent
// (desired config key), over the installed profile.
func newCandidate(opts Options, installed profile.Profile, key string, text []byte) (*Agent, error) {
	p, err := pushedProfile(installed, text, opts.Overrides)
	if err != nil {
		return nil, err
	}
	return build(opts, p, key)
}

// pushedProfile is the profile text the cloud sent, made to run on this
// gateway: the agent id, data directory and MQTT client id are the
// installed profile's; the NATS URL, trust key, group and MQTT connection
// are the installed profile's when the text leaves them out; then the
// command-line overrides apply. A text that sets another agent id or data
// directory is refused: neither can change in process (the outbox, the
// checkpoints and control's state live in the data directory, and the
// cloud knows the gateway by its id), unless the command line sets it.
func pushedProfile(installed profile.Profile, text []byte, o Overrides) (profile.Profile, error) {
	p, err := profile.Parse(text)
	if err != nil {
		return p, err
	}
	// (What the command line sets wins anyway: no change then.)
	if p.Agent.ID != "" && o.AgentID == "" && p.Agent.ID != installed.Agent.ID {
		return p, fmt.Errorf("agent.id %s: this gateway is %s, and its id cannot change in process (install a profile with outpost-edge, or leave agent.id out)",
			p.Agent.ID, installed.Agent.ID)
	}
	if p.DataDir != "" && o.DataDir == "" && filepath.Clean(p.DataDir) != filepath.Clean(installed.DataDir) {
		return p, fmt.Errorf("data_dir %s: this gateway's is %s, and it cannot change in process: its outbox, checkpoints and applied state live there (install a profile with outpost-edge, or leave data_dir out)",
			p.DataDir, installed.DataDir)
	}
	p.Agent.ID = installed.Agent.ID
	p.DataDir = installed.DataDir
	if p.MQTT.ClientID == "" {
		p.MQTT.ClientID = installed.MQTT.ClientID
	}
	if p.NATS.URL == "" {
		p.NATS.URL = installed.NATS.URL
	}
	if p.NATS.TrustKey == "" {
		p.NATS.TrustKey = installed.NATS.TrustKey
	}
	if p.Agent.Group == "" {
		p.Agent.Group = installed.Agent.Group
	}
	if p.MQTT.URL == "" && p.MQTT.Embedded == nil {
		p.MQTT.URL, p.MQTT.Embedded = installed.MQTT.URL, installed.MQTT.Embedded
		p.MQTT.Username, p.MQTT.Password = installed.MQTT.Username, installed.MQTT.Password
	}
	return o.Apply(p), nil
}

// startControl makes the controller, registers the swap counter and swaps
// in the models applied before. Called by run before readings flow.
func (a *Agent) startControl() error {
	a.swaps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_edge_model_swaps_total",
		Help: "Model and config updates from the desired state, by kind, result (ok, failed) and reason of failure.",
	}, []string{"kind", "result", "reason"})
	a.met.Reg.MustRegister(a.swaps)
	ctl, err := control.New(control.Config{Agent: a.p.Agent.ID, Conn: a.nc, TrustKey: a.trust, Dir: controlDir(a.p),
		Target: a, Logger: a.log, Grace: a.opts.ConfigGrace})
	if err != nil {
		return err
	}
	a.ctl = ctl
	if a.configKey != "" {
		a.log.Info("running the profile the cloud sent", "config", a.configKey, "profile", a.p.Name, "revision", a.p.Revision)
	}
	ctl.Restore()
	return nil
}

// streamRule is the profile's rule of stream, a stream name (no
// wildcard); ok is false when no rule of the profile matches it.
func (a *Agent) streamRule(stream string) (s profile.Stream, ok bool) {
	if strings.ContainsAny(stream, "+#") {
		return s, false
	}
	for _, s := range a.p.Streams {
		if profile.MatchFilter(s.Match, stream) {
			return s.Defaults(), true
		}
	}
	return s, false
}

// exactKey reports whether desired key names one stream (not "*", not a
// rule's match pattern): it then applies to that stream alone.
func (a *Agent) exactKey(key string) bool {
	if key == "*" {
		return false
	}
	for _, s := range a.p.Streams {
		if s.Match == key {
			return false
		}
	}
	return true
}

// modelStreams are the profile's rules scored by a model that desired key
// covers: every one for "*", the rule whose pattern is key, or the rule
// that matches the stream named by key.
func (a *Agent) modelStreams(key string) []profile.Stream {
	if a.exactKey(key) {
		if s, ok := a.streamRule(key); ok && s.Scorer == profile.ScorerModel {
			return []profile.Stream{s}
		}
		return nil
	}
	var out []profile.Stream
	for _, s := range a.p.Streams {
		s = s.Defaults()
		if s.Scorer == profile.ScorerModel && (key == "*" || key == s.Match) {
			out = append(out, s)
		}
	}
	return out
}

// runnerFor is the runner of stream (a name, "" for the rule alone)
// configured by s; the most specific wins: the model swapped in for the
// stream itself, else for its rule's pattern, else for "*", else the
// profile's.
func (a *Agent) runnerFor(stream string, s profile.Stream) *modelscore.Runner {
	if s.Scorer != profile.ScorerModel {
		return nil
	}
	a.modelMu.RLock()
	var r *modelscore.Runner
	if stream != "" && stream != s.Match {
		r = a.over[stream]
	}
	if r == nil {
		r = a.over[s.Match]
	}
	if r == nil {
		r = a.over["*"]
	}
	a.modelMu.RUnlock()
	if r == nil {
		r = a.runners[s.Model]
	}
	return r
}

// InstalledModel implements control.Target: for a stream's name, the
// model its rule installs.
func (a *Agent) InstalledModel(key string) (string, error) {
	ss := a.modelStreams(key)
	if len(ss) == 0 {
		what := "matching"
		if a.exactKey(key) {
			what = "taking the stream"
		}
		return "", fmt.Errorf("no stream rule of profile %s (revision %d) %s %q is scored by a model", a.p.Name, a.p.Revision, what, key)
	}
	return a.runners[ss[0].Model].Model(), nil
}

// RunningModel implements control.Target.
func (a *Agent) RunningModel(key string) string {
	a.modelMu.RLock()
	r, named := a.over[key], a.named[key]
	a.modelMu.RUnlock()
	switch {
	case !named:
		return ""
	case r != nil:
		return r.Model()
	}
	m, _ := a.InstalledModel(key)
	return m
}

// SwapModel implements control.Target: see above.
func (a *Agent) SwapModel(key string, r *modelscore.Runner) error {
	return a.setModel(key, r, true)
}

// DropModel implements control.Target.
func (a *Agent) DropModel(key string) error {
	return a.setModel(key, nil, false)
}

// setModel swaps r (nil: the installed model) in for the streams of key,
// which is reported in the state if named.
func (a *Agent) setModel(key string, r *modelscore.Runner, named bool) error {
	if len(a.modelStreams(key)) == 0 {
		_, err := a.InstalledModel(key)
		return err
	}
	if err := a.checkSwap(key, r); err != nil { // video rules: video.go
		return err
	}
	if a.exactKey(key) {
		if inst := a.runnerFor("", a.modelStreams(key)[0]); inst != nil && inst.IsVector() {
			return fmt.Errorf("%s is a camera of video rule %s: its cameras share the rule's model (name the rule's pattern)", key, a.modelStreams(key)[0].Match)
		}
	}
	if r == nil && named && key != "*" {
		// The installed model named for a rule or a stream: it must win
		// over the less specific keys, so it is swapped in like any other.
		r = a.runners[a.modelStreams(key)[0].Model]
	}
	a.cpMu.Lock()
	defer a.cpMu.Unlock()
	a.modelMu.Lock()
	if r == nil {
		delete(a.over, key)
	} else {
		a.over[key] = r
	}
	if named {
		a.named[key] = true
	} else {
		delete(a.named, key)
	}
	a.modelMu.Unlock()
	a.mu.Lock()
	var errs []error
	for stream, d := range a.detectors {
		s := a.p.StreamFor(stream)
		nr := a.runnerFor(stream, s)
		if nr == nil || d.Model() == nr.Model() {
			continue
		}
		low, high := thresholds(s, nr)
		if err := a.swapScorer(d, s, nr, low, high); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", stream, err))
			continue
		}
		a.cpDirty[stream] = struct{}{}
	}
	a.mu.Unlock()
	// Checkpoint the swapped streams now (queued behind the events
	// already appended), so that a restart restores them with this model.
	if a.box != nil && len(a.cpDirty) > 0 {
		a.saveCheckpointLocked()
	}
	return errors.Join(errs...)
}

// RunningConfig implements control.Target.
func (a *Agent) RunningConfig() string { return a.configKey }

// CheckConfig implements control.Target: the agent that the profile would
// make is built (models loaded) and dropped.
func (a *Agent) CheckConfig(key string, text []byte) error {
	var err error
	if key == "" {
		_, err = build(a.opts, a.installed, "")
	} else {
		_, err = newCandidate(a.opts, a.installed, key, text)
	}
	return err
}

// Restart implements control.Target.
func (a *Agent) Restart() {
	a.restartMu.Lock()
	defer a.restartMu.Unlock()
	select {
	case <-a.restartCh:
	default:
		close(a.restartCh)
	}
}

// Report implements control.Target: it counts the change, and publishes
// the state at once after a success (a failure is published by SetError).
func (a *Agent) Report(kind, what string, err error) {
	if err == nil {
		a.swaps.WithLabelValues(kind, "ok", "").Inc()
		if a.nc != nil {
			a.publishState()
		}
		return
	}
	reason := "other"
	var ce *control.Error
	if errors.As(err, &ce) {
		reason = ce.Reason
	}
	a.swaps.WithLabelValues(kind, "failed", reason).Inc()
}

// SetError implements control.Target: msg becomes the state's LastError
// ("" clears it), and the state is published at once.
func (a *Agent) SetError(msg string) {
	if old, _ := a.ctlErr.Load().(string); old == msg {
		return
	}
	a.ctlErr.Store(msg)
	if a.nc != nil {
		a.publishState()
	}
}

// Counters implements control.Target: this pipeline's readings and
// decode errors.
func (a *Agent) Counters() (readings, decodeErrors uint64) {
	return a.readings.Load(), a.decodeErrors.Load()
}

// controlState sets the config fields of s: the desired config key of the
// profile running and its status (control.ConfigStatus).
func (a *Agent) controlState(s *wire.State) {
	s.Config = a.configKey
	if a.ctl != nil {
		s.ConfigStatus = a.ctl.ConfigStatus()
	}
}

// ControlError is the last model or config update failure ("" when the
// last one succeeded).
func (a *Agent) ControlError() string {
	e, _ := a.ctlErr.Load().(string)
	return e
}
