package fleet

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/service"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// run executes the root command in-process and returns stdout and stderr.
func run(ctx context.Context, args ...string) (string, string, error) {
	var out, errb testenv.Buffer
	err := runTo(ctx, &out, &errb, args...)
	return out.String(), errb.String(), err
}

func runTo(ctx context.Context, out, errw io.Writer, args ...string) error {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errw)
	return root.ExecuteContext(ctx)
}

func startService(t *testing.T) (*service.Service, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := service.Start(ctx, service.Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	t.Cleanup(svc.Stop)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return svc, js
}

func publish(t *testing.T, js jetstream.JetStream, subject string, v any, msgID string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := js.Publish(context.Background(), subject, b, opts...); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

func event(agent string, seq uint64) wire.Event {
	return wire.Event{Agent: agent, Seq: seq, Stream: "sensors/line-" + agent + "/vib", TS: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC),
		Kind: wire.KindAnomaly, Score: 0.97, Low: 0.4, High: 0.9, Value: 3.5, Model: "vib@2", Source: "novelty", Created: time.Now().UTC()}
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

func TestFleetAgainstLiveService(t *testing.T) {
	svc, js := startService(t)
	url := svc.NATSURL()
	ctx := context.Background()
	publish(t, js, names.StateSubject("gw-a"), wire.State{Agent: "gw-a", TS: time.Now().UTC(), Heartbeat: wire.Duration(5 * time.Second), Version: "v1.0.0", Profile: "vib",
		Models: map[string]string{"sensors/line-gw-a/vib": "vib@2"}, OutboxDepth: 7, Drops: 1, LastError: "uplink: no responders"}, "")
	publish(t, js, names.EventSubject("gw-a"), event("gw-a", 1), names.MsgID("gw-a", 1))
	publish(t, js, names.EventSubject("gw-b"), event("gw-b", 1), names.MsgID("gw-b", 1))
	waitFor(t, "device registered", func() bool { return len(svc.Registry().Devices()) == 1 })

	out, _, err := run(ctx, "--nats", url, "devices", "list", "-o", "json")
	if err != nil {
		t.Fatalf("devices list: %v", err)
	}
	var devs []map[string]any
	if err := json.Unmarshal([]byte(out), &devs); err != nil {
		t.Fatalf("devices list JSON: %v\n%s", err, out)
	}
	if len(devs) != 1 || devs[0]["id"] != "gw-a" || devs[0]["online"] != true || devs[0]["version"] != "v1.0.0" {
		t.Errorf("devices = %v", devs)
	}
	if m, _ := devs[0]["models"].(map[string]any); m["sensors/line-gw-a/vib"] != "vib@2" || devs[0]["outbox_depth"] != 7.0 ||
		devs[0]["drops"] != 1.0 || devs[0]["last_error"] != "uplink: no responders" {
		t.Errorf("device registry fields = %v", devs[0])
	}
	if ls, _ := devs[0]["last_seen"].(string); ls == "" {
		t.Errorf("last_seen missing: %v", devs[0])
	} else if _, err := time.Parse(time.RFC3339, ls); err != nil {
		t.Errorf("last_seen %q is not RFC 3339: %v", ls, err)
	}

	out, _, err = run(ctx, "--nats", url, "devices", "list")
	if err != nil || !strings.Contains(out, "gw-a") || !strings.Contains(out, "online") || !strings.HasPrefix(out, "ID") ||
		!strings.Contains(out, "sensors/line-gw-a/vib=vib@2") || !strings.Contains(out, "uplink: no responders") {
		t.Errorf("devices list table = %q, %v", out, err)
	}

	// Both events are re-scored; wait for the verdicts (no window: the
	// edge kind decides, so both are confirmed).
	waitFor(t, "verdicts", func() bool { return len(svc.Verdicts().Latest(0)) == 2 })
	out, _, err = run(ctx, "--nats", url, "events", "list", "--agent", "gw-b", "--since", "1h", "--limit", "10", "-o", "json")
	if err != nil {
		t.Fatalf("events list: %v", err)
	}
	var evs []map[string]any
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("events list JSON: %v\n%s", err, out)
	}
	if len(evs) != 1 || evs[0]["agent"] != "gw-b" || evs[0]["seq"] != 1.0 || evs[0]["kind"] != "anomaly" ||
		evs[0]["score"] != 0.97 || evs[0]["ts"] != "2026-05-06T07:08:09Z" || evs[0]["stream"] != "sensors/line-gw-b/vib" ||
		evs[0]["source"] != "novelty" || evs[0]["verdict"] != "confirmed" || evs[0]["verdict_score"] != 0.97 || evs[0]["verdict_model"] != "forecast-cloud@1" {
		t.Errorf("events = %v", evs)
	}
	out, _, err = run(ctx, "--nats", url, "events", "list")
	if err != nil || strings.Count(out, "sensors/line-") != 2 || !strings.Contains(out, "SOURCE") || strings.Count(out, " novelty ") != 2 {
		t.Errorf("events list table = %q, %v", out, err)
	}

	out, _, err = run(ctx, "--nats", url, "verdicts", "list", "--agent", "gw-a", "-o", "json")
	var vs []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &vs) != nil || len(vs) != 1 || vs[0]["agent"] != "gw-a" || vs[0]["decision"] != "confirmed" {
		t.Errorf("verdicts list = %q, %v", out, err)
	}
	out, _, err = run(ctx, "--nats", url, "verdicts", "list")
	if err != nil || !strings.Contains(out, "DECISION") || strings.Count(out, "forecast-cloud@1") != 2 {
		t.Errorf("verdicts list table = %q, %v", out, err)
	}

	out, _, err = run(ctx, "--nats", url, "version", "-o", "json")
	var v struct{ Client, Service string }
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Client == "" || v.Service == "" {
		t.Errorf("version = %q, %v", out, err)
	}

	if _, _, err := run(ctx, "--nats", url, "events", "list", "--since", "soon"); err == nil || !strings.Contains(err.Error(), "15m") {
		t.Errorf("bad --since: err = %v, want a hint", err)
	}
	if _, _, err := run(ctx, "--nats", url, "devices", "list", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "-o json") {
		t.Errorf("-o yaml: err = %v", err)
	}
}

