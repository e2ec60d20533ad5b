package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/outpost-iot/outpost/models/stock"
)

// TestModelDetectorSpike streams a noisy cycle with one spike through the
// stock edge model (no cool-down, so every incident is its own): an anomaly
// event at the spike, carrying the model's window, and few others.
func TestModelDetectorSpike(t *testing.T) {
	m, model, err := stock.Load(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewModelDetector(m, model, ModelConfig{Forward: 50, Cooldown: -1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	vals := make([]float64, 1500)
	for i := range vals {
		vals[i] = 20 + 5*math.Sin(2*math.Pi*float64(i)/144) + 0.5*rng.NormFloat64()
	}
	vals[1200] += 15
	js := judgeAll(d, vals)
	var anomalies []int
	for i, j := range js {
		if j.Emit && j.Level == Anomaly {
			anomalies = append(anomalies, i)
		}
	}
	found := false
	for _, i := range anomalies {
		found = found || i == 1200
	}
	if !found || len(anomalies) > 8 {
		t.Errorf("anomaly events at %v, want 1200 among at most 8", anomalies)
	}
	// An anomaly event carries the 32 readings the model judged; an
	// uncertain one the last Forward (50).
	if w := js[1200].Window; len(w) != m.Window || w[len(w)-1] != vals[1200] {
		t.Errorf("event window %v (score %g, level %v)", w, js[1200].Score, js[1200].Level)
	}
	for i, j := range js {
		if j.Emit && j.Level == Uncertain && len(j.Window) != 50 && i >= 50 {
			t.Errorf("uncertain event at %d carries %d values", i, len(j.Window))
		}
	}
	if d.Model() != "ae-edge@1" || d.Err() != nil {
		t.Errorf("model %s err %v", d.Model(), d.Err())
	}
}

// TestStockDetectorsRun replays the in-repo corpus with the stock models in
// every mode: the report names them and every mode detects something.
func TestStockDetectorsRun(t *testing.T) {
	det, err := StockDetectors(StockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := loadCorpus(t, repoCorpus)
	r, err := Run(context.Background(), c, Config{Detectors: det})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Modes {
		mr := r.Mode(m)
		if mr.WindowsDetected == 0 {
			t.Errorf("%s detects no window", m)
		}
		// Every scored detection has a source, and the sources account
		// for the detected windows and false positives.
		var sum SourceCounts
		for name, c := range mr.BySource {
			if name == "unknown" || c.Detections != c.FirstInWindow+c.LaterInWindow+c.FalsePositives {
				t.Errorf("%s: source %q: %+v", m, name, c)
			}
			sum.Detections += c.Detections
			sum.FirstInWindow += c.FirstInWindow
			sum.FalsePositives += c.FalsePositives
		}
		if sum.Detections != mr.Detections || sum.FirstInWindow != mr.WindowsDetected || sum.FalsePositives != mr.FalsePositives {
			t.Errorf("%s: sources %+v; mode: %d detections, %d windows, %d false positives", m, sum, mr.Detections, mr.WindowsDetected, mr.FalsePositives)
		}
	}
	if c := r.Edge.BySource["range"]; c.Detections == 0 {
		t.Errorf("edge: no detection by the range rule: %+v", r.Edge.BySource)
	}
	if r.Edge.UplinkRatio <= 0 || r.Edge.UplinkRatio >= 0.1 {
		t.Errorf("edge uplink ratio %g", r.Edge.UplinkRatio)
	}
	if got := r.Replays[0].Series.Key; got == "" {
		t.Error("no replays")
	}
	if _, err := StockDetectors(StockOptions{Edge: "lstm"}); err == nil {
		t.Error("an unknown edge detector accepted")
	}
	if d, err := StockDetectors(StockOptions{Edge: "zscore", Cloud: "robust"}); d != nil || err != nil {
		t.Errorf("defaults: %v %v", d, err)
	}
	// The confirmer: a forwarded window ending in a spike is confirmed.
	cm, err := det.Confirmer()
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float64, 96)
	for i := range w {
		w[i] = 10 + math.Sin(float64(i)/5) + 0.1*float64(i%3)
	}
	if _, ok := cm.Confirm(w); ok {
		t.Error("a normal window confirmed")
	}
	w[95] += 20
	if s, ok := cm.Confirm(w); !ok {
		t.Errorf("a spike not confirmed (score %g)", s)
	}
}
