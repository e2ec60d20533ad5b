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
// a model; any other key is a profile stream's match pattern, and must
// name a stream scored by a model. A stream's own pattern wins over "*".
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
// overrides. A stored profile that does not start goes back to the
// installed one, and is refused (control.DropConfig).

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
// command-line overrides apply.
func pushedProfile(installed profile.Profile, text []byte, o Overrides) (profile.Profile, error) {
	p, err := profile.Parse(text)
	if err != nil {
		return p, err
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
		Target: a, Logger: a.log})
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

// modelStreams are the profile's streams scored by a model that desired
// key covers.
func (a *Agent) modelStreams(key string) []profile.Stream {
	var out []profile.Stream
	for _, s := range a.p.Streams {
		s = s.Defaults()
		if s.Scorer == profile.ScorerModel && (key == "*" || key == s.Match) {
			out = append(out, s)
		}
	}
	return out
}

// runnerFor is the runner of stream s: the model swapped in for its
// pattern, else for "*", else the profile's.
func (a *Agent) runnerFor(s profile.Stream) *modelscore.Runner {
	if s.Scorer != profile.ScorerModel {
		return nil
	}
	a.modelMu.RLock()
	r := a.over[s.Match]
	if r == nil {
		r = a.over["*"]
	}
	a.modelMu.RUnlock()
	if r == nil {
		r = a.runners[s.Model]
	}
	return r
}

// InstalledModel implements control.Target.
func (a *Agent) InstalledModel(key string) (string, error) {
	ss := a.modelStreams(key)
	if len(ss) == 0 {
		return "", fmt.Errorf("no stream of profile %s (revision %d) matching %q is scored by a model", a.p.Name, a.p.Revision, key)
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
		nr := a.runnerFor(s)
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

// ControlError is the last model or config update failure ("" when the
// last one succeeded).
func (a *Agent) ControlError() string {
	e, _ := a.ctlErr.Load().(string)
	return e
}
