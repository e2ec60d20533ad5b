// Package control is the edge agent's control loop: it watches the agent's
// desired state (wire.Desired under the agent's id in the KV bucket
// names.BucketDesired) and makes the agent run what it says.
//
// Models: for every entry of Desired.Models (key = "*" for every stream
// scored by a model, a stream pattern of the profile for the streams of
// that rule, or one stream's name for that stream alone; the most specific
// wins, as the Target decides) that differs from what runs, control
// fetches the signed package names.ModelObject(name, version)
// from the object store names.ObjectModels, verifies its ed25519 signature
// and sha256 against the trust key (modelpkg.Verify), parses the model
// manifest it carries (models/manifest), loads the model with the gateway's
// runtime (models/tflite) and test-runs it (Test: a synthetic series
// through the model's own scorer must give finite scores), then hands it
// to the agent, which swaps it in between two readings (Target.SwapModel).
// A desired model equal to the one the profile installs, or a key removed
// from the desired state, goes back to the installed model without a
// package. No trust key means every package is refused: control never loads
// an unsigned or unverified model.
//
// Configs: a Desired.Config key names a firmware profile (YAML) in the KV
// bucket names.BucketConfigs. Control fetches it, checks it as
// `outpost-edge validate` does (profile.Check), lets the agent check that
// it can run it (Target.CheckConfig), stores it in the data directory and
// asks the agent to restart its pipeline with it (Target.Restart). An empty
// Config goes back to the installed profile.
//
// A pushed profile is on probation until it has run healthily: it is
// "applying" (ConfigStatus) until the new pipeline has judged readings for
// Grace without failing, then "applied". Failing is: the pipeline does not
// start (the agent calls DropConfig); its decode-error rate (decode errors
// over readings plus decode errors) is above RateFactor × the previous
// pipeline's rate when it handed over + RateFloor; or it judges no reading
// in MaxWait while the previous one took readings at a pace that would
// have given at least 10 in as long; or the agent starts it a fourth time
// without a clean stop in between (ProbationStarts: it crashed, was killed,
// or the gateway lost power, three times). On a failure control goes back to the
// previous profile (the last applied one, kept as previous.yaml, or the
// installed one) and reports the refusal, with the reason, in LastError.
// Probation survives a restart of the agent: it starts again.
//
// On any failure the agent keeps what it runs, and the failure is reported
// with the model or config it concerns and why (Target.SetError: the
// agent's State.LastError). Each desired key (and the config) has its own
// status: a success clears that key's failure, and a key no longer in the
// desired state drops it. Every change is counted (Target.Report).
//
// Persistence: the verified package of every model swapped in, and the
// desired key of the config applied, are kept in Dir (state.json, models/,
// profile.yaml), so that a restarted agent runs the last good model and
// profile without the cloud (Restore, LoadConfig). A package kept on disk is
// verified again when it is restored.
//
// The watch survives NATS outages: the KV watcher is an ordered consumer that
// resumes after a reconnect, a watcher that cannot be made (NATS down, the
// bucket not there yet) is retried, and the desired state is read again
// every Resync in case an update was missed.
package control

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Reasons a model or config is refused, as Report and the agent's metrics
// name them.
const (
	ReasonNoTrustKey = "no_trust_key" // no trust key configured
	ReasonFetch      = "fetch"        // the package or profile could not be read
	ReasonMalformed  = "malformed"    // not a model package
	ReasonWrongKey   = "wrong_key"    // signed by another key
	ReasonSignature  = "signature"    // the signature does not verify
	ReasonHash       = "hash"         // the model's sha256 or size does not match
	ReasonManifest   = "manifest"     // the manifest is not a usable model manifest
	ReasonLoad       = "load"         // the runtime cannot load it, or its shape does not fit
	ReasonTest       = "test_invoke"  // the test run failed
	ReasonStream     = "stream"       // no stream of the profile takes it
	ReasonInvalid    = "invalid"      // a config that does not validate
	ReasonStore      = "store"        // it could not be kept on disk
	ReasonUnhealthy  = "unhealthy"    // a config that ran, but failed its probation
)

// Config statuses, as ConfigStatus names them.
const (
	// StatusApplying: the pushed profile runs, on probation.
	StatusApplying = "applying"
	// StatusApplied: the profile runs and passed its probation (or is
	// the installed one).
	StatusApplied = "applied"
)

// Kinds of change, as Report names them.
const (
	KindModel  = "model"
	KindConfig = "config"
)

// Error is a refused model or config: which, and why.
type Error struct {
	// Kind is KindModel or KindConfig.
	Kind string
	// What is the model ("name@version") or config key.
	What string
	// Key is the desired models key ("*", stream pattern or stream name)
	// of a model.
	Key string
	// Reason is one of the Reason constants.
	Reason string
	// Err says what happened.
	Err error
}

