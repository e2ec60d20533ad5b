package agent

import (
	"testing"

	"github.com/outpost-iot/outpost/models/eval"
	"github.com/outpost-iot/outpost/shared/profile"
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
		c.Likelihood != want.Likelihood || c.Novelty != want.Novelty || c.Volatility != want.Volatility || c.Seasonal.Average != want.Seasonal.Average || c.Seasonal.High != want.Seasonal.High || c.RangeMargin != want.RangeMargin ||
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
