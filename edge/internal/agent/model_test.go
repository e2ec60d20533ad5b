package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// modelProfile is the shipped firmware-configs/generic-sensor-model.yaml
// pointed at the test's mosquitto and NATS.
func modelProfile(t *testing.T, natsURL, mqttURL string) profile.Profile {
	t.Helper()
	return shippedProfile(t, "generic-sensor-model.yaml", natsURL, mqttURL)
}

// shippedProfile is the shipped firmware-configs/NAME pointed at the
// test's mosquitto and NATS, as agent gw-model.
func shippedProfile(t *testing.T, name, natsURL, mqttURL string) profile.Profile {
	t.Helper()
	p, err := profile.Load("../../../firmware-configs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("shipped profile: %v", err)
	}
	p.Agent.ID = "gw-model"
	p.Agent.Heartbeat = 200 * time.Millisecond
	p.MQTT.Embedded, p.MQTT.URL = nil, mqttURL
	p.NATS.URL = natsURL
	p.DataDir = t.TempDir()
	p.SummaryInterval = time.Hour
	return p
}

// TestAgentModelScorer: a stream scored by the stock int8 model through a
// real mosquitto and NATS: a spike after smooth readings is exactly one
// anomaly event, naming the model, with the manifest's thresholds; the
// state reports the model per stream. After a restart on the same data
// directory the model's state (its window and residual scale) comes back
// from the checkpoint: the very first reading, a spike, is an event, with
// no second warm-up.
func TestAgentModelScorer(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, srv.URL(), mq.URL())
	a, stop := runAgent(t, p)
	low, high := a.runners["ae-edge"].Manifest().Low, a.runners["ae-edge"].Manifest().High
	model := a.runners["ae-edge"].Model()
	if model != "ae-edge@1" {
		t.Fatalf("model %q", model)
	}
	if got := a.State().Models["sensors/#"]; got != model {
		t.Fatalf("state models %v", a.State().Models)
	}

	pub := publisher(t, mq.URL(), "", "")
	const topic = "sensors/press-1/temp"
	spikeTS := publishSeries(t, pub, topic, 420, 300)
	waitFor(t, "all readings", func() bool { return a.State().Readings == 420 })
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
	if ev.Agent != "gw-model" || ev.Stream != topic || !ev.TS.Equal(spikeTS) || ev.Kind != wire.KindAnomaly ||
		ev.Model != "ae-edge@1" || ev.Source != "score" || ev.Score < high || ev.Low != low || ev.High != high ||
		len(ev.Window) != 96 || ev.Window[95] != ev.Value {
		t.Fatalf("event %+v (spike at %v)", ev, spikeTS)
	}
	if st := a.State(); st.Anomalies != 1 || st.Uncertain != 0 {
		t.Fatalf("state: %d anomalies, %d uncertain", st.Anomalies, st.Uncertain)
	}
	stop()

	// Restart: the first reading is a spike and is judged at once (a
	// fresh model scorer would need 95 readings). The first spike raised
	// the residual scale, which decays slowly: this one is larger.
	a, _ = runAgent(t, p)
	ts := spikeTS.Add(120 * time.Second)
	if tok := pub.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%d,"value":%g}`, ts.UnixMilli(), 100.0)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, "the spike's event after the restart", func() bool {
		st := a.State()
		return st.Anomalies == 1 && st.OutboxDepth == 0
	})
	msgs = edgetest.Messages(t, js, names.StreamEvents)
	if len(msgs) != 2 {
		t.Fatalf("%d events after the restart, want 2", len(msgs))
	}
	ev = wire.Event{}
	if err := json.Unmarshal(msgs[1].Data, &ev); err != nil || !ev.TS.Equal(ts) || ev.Model != "ae-edge@1" || ev.Kind != wire.KindAnomaly {
		t.Fatalf("event after restart %+v: %v", ev, err)
	}
	if r := a.State().Readings; r != 1 {
		t.Fatalf("second run judged %d readings, want 1", r)
	}
}

// BenchmarkDecodeJudgeModel is the in-process path of a reading through
// decode (JSON) → window → infer (the stock int8 model, on every reading)
// → decide, over 100 streams sharing one interpreter, as the agent's
// handler runs it (no MQTT, no outbox). readings/s is per core.
func BenchmarkDecodeJudgeModel(b *testing.B) {
	p, err := profile.Load("../../../firmware-configs/generic-sensor-model.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p.Agent.ID = "gw-bench"
	a, err := New(Options{Profile: p})
	if err != nil {
		b.Fatal(err)
	}
	dec, err := decode.NewRegistry().NewWith("json", decodeOptions(p.MQTT.Topics[0]))
	if err != nil {
		b.Fatal(err)
	}
	const streams = 100
	topics := make([]string, streams)
	dets := make([]*detect.Detector, streams)
	for s := range dets {
		topics[s] = fmt.Sprintf("sensors/dev-%d/temp", s)
		if dets[s], err = a.newDetector(topics[s], p.Defaults().StreamFor(topics[s])); err != nil {
			b.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	payloads := make([][]byte, 512)
	for i := range payloads {
		v := 20 + 2*math.Sin(float64(i)*2*math.Pi/50)
		payloads[i] = []byte(fmt.Sprintf(`{"ts":%d,"value":%.4f}`, t0.Add(time.Duration(i)*time.Second).UnixMilli(), v))
	}
	var judged []detect.Judgement
	step := func(i int) {
		s := i % streams
		rs, err := decode.DecodeAt(dec, topics[s], payloads[(i/streams)%len(payloads)], t0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rs {
			// A distinct time per reading (the payloads repeat).
			judged, _ = dets[s].Offer(judged[:0], t0.Add(time.Duration(i/streams)*time.Second), r.Value)
		}
	}
	for i := 0; i < 200*streams; i++ { // past the model's warm-up
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step(200*streams + i)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}
