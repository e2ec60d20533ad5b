package eval

import (
	"fmt"
	"time"

	"github.com/outpost-iot/outpost/models/detect"
)

// ZScoreModel is the edge scorer's name and version, as the agent reports it.
const ZScoreModel = "zscore@1"

// ZScoreConfig configures the edge detector. Zero fields take the defaults of
// the shipped firmware profile (firmware-configs/generic-sensor.yaml).
type ZScoreConfig struct {
	// Window is the number of readings kept and scored against. Default 120.
	Window int `json:"window"`
	// Low and High are the thresholds in standard deviations: score < Low
	// normal, Low <= score < High uncertain, score >= High anomaly.
	// Defaults 4 and 6.
	Low  float64 `json:"low"`
	High float64 `json:"high"`
	// Cooldown is how many consecutive normal readings end an incident.
	// Default 20; negative means 0 (the first normal reading ends it).
	Cooldown int `json:"cooldown"`
	// Warmup is the number of readings folded before any is scored.
	// Default 120; negative means 0.
	Warmup int `json:"warmup"`
	// Clamp is how many deviations from the mean a reading may pull the
	// statistics. Default 3.
	Clamp float64 `json:"clamp"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ZScoreConfig) WithDefaults() ZScoreConfig {
	if c.Window == 0 {
		c.Window = 120
	}
	if c.Low == 0 {
		c.Low = 4
	}
	if c.High == 0 {
		c.High = 6
	}
	c.Cooldown = defaultCount(c.Cooldown, 20)
	c.Warmup = defaultCount(c.Warmup, 120)
	if c.Clamp == 0 {
		c.Clamp = 3
	}
	return c
}

func defaultCount(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Validate reports a configuration the detector cannot run with.
func (c ZScoreConfig) Validate() error {
	switch {
	case c.Window < 2:
		return fmt.Errorf("edge.window: %d < 2", c.Window)
	case c.High <= c.Low:
		return fmt.Errorf("edge.high: %g <= edge.low %g", c.High, c.Low)
	case c.Clamp <= 0:
		return fmt.Errorf("edge.clamp: %g <= 0", c.Clamp)
	}
	return nil
}

// ZScore is the edge detector, run through the agent's own decision code
// (models/detect): per value column one detect.Detector, as the agent keeps
// one per stream (each value of a reading is a stream). A reading emits when
// any column's detector emits; its level and score are those of the highest
// column, and its window that column's.
type ZScore struct {
	dets []*detect.Detector
}

// NewZScore returns an edge detector for series with the given number of
// value columns. cfg must have its defaults filled and be valid.
func NewZScore(cfg ZScoreConfig, columns int) (*ZScore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if columns < 1 {
		return nil, fmt.Errorf("zscore: %d value columns", columns)
	}
	z := &ZScore{}
	for i := 0; i < columns; i++ {
		d, err := detect.New(detect.Config{
			Window:           cfg.Window,
			Scorer:           "zscore",
			Low:              cfg.Low,
			High:             cfg.High,
			CooldownReadings: cfg.Cooldown,
			Warmup:           cfg.Warmup,
			Clamp:            cfg.Clamp,
		})
		if err != nil {
			return nil, fmt.Errorf("zscore: %w", err)
		}
		z.dets = append(z.dets, d)
	}
	return z, nil
}

// Model implements Detector.
func (z *ZScore) Model() string { return ZScoreModel }

// Judge implements Detector. As the agent does, each column's detector
// scores the reading against the readings before it, then folds it in.
func (z *ZScore) Judge(ts time.Time, values []float64) Judgement {
	var j Judgement
	var emitLevel detect.Level
	for c, d := range z.dets {
		dj := d.Judge(ts, values[c])
		if c == 0 || dj.Score > j.Score {
			j.Score, j.Level = dj.Score, dj.Level
		}
		if dj.Emit && (!j.Emit || dj.Level > emitLevel) {
			j.Emit, emitLevel, j.Window, j.Source = true, dj.Level, dj.Window, dj.Source
		}
	}
	return j
}

// ring is a fixed-size ring of the last values pushed.
type ring struct {
	buf   []float64
	next  int
	count int
}

func newRing(n int) *ring { return &ring{buf: make([]float64, n)} }

// push adds v and returns the value it evicted (ok false when none was).
func (r *ring) push(v float64) (old float64, ok bool) {
	if r.count == len(r.buf) {
		old, ok = r.buf[r.next], true
	} else {
		r.count++
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	return old, ok
}

// values returns a copy of the held values, oldest first.
func (r *ring) values() []float64 {
	out := make([]float64, 0, r.count)
	start := (r.next - r.count + len(r.buf)) % len(r.buf)
	for i := 0; i < r.count; i++ {
		out = append(out, r.buf[(start+i)%len(r.buf)])
	}
	return out
}
