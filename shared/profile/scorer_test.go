package profile

import (
	"strings"
	"testing"
)

// TestModelScorer: scorer "model" takes the stock edge model by default,
// leaves the thresholds and warm-up to the model's manifest unless set, and
// accepts a stock name or a manifest path.
func TestModelScorer(t *testing.T) {
	p, err := Parse([]byte(`
mqtt:
  url: tcp://127.0.0.1:1883
streams:
  - match: a/#
    scorer: model
  - match: b/#
    scorer: model
    model: /etc/outpost/models/my-edge.json
    low: 2
    high: 3
    warmup: 10
  - match: c/#
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	d := p.Defaults()
	a, b, c := d.StreamFor("a/x"), d.StreamFor("b/x"), d.StreamFor("c/x")
	if a.Scorer != "model" || a.Model != DefaultModel || a.Low != 0 || a.High != 0 || a.Warmup != 0 {
		t.Fatalf("model stream defaults: %+v", a)
	}
	if b.Model != "/etc/outpost/models/my-edge.json" || b.Low != 2 || b.High != 3 || b.Warmup != 10 {
		t.Fatalf("model stream overrides: %+v", b)
	}
	if c.Scorer != "zscore" || c.Model != "" || c.Low != DefaultLow || c.High != DefaultHigh || c.Warmup != c.Window {
		t.Fatalf("zscore stream defaults: %+v", c)
	}
}

func TestModelScorerProblems(t *testing.T) {
	base := "mqtt:\n  url: tcp://127.0.0.1:1883\nstreams:\n"
	for _, c := range []struct {
		name, yaml, want string
		line             int
	}{
		{"model without scorer", base + "  - match: a/#\n    model: ae-edge\n", `streams[0].model: only used with scorer: model (scorer is "zscore")`, 5},
		{"bad model name", base + "  - scorer: model\n    model: Ae Edge\n", `streams[0].model: model "Ae Edge": character 'A' at 1`, 5},
		{"empty manifest path", base + "  - scorer: model\n    model: .json\n", `streams[0].model: model ".json": a manifest path needs a file name`, 5},
		{"one threshold", base + "  - scorer: model\n    low: 2\n", "streams[0].high: with scorer: model set both low and high", 0},
		{"high below low", base + "  - scorer: model\n    low: 3\n    high: 2\n", "streams[0].high: must be greater than low", 0},
		{"warmup one", base + "  - scorer: model\n    warmup: 1\n", "streams[0].warmup: must be at least 2", 5},
		{"unknown scorer", base + "  - scorer: stock\n", `streams[0].scorer: unknown scorer "stock" (known: zscore, model)`, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			ps := AsProblems(Check([]byte(c.yaml)))
			if len(ps) != 1 || !strings.Contains(ps[0].String(), c.want) {
				t.Fatalf("problems %v, want one containing %q", ps, c.want)
			}
			if c.line != 0 && ps[0].Line != c.line {
				t.Fatalf("problem at line %d, want %d", ps[0].Line, c.line)
			}
		})
	}
}
