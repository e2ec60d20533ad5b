// Package rollout is outpost-cloud's rollout controller: it gives a model
// to a set of agents by writing their desired state (wire.Desired in the KV
// bucket names.BucketDesired), canaries first, and watches what they report
// (wire.State, through the device registry).
//
// A rollout:
//
//  1. start: the model must be in the model store; the targets are the
//     registry's devices matching --to (all, group=G from State.Group,
//     device=D); the online ones take part, offline ones are skipped.
//  2. canary: the first Canaries targets (sorted by id) get the model in
//     their desired state (revision+1, Models[stream] = model). Each must
//     report the model in State.Models[stream] within SwapTimeout; a new
//     LastError before it does (one that differs from its LastError at the
//     start, and is not its refusal of another model: a late report of an
//     earlier rollout) fails it.
//  3. baking: for Bake, each canary must keep reporting the model, raise no
//     new error, and stay within the rate bounds: over the bake, its
//     anomaly rate (anomalies / readings since the swap) must be at most
//     RateFactor × its rate before the rollout (cumulative since the agent
//     started) + RateFloor, and the same for decode errors (default 3× and
//     0.01). An agent that reported no readings during the bake is judged on
//     the swap alone.
//  4. rolling: the rest, BatchSize at a time; a batch must have swapped
//     before the next is written. An agent that fails here fails the
//     rollout too.
//  5. any failure rolls back automatically: every agent the rollout gave
//     the model gets its previous desired model for the stream back (or the
//     stream's entry removed when there was none); the Reason names the
//     agent and what happened. Agents whose desired state another rollout
//     has changed since are left alone (their Error says so).
//
// Abort stops the rollout and leaves every agent where it is. Rollback (of
// a rollout in any state) restores the previous desired state of every
// agent it touched.
//
// Config rollouts (PushConfig, `fleet config push`) work the same way with a
// firmware profile instead of a model: the profile is validated with
// profile.Check, stored in names.BucketConfigs under
// names.ConfigKey(name, revision), written as wire.Desired.Config and
// ConfigRevision, and an agent runs it when its State reports the profile's
// name and revision.
//
// The rollout lives in the KV bucket names.BucketRollouts (key = id) so any
// replica can resume it. One replica drives it at a time: the driver takes
// a lease (Driver, Lease) with a compare-and-set on the key's revision and
// renews it while it works; another replica takes over when the lease has
// run out. Operator requests (abort, rollback) are written into the record
// (Request) with compare-and-set and applied by the driver; the driver
// keeps a request written while it worked.
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Defaults.
const (
	DefaultSwapTimeout = 2 * time.Minute
	DefaultTick        = 100 * time.Millisecond
	DefaultLease       = 10 * time.Second
	DefaultRateFactor  = 3.0
	DefaultRateFloor   = 0.01
	DefaultWorkers     = 32
	// MaxTargets bounds the agents of one rollout: the record is one KV
	// value, about 250 bytes per agent, and must stay under NATS's default
	// 1 MB message limit. Larger fleets roll out by group.
	MaxTargets = 2000
	// AllStreams is the default stream pattern.
	AllStreams = "*"
)

// ModelResolver finds a stored model (the model store's Pull).
type ModelResolver interface {
	Pull(ctx context.Context, ref api.ModelRef) (api.ModelInfo, error)
}

// Config configures a Controller. Zero values mean the defaults.
type Config struct {
	// Devices lists the registry. Required.
	Devices func() []api.Device
	// Models resolves models; nil makes StartRollout answer 503.
	Models ModelResolver
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Tick is how often the controller looks at its rollouts.
	Tick time.Duration
	// Lease is how long a replica drives a rollout without renewing.
	Lease time.Duration
	// RateFactor and RateFloor bound the canaries' anomaly and decode-error
	// rates over the bake: rate ≤ RateFactor × rate before + RateFloor.
	RateFactor float64
	RateFloor  float64
	// Workers is how many desired-state writes run at once.
	Workers int
	// Metrics, if set, counts rollouts started and finished and agents'
	// phases (counted by the replica whose write made the change).
	Metrics *metrics.Metrics
}

func (c *Config) fill() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.RateFactor <= 0 {
		c.RateFactor = DefaultRateFactor
	}
	if c.RateFloor <= 0 {
		c.RateFloor = DefaultRateFloor
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
}