func (e *Error) Error() string {
	if e.Kind == KindModel {
		return fmt.Sprintf("model %s for %s refused (%s): %v; keeping the running model", e.What, e.Key, e.Reason, e.Err)
	}
	if e.Reason == ReasonUnhealthy {
		return fmt.Sprintf("config %s refused (%s): %v; back to the profile before it", e.What, e.Reason, e.Err)
	}
	return fmt.Sprintf("config %s refused (%s): %v; keeping the running profile", e.What, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Target is the agent as control sees it.
type Target interface {
	// InstalledModel is the model ("name@version") the profile gives the
	// streams of key; an error when no stream of the profile matching key
	// is scored by a model.
	InstalledModel(key string) (string, error)
	// RunningModel is the model that runs for key now, "" when key is not
	// one the agent reports (SwapModel did not name it).
	RunningModel(key string) string
	// SwapModel makes the streams of key run r (nil: the installed model),
	// between two readings, and reports the model under key in its state.
	SwapModel(key string, r *modelscore.Runner) error
	// DropModel makes the streams of key run the installed model and
	// stops reporting key: the desired state no longer names it.
	DropModel(key string) error
	// RunningConfig is the desired config key of the profile running (""
	// the installed one).
	RunningConfig() string
	// CheckConfig reports whether the agent could run the profile text
	// (key is its desired config key, "" the installed profile).
	CheckConfig(key string, text []byte) error
	// Restart restarts the agent's pipeline with the profile stored in the
	// control directory (LoadConfig).
	Restart()
	// Report counts the outcome of a change: err nil is a success (of
	// kind for what), else an *Error.
	Report(kind, what string, err error)
	// SetError sets what control reports as the agent's last error: the
	// failures of the desired state's keys, "" when there are none.
	SetError(msg string)
	// Counters are the readings judged and the decode errors counted by
	// the running pipeline since it started, for a config's probation.
	Counters() (readings, decodeErrors uint64)
}

// Config configures a Controller.
type Config struct {
	// Agent is the agent id (its key in names.BucketDesired). Required.
	Agent string
	// Conn is the agent's NATS connection. Required for Run.
	Conn *nats.Conn
	// TrustKey verifies model packages; nil refuses every package.
	TrustKey ed25519.PublicKey
	// Dir keeps the verified packages, the applied state and the applied
	// profile. Required.
	Dir string
	// Target is the agent. Required.
	Target Target
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Resync is how often the desired state is read again besides the
	// watch. Default 30s.
	Resync time.Duration
	// FetchTimeout bounds a fetch. Default 30s.
	FetchTimeout time.Duration
	// Grace is how long a pushed profile must run, judging readings,
	// before it counts as applied. Default 30s.
	Grace time.Duration
	// MaxWait is how long a pushed profile may run without judging a
	// reading (see the package comment). Default 20 × Grace.
	MaxWait time.Duration
	// RateFactor and RateFloor bound a pushed profile's decode-error rate:
	// rate ≤ RateFactor × the previous profile's + RateFloor. Defaults 3
	// and 0.01 (the cloud's canary bounds).
	RateFactor float64
	RateFloor  float64
}

// Controller applies an agent's desired state.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	st applied
	// failed remembers desired models (key -> "id#revision") and the
	// config ("key#revision") that were refused for good, so that a resync
	// does not try them again: a new revision of the desired state does.
	failed       map[string]string
	failedConfig string
	// errs holds the failure of each desired key ("model <key>", "config").
	errs map[string]string
	// started is when the controller (its pipeline) was made.
	started time.Time
}

// applied is state.json: what was applied from the desired state.
type applied struct {
	// Models maps a desired key to the model swapped in for it (whose
	// package is models/<id>.pkg, unless it is the installed model).
	Models map[string]string `json:"models,omitempty"`
	// Config is the desired config key of profile.yaml ("" none).
	Config string `json:"config,omitempty"`
	// Refused is a desired config key that was stored but did not run
	// (DropConfig) or failed its probation, Reason is ReasonInvalid (""
	// too) or ReasonUnhealthy, and Why says why: it is not applied again.
	Refused string `json:"refused,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Why     string `json:"why,omitempty"`
	// Pending is true while Config is on probation; Previous is the config
	// key to go back to if it fails ("" the installed profile; its text is
	// previous.yaml), and Baseline what the pipeline before it had done.
	Pending  bool      `json:"pending,omitempty"`
	Previous string    `json:"previous,omitempty"`
	Baseline *Baseline `json:"baseline,omitempty"`
	// Starts counts the starts of Config while it is on probation that
	// were not followed by a clean stop (StartConfig, StoppedCleanly): a
	// profile that makes the agent crash is refused after ProbationStarts.
	Starts int `json:"starts,omitempty"`
}

// ProbationStarts is how many times a pushed profile on probation may be
// started without a clean stop in between (the agent crashed, was killed
// or the gateway lost power) before StartConfig refuses it and goes back
// to the profile before it.
const ProbationStarts = 3

// Baseline is what the pipeline that ran before a pushed profile had done
// when it handed over: readings, decode errors and for how long.
type Baseline struct {
	Readings     uint64        `json:"readings"`
	DecodeErrors uint64        `json:"decode_errors"`
	Uptime       time.Duration `json:"uptime"`
}

// New returns a controller and reads what was applied before from Dir.
func New(cfg Config) (*Controller, error) {
	if cfg.Agent == "" || cfg.Dir == "" || cfg.Target == nil {
		return nil, errors.New("control: agent, dir and target are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 20 * cfg.Grace
	}
	if cfg.RateFactor <= 0 {
		cfg.RateFactor = 3
	}
	if cfg.RateFloor <= 0 {
		cfg.RateFloor = 0.01
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "models"), 0o700); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("component", "control"), failed: map[string]string{}, errs: map[string]string{},
		started: time.Now()}
	st, err := readApplied(cfg.Dir)
	if err != nil {
		return nil, err
	}
	c.st = st
	return c, nil
}

func readApplied(dir string) (applied, error) {
	var st applied
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return st, fmt.Errorf("control: %s: %w", filepath.Join(dir, "state.json"), err)
	}
	return st, nil
}

// LoadConfig returns the profile text applied from the desired state and
// its desired key, kept in dir; ok is false when there is none (the agent
// runs its installed profile).
func LoadConfig(dir string) (text []byte, key string, ok bool, err error) {
	st, err := readApplied(dir)
	if err != nil || st.Config == "" {
		return nil, "", false, err
	}
	text, err = os.ReadFile(filepath.Join(dir, "profile.yaml"))
	if err != nil {
		return nil, "", false, fmt.Errorf("control: applied config %s: %w", st.Config, err)
	}
	return text, st.Config, true, nil
}

// StartConfig is LoadConfig for an agent that starts the profile: while
// the applied profile is on probation it counts the start in dir, and when
// the profile has already been started ProbationStarts times without a
// clean stop (StoppedCleanly) in between, it refuses it (ReasonUnhealthy)
// and returns the profile before it. refused is the key of a profile
// refused so ("" none), and why says why.
func StartConfig(dir string) (text []byte, key string, ok bool, refused, why string, err error) {
	st, err := readApplied(dir)
	if err != nil || st.Config == "" {
		return nil, "", false, "", "", err
	}
	if st.Pending {
		if st.Starts >= ProbationStarts {
			why = fmt.Sprintf("the agent started it %d times on probation and it stopped without a clean shutdown each time (a crash, a kill or a power loss)", st.Starts)
			if err := revert(dir, ReasonUnhealthy, why); err != nil {
				return nil, "", false, "", "", err
			}
			text, key, ok, err = LoadConfig(dir)
			return text, key, ok, st.Config, why, err
		}
		st.Starts++
		if err := writeApplied(dir, st); err != nil {
			return nil, "", false, "", "", err
		}
	}
	text, key, ok, err = LoadConfig(dir)
	return text, key, ok, "", "", err
}

// StoppedCleanly records in dir that the agent stopped the profile it ran
// cleanly: the starts StartConfig counted for a profile on probation no
// longer count against it.
func StoppedCleanly(dir string) error {
	st, err := readApplied(dir)
	if err != nil || !st.Pending || st.Starts == 0 {
		return err
	}
	st.Starts = 0
	return writeApplied(dir, st)
}

// DropConfig forgets the applied profile because it did not run, for the
// reason why, and goes back to the profile applied before it (if it was
// on probation) or the installed one: that config is not applied again
// (Run reports it) until the desired state names another.
func DropConfig(dir string, why error) error {
	return revert(dir, ReasonInvalid, why.Error())
}

// revert makes the previous profile the applied one, refusing the one
// applied for reason and why.
func revert(dir, reason, why string) error {
	st, err := readApplied(dir)
	if err != nil {
		return err
	}
	prev := ""
	if st.Pending {
		prev = st.Previous
	}
	if prev != "" {
		text, err := os.ReadFile(filepath.Join(dir, "previous.yaml"))
		if err == nil {
			err = writeFile(filepath.Join(dir, "profile.yaml"), text)
		}
		if err != nil {
			prev = "" // the installed profile, then
		}
	}
	st.Refused, st.Reason, st.Why = st.Config, reason, why
	st.Config, st.Pending, st.Previous, st.Baseline, st.Starts = prev, false, "", nil, 0
	if err := writeApplied(dir, st); err != nil {
		return err
	}
	if prev == "" {
		if err := removeIfExists(filepath.Join(dir, "profile.yaml")); err != nil {
			return err
		}
	}
	return removeIfExists(filepath.Join(dir, "previous.yaml"))
}

// writeFile writes b to path atomically: a temporary file, synced, then
// renamed over path, and the directory synced.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeApplied(dir string, st applied) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "state.json"), b); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (c *Controller) pkgPath(id string) string {
	return filepath.Join(c.cfg.Dir, "models", id+".pkg")
}

// Restore swaps in the models applied before (kept in Dir), each verified
// again against the trust key and test-run; call it before readings flow.
// A model that no longer verifies or loads is reported and left out (the
// stream runs its installed model; the desired state is applied again by
// Run).
func (c *Controller) Restore() {
	c.mu.Lock()
	models := c.st.Models
	c.mu.Unlock()
	keys := make([]string, 0, len(models))
	for k := range models {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		id := models[key]
		var r *modelscore.Runner
		var err error
		if installed, _ := c.cfg.Target.InstalledModel(key); id != installed {
			r, err = c.loadStored(key, id)
		}
		if err == nil {
			if err = c.cfg.Target.SwapModel(key, r); err != nil {
				err = &Error{Kind: KindModel, What: id, Key: key, Reason: ReasonStream, Err: err}
			}
		}
		if err != nil {
			c.log.Error("stored model not restored", "key", key, "model", id, "err", err)
			c.cfg.Target.Report(KindModel, id, err)
			c.setErr("model "+key, err)
			continue
		}
		c.log.Info("stored model restored", "key", key, "model", id)
	}
}

func (c *Controller) loadStored(key, id string) (*modelscore.Runner, error) {
	b, err := os.ReadFile(c.pkgPath(id))
	if err != nil {
		return nil, &Error{Kind: KindModel, What: id, Key: key, Reason: ReasonStore, Err: err}
	}
	r, _, err := c.open(key, id, b)
	return r, err
}

// Run watches the desired state until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Conn == nil {
		return errors.New("control: no NATS connection")
	}
	js, err := jetstream.New(c.cfg.Conn)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	c.mu.Lock()
	probation := c.st.Pending && c.st.Config == c.cfg.Target.RunningConfig()
	c.mu.Unlock()
	if probation {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); c.probation(ctx) }()
	}
	backoff := 200 * time.Millisecond
	lastMsg := ""
	for ctx.Err() == nil {
		watched, err := c.watch(ctx, js)
		if ctx.Err() != nil {
			break
		}
		if watched {
			backoff = 200 * time.Millisecond
		}
		// The same failure again (NATS down, no bucket yet) is logged once.
		level := slog.LevelWarn
		if msg := fmt.Sprint(err); msg == lastMsg {
			level = slog.LevelDebug
		} else {
			lastMsg = msg
		}
		c.log.Log(ctx, level, "desired state watch ended; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// watch runs one watcher until it ends or ctx is done; watched says
// whether the watcher was made.
func (c *Controller) watch(ctx context.Context, js jetstream.JetStream) (watched bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	kv, err := js.KeyValue(wctx, names.BucketDesired)
	cancel()
	var w jetstream.KeyWatcher
	if err == nil {
		// The watcher's subscription lives as long as the context it is
		// made with.
		w, err = kv.Watch(ctx, c.cfg.Agent)
	}
	if err != nil {
		return false, fmt.Errorf("watch %s/%s: %w", names.BucketDesired, c.cfg.Agent, err)
	}
	defer w.Stop()
	c.log.Info("watching desired state", "bucket", names.BucketDesired, "key", c.cfg.Agent)
	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	// After a reconnect the watcher is made again (its first value is the
	// current desired state), rather than waiting for the ordered
	// consumer to notice the gap.
	reconnects := c.cfg.Conn.Stats().Reconnects
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	initial := true
	var last jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case e, ok := <-w.Updates():
			if !ok {
				return true, errors.New("watcher closed")
			}
			if e == nil { // the initial value, if any, came before
				if initial && last == nil {
					c.apply(ctx, nil) // no desired state: the installed model and profile
				}
				initial = false
				continue
			}
			last = e
			c.applyEntry(ctx, e)
		case <-poll.C:
			if n := c.cfg.Conn.Stats().Reconnects; n != reconnects {
				return true, errors.New("reconnected to NATS")
			}
		case <-resync.C:
			gctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
			e, err := kv.Get(gctx, c.cfg.Agent)
			cancel()
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				c.apply(ctx, nil)
			case err == nil:
				c.applyEntry(ctx, e)
			}
		}
	}
}

func (c *Controller) applyEntry(ctx context.Context, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		c.apply(ctx, nil) // deleted: back to what the agent was installed with
		return
	}
	var d wire.Desired
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		err = &Error{Kind: KindConfig, What: fmt.Sprintf("desired state revision %d", e.Revision()),
			Reason: ReasonInvalid, Err: fmt.Errorf("not JSON: %w", err)}
		c.cfg.Target.Report(KindConfig, "", err)
		c.setErr("desired", err)
		return
	}
	c.apply(ctx, &d)
}

// apply makes the agent run d (nil: no desired state).
func (c *Controller) apply(ctx context.Context, d *wire.Desired) {
	if d == nil {
		d = &wire.Desired{}
	}
	c.clearErr("desired")
	// Config first: a restart with another profile changes the streams the
	// models apply to; the models are applied again after it.
	if c.applyConfig(ctx, d.Config, d.Revision) {
		return
	}
	keys := map[string]bool{}
	for k := range d.Models {
		keys[k] = true
	}
	c.mu.Lock()
	for k := range c.st.Models {
		keys[k] = true
	}
	for k := range c.errs { // failures of keys no longer desired go
		if m, ok := strings.CutPrefix(k, "model "); ok && !keys[m] {
			delete(c.errs, k)
		}
	}
	c.mu.Unlock()
	c.publishErr()
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, key := range sorted {
		c.applyModel(ctx, key, d.Models[key], d.Revision)
	}
}

// applyModel makes the streams of key run model want ("" the installed
// one), named by revision rev of the desired state.
func (c *Controller) applyModel(ctx context.Context, key, want string, rev int64) {
	t := c.cfg.Target
	installed, ierr := t.InstalledModel(key)
	if want == "" {
		// No longer named: the installed model, and the key not reported.
		if t.RunningModel(key) != "" {
			if err := t.DropModel(key); err != nil {
				c.log.Error("model not dropped", "key", key, "err", err)
			} else {
				c.log.Info("model dropped; the installed one runs", "key", key, "model", installed)
			}
		}
		c.forget(key)
		c.clearErr("model " + key)
		return
	}
	if want == t.RunningModel(key) {
		c.clearErr("model " + key)
		return
	}
	memo := fmt.Sprintf("%s#%d", want, rev)
	c.mu.Lock()
	if c.failed[key] == memo {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	var err error
	if ierr != nil {
		err = &Error{Kind: KindModel, What: want, Key: key, Reason: ReasonStream, Err: ierr}
	} else if want == installed {
		if err = t.SwapModel(key, nil); err == nil {
			c.remember(key, want)
		}
	} else {
		err = c.fetchAndSwap(ctx, key, want)
	}
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			err = &Error{Kind: KindModel, What: want, Key: key, Reason: ReasonStream, Err: err}
			errors.As(err, &ce)
		}
		if ce.Reason != ReasonFetch { // a fetch may work on the next resync
			c.mu.Lock()
			c.failed[key] = memo
			c.mu.Unlock()
		}
		c.log.Error("model refused", "key", key, "model", want, "reason", ce.Reason, "err", ce.Err)
		t.Report(KindModel, want, err)
		c.setErr("model "+key, err)
		return
	}
	c.mu.Lock()
	delete(c.failed, key)
	c.mu.Unlock()
	c.log.Info("model swapped in", "key", key, "model", want)
	t.Report(KindModel, want, nil)
	c.clearErr("model " + key)
}

// setErr records the failure of desired key k and reports the errors.
func (c *Controller) setErr(k string, err error) {
	c.mu.Lock()
	c.errs[k] = err.Error()
	c.mu.Unlock()
	c.publishErr()
}

// clearErr forgets the failure of desired key k, if any.
func (c *Controller) clearErr(k string) {
	c.mu.Lock()
	_, had := c.errs[k]
	delete(c.errs, k)
	c.mu.Unlock()
	if had {
		c.publishErr()
	}
}

// publishErr hands the failures, sorted by key, to the target.
func (c *Controller) publishErr() {
	c.mu.Lock()
	keys := make([]string, 0, len(c.errs))
	for k := range c.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msgs := make([]string, len(keys))
	for i, k := range keys {
		msgs[i] = c.errs[k]
	}
	c.mu.Unlock()
	c.cfg.Target.SetError(strings.Join(msgs, "; "))
}

// forget drops key from the applied models.
func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.st.Models[key]; !ok {
		return
	}
	st := c.st
	st.Models = copyMap(c.st.Models)
	delete(st.Models, key)
	c.storeApplied(st)
}

// remember records model id as applied for key.
func (c *Controller) remember(key, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Models = copyMap(c.st.Models)
	st.Models[key] = id
	c.storeApplied(st)
}

// storeApplied writes st and drops the packages it no longer uses (c.mu
// held). A write error is logged: the agent runs what it runs, and a
// restart would run what the previous state.json says.
func (c *Controller) storeApplied(st applied) {
	if err := writeApplied(c.cfg.Dir, st); err != nil {
		c.log.Error("applied state not stored", "err", err)
	}
	c.st = st
	c.prune()
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// prune removes stored packages no applied model uses (c.mu held).
func (c *Controller) prune() {
	keep := map[string]bool{}
	for _, id := range c.st.Models {
		keep[id+".pkg"] = true
	}
	ents, _ := os.ReadDir(filepath.Join(c.cfg.Dir, "models"))
	for _, e := range ents {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(c.cfg.Dir, "models", e.Name()))
		}
	}
}

// fetchAndSwap fetches, verifies, loads and test-runs model id, keeps its
// package on disk and swaps it in for key.
func (c *Controller) fetchAndSwap(ctx context.Context, key, id string) error {
	fail := func(reason string, err error) error {
		return &Error{Kind: KindModel, What: id, Key: key, Reason: reason, Err: err}
	}
	if c.cfg.TrustKey == nil {
		return fail(ReasonNoTrustKey, errors.New("no trust key configured (nats.trust_key in the profile, or outpost-edge run --trust-key FILE): unsigned models are never loaded"))
	}
	name, version, err := wire.ParseModelID(id)
	if err != nil {
		return fail(ReasonManifest, err)
	}
	fctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	js, err := jetstream.New(c.cfg.Conn)
	var obj jetstream.ObjectStore
	if err == nil {
		obj, err = js.ObjectStore(fctx, names.ObjectModels)
	}
	var blob []byte
	if err == nil {
		blob, err = obj.GetBytes(fctx, names.ModelObject(name, version))
	}
	if err != nil {
		return fail(ReasonFetch, fmt.Errorf("fetch %s from %s: %w", names.ModelObject(name, version), names.ObjectModels, err))
	}
	r, _, err := c.open(key, id, blob)
	if err != nil {
		return err
	}
	// Keep the package before the swap: a restart after the swap must
	// find it.
	if err := writeFile(c.pkgPath(id), blob); err != nil {
		return fail(ReasonStore, err)
	}
	if err := c.cfg.Target.SwapModel(key, r); err != nil {
		return fail(ReasonStream, err)
	}
	c.remember(key, id)
	return nil
}

// open verifies the package blob of model id and returns a runner of it,
// test-run.
func (c *Controller) open(key, id string, blob []byte) (*modelscore.Runner, *manifest.Manifest, error) {
	fail := func(reason string, err error) (*modelscore.Runner, *manifest.Manifest, error) {
		return nil, nil, &Error{Kind: KindModel, What: id, Key: key, Reason: reason, Err: err}
	}
	if c.cfg.TrustKey == nil {
		return fail(ReasonNoTrustKey, errors.New("no trust key configured: unsigned models are never loaded"))
	}
	pkg, err := modelpkg.Decode(blob)
	if err != nil {
		return fail(ReasonMalformed, err)
	}
	h, err := modelpkg.Verify(pkg, c.cfg.TrustKey)
	switch {
	case errors.Is(err, modelpkg.ErrWrongKey):
		return fail(ReasonWrongKey, err)
	case errors.Is(err, modelpkg.ErrBadSignature):
		return fail(ReasonSignature, err)
	case errors.Is(err, modelpkg.ErrHashMismatch):
		return fail(ReasonHash, err)
	case err != nil:
		return fail(ReasonManifest, err)
	}
	if h.ID() != id {
		return fail(ReasonManifest, fmt.Errorf("the package is %s", h.ID()))
	}
	if h.Role != modelpkg.RoleEdge {
		return fail(ReasonManifest, fmt.Errorf("role %s: the edge runs %s models", h.Role, modelpkg.RoleEdge))
	}
	m, err := manifest.Parse(pkg.Manifest)
	if err != nil {
		return fail(ReasonManifest, fmt.Errorf("the package's manifest does not describe the model (push it with --manifest): %w", err))
	}
	// The signed header is what counts: name, version and hash.
	m.Name, m.Version, m.SHA256 = h.Name, h.Version, h.SHA256
	model, err := tflite.Load(pkg.Model)
	if err != nil {
		return fail(ReasonLoad, err)
	}
	newRunner := modelscore.NewRunner
	if m.Features > 1 { // a vector (video) model: the agent checks it fits the rule it swaps
		newRunner = modelscore.NewVectorRunner
	}
	r, err := newRunner(m, model)
	if err != nil {
		return fail(ReasonLoad, err)
	}
	if err := Test(r); err != nil {
		return fail(ReasonTest, err)
	}
	return r, m, nil
}

// Test test-runs a model before it is swapped in: a fresh scorer on r
// scores a synthetic series (a sine with a little deterministic noise) past
// the model's window and warm-up; every score after that must be finite.
// It uses r's interpreter, which must not be in use.
func Test(r *modelscore.Runner) error {
	if r.IsVector() {
		return testVector(r)
	}
	m := r.Manifest()
	s := modelscore.New(r)
	n := m.Window + m.Warmup + 16
	scored := 0
	for i := 0; i < n; i++ {
		v := 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + 0.05*math.Sin(float64(i)*7.3)
		score, ok := s.Step(v)
		if !ok {
			continue
		}
		if math.IsNaN(score) || math.IsInf(score, 0) {
			return fmt.Errorf("test run: reading %d scored %v", i, score)
		}
		scored++
	}
	if scored == 0 {
		return fmt.Errorf("test run: no score after %d readings (window %d, warm-up %d): the model did not run", n, m.Window, m.Warmup)
	}
	return nil
}

// testVector is Test for a vector model: a fresh vector scorer scores
// synthetic vectors (each feature its manifest mean, or 1 without one,
// plus a slow sine of its std) past the window and warm-up.
func testVector(r *modelscore.Runner) error {
	m := r.Manifest()
	s := modelscore.NewVector(r)
	v := make([]float64, m.Features)
	n := m.Window + m.Warmup + 16
	scored := 0
	for i := 0; i < n; i++ {
		for f := range v {
			mean, std := 1.0, 0.1
			if f < len(m.FeatureMean) {
				mean = m.FeatureMean[f]
			}
			if f < len(m.FeatureStd) {
				std = m.FeatureStd[f]
			}
			v[f] = mean + std*math.Sin(float64(i+3*f)*2*math.Pi/50)
		}
		score, ok := s.StepVector(v)
		if !ok {
			continue
		}
		if math.IsNaN(score) || math.IsInf(score, 0) {
			return fmt.Errorf("test run: vector %d scored %v", i, score)
		}
		scored++
	}
	if scored == 0 {
		return fmt.Errorf("test run: no score after %d vectors (window %d, warm-up %d): the model did not run", n, m.Window, m.Warmup)
	}
	return nil
}

// applyConfig makes the agent run the profile of desired key ("" the
// installed one), named by revision rev of the desired state. It returns
// true when the agent restarts for it.
func (c *Controller) applyConfig(ctx context.Context, key string, rev int64) bool {
	t := c.cfg.Target
	if key == t.RunningConfig() {
		c.clearErr("config")
		return false
	}
	memo := fmt.Sprintf("%s#%d", key, rev)
	c.mu.Lock()
	if c.failedConfig == memo {
		c.mu.Unlock()
		return false
	}
	refused, reason, why := c.st.Refused, c.st.Reason, c.st.Why
	c.mu.Unlock()
	if key != "" && key == refused {
		err := fmt.Errorf("it did not run: %s", why)
		if reason == ReasonUnhealthy {
			err = fmt.Errorf("it failed its probation: %s", why)
		} else {
			reason = ReasonInvalid
		}
		c.setErr("config", &Error{Kind: KindConfig, What: key, Reason: reason, Err: err})
		return false
	}
	err := c.storeConfig(ctx, key)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.Reason != ReasonFetch {
			c.mu.Lock()
			c.failedConfig = memo
			c.mu.Unlock()
		}
		c.log.Error("config refused", "config", key, "err", err)
		t.Report(KindConfig, key, err)
		c.setErr("config", err)
		return false
	}
	c.log.Info("config stored; restarting the pipeline", "config", key)
	if key == "" { // the installed profile: no probation
		t.Report(KindConfig, key, nil)
	}
	t.Restart()
	return true
}

// storeConfig fetches and checks the profile of key and stores it as the
// applied one ("" removes it).
func (c *Controller) storeConfig(ctx context.Context, key string) error {
	fail := func(reason string, err error) error {
		return &Error{Kind: KindConfig, What: key, Reason: reason, Err: err}
	}
	var text []byte
	if key != "" {
		fctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
		defer cancel()
		js, err := jetstream.New(c.cfg.Conn)
		var kv jetstream.KeyValue
		if err == nil {
			kv, err = js.KeyValue(fctx, names.BucketConfigs)
		}
		var e jetstream.KeyValueEntry
		if err == nil {
			e, err = kv.Get(fctx, key)
		}
		if err != nil {
			return fail(ReasonFetch, fmt.Errorf("fetch %s from %s: %w", key, names.BucketConfigs, err))
		}
		text = e.Value()
		if err := profile.Check(text); err != nil {
			return fail(ReasonInvalid, err)
		}
	}
	if err := c.cfg.Target.CheckConfig(key, text); err != nil {
		return fail(ReasonInvalid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	if key != "" && !st.Pending {
		// The running profile becomes the one to go back to, and what it
		// has done the baseline of the probation.
		st.Previous = st.Config
		r, e := c.cfg.Target.Counters()
		st.Baseline = &Baseline{Readings: r, DecodeErrors: e, Uptime: time.Since(c.started)}
		if st.Previous != "" {
			prev, err := os.ReadFile(filepath.Join(c.cfg.Dir, "profile.yaml"))
			if err == nil {
				err = writeFile(filepath.Join(c.cfg.Dir, "previous.yaml"), prev)
			}
			if err != nil {
				return fail(ReasonStore, err)
			}
		}
	}
	// (A profile pushed while another is on probation replaces it: the
	// previous profile and the baseline stay the last applied one's.)
	st.Config, st.Refused, st.Reason, st.Why, st.Starts = key, "", "", "", 0
	st.Pending = key != ""
	if !st.Pending {
		st.Previous, st.Baseline = "", nil
	}
	if key != "" {
		if err := writeFile(filepath.Join(c.cfg.Dir, "profile.yaml"), text); err != nil {
			return fail(ReasonStore, err)
		}
	}
	if err := writeApplied(c.cfg.Dir, st); err != nil {
		return fail(ReasonStore, err)
	}
	if key == "" {
		removeIfExists(filepath.Join(c.cfg.Dir, "profile.yaml"))
		removeIfExists(filepath.Join(c.cfg.Dir, "previous.yaml"))
	}
	c.st = st
	return nil
}

// ConfigStatus is the status of the running profile: StatusApplying while
// a pushed profile is on probation, else StatusApplied.
func (c *Controller) ConfigStatus() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Pending && c.st.Config == c.cfg.Target.RunningConfig() {
		return StatusApplying
	}
	return StatusApplied
}

// probation watches the pushed profile that runs until it passes or fails
// (see the package comment), or ctx is done.
func (c *Controller) probation(ctx context.Context) {
	c.mu.Lock()
	key, base := c.st.Config, c.st.Baseline
	c.mu.Unlock()
	if base == nil {
		base = &Baseline{}
	}
	c.log.Info("config on probation", "config", key, "grace", c.cfg.Grace)
	tick := time.NewTicker(min(c.cfg.Grace/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r, e := c.cfg.Target.Counters()
		ok, why := c.judge(time.Since(c.started), r, e, *base)
		switch {
		case ok:
			c.pass(key)
			return
		case why != "":
			c.flunk(key, why)
			return
		}
	}
}

// judge decides the probation of a profile that has run for ran and
// judged r readings and counted e decode errors, against the baseline:
// ok when it passed, a reason why when it failed, neither while it goes
// on.
func (c *Controller) judge(ran time.Duration, r, e uint64, base Baseline) (ok bool, why string) {
	if r+e == 0 {
		if ran < c.cfg.MaxWait {
			return false, ""
		}
		// Would the previous pipeline's pace have given 10 readings?
		if base.Uptime > 0 && float64(base.Readings)*float64(c.cfg.MaxWait)/float64(base.Uptime) >= 10 {
			return false, fmt.Sprintf("no reading judged in %v; the profile before it judged %d in %v",
				c.cfg.MaxWait, base.Readings, base.Uptime.Round(time.Second))
		}
		return true, "" // a quiet gateway: nothing to judge it by
	}
	if ran < c.cfg.Grace {
		return false, ""
	}
	rate := float64(e) / float64(r+e)
	before := 0.0
	if n := base.Readings + base.DecodeErrors; n > 0 {
		before = float64(base.DecodeErrors) / float64(n)
	}
	if bound := c.cfg.RateFactor*before + c.cfg.RateFloor; rate > bound {
		return false, fmt.Sprintf("decode-error rate %.4f (%d of %d) is above %.4f (%g × %.4f before + %g)",
			rate, e, r+e, bound, c.cfg.RateFactor, before, c.cfg.RateFloor)
	}
	return r > 0, "" // decode errors alone: not judged yet (MaxWait, or the rate, decides)
}

// pass marks the profile of key applied.
func (c *Controller) pass(key string) {
	c.mu.Lock()
	if !c.st.Pending || c.st.Config != key { // another one was pushed meanwhile
		c.mu.Unlock()
		return
	}
	st := c.st
	st.Pending, st.Previous, st.Baseline, st.Starts = false, "", nil, 0
	err := writeApplied(c.cfg.Dir, st)
	if err == nil {
		c.st = st
		removeIfExists(filepath.Join(c.cfg.Dir, "previous.yaml"))
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Error("config passed its probation but is not stored as applied; it is on probation again after a restart", "config", key, "err", err)
	}
	c.log.Info("config applied: it passed its probation", "config", key)
	c.cfg.Target.Report(KindConfig, key, nil)
}

// flunk refuses the profile of key for why and goes back to the previous
// one.
func (c *Controller) flunk(key, why string) {
	c.mu.Lock()
	if !c.st.Pending || c.st.Config != key {
		c.mu.Unlock()
		return
	}
	err := revert(c.cfg.Dir, ReasonUnhealthy, why)
	if err == nil {
		c.st, err = readApplied(c.cfg.Dir)
	}
	back := c.st.Config
	c.mu.Unlock()
	if err != nil {
		c.log.Error("config failed its probation but could not be undone", "config", key, "why", why, "err", err)
		return
	}
	ce := &Error{Kind: KindConfig, What: key, Reason: ReasonUnhealthy, Err: fmt.Errorf("it failed its probation: %s", why)}
	c.log.Error("config refused; back to the previous profile", "config", key, "back_to", back, "why", why)
	c.cfg.Target.Report(KindConfig, key, ce)
	c.setErr("config", ce)
	c.cfg.Target.Restart()
}
