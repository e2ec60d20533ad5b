package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

func testProfile(t *testing.T, natsURL string) profile.Profile {
	p, err := profile.Parse([]byte(`
name: test
agent:
  id: gw-1
  heartbeat: 200ms
mqtt:
  topics:
    - filter: sensors/+/+
streams:
  - match: sensors/#
    window: 120
    low: 4
    high: 6
    cooldown: 20
summary_interval: 500ms
`))
	if err != nil {
		t.Fatal(err)
	}
	p.NATS.URL = natsURL
	p.DataDir = t.TempDir()
	return p
}

// startAgent runs an agent until the test ends and returns it once its MQTT
// client is subscribed.
func startAgent(t *testing.T, p profile.Profile) *Agent {
	t.Helper()
	ready := make(chan *Agent, 1)
	a, err := New(Options{Profile: p, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(a *Agent) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func publisher(t *testing.T, url, user, pass string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", rand.Int())).
		SetUsername(user).SetPassword(pass))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishSeries publishes smooth readings with one 10-sigma spike at index
// spikeAt and returns the spike's time.
func publishSeries(t *testing.T, c paho.Client, topic string, n, spikeAt int) time.Time {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	// The sine's standard deviation is 2/sqrt(2); noise adds little.
	sigma := math.Sqrt(2*2/2.0 + 0.05*0.05)
	var spikeTS time.Time
	for i := 0; i < n; i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		v := 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + rng.NormFloat64()*0.05
		if i == spikeAt {
			v += 10 * sigma
			spikeTS = ts
		}
		var payload string
		if i%2 == 0 {
			payload = fmt.Sprintf(`{"ts":%d,"value":%g}`, ts.UnixMilli(), v)
		} else {
			payload = fmt.Sprintf(`{"ts":%q,"value":%g}`, ts.Format(time.RFC3339Nano), v)
		}
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	return spikeTS
}

// TestAgentMosquittoToJetStream is the walking skeleton end to end: readings
// through a real mosquitto, one spike, exactly one anomaly event in
// OUTPOST_EVENTS, summaries and a state message.
func TestAgentMosquittoToJetStream(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := testProfile(t, srv.URL())
	p.MQTT.URL = mq.URL()
	p.Metrics.Listen = "127.0.0.1:0"
	a := startAgent(t, p)

	pub := publisher(t, mq.URL(), "", "")
	spikeTS := publishSeries(t, pub, "sensors/press-1/temp", 420, 300)
	pub.Publish("sensors/press-1/temp", 1, false, "not json").Wait()
	pub.Publish("sensors/press-1/temp", 1, false, `{"value":1}`).Wait()

	waitFor(t, "all readings and the bad payloads", func() bool {
		st := a.State()
		return st.Readings == 420 && st.DecodeErrors == 2
	})
	waitFor(t, "the outbox to drain", func() bool { return a.State().OutboxDepth == 0 && a.State().Anomalies >= 1 })

	msgs := edgetest.Messages(t, js, names.StreamEvents)
	if len(msgs) != 1 {
		for _, m := range msgs {
			t.Logf("event: %s", m.Data)
		}
		t.Fatalf("%d events, want exactly 1", len(msgs))
	}
	var ev wire.Event
	if err := json.Unmarshal(msgs[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Agent != "gw-1" || ev.Stream != "sensors/press-1/temp" || !ev.TS.Equal(spikeTS) || ev.Kind != wire.KindAnomaly ||
		ev.Score < 6 || ev.Model != "zscore@1" || ev.Source != "score" || len(ev.Window) != 120 || ev.Window[119] != ev.Value {
		t.Fatalf("event %+v (spike at %v)", ev, spikeTS)
	}
	if got, want := msgs[0].Header.Get(nats.MsgIdHdr), names.MsgID("gw-1", ev.Seq); got != want || msgs[0].Subject != names.EventSubject("gw-1") {
		t.Fatalf("msg id %q subject %q, want %q", got, msgs[0].Subject, want)
	}
	if n := a.DecodeErrors()["sensors/press-1/temp"]; n["syntax"] != 1 || n["no_ts"] != 1 {
		t.Fatalf("decode errors by reason: %v", n)
	}

	// Metrics.
	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"outpost_edge_readings_total 420",
		`outpost_edge_decode_errors_total{reason="syntax"} 1`,
		`outpost_edge_events_total{kind="anomaly",source="score"} 1`,
		"outpost_edge_outbox_records 0",
		"outpost_edge_outbox_bytes 0",
		"outpost_edge_outbox_dropped_records_total 0",
		`outpost_edge_outbox_dropped_by_kind_total{kind="anomaly"} 0`,
		`outpost_edge_outbox_dropped_by_kind_total{kind="summary"} 0`,
		"outpost_edge_judge_duration_seconds_count 420",
		"outpost_edge_receive_to_commit_seconds_count 1",
		"outpost_edge_outbox_commit_seconds_count",
		"outpost_edge_outbox_queue_wait_seconds_count",
		"outpost_edge_outbox_build_seconds_count",
		"outpost_edge_outbox_commits_total",
		"outpost_edge_outbox_commit_writes_total",
		"outpost_edge_uplink_published_total",
		"outpost_edge_mqtt_payload_bytes_total",
	} {
		if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A summary and a heartbeat reach their streams.
	waitFor(t, "a summary", func() bool { return len(edgetest.Messages(t, js, names.StreamSummaries)) > 0 })
	var sum wire.Summary
	if err := json.Unmarshal(edgetest.Messages(t, js, names.StreamSummaries)[0].Data, &sum); err != nil || sum.Agent != "gw-1" || len(sum.Streams) == 0 {
		t.Fatalf("summary %+v: %v", sum, err)
	}
	var st wire.State
	waitFor(t, "a state message with the counters", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, names.StreamState)
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(ctx, names.StateSubject("gw-1"))
		if err != nil {
			return false
		}
		st = wire.State{}
		return json.Unmarshal(m.Data, &st) == nil && st.Readings == 420
	})
	if st.Agent != "gw-1" || st.Version != "test" || st.Anomalies != 1 || st.DecodeErrors != 2 || st.Heartbeat != wire.Duration(200*time.Millisecond) {
		t.Fatalf("state %+v", st)
	}
}

// TestAgentEmbeddedBroker runs the agent with its own broker (with a
// password) and checks a spike still becomes one event.
func TestAgentEmbeddedBroker(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	p := testProfile(t, srv.URL())
	p.MQTT.Embedded = &profile.Embedded{Listen: "127.0.0.1:0", Username: "sensor", Password: "pw"}
	a := startAgent(t, p)

	pub := publisher(t, a.MQTTURL(), "sensor", "pw")
	spikeTS := publishSeries(t, pub, "sensors/dev-2/flow", 330, 310)
	waitFor(t, "the event", func() bool {
		return len(edgetest.Messages(t, js, names.StreamEvents)) >= 1 && a.State().Readings == 330
	})
	msgs := edgetest.Messages(t, js, names.StreamEvents)
	var ev wire.Event
	if len(msgs) != 1 || json.Unmarshal(msgs[0].Data, &ev) != nil || !ev.TS.Equal(spikeTS) || ev.Stream != "sensors/dev-2/flow" {
		t.Fatalf("%d events, first %+v", len(msgs), ev)
	}
}

// TestAgentOutboxSurvivesOutageAndRestart: events committed while NATS is
// down are sent after the agent restarts, with seq continuing.
func TestAgentOutboxSurvivesOutageAndRestart(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := testProfile(t, srv.URL())
	p.MQTT.URL = mq.URL()
	srv.Stop()

	a := startAgentStoppable(t, p)
	pub := publisher(t, mq.URL(), "", "")
	publishSeries(t, pub, "sensors/x/y", 320, 300)
	waitFor(t, "the event in the outbox", func() bool { return a.agent.State().Anomalies == 1 })
	if d := a.agent.State().OutboxDepth; d == 0 {
		t.Fatal("outbox empty while NATS is down")
	}
	a.stop()

	srv.Restart()
	b := startAgent(t, p)
	waitFor(t, "the event after restart", func() bool { return b.State().OutboxDepth == 0 })
	msgs := edgetest.Messages(t, js, names.StreamEvents)
	if len(msgs) != 1 {
		t.Fatalf("%d events, want 1", len(msgs))
	}
	var ev wire.Event
	if err := json.Unmarshal(msgs[0].Data, &ev); err != nil || ev.Kind != wire.KindAnomaly || ev.Seq == 0 {
		t.Fatalf("event %+v: %v", ev, err)
	}
}

type stoppable struct {
	agent *Agent
	stop  func()
}

func startAgentStoppable(t *testing.T, p profile.Profile) stoppable {
	t.Helper()
	ready := make(chan struct{})
	a, err := New(Options{Profile: p, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(*Agent) { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-ready
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	return stoppable{agent: a, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}}
}