func TestFleetEventsTail(t *testing.T) {
	svc, js := startService(t)
	publish(t, js, names.EventSubject("gw-old"), event("gw-old", 1), names.MsgID("gw-old", 1))

	ctx, cancel := context.WithCancel(context.Background())
	var out, errb testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- runTo(ctx, &out, &errb, "--nats", svc.NATSURL(), "events", "tail", "-o", "json") }()
	waitFor(t, "tail to start", func() bool { return strings.Contains(errb.String(), "following") })
	publish(t, js, names.EventSubject("gw-new"), event("gw-new", 9), names.MsgID("gw-new", 9))
	waitFor(t, "tailed event", func() bool { return strings.Contains(out.String(), "gw-new") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop after its context was cancelled")
	}
	if strings.Contains(out.String(), "gw-old") {
		t.Errorf("tail printed an event published before it started:\n%s", out.String())
	}
	var e struct {
		Agent string `json:"agent"`
		Seq   uint64 `json:"seq"`
	}
	line := strings.SplitN(strings.TrimSpace(out.String()), "\n", 2)[0]
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Agent != "gw-new" || e.Seq != 9 {
		t.Errorf("tail line %q: %+v, %v", line, e, err)
	}
}

func TestFleetErrors(t *testing.T) {
	ctx := context.Background()
	url := "nats://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	_, _, err := run(ctx, "--nats", url, "--timeout", "1s", "devices", "list")
	if err == nil || !strings.Contains(err.Error(), "cannot reach NATS at "+url) || !strings.Contains(err.Error(), "is outpost-cloud running?") {
		t.Errorf("unreachable NATS: err = %v", err)
	}
	// NATS up but no outpost-cloud service on it.
	ns := testenv.StartNATS(t)
	_, _, err = run(ctx, "--nats", ns.URL(), "devices", "list")
	if err == nil || !strings.Contains(err.Error(), "is outpost-cloud running") {
		t.Errorf("no service: err = %v", err)
	}
	t.Setenv(EnvNATS, url)
	_, _, err = run(ctx, "--timeout", "1s", "devices", "list")
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Errorf("$%s not used: err = %v", EnvNATS, err)
	}
	out, _, err := run(ctx, "completion", "bash")
	if err != nil || !strings.Contains(out, "fleet") {
		t.Errorf("completion bash: %v", err)
	}
}
