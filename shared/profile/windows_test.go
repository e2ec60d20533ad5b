package profile

import (
	"strings"
	"testing"
	"time"
)

// TestStreamWindowOptions: the window, reordering, gap and normalisation
// options parse, take their defaults, and each bad value is reported at its
// YAML path and line.
func TestStreamWindowOptions(t *testing.T) {
	base := "mqtt:\n  url: tcp://127.0.0.1:1883\nstreams:\n"
	good := base + "  - window_span: 10m\n    reorder: 5s\n    gap_fill: linear\n    interval: 1m\n    normalize: online\n"
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := p.Defaults().Streams[0]
	if s.WindowSpan != 10*time.Minute || s.Reorder != 5*time.Second || s.Interval != time.Minute || s.GapFill != "linear" ||
		s.Window != DefaultSpanWindow || s.Warmup != DefaultSpanWarmup || s.GapFactor != DefaultGapFactor ||
		s.MaxFill != DefaultMaxFill || s.Normalize != "online" || s.HalfLife != DefaultSpanWindow {
		t.Fatalf("defaults: %+v", s)
	}
	if d := (Stream{}).Defaults(); d.Normalize != "none" || d.GapFill != "" || d.Reorder != 0 || d.Window != DefaultWindow || d.Warmup != DefaultWindow {
		t.Fatalf("plain defaults changed: %+v", d)
	}

	cases := []struct {
		name, yaml, want string
		line             int
	}{
		{"negative span", "  - window_span: -1m\n", "streams[0].window_span: must be > 0", 4},
		{"reorder too long", "  - reorder: 2h\n", "streams[0].reorder: must be between 0 and 1h", 4},
		{"reorder beyond span", "  - window_span: 10s\n    reorder: 10s\n", "streams[0].reorder: must be shorter than window_span", 5},
		{"unknown gap fill", "  - gap_fill: zero\n", `streams[0].gap_fill: unknown gap fill "zero"`, 4},
		{"interval without fill", "  - interval: 1m\n", "streams[0].interval: only used with gap_fill", 4},
		{"max_fill without fill", "  - match: a/#\n  - max_fill: 5\n", "streams[1].max_fill: only used with gap_fill", 5},
		{"negative interval", "  - gap_fill: hold\n    interval: -1s\n", "streams[0].interval: must be > 0", 5},
		{"gap factor below 1", "  - gap_fill: hold\n    gap_factor: 0.5\n", "streams[0].gap_factor: must be between 1 and 1000", 5},
		{"max fill negative", "  - gap_fill: missing\n    max_fill: -1\n", "streams[0].max_fill: must be between 1 and 100000", 5},
		{"unknown normalize", "  - normalize: minmax\n", `streams[0].normalize: unknown normalisation "minmax"`, 4},
		{"half life without online", "  - half_life: 10\n", "streams[0].half_life: only used with normalize: online", 4},
		{"manifest without scale", "  - normalize: manifest\n", "streams[0].norm_scale: must be > 0 with normalize: manifest", 4},
		{"scale without manifest", "  - normalize: window\n    norm_scale: 2\n", "streams[0].norm_scale: norm_mean and norm_scale are only used", 5},
		{"span wrong type", "  - window_span: wide\n", "streams[0].window_span:", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(base + c.yaml))
			ps := AsProblems(err)
			if ps == nil {
				t.Fatalf("want problems, got %v", err)
			}
			for _, pr := range ps {
				if strings.Contains(pr.String(), c.want) {
					if pr.Line != c.line {
						t.Errorf("problem %q at line %d, want %d", pr, pr.Line, c.line)
					}
					return
				}
			}
			t.Fatalf("want a problem containing %q, got:\n%v", c.want, err)
		})
	}
}
