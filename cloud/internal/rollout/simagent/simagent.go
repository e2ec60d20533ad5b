// Package simagent is a simulated gateway for the rollout tests and
// benchmark: it does what an edge agent does with its desired state, with
// the real parts. Each agent has its own NATS connection, watches its key in
// names.BucketDesired, fetches the signed package of a new model from
// names.ObjectModels, verifies it (modelpkg.Verify against the cloud's
// public key), loads and test-invokes it with the runtime the gateways use
// (models/tflite, with an optional arena limit as a small gateway would
// set), and reports wire.State on names.StateSubject: Models updated on
// success, LastError (keeping the old model) on failure. A desired Config
// is fetched from names.BucketConfigs, checked with profile.Check (as
// outpost-edge validate does) and reported as State.Profile and
// State.Revision. Its readings and
// anomalies are counters that advance with every heartbeat; the anomaly
// share can depend on the model, to simulate a regression.
//
// Only tests use it.
package simagent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Config configures an Agent.
type Config struct {
	// ID is the agent id. Required.
	ID string
	// URL is the NATS server. Required.
	URL string
	// PublicKey verifies model packages. Required.
	PublicKey ed25519.PublicKey
	// Group is reported in State.Group.
	Group string
	// Stream is the key of the model in the desired and reported models;
	// default "*".
	Stream string
	// Initial is the model the agent's profile gives it ("name@version"); it
	// runs it at start and when its desired state names none.
	Initial string
	// MaxArenaBytes limits the runtime's arena (tflite.WithMaxArenaBytes);
	// 0 means the runtime's default.
	MaxArenaBytes int
	// Heartbeat is the state interval; default 1s.
	Heartbeat time.Duration
	// ReadingsPerBeat is how many readings each heartbeat adds; default 100.
	ReadingsPerBeat uint64
	// AnomalyShare returns the share of readings that are anomalies while
	// running model; nil means 0.
	AnomalyShare func(model string) float64
	// OnSwap, if set, is called after the agent runs a new model.
	OnSwap func(agent, model string)
}

// Agent is a running simulated gateway.
type Agent struct {
	cfg     Config
	nc      *nats.Conn
	obj     jetstream.ObjectStore
	configs jetstream.KeyValue
	watcher jetstream.KeyWatcher
	started time.Time

	mu        sync.Mutex
	model     string
	config    string // the desired Config key it runs ("" the installed one)
	profile   string
	revision  int64
	lastError string
	readings  uint64
	anomalies float64

	stop chan struct{}
	done chan struct{}
	// stopOnce closes stop once.
	stopOnce sync.Once
}

// Start connects the agent, publishes its first state and starts watching
// its desired state.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Stream == "" {
		cfg.Stream = "*"
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.ReadingsPerBeat == 0 {
		cfg.ReadingsPerBeat = 100
	}
	nc, err := nats.Connect(cfg.URL, nats.Name("simagent-"+cfg.ID), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("simagent %s: connect: %w", cfg.ID, err)
	}
	a := &Agent{cfg: cfg, nc: nc, model: cfg.Initial, profile: "sim", revision: 1, started: time.Now().UTC(), stop: make(chan struct{}), done: make(chan struct{})}
	js, err := jetstream.New(nc)
	if err == nil {
		a.obj, err = js.ObjectStore(ctx, names.ObjectModels)
	}
	var kv jetstream.KeyValue
	if err == nil {
		kv, err = js.KeyValue(ctx, names.BucketDesired)
	}
	if err == nil {
		a.configs, err = js.KeyValue(ctx, names.BucketConfigs)
	}
	if err == nil {
		a.watcher, err = kv.Watch(context.Background(), cfg.ID)
	}
	if err == nil {
		err = a.publish()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("simagent %s: %w", cfg.ID, err)
	}
	go a.run()
	return a, nil
}

// Model is the model the agent runs.
func (a *Agent) Model() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.model
}

// LastError is the agent's last error.
func (a *Agent) LastError() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastError
}

// Stop stops the agent and closes its connection. It is safe to call more
// than once.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.done
	a.nc.Close()
}

