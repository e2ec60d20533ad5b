package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is an injected clock that tests move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func quietLogger() *slog.Logger          { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func startCfg(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.NATSListen == "" && cfg.NATSURL == "" {
		cfg.NATSListen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agent publishes as an edge agent would.
type agent struct {
	t  *testing.T
	id string
	js jetstream.JetStream
}

func newAgent(t *testing.T, url, id string) *agent {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{t: t, id: id, js: js}
}

func (a *agent) state(hb time.Duration) {
	a.t.Helper()
	b, _ := json.Marshal(wire.State{Agent: a.id, TS: time.Now().UTC(), Heartbeat: wire.Duration(hb), Version: "v0.1.0", Profile: "press", Revision: 3, Started: time.Now().UTC()})
	if _, err := a.js.Publish(context.Background(), names.StateSubject(a.id), b); err != nil {
		a.t.Fatalf("publish state: %v", err)
	}
}

func (a *agent) event(seq uint64, kind wire.Kind, msgID string) *jetstream.PubAck {
	a.t.Helper()
	ev := wire.Event{Agent: a.id, Seq: seq, Stream: "sensors/press-1/temp", TS: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(seq) * time.Second),
		Kind: kind, Score: 0.5 + float64(seq)/100, Low: 0.3, High: 0.8, Value: 42, Model: "ae@1", Created: time.Now().UTC()}
	b, _ := json.Marshal(ev)
	ack, err := a.js.Publish(context.Background(), names.EventSubject(a.id), b, jetstream.WithMsgID(msgID))
	if err != nil {
		a.t.Fatalf("publish event: %v", err)
	}
	return ack
}

func apiClient(t *testing.T, url string) *api.Client {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return api.NewClient(nc)
}

func TestStartIsIdempotent(t *testing.T) {
	ns := testenv.StartNATS(t)
	first := startCfg(t, Config{NATSURL: ns.URL()})
	// A second replica while the first runs, then a restart of the first.
	second := startCfg(t, Config{NATSURL: ns.URL()})
	first.Stop()
	startCfg(t, Config{NATSURL: ns.URL()})
	second.Stop()

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	ev, err := js.Stream(ctx, names.StreamEvents)
	if err != nil {
		t.Fatalf("events stream: %v", err)
	}
	if got := ev.CachedInfo().Config; got.Duplicates != 2*time.Minute || got.Storage != jetstream.FileStorage || got.Subjects[0] != names.EventsAll {
		t.Errorf("events stream config = %+v", got)
	}
	st, err := js.Stream(ctx, names.StreamState)
	if err != nil {
		t.Fatalf("state stream: %v", err)
	}
	if st.CachedInfo().Config.MaxMsgsPerSubject != 1 {
		t.Errorf("state stream MaxMsgsPerSubject = %d, want 1", st.CachedInfo().Config.MaxMsgsPerSubject)
	}
	for _, name := range []string{names.StreamSummaries, names.StreamVerdicts} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	if _, err := js.KeyValue(ctx, names.BucketDesired); err != nil {
		t.Errorf("KV %s: %v", names.BucketDesired, err)
	}
	if _, err := js.ObjectStore(ctx, names.ObjectModels); err != nil {
		t.Errorf("object store %s: %v", names.ObjectModels, err)
	}
	if _, err := js.Consumer(ctx, names.StreamEvents, "outpost-cloud-events"); err != nil {
		t.Errorf("durable consumer: %v", err)
	}
}

func TestIngestDedupeOfflineAndRestart(t *testing.T) {
	clk := &clock{}
	dir := t.TempDir()
	svc := startCfg(t, Config{DataDir: dir, Now: clk.Now})
	url := svc.NATSURL()
	a := newAgent(t, url, "gw-1")
	c := apiClient(t, url)
	ctx := context.Background()

	a.state(time.Second)
	a.event(1, wire.KindAnomaly, names.MsgID("gw-1", 1))
	a.event(2, wire.KindUncertain, names.MsgID("gw-1", 2))
	if ack := a.event(2, wire.KindUncertain, names.MsgID("gw-1", 2)); !ack.Duplicate {
		t.Errorf("same Msg-Id within the window: PubAck.Duplicate = false, want JetStream to drop it")
	}
	// Outside JetStream's window: same seq, different Msg-Id.
	a.event(1, wire.KindAnomaly, "gw-1:1:resent")
	a.event(3, wire.KindAnomaly, names.MsgID("gw-1", 3))

	m := svc.metrics
	waitFor(t, "3 events and 1 duplicate", func() bool {
		return testutil.ToFloat64(m.EventsReceived.WithLabelValues("anomaly"))+testutil.ToFloat64(m.EventsReceived.WithLabelValues("uncertain")) == 3 &&
			testutil.ToFloat64(m.EventsDuplicate) == 1
	})
	if got := testutil.ToFloat64(m.EventsReceived.WithLabelValues("anomaly")); got != 2 {
		t.Errorf("anomalies received = %v, want 2", got)
	}
	if hwm, err := svc.Events().HighWaterMark(ctx, "gw-1"); hwm != 3 || err != nil {
		t.Errorf("high-water mark = %d, %v; want 3", hwm, err)
	}
	latest := svc.Events().Latest(10)
	if len(latest) != 3 || latest[0].Seq != 3 || latest[2].Seq != 1 {
		t.Errorf("latest = %+v, want seqs 3,2,1", latest)
	}

	waitFor(t, "gw-1 online", func() bool {
		devs, err := c.Devices(ctx)
		return err == nil && len(devs) == 1 && devs[0].Online
	})
	devs, _ := c.Devices(ctx)
	if d := devs[0]; d.ID != "gw-1" || d.Version != "v0.1.0" || d.Profile != "press" || time.Duration(d.Heartbeat) != time.Second || d.LastSeen.IsZero() {
		t.Errorf("device = %+v", d)
	}

	evs, err := c.Events(ctx, api.EventsQuery{Agent: "gw-1"})
	if err != nil {
		t.Fatalf("events.list: %v", err)
	}
	if len(evs) != 3 || evs[0].Seq != 1 || evs[1].Seq != 2 || evs[2].Seq != 3 {
		t.Fatalf("events.list = %+v, want seqs 1,2,3 (duplicates skipped)", evs)
	}
	if evs[1].Kind != wire.KindUncertain || evs[0].Stream != "sensors/press-1/temp" || evs[0].StreamSeq == 0 {
		t.Errorf("event = %+v", evs[1])
	}
	if evs, err := c.Events(ctx, api.EventsQuery{Limit: 2}); err != nil || len(evs) != 2 || evs[1].Seq != 3 {
		t.Errorf("events.list limit 2 = %+v, %v; want the newest two", evs, err)
	}
	if evs, err := c.Events(ctx, api.EventsQuery{Agent: "gw-2"}); err != nil || len(evs) != 0 {
		t.Errorf("events.list other agent = %+v, %v; want none", evs, err)
	}
	if evs, err := c.Events(ctx, api.EventsQuery{Since: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); err != nil || len(evs) != 0 {
		t.Errorf("events.list since future = %+v, %v; want none", evs, err)
	}
	_, err = c.Events(ctx, api.EventsQuery{Since: "yesterday"})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeBadRequest || !strings.Contains(apiErr.Message, "15m") {
		t.Errorf("bad since: err = %v, want code 400 with a hint", err)
	}

	// Missed heartbeats: 3 x 1s later the agent is offline.
	clk.Advance(3*time.Second + time.Millisecond)
	devs, err = c.Devices(ctx)
	if err != nil || len(devs) != 1 || devs[0].Online {
		t.Errorf("after 3 missed heartbeats devices = %+v, %v; want gw-1 offline", devs, err)
	}
	a.state(time.Second)
	waitFor(t, "gw-1 online again", func() bool {
		devs, err := c.Devices(ctx)
		return err == nil && len(devs) == 1 && devs[0].Online
	})

	// Restart on the same store: events.list reads the stream, the registry
	// is rebuilt from the state stream.
	addr := strings.TrimPrefix(url, "nats://")
	svc.Stop()
	svc2 := startCfg(t, Config{DataDir: dir, NATSListen: addr, Now: clk.Now})
	c2 := apiClient(t, svc2.NATSURL())
	evs, err = c2.Events(ctx, api.EventsQuery{})
	if err != nil || len(evs) != 3 {
		t.Errorf("events.list after restart = %d events, %v; want 3", len(evs), err)
	}
	waitFor(t, "gw-1 in registry after restart", func() bool {
		devs, err := c2.Devices(ctx)
		return err == nil && len(devs) == 1 && devs[0].ID == "gw-1"
	})
	// The durable consumer resumes after the acknowledged events.
	a2 := newAgent(t, svc2.NATSURL(), "gw-1")
	if hwm, err := svc2.Events().HighWaterMark(ctx, "gw-1"); hwm != 3 || err != nil {
		t.Errorf("high-water mark after restart = %d, %v; want 3 (from the KV bucket)", hwm, err)
	}
	// Outside the Msg-Id window and across the restart: still a duplicate.
	a2.event(3, wire.KindAnomaly, "gw-1:3:after-restart")
	a2.event(4, wire.KindAnomaly, names.MsgID("gw-1", 4))
	waitFor(t, "event 4 after restart", func() bool {
		hwm, _ := svc2.Events().HighWaterMark(ctx, "gw-1")
		return hwm == 4
	})
	if got := testutil.ToFloat64(svc2.metrics.EventsDuplicate); got != 1 {
		t.Errorf("duplicates after restart = %v, want 1", got)
	}
	if n := len(svc2.Events().Latest(0)); n != 1 {
		t.Errorf("after restart the ring holds %d events, want only the new one", n)
	}
}

func TestHTTP(t *testing.T) {
	svc := startCfg(t, Config{})
	a := newAgent(t, svc.NATSURL(), "gw-http")
	a.state(5 * time.Second)
	a.event(7, wire.KindAnomaly, names.MsgID("gw-http", 7))
	waitFor(t, "device and event", func() bool {
		return len(svc.Registry().Devices()) == 1 && len(svc.Events().Latest(1)) == 1
	})
	base := "http://" + svc.HTTPAddr()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, body := get("/")
	if code != 200 || !strings.Contains(body, "gw-http") || !strings.Contains(body, "online") ||
		!strings.Contains(body, "sensors/press-1/temp") || !strings.Contains(body, "anomaly") {
		t.Errorf("dashboard = %d, missing device or event:\n%s", code, body)
	}
	code, body = get("/api/v1/devices")
	var devs []api.Device
	if err := json.Unmarshal([]byte(body), &devs); code != 200 || err != nil || len(devs) != 1 || !devs[0].Online {
		t.Errorf("/api/v1/devices = %d %s (%v)", code, body, err)
	}
	code, body = get("/api/v1/events?limit=5")
	var evs []api.Event
	if err := json.Unmarshal([]byte(body), &evs); code != 200 || err != nil || len(evs) != 1 || evs[0].Seq != 7 {
		t.Errorf("/api/v1/events = %d %s (%v)", code, body, err)
	}
	if code, _ := get("/api/v1/events?limit=x"); code != 400 {
		t.Errorf("/api/v1/events?limit=x = %d, want 400", code)
	}
	code, body = get("/metrics")
	for _, want := range []string{
		`outpost_cloud_events_received_total{kind="anomaly"} 1`,
		`outpost_cloud_devices_online 1`,
		`outpost_cloud_state_messages_total 1`,
		`outpost_cloud_events_duplicate_total 0`,
		`outpost_cloud_api_requests_total{endpoint="devices",outcome="ok",transport="http"} 1`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