// Errors.
var (
	ErrNotFound = errors.New("no such rollout")
	ErrConflict = errors.New("rollout conflict")
)

// Controller runs rollouts on one replica.
type Controller struct {
	cfg     Config
	me      string
	kv      jetstream.KeyValue
	desired jetstream.KeyValue
	configs jetstream.KeyValue

	mu    sync.Mutex
	cache map[string]api.Rollout

	watcher jetstream.KeyWatcher
	poke    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Start creates (or binds to) the rollouts bucket and starts driving
// rollouts.
func Start(ctx context.Context, js jetstream.JetStream, cfg Config) (*Controller, error) {
	cfg.fill()
	if cfg.Devices == nil {
		return nil, errors.New("rollout: Config.Devices is required")
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      names.BucketRollouts,
		Description: "Outpost: model rollouts, key = rollout id",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: KV bucket %s: %w", names.BucketRollouts, err)
	}
	configs, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      names.BucketConfigs,
		Description: "Outpost: firmware profiles pushed to the fleet, key = <name>.<revision>",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: KV bucket %s: %w", names.BucketConfigs, err)
	}
	desired, err := js.KeyValue(ctx, names.BucketDesired)
	if err != nil {
		return nil, fmt.Errorf("rollout: KV bucket %s: %w", names.BucketDesired, err)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	c := &Controller{
		cfg: cfg, me: "replica-" + hex.EncodeToString(id[:]), kv: kv, desired: desired, configs: configs,
		cache: map[string]api.Rollout{}, poke: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	c.watcher, err = kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("rollout: watch %s: %w", names.BucketRollouts, err)
	}
	c.wg.Add(2)
	go c.watch()
	go c.loop()
	return c, nil
}

// Stop stops driving; another replica resumes the rollouts after the lease.
func (c *Controller) Stop() {
	close(c.stop)
	_ = c.watcher.Stop()
	c.wg.Wait()
}

func (c *Controller) watch() {
	defer c.wg.Done()
	for e := range c.watcher.Updates() {
		if e == nil {
			continue
		}
		c.mu.Lock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(c.cache, e.Key())
		} else if r, err := decode(e.Value()); err == nil {
			c.cache[e.Key()] = r
		}
		c.mu.Unlock()
		c.wake()
	}
}

func (c *Controller) wake() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

func (c *Controller) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.poke:
		}
		now := c.cfg.Now()
		var ids []string
		c.mu.Lock()
		for id, r := range c.cache {
			if (!r.Terminal() || r.Request != "") && (r.Driver == c.me || r.Driver == "" || now.After(r.Lease)) {
				ids = append(ids, id)
			}
		}
		c.mu.Unlock()
		sort.Strings(ids)
		for _, id := range ids {
			if err := c.step(id); err != nil {
				c.cfg.Logger.Warn("rollout step", "rollout", id, "err", err)
			}
		}
	}
}

func decode(b []byte) (api.Rollout, error) {
	var r api.Rollout
	err := json.Unmarshal(b, &r)
	return r, err
}

func encode(r *api.Rollout) []byte {
	r.Counts = map[string]int{}
	for _, a := range r.Agents {
		r.Counts[a.Phase]++
	}
	b, _ := json.Marshal(r)
	return b
}

// step claims rollout id if it is free (or ours) and moves it on.
func (c *Controller) step(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := c.kv.Get(ctx, id)
	if err != nil {
		return err
	}
	r, err := decode(e.Value())
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	now := c.cfg.Now()
	if r.Terminal() && r.Request == "" {
		return nil
	}
	if r.Driver != c.me && r.Driver != "" && !now.After(r.Lease) {
		return nil
	}
	rev := e.Revision()
	if r.Driver != c.me || r.Lease.Sub(now) < c.cfg.Lease/2 {
		if r.Driver != c.me && r.Driver != "" {
			c.cfg.Logger.Info("rollout taken over", "rollout", id, "from", r.Driver, "by", c.me)
		}
		r.Driver, r.Lease = c.me, now.Add(c.cfg.Lease)
		if rev, err = c.kv.Update(ctx, id, encode(&r), rev); err != nil {
			return nil // another replica claimed it first
		}
	}
	before := string(encode(&r))
	prevState := r.State
	prevPhases := make([]string, len(r.Agents))
	for i, a := range r.Agents {
		prevPhases[i] = a.Phase
	}
	c.advance(ctx, &r)
	if string(encode(&r)) == before {
		return nil
	}
	r.Updated = c.cfg.Now()
	if err := c.save(ctx, &r, rev); err != nil {
		return err
	}
	c.observe(prevState, prevPhases, &r)
	return nil
}

