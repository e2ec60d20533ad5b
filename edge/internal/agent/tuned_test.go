package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/models/eval"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestTunedProfileIsTheEvaluated: firmware-configs/generic-sensor-tuned.yaml
// gives the agent the detector settings `make eval` measures (models/eval
// TunedEdge), so the README's NAB figures are those of a shipped profile.
func TestTunedProfileIsTheEvaluated(t *testing.T) {
	p, err := profile.Load("../../../firmware-configs/generic-sensor-tuned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("shipped profile: %v", err)
	}
	s := p.Defaults().StreamFor("sensors/dev-1/temp")
	c := detectConfig(s)
	want := eval.TunedEdge
	if s.Scorer != profile.ScorerModel || s.Model != "ae-edge" || (s.Score == profile.ScoreResidual) != want.Residual ||
		c.Likelihood != want.Likelihood || c.Novelty != want.Novelty || c.Volatility != want.Volatility || c.Seasonal.Average != want.Seasonal.Average || c.Seasonal.High != want.Seasonal.High || c.RangeMargin != want.RangeMargin || c.StuckRun != want.StuckRun ||
		c.ScoreHigh != want.ScoreHigh || c.Low != want.Low || c.High != want.High || c.CooldownReadings != want.Cooldown || s.AnomalyWindow != want.AnomalyForward {
		t.Fatalf("profile stream %+v\ndetect config %+v\nevaluated %+v", s, c, want)
	}
	// The agent builds its detectors from it.
	p.Agent.ID = "gw-tuned"
	p.DataDir = t.TempDir()
	a, err := New(Options{Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.newDetector("", s)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Config(); got.Likelihood.Window != 1000 || got.Novelty.Bins != 12 || got.Volatility.Average != 100 || got.Low != 0.99 {
		t.Fatalf("detector config %+v", got)
	}
}

// TestAgentEventSource: with the tuned profile, events name the stage that
// raised them, through a real mosquitto and NATS: a reading far outside
// the stream's range so far is an anomaly from the range rule (before the
// model's likelihood stage is warm, the rule already judges), and a sensor
// that then freezes (the same reading 60 times; the noisy stream never
// repeated a value before) is one anomaly from the stuck-value rule, at its
// 50th repeat.
func TestAgentEventSource(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := shippedProfile(t, "generic-sensor-tuned.yaml", srv.URL(), mq.URL())
	a, _ := runAgent(t, p)

	pub := publisher(t, mq.URL(), "", "")
	const topic = "sensors/press-1/temp"
	spikeTS := publishSeries(t, pub, topic, 200, 150)
	t0 := spikeTS.Add(-150 * time.Second) // publishSeries: one reading a second
	for i := 200; i < 260; i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		if tok := pub.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%d,"value":20.5}`, ts.UnixMilli())); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	stuckTS := t0.Add(250 * time.Second)
	waitFor(t, "all readings", func() bool { return a.State().Readings == 260 })
	waitFor(t, "the outbox to drain", func() bool { return a.State().OutboxDepth == 0 && a.State().Anomalies >= 2 })

	got := edgetest.Events(t, js)
	var sources []string
	for _, ev := range got {
		switch {
		case ev.TS.Equal(spikeTS):
			if ev.Kind != wire.KindAnomaly || ev.Source != "range" || ev.Model != "ae-edge@1" {
				t.Fatalf("the spike's event %+v, want an anomaly from the range rule", ev)
			}
		case ev.TS.Equal(stuckTS):
			if ev.Kind != wire.KindAnomaly || ev.Source != "stuck" || ev.Value != 20.5 {
				t.Fatalf("the frozen sensor's event %+v, want an anomaly from the stuck-value rule", ev)
			}
		}
		sources = append(sources, ev.TS.Sub(t0).String()+" "+ev.Source)
	}
	if want := []string{"2m30s range", "4m10s stuck"}; len(sources) != 2 || sources[0] != want[0] || sources[1] != want[1] {
		t.Fatalf("events (time since the first reading, source) %v, want %v", sources, want)
	}
}
