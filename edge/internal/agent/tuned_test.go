package agent

import (
	"testing"

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

// TestAgentEventSource: with the tuned profile a reading far outside the
// stream's range so far is an anomaly event whose source names the range
// rule (before the model's likelihood stage is warm, the rule already
// judges), through a real mosquitto and NATS.
func TestAgentEventSource(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := shippedProfile(t, "generic-sensor-tuned.yaml", srv.URL(), mq.URL())
	a, _ := runAgent(t, p)

	pub := publisher(t, mq.URL(), "", "")
	const topic = "sensors/press-1/temp"
	spikeTS := publishSeries(t, pub, topic, 200, 150)
	waitFor(t, "all readings", func() bool { return a.State().Readings == 200 })
	waitFor(t, "the outbox to drain", func() bool { return a.State().OutboxDepth == 0 && a.State().Anomalies >= 1 })

	got := edgetest.Events(t, js)
	for _, ev := range got {
		if ev.TS.Equal(spikeTS) {
			if ev.Kind != wire.KindAnomaly || ev.Source != "range" || ev.Model != "ae-edge@1" {
				t.Fatalf("the spike's event %+v, want an anomaly from the range rule", ev)
			}
			return
		}
	}
	t.Fatalf("no event at the spike (%v); events: %+v", spikeTS, got)
}