// observe counts what one saved step changed: a final state reached, and
// agents entering the phases the metrics count.
func (c *Controller) observe(prevState string, prevPhases []string, r *api.Rollout) {
	m := c.cfg.Metrics
	if m == nil {
		return
	}
	if r.State != prevState && r.Terminal() {
		m.RolloutsFinished.WithLabelValues(r.State).Inc()
	}
	for i, a := range r.Agents {
		if i < len(prevPhases) && a.Phase == prevPhases[i] {
			continue
		}
		switch a.Phase {
		case api.PhaseRunning, api.PhaseFailed, api.PhaseRolledBack:
			m.RolloutAgents.WithLabelValues(a.Phase).Inc()
		}
	}
}

// save writes r with compare-and-set at rev. A conflict with an operator's
// request (the only other writer while we hold the lease) keeps the request
// and retries.
func (c *Controller) save(ctx context.Context, r *api.Rollout, rev uint64) error {
	for {
		_, err := c.kv.Update(ctx, r.ID, encode(r), rev)
		if err == nil {
			return nil
		}
		e, gerr := c.kv.Get(ctx, r.ID)
		if gerr != nil {
			return fmt.Errorf("save: %w (re-read: %v)", err, gerr)
		}
		fresh, derr := decode(e.Value())
		if derr != nil || fresh.Driver != c.me {
			return fmt.Errorf("save: lost the rollout to %s: %w", fresh.Driver, err)
		}
		if fresh.Request != "" && r.Request == "" {
			r.Request = fresh.Request
		}
		rev = e.Revision()
	}
}

// counters of a device.
func countersOf(d api.Device) api.Counters {
	return api.Counters{Readings: d.Readings, Anomalies: d.Anomalies, DecodeErrors: d.DecodeErrors}
}

func (c *Controller) setPhase(a *api.RolloutAgent, phase, errText string) {
	a.Phase, a.Error, a.Since = phase, errText, c.cfg.Now()
}

