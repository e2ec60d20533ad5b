package eval

import (
	"path/filepath"
	"testing"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/nab"
	"github.com/outpost-iot/outpost/models/stock"
)

// TestTunedMatchesAgentDetector: the tuned edge configuration `make eval`
// runs (TunedEdge) is the agent's detect.Detector with the model scorer
// (|residual| / scale), the likelihood stage, the novelty, volatility and seasonal
// channels and the range rule,
// built from the settings a profile gives (window 96, thresholds,
// cool-down in readings, written out here as a profile would hold them):
// same score, level and events reading for reading on NAB series, and not
// every anomaly is the range rule's.
func TestTunedMatchesAgentDetector(t *testing.T) {
	m, model, err := stock.Load(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TunedEdge.WithDefaults()
	for _, file := range []string{"ambient_temperature_system_failure.csv", "nyc_taxi.csv"} {
		s, err := nab.ReadSeries(filepath.Join(repoCorpus, "data", "realKnownCause", file))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := NewModelDetector(m, model, cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := modelscore.NewRunner(m, model)
		if err != nil {
			t.Fatal(err)
		}
		d, err := detect.NewWithScorer(detect.Config{Window: 96, Low: 0.99, High: 1, CooldownReadings: 30,
			Likelihood: detect.LikelihoodConfig{Window: 1000, Average: 10, Floor: 0.05}, RangeMargin: 0.005,
			Novelty: detect.NoveltyConfig{Bins: 12, Length: 3, High: 1, Holdoff: 150}, Volatility: detect.VolatilityConfig{Average: 100, High: 0.5},
			Seasonal: detect.SeasonalConfig{Average: 50}}, modelscore.New(r))
		if err != nil {
			t.Fatal(err)
		}
		var anomalies, outside, novel, residual int
		for i, ts := range s.Times {
			v := s.Values[i][0]
			want := ref.Judge(ts, []float64{v})
			got := d.Judge(ts, v)
			if got.Score != want.Score || got.Level != want.Level || got.Emit != want.Emit {
				t.Fatalf("%s reading %d: agent %v %v %v, eval %v %v %v", file, i, got.Score, got.Level, got.Emit, want.Score, want.Level, want.Emit)
			}
			if got.Warm && (got.Score < 0 || got.Score > 1) && !got.OutOfRange {
				t.Fatalf("%s reading %d: likelihood score %v", file, i, got.Score)
			}
			if got.Emit && got.Level == Anomaly {
				anomalies++
				if got.OutOfRange {
					outside++
				} else if got.Novelty >= 1 {
					novel++
				} else if got.Novelty < 1 && got.Volatility < TunedEdge.Volatility.High && got.Seasonal < 1 {
					residual++
				}
			}
		}
		if anomalies == 0 || outside == anomalies {
			t.Fatalf("%s: %d anomalies, %d out of range: the likelihood stages raised none", file, anomalies, outside)
		}
		t.Logf("%s: %d anomaly events: %d out of range, %d novel, %d by the model's residual, %d by the volatility or seasonal channel", file, anomalies, outside, novel, residual, anomalies-outside-novel-residual)
	}
}

// TestTunedDefaults: the stock detectors run the tuned settings unless
// Plain; flags' thresholds override the tuned ones.
func TestTunedDefaults(t *testing.T) {
	d, err := StockDetectors(StockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.EdgeLow != TunedEdge.Low || d.EdgeHigh != TunedEdge.High {
		t.Fatalf("edge thresholds %v %v", d.EdgeLow, d.EdgeHigh)
	}
	d, _ = StockDetectors(StockOptions{EdgeHigh: 0.6})
	if d.EdgeLow != TunedEdge.Low || d.EdgeHigh != 0.6 {
		t.Fatalf("edge thresholds with --model-high: %v %v", d.EdgeLow, d.EdgeHigh)
	}
	m, _, _ := stock.Load(stock.Edge)
	d, _ = StockDetectors(StockOptions{Plain: true})
	if d.EdgeLow != m.Low || d.EdgeHigh != m.High {
		t.Fatalf("plain thresholds %v %v, manifest %v %v", d.EdgeLow, d.EdgeHigh, m.Low, m.High)
	}
	c := ModelConfig{Cooldown: 7, Likelihood: detect.LikelihoodConfig{Window: 300}}.tuned(TunedEdge)
	if c.Cooldown != 7 || c.Likelihood.Window != 300 || c.Residual != TunedEdge.Residual || c.RangeMargin != TunedEdge.RangeMargin || c.High != TunedEdge.High || c.ScoreHigh != TunedEdge.ScoreHigh {
		t.Fatalf("tuned %+v", c)
	}
	// Residual (--residual) is kept when asked for.
	if c := (ModelConfig{Residual: true}).tuned(TunedEdge); !c.Residual {
		t.Fatalf("tuned with residual: %+v", c)
	}
}
