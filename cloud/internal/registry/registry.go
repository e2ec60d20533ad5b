// Package registry keeps the fleet's device registry from the agents' state
// messages on the OUTPOST_STATE stream.
//
// Every replica reads the whole stream with an ordered consumer (the stream
// keeps one message per agent), starting from the last message of each
// agent and then following new ones, so each replica has the full registry
// in memory and rebuilds it after a restart.
//
// Bandwidth and per-stream figures come from the summaries' totals, which
// the summaries consumer commits in the KV bucket names.BucketHWM; every
// replica watches the "summaries.*" keys, so all show the same totals.
//
// Online rule: an agent is online when now - LastSeen <= 3 x its stated
// heartbeat interval (DefaultHeartbeat, 15s, when it states none). LastSeen
// is when JetStream stored the state message, not the agent's own clock, so
// a skewed agent clock does not make it look online or offline.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/ingest"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/summaries"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// DefaultHeartbeat is assumed for agents whose state gives no interval.
const DefaultHeartbeat = 15 * time.Second

// MissedHeartbeats is how many intervals may pass before an agent is offline.
const MissedHeartbeats = 3

// Config configures the Registry. Zero values mean the defaults.
type Config struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics receives the counters; nil means none.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
}

type entry struct {
	state    wire.State
	lastSeen time.Time
}

// Registry is the in-memory device registry.
type Registry struct {
	cfg Config

	mu      sync.Mutex
	devices map[string]entry
	totals  map[string]summaries.Totals

	cc      jetstream.ConsumeContext
	watcher jetstream.KeyWatcher
	done    chan struct{}
}

// New returns an empty registry.
func New(cfg Config) *Registry {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, devices: map[string]entry{}, totals: map[string]summaries.Totals{}}
}

// SetMetrics sets the metrics the registry counts into; call before Start.
func (r *Registry) SetMetrics(m *metrics.Metrics) { r.cfg.Metrics = m }

// Start follows the state stream with an ordered consumer.
func (r *Registry) Start(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.OrderedConsumer(ctx, names.StreamState, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.StateAll},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("registry: consumer on %s: %w", names.StreamState, err)
	}
	cc, err := cons.Consume(r.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		r.cfg.Logger.Debug("state consumer", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("registry: consume %s: %w", names.StreamState, err)
	}
	r.cc = cc
	kv, err := js.KeyValue(ctx, names.BucketHWM)
	if err != nil {
		return fmt.Errorf("registry: KV bucket %s: %w", names.BucketHWM, err)
	}
	w, err := kv.Watch(context.Background(), ingest.Key(summaries.MarkName, "*"))
	if err != nil {
		return fmt.Errorf("registry: watch summary totals: %w", err)
	}
	r.watcher = w
	r.done = make(chan struct{})
	go r.watchTotals()
	return nil
}

func (r *Registry) watchTotals() {
	defer close(r.done)
	prefix := summaries.MarkName + "."
	for e := range r.watcher.Updates() {
		if e == nil || e.Operation() != jetstream.KeyValuePut || len(e.Key()) <= len(prefix) {
			continue
		}
		t, err := summaries.DecodeMark(e.Value())
		if err != nil {
			r.cfg.Logger.Warn("registry: summary totals", "key", e.Key(), "err", err)
			continue
		}
		r.mu.Lock()
		r.totals[e.Key()[len(prefix):]] = t
		r.mu.Unlock()
	}
}

// ObserveTotals sets the summary totals of agent.
func (r *Registry) ObserveTotals(agent string, t summaries.Totals) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.totals[agent] = t
}

// Stop stops following the stream and the totals.
func (r *Registry) Stop() {
	if r.cc != nil {
		r.cc.Stop()
		<-r.cc.Closed()
		r.cc = nil
	}
	if r.watcher != nil {
		_ = r.watcher.Stop()
		<-r.done
		r.watcher = nil
	}
}

func (r *Registry) handle(msg jetstream.Msg) {
	var st wire.State
	err := json.Unmarshal(msg.Data(), &st)
	if err == nil {
		var agent string
		agent, err = names.AgentFromSubject(msg.Subject())
		if err == nil && st.Agent != agent {
			err = fmt.Errorf("state agent %q does not match subject agent %q", st.Agent, agent)
		}
	}
	if err != nil {
		if r.cfg.Metrics != nil {
			r.cfg.Metrics.StateInvalid.Inc()
		}
		r.cfg.Logger.Warn("dropping invalid state", "subject", msg.Subject(), "err", err)
		return
	}
	// The message's age since JetStream stored it, applied to our clock:
	// replayed messages (after a restart) keep their real age, live ones
	// are seen now.
	seen := r.cfg.Now()
	if md, err := msg.Metadata(); err == nil {
		if age := time.Since(md.Timestamp); age > 0 {
			seen = seen.Add(-age)
		}
	}
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.StateMessages.Inc()
	}
	r.Observe(st, seen)
}

// Observe records state st stored at seen.
func (r *Registry) Observe(st wire.State, seen time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.devices[st.Agent]; ok && old.lastSeen.After(seen) {
		return
	}
	r.devices[st.Agent] = entry{state: st, lastSeen: seen.UTC()}
}

// Online applies the online rule to a device last seen at lastSeen with the
// stated heartbeat interval.
func Online(now, lastSeen time.Time, heartbeat time.Duration) bool {
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	return now.Sub(lastSeen) <= MissedHeartbeats*heartbeat
}

// Devices returns every known device, sorted by id.
func (r *Registry) Devices() []api.Device {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]api.Device, 0, len(r.devices))
	for id, t := range r.totals {
		if _, ok := r.devices[id]; !ok {
			out = append(out, withTotals(api.Device{ID: id}, t))
		}
	}
	for id, e := range r.devices {
		st := e.state
		out = append(out, withTotals(api.Device{
			ID:           id,
			Online:       Online(now, e.lastSeen, time.Duration(st.Heartbeat)),
			LastSeen:     e.lastSeen,
			Heartbeat:    st.Heartbeat,
			Version:      st.Version,
			Profile:      st.Profile,
			Revision:     st.Revision,
			ConfigStatus: st.ConfigStatus,
			Group:        st.Group,
			Started:      st.Started,
			Models:       st.Models,
			Readings:     st.Readings,
			Anomalies:    st.Anomalies,
			Uncertain:    st.Uncertain,
			OutboxDepth:  st.OutboxDepth,
			Drops:        st.Drops,
			LastError:    st.LastError,
			OutboxBytes:  st.OutboxBytes,
			DecodeErrors: st.DecodeErrors,
			DropsByKind:  st.DropsByKind,
		}, r.totals[id]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func withTotals(d api.Device, t summaries.Totals) api.Device {
	d.RawBytes, d.UplinkBytes, d.Summaries = t.RawBytes, t.UplinkBytes, t.Summaries
	if len(t.Streams) > 0 {
		d.Streams = t.StreamList()
	}
	return d
}

// OnlineCount returns how many devices are online now.
func (r *Registry) OnlineCount() int {
	n := 0
	for _, d := range r.Devices() {
		if d.Online {
			n++
		}
	}
	return n
}