// advance applies pending requests and moves r through its states.
func (c *Controller) advance(ctx context.Context, r *api.Rollout) {
	now := c.cfg.Now()
	switch r.Request {
	case "abort":
		r.Request = ""
		if !r.Terminal() && r.State != api.RolloutRollingBack {
			r.State, r.Reason, r.Finished = api.RolloutAborted, "aborted by the operator", now
			c.cfg.Logger.Info("rollout aborted", "rollout", r.ID)
		}
		return
	case "rollback":
		r.Request = ""
		if r.State != api.RolloutRolledBack || hasTouched(r) {
			c.cfg.Logger.Info("rollout rollback requested", "rollout", r.ID, "state", r.State)
			r.State, r.Reason = api.RolloutRollingBack, joinReason(r.Reason, "rolled back by the operator")
		}
	}
	devs := map[string]api.Device{}
	for _, d := range c.cfg.Devices() {
		devs[d.ID] = d
	}
	switch r.State {
	case api.RolloutCanary:
		c.give(ctx, r, func(a *api.RolloutAgent) bool { return a.Canary })
		if c.check(r, devs, true) {
			return
		}
		if allPhase(r, func(a *api.RolloutAgent) bool { return !a.Canary || a.Phase == api.PhaseRunning }) {
			r.State, r.BakeUntil = api.RolloutBaking, now.Add(time.Duration(r.Bake))
			c.cfg.Logger.Info("rollout canaries swapped; baking", "rollout", r.ID, "until", r.BakeUntil)
		}
	case api.RolloutBaking:
		if c.check(r, devs, true) {
			return
		}
		if now.Before(r.BakeUntil) {
			return
		}
		for i := range r.Agents {
			a := &r.Agents[i]
			if !a.Canary || a.Phase != api.PhaseRunning {
				continue
			}
			if why := c.regressed(a, devs[a.ID]); why != "" {
				c.setPhase(a, api.PhaseFailed, why)
				c.fail(r, fmt.Sprintf("canary %s regressed: %s", a.ID, why))
				return
			}
		}
		r.State = api.RolloutRolling
		c.cfg.Logger.Info("rollout canaries healthy; rolling", "rollout", r.ID)
		fallthrough
	case api.RolloutRolling:
		if c.check(r, devs, false) {
			return
		}
		inFlight := 0
		for _, a := range r.Agents {
			if a.Phase == api.PhaseDesired {
				inFlight++
			}
		}
		if inFlight > 0 {
			return
		}
		n := 0
		c.give(ctx, r, func(a *api.RolloutAgent) bool {
			if n >= r.BatchSize {
				return false
			}
			n++
			return true
		})
		if n == 0 && allPhase(r, func(a *api.RolloutAgent) bool { return a.Phase == api.PhaseRunning || a.Phase == api.PhaseSkipped }) {
			r.State, r.Finished = api.RolloutSucceeded, now
			c.cfg.Logger.Info("rollout succeeded", "rollout", r.ID, "what", r.What())
		}
	case api.RolloutRollingBack:
		c.restore(ctx, r)
	}
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func hasTouched(r *api.Rollout) bool {
	for _, a := range r.Agents {
		if touched(a) {
			return true
		}
	}
	return false
}

func touched(a api.RolloutAgent) bool {
	return a.Phase == api.PhaseDesired || a.Phase == api.PhaseRunning || a.Phase == api.PhaseFailed
}

func allPhase(r *api.Rollout, ok func(a *api.RolloutAgent) bool) bool {
	for i := range r.Agents {
		if !ok(&r.Agents[i]) {
			return false
		}
	}
	return true
}

// fail starts the automatic rollback.
func (c *Controller) fail(r *api.Rollout, reason string) {
	c.cfg.Logger.Warn("rollout failed; rolling back", "rollout", r.ID, "reason", reason)
	r.State, r.Reason = api.RolloutRollingBack, "automatic rollback: "+reason
}

// check moves agents in phase desired to running or failed; it returns true
// (and starts the rollback) when one failed. During the canary states it
// also checks that running canaries still run the model without a new
// error.
func (c *Controller) check(r *api.Rollout, devs map[string]api.Device, canaries bool) bool {
	now := c.cfg.Now()
	for i := range r.Agents {
		a := &r.Agents[i]
		if canaries && !a.Canary {
			continue
		}
		d := devs[a.ID]
		newErr := d.LastError != "" && d.LastError != a.BeforeError && !refusesOtherModel(r, d.LastError)
		switch a.Phase {
		case api.PhaseDesired:
			switch {
			case runs(r, d):
				c.setPhase(a, api.PhaseRunning, "")
				a.AtSwap = countersOf(d)
			case newErr:
				c.setPhase(a, api.PhaseFailed, "reported: "+d.LastError)
			case now.Sub(a.Since) > time.Duration(r.SwapTimeout):
				c.setPhase(a, api.PhaseFailed, fmt.Sprintf("did not report running %s within %s", r.What(), time.Duration(r.SwapTimeout)))
			}
		case api.PhaseRunning:
			if !canaries || r.State == api.RolloutRolling {
				continue
			}
			switch {
			case !runs(r, d):
				c.setPhase(a, api.PhaseFailed, fmt.Sprintf("stopped running %s", r.What()))
			case newErr && errorNames(r, d.LastError):
				c.setPhase(a, api.PhaseFailed, "reported: "+d.LastError)
			}
		}
		if a.Phase == api.PhaseFailed {
			what := "agent"
			if a.Canary {
				what = "canary"
			}
			c.fail(r, fmt.Sprintf("%s %s failed: %s", what, a.ID, a.Error))
			return true
		}
	}
	return false
}

// refusesOtherModel reports whether lastErr is an agent's refusal of a
// model other than the one model rollout r gives ("model vib@2 for
// sensors/x refused (...)"): a late report from an earlier rollout, which
// must not fail this one. Config rollouts count every new error.
func refusesOtherModel(r *api.Rollout, lastErr string) bool {
	if r.Kind == api.KindConfig {
		return false
	}
	f := strings.Fields(lastErr)
	return len(f) > 2 && f[0] == "model" && f[1] != r.Model && strings.Contains(lastErr, " refused (")
}

// errorNames reports whether an agent's error names what r gives: its
// model, or its profile as the agent names it ("config press-line.3
// refused ...": names.ConfigKey, where the rollout says press-line@3).
func errorNames(r *api.Rollout, lastErr string) bool {
	if r.Kind != api.KindConfig {
		return strings.Contains(lastErr, r.Model)
	}
	name, rev, ok := strings.Cut(r.Config, "@")
	n, err := strconv.ParseInt(rev, 10, 64)
	return ok && err == nil && strings.Contains(lastErr, "config "+names.ConfigKey(name, n)+" ")
}

// runs reports whether device d reports running what r gives.
func runs(r *api.Rollout, d api.Device) bool {
	if r.Kind == api.KindConfig {
		name, rev, ok := strings.Cut(r.Config, "@")
		// A pushed profile runs once the agent has it in force and it has
		// passed the agent's probation (no longer "applying").
		return ok && d.Profile == name && strconv.FormatInt(d.Revision, 10) == rev && d.ConfigStatus != "applying"
	}
	return d.Models[r.Stream] == r.Model
}

// configKey is the names.ConfigKey and revision of "name@revision".
func configKey(config string) (string, int64) {
	name, revText, _ := strings.Cut(config, "@")
	rev, _ := strconv.ParseInt(revText, 10, 64)
	return names.ConfigKey(name, rev), rev
}

// regressed compares a canary's rates over the bake with its rates before.
func (c *Controller) regressed(a *api.RolloutAgent, d api.Device) string {
	now := countersOf(d)
	if now.Readings < a.AtSwap.Readings { // the agent restarted
		a.AtSwap = api.Counters{}
	}
	dr := float64(now.Readings - a.AtSwap.Readings)
	if dr <= 0 {
		return ""
	}
	rate := func(n, of uint64) float64 {
		if of == 0 {
			return 0
		}
		return float64(n) / float64(of)
	}
	check := func(what string, during, before float64) string {
		bound := c.cfg.RateFactor*before + c.cfg.RateFloor
		if during > bound {
			return fmt.Sprintf("%s rate %.4f over the bake is above %.4f (%g × %.4f before + %g)", what, during, bound, c.cfg.RateFactor, before, c.cfg.RateFloor)
		}
		return ""
	}
	if why := check("anomaly", float64(now.Anomalies-min(now.Anomalies, a.AtSwap.Anomalies))/dr, rate(a.Before.Anomalies, a.Before.Readings)); why != "" {
		return why
	}
	return check("decode-error", float64(now.DecodeErrors-min(now.DecodeErrors, a.AtSwap.DecodeErrors))/dr, rate(a.Before.DecodeErrors, a.Before.Readings))
}

// give writes the model into the desired state of the pending agents that
// pick selects.
func (c *Controller) give(ctx context.Context, r *api.Rollout, pick func(a *api.RolloutAgent) bool) {
	var idx []int
	for i := range r.Agents {
		if r.Agents[i].Phase == api.PhasePending && pick(&r.Agents[i]) {
			idx = append(idx, i)
		}
	}
	c.parallel(len(idx), func(k int) {
		a := &r.Agents[idx[k]]
		prev, err := c.updateDesired(ctx, a.ID, r.ID, func(d *wire.Desired) (string, bool) {
			if r.Kind == api.KindConfig {
				old := d.Config
				d.Config, d.ConfigRevision = configKey(r.Config)
				return old, true
			}
			old := d.Models[r.Stream]
			d.Models[r.Stream] = r.Model
			return old, true
		})
		if err != nil {
			a.Error = err.Error() // stays pending; retried next step
			return
		}
		a.Previous = prev
		c.setPhase(a, api.PhaseDesired, "")
	})
}

// restore gives every touched agent its previous desired model back.
func (c *Controller) restore(ctx context.Context, r *api.Rollout) {
	var idx []int
	for i := range r.Agents {
		if touched(r.Agents[i]) {
			idx = append(idx, i)
		}
	}
	failed := 0
	var fmu sync.Mutex
	c.parallel(len(idx), func(k int) {
		a := &r.Agents[idx[k]]
		_, err := c.updateDesired(ctx, a.ID, r.ID, func(d *wire.Desired) (string, bool) {
			if r.Kind == api.KindConfig {
				if key, _ := configKey(r.Config); d.Config != key {
					return "", false // changed since: leave it
				}
				d.Config, d.ConfigRevision = a.Previous, 0
				if i := strings.LastIndexByte(a.Previous, '.'); i >= 0 {
					d.ConfigRevision, _ = strconv.ParseInt(a.Previous[i+1:], 10, 64)
				}
				return "", true
			}
			if d.Models[r.Stream] != r.Model {
				return "", false // changed since: leave it
			}
			if a.Previous == "" {
				delete(d.Models, r.Stream)
			} else {
				d.Models[r.Stream] = a.Previous
			}
			return "", true
		})
		if err != nil {
			fmu.Lock()
			failed++
			fmu.Unlock()
			a.Error = "rollback: " + err.Error()
			return
		}
		c.setPhase(a, api.PhaseRolledBack, a.Error)
	})
	if failed == 0 {
		r.State, r.Finished = api.RolloutRolledBack, c.cfg.Now()
		c.cfg.Logger.Info("rollout rolled back", "rollout", r.ID, "agents", len(idx), "reason", r.Reason)
	}
}

func (c *Controller) parallel(n int, fn func(i int)) {
	if n == 0 {
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(n, c.cfg.Workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// updateDesired applies change to agent's desired state with
// compare-and-set, incrementing the revision, and returns what change
// returned. change returning false writes nothing.
func (c *Controller) updateDesired(ctx context.Context, agent, rollout string, change func(d *wire.Desired) (string, bool)) (string, error) {
	for attempt := 0; ; attempt++ {
		var d wire.Desired
		var rev uint64
		e, err := c.desired.Get(ctx, agent)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return "", fmt.Errorf("read desired state of %s: %w", agent, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &d); err != nil {
				return "", fmt.Errorf("desired state of %s is not JSON: %w", agent, err)
			}
		}
		if d.Models == nil {
			d.Models = map[string]string{}
		}
		out, write := change(&d)
		if !write {
			return out, nil
		}
		d.Revision++
		d.Rollout, d.Updated = rollout, c.cfg.Now().UTC()
		b, _ := json.Marshal(d)
		if rev == 0 {
			_, err = c.desired.Create(ctx, agent, b)
		} else {
			_, err = c.desired.Update(ctx, agent, b, rev)
		}
		if err == nil {
			return out, nil
		}
		if attempt >= 5 {
			return "", fmt.Errorf("write desired state of %s: %w", agent, err)
		}
	}
}

// parseCanary turns "2" or "10%" of n targets into a count.
func parseCanary(s string, n int) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if n >= 2 {
			return 1, nil
		}
		return 0, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("canary %q: give a count like 2 or a share like 10%%", s)
		}
		k := int(math.Ceil(f * float64(n) / 100))
		return min(k, n), nil
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 0 {
		return 0, fmt.Errorf("canary %q: give a count like 2 or a share like 10%%", s)
	}
	return min(k, n), nil
}

// selectTargets parses to ("all", "group=G", "device=D") against devs.
func selectTargets(to string, devs []api.Device) ([]api.Device, error) {
	to = strings.TrimSpace(to)
	var match func(d api.Device) bool
	switch {
	case to == "all":
		match = func(api.Device) bool { return true }
	case strings.HasPrefix(to, "group=") && len(to) > len("group="):
		g := to[len("group="):]
		match = func(d api.Device) bool { return d.Group == g }
	case strings.HasPrefix(to, "device=") && len(to) > len("device="):
		id := to[len("device="):]
		if err := names.ValidAgentID(id); err != nil {
			return nil, &api.BadRequestError{Err: fmt.Errorf("rollouts.start: --to %s: %w", to, err)}
		}
		match = func(d api.Device) bool { return d.ID == id }
	default:
		return nil, &api.BadRequestError{Err: fmt.Errorf("rollouts.start: --to %q: give all, group=G or device=D", to)}
	}
	var out []api.Device
	for _, d := range devs {
		if match(d) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func newID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "ro-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
