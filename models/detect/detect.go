// Package detect holds the per-stream detection logic of the edge: a ring
// buffer of recent readings (the window), a scorer, and the decision (normal,
// uncertain, anomaly) with hysteresis and cool-down so that one incident
// raises one event. The edge agent runs it on every stream and the evaluation
// (models/eval) replays corpora through the same code; it imports nothing of
// MQTT or NATS.
package detect

import (
	"fmt"
	"time"

	"github.com/outpost-iot/outpost/models/detect/zscore"
)

// Level is the judgement of one reading.
type Level int

// Levels, in increasing order of concern.
const (
	Normal Level = iota
	Uncertain
	Anomaly
)

func (l Level) String() string {
	switch l {
	case Normal:
		return "normal"
	case Uncertain:
		return "uncertain"
	case Anomaly:
		return "anomaly"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Config configures one stream's detector. Its zero value is not usable; the
// agent builds it from a profile.Stream with defaults filled.
type Config struct {
	// Window is the number of readings kept and scored against (>= 2).
	Window int
	// Scorer names the scorer; only "zscore" exists.
	Scorer string
	// Low and High are the thresholds: score < Low normal, Low <= score <
	// High uncertain, score >= High anomaly.
	Low, High float64
	// CooldownReadings or CooldownDuration (of reading time): how long the
	// score must stay below Low before an incident is over and a new one
	// may raise a new event. If both are zero the incident ends at the first
	// normal reading.
	CooldownReadings int
	CooldownDuration time.Duration
	// Warmup is the number of readings folded before any is scored.
	Warmup int
	// Clamp is how many standard deviations from the mean a reading may pull
	// the scorer's statistics; 0 means zscore.DefaultClamp.
	Clamp float64
}

// Judgement is the result of judging one reading.
type Judgement struct {
	// Level is the reading's level by its score alone.
	Level Level
	// Score is the scorer's score (0 during warm-up).
	Score float64
	// Emit says this reading starts (or escalates) an incident and must be
	// forwarded as an event of kind Level.
	Emit bool
	// Window is a copy of the raw values of the window, oldest first, ending
	// with this reading; only set when Emit.
	Window []float64
	// Warm is false while the stream is still warming up.
	Warm bool
}

// Detector judges the readings of one stream. Not safe for concurrent use.
type Detector struct {
	cfg    Config
	scorer *zscore.Scorer
	raw    []float64
	next   int
	count  int
	seen   int

	incident   Level
	quiet      int
	quietSince time.Time
}

// New returns a detector for cfg.
func New(cfg Config) (*Detector, error) {
	if cfg.Scorer != "" && cfg.Scorer != "zscore" {
		return nil, fmt.Errorf("detect: unknown scorer %q", cfg.Scorer)
	}
	if cfg.Window < 2 {
		return nil, fmt.Errorf("detect: window %d < 2", cfg.Window)
	}
	if cfg.High <= cfg.Low {
		return nil, fmt.Errorf("detect: high %g <= low %g", cfg.High, cfg.Low)
	}
	return &Detector{cfg: cfg, scorer: zscore.New(cfg.Window, cfg.Clamp), raw: make([]float64, cfg.Window)}, nil
}

// Model is the scorer's "name@version".
func (d *Detector) Model() string { return zscore.Model }

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

// Judge scores the reading v taken at ts, decides, then folds v into the
// window.
func (d *Detector) Judge(ts time.Time, v float64) Judgement {
	var j Judgement
	d.seen++
	if d.seen > d.cfg.Warmup {
		j.Warm = true
		j.Score = d.scorer.Score(v)
		switch {
		case j.Score >= d.cfg.High:
			j.Level = Anomaly
		case j.Score >= d.cfg.Low:
			j.Level = Uncertain
		}
	}
	d.push(v)
	d.scorer.Fold(v)

	switch {
	case j.Level > d.incident:
		j.Emit = true
		d.incident = j.Level
		d.quiet, d.quietSince = 0, time.Time{}
	case j.Level == Normal && d.incident != Normal:
		d.quiet++
		if d.quietSince.IsZero() {
			d.quietSince = ts
		}
		over := d.quiet > d.cfg.CooldownReadings
		if d.cfg.CooldownDuration > 0 {
			over = ts.Sub(d.quietSince) >= d.cfg.CooldownDuration
		}
		if over {
			d.incident = Normal
			d.quiet, d.quietSince = 0, time.Time{}
		}
	case j.Level != Normal:
		d.quiet, d.quietSince = 0, time.Time{}
	}
	if j.Emit {
		j.Window = d.window()
	}
	return j
}

func (d *Detector) push(v float64) {
	d.raw[d.next] = v
	d.next = (d.next + 1) % len(d.raw)
	if d.count < len(d.raw) {
		d.count++
	}
}

func (d *Detector) window() []float64 {
	out := make([]float64, 0, d.count)
	start := (d.next - d.count + len(d.raw)) % len(d.raw)
	for i := 0; i < d.count; i++ {
		out = append(out, d.raw[(start+i)%len(d.raw)])
	}
	return out
}
