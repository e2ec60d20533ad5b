package profile

import (
	"strings"
	"testing"
	"time"
)

// TestStreamStages: the likelihood, novelty, range, stuck-value and score options parse
// into Stream, and each bad value is reported under its own path.
func TestStreamStages(t *testing.T) {
	base := "agent: {id: gw-1}\nmqtt: {url: tcp://127.0.0.1:1883}\nstreams:\n  - match: \"#\"\n    scorer: model\n    low: 0.99\n    high: 1\n"
	good := base + "    score: residual\n    likelihood: {window: 1000, average: 10, floor: 0.03}\n" +
		"    novelty: {bins: 12, length: 3, high: 1}\n    volatility: {average: 100, high: 0.5}\n    seasonal: {average: 50, period: 12h}\n    range_margin: 0.005\n    stuck_run: 50\n    anomaly_window: 16\n    score_high: 2\n"
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := p.Defaults().StreamFor("sensors/a")
	if s.Score != ScoreResidual || s.Likelihood != (Likelihood{Window: 1000, Average: 10, Floor: 0.03}) ||
		s.Novelty != (Novelty{Bins: 12, Length: 3, High: 1}) || s.Volatility != (Volatility{Average: 100, High: 0.5}) || s.Seasonal != (Seasonal{Average: 50, Period: 12 * time.Hour}) || s.RangeMargin != 0.005 || s.StuckRun != 50 || s.AnomalyWindow != 16 || s.ScoreHigh != 2 {
		t.Fatalf("stream %+v", s)
	}
	for _, c := range []struct{ yaml, path string }{
		{"    score: raw\n", "streams[0].score"},
		{"    likelihood: {window: -1}\n", "streams[0].likelihood.window"},
		{"    likelihood: {window: 10, average: 20}\n", "streams[0].likelihood.average"},
		{"    likelihood: {window: 10, floor: -1}\n", "streams[0].likelihood.floor"},
		{"    likelihood: {window: 10}\n    novelty: {bins: 1, length: 2}\n", "streams[0].novelty.bins"},
		{"    likelihood: {window: 10}\n    novelty: {bins: 12, length: 9}\n", "streams[0].novelty.length"},
		{"    likelihood: {window: 10}\n    novelty: {bins: 200, length: 3}\n", "streams[0].novelty"},
		{"    novelty: {bins: 12, length: 3}\n", "streams[0].novelty"},
		{"    likelihood: {window: 10}\n    novelty: {bins: 12, length: 3, holdoff: -1}\n", "streams[0].novelty.holdoff"},
		{"    likelihood: {window: 10}\n    volatility: {average: 1}\n", "streams[0].volatility.average"},
		{"    likelihood: {window: 10}\n    volatility: {average: 10, high: -1}\n", "streams[0].volatility.high"},
		{"    volatility: {average: 10}\n", "streams[0].volatility"},
		{"    likelihood: {window: 10}\n    seasonal: {average: -1}\n", "streams[0].seasonal.average"},
		{"    likelihood: {window: 10}\n    seasonal: {average: 10, high: -1}\n", "streams[0].seasonal.high"},
		{"    seasonal: {average: 10}\n", "streams[0].seasonal"},
		{"    range_margin: -0.1\n", "streams[0].range_margin"},
		{"    stuck_run: -1\n", "streams[0].stuck_run"},
		{"    anomaly_window: -1\n", "streams[0].anomaly_window"},
		{"    score_high: -1\n", "streams[0].score_high"},
		{"    score_high: .nan\n", "streams[0].score_high"},
	} {
		err := Check([]byte(base + c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%q: got %v, want a problem at %s", c.yaml, err, c.path)
		}
	}
	err = Check([]byte("agent: {id: gw-1}\nmqtt: {url: tcp://127.0.0.1:1883}\nstreams:\n  - match: \"#\"\n    score: residual\n"))
	if err == nil || !strings.Contains(err.Error(), "streams[0].score") {
		t.Errorf("score without scorer model: %v", err)
	}
}