func (a *Agent) run() {
	defer close(a.done)
	defer func() { _ = a.watcher.Stop() }()
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			a.readings += a.cfg.ReadingsPerBeat
			if a.cfg.AnomalyShare != nil {
				a.anomalies += a.cfg.AnomalyShare(a.model) * float64(a.cfg.ReadingsPerBeat)
			}
			a.mu.Unlock()
			_ = a.publish()
		case e, ok := <-a.watcher.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // end of the initial values
			}
			want := a.cfg.Initial
			var d wire.Desired
			if e.Operation() == jetstream.KeyValuePut {
				if err := json.Unmarshal(e.Value(), &d); err != nil {
					a.fail(fmt.Sprintf("desired state revision %d is not JSON: %v", e.Revision(), err))
					continue
				}
				if m := d.Models[a.cfg.Stream]; m != "" {
					want = m
				}
			}
			a.applyConfig(d.Config)
			if want == a.Model() {
				continue
			}
			if err := a.apply(want); err != nil {
				a.fail(err.Error())
				continue
			}
			a.mu.Lock()
			a.model, a.lastError = want, ""
			a.mu.Unlock()
			_ = a.publish()
			if a.cfg.OnSwap != nil {
				a.cfg.OnSwap(a.cfg.ID, want)
			}
		}
	}
}

func (a *Agent) fail(msg string) {
	a.mu.Lock()
	a.lastError = msg
	a.mu.Unlock()
	_ = a.publish()
}

// applyConfig fetches and validates the profile stored under key (as
// outpost-edge validate does) and runs it; "" means the installed one.
func (a *Agent) applyConfig(key string) {
	a.mu.Lock()
	same := key == a.config
	a.mu.Unlock()
	if same {
		return
	}
	name, rev := "sim", int64(1)
	if key != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		e, err := a.configs.Get(ctx, key)
		cancel()
		if err != nil {
			a.fail(fmt.Sprintf("config %s: fetch: %v", key, err))
			return
		}
		if err := profile.Check(e.Value()); err != nil {
			a.fail(fmt.Sprintf("config %s refused: %v", key, err))
			return
		}
		p, err := profile.Parse(e.Value())
		if err != nil {
			a.fail(fmt.Sprintf("config %s refused: %v", key, err))
			return
		}
		name, rev = p.Name, p.Revision
	}
	a.mu.Lock()
	a.config, a.profile, a.revision, a.lastError = key, name, rev, ""
	a.mu.Unlock()
	_ = a.publish()
}

// Profile is the profile name and revision the agent runs.
func (a *Agent) Profile() (string, int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.profile, a.revision
}

// apply fetches, verifies and test-invokes model want.
func (a *Agent) apply(want string) error {
	if want == a.cfg.Initial {
		return nil // the profile's model, installed with the agent
	}
	name, version, err := wire.ParseModelID(want)
	if err != nil {
		return fmt.Errorf("model %s refused: %w", want, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blob, err := a.obj.GetBytes(ctx, names.ModelObject(name, version))
	if err != nil {
		return fmt.Errorf("model %s: fetch: %w", want, err)
	}
	pkg, err := modelpkg.Decode(blob)
	if err != nil {
		return fmt.Errorf("model %s refused: %w", want, err)
	}
	h, err := modelpkg.Verify(pkg, a.cfg.PublicKey)
	if err != nil {
		return fmt.Errorf("model %s refused: %w", want, err)
	}
	if h.Name != name || h.Version != version {
		return fmt.Errorf("model %s refused: the package is %s", want, h.ID())
	}
	m, err := tflite.Load(pkg.Model)
	if err != nil {
		return fmt.Errorf("model %s refused: %w", want, err)
	}
	var opts []tflite.Option
	if a.cfg.MaxArenaBytes > 0 {
		opts = append(opts, tflite.WithMaxArenaBytes(a.cfg.MaxArenaBytes))
	}
	ip, err := m.NewInterpreter(opts...)
	if err != nil {
		return fmt.Errorf("model %s refused: %w", want, err)
	}
	if err := ip.Invoke(); err != nil {
		return fmt.Errorf("model %s refused: test invoke: %w", want, err)
	}
	return nil
}

// publish sends the agent's state.
func (a *Agent) publish() error {
	a.mu.Lock()
	st := wire.State{
		Agent: a.cfg.ID, TS: time.Now().UTC(), Heartbeat: wire.Duration(a.cfg.Heartbeat), Version: "simagent",
		Profile: a.profile, Revision: a.revision, Group: a.cfg.Group, Started: a.started,
		Models: map[string]string{a.cfg.Stream: a.model}, Readings: a.readings,
		Anomalies: uint64(math.Round(a.anomalies)), LastError: a.lastError,
	}
	a.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := a.nc.Publish(names.StateSubject(a.cfg.ID), b); err != nil {
		return fmt.Errorf("publish state: %w", err)
	}
	return nil
}
