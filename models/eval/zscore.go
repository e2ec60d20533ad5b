package eval

import (
	"fmt"
	"math"
	"time"
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

// ZScore is the edge detector: per value column, the distance of a reading
// from the mean of the last Window folded readings in their standard
// deviations (readings folded clamped to mean ± Clamp·std), the level by Low
// and High, and the incident logic that raises one event per incident (and
// one more if it escalates from uncertain to anomaly). With several value
// columns the highest column score counts.
type ZScore struct {
	cfg     ZScoreConfig
	scorers []*zscorer
	raw     []*ring
	seen    int
	inc     incident
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
	z := &ZScore{cfg: cfg, inc: incident{cooldown: cfg.Cooldown}}
	for i := 0; i < columns; i++ {
		z.scorers = append(z.scorers, newZScorer(cfg.Window, cfg.Clamp))
		z.raw = append(z.raw, newRing(cfg.Window))
	}
	return z, nil
}

// Model implements Detector.
func (z *ZScore) Model() string { return ZScoreModel }

// Judge implements Detector. As the agent does, it scores the reading against
// the readings before it, then folds it in.
func (z *ZScore) Judge(_ time.Time, values []float64) Judgement {
	var j Judgement
	z.seen++
	col := 0
	if z.seen > z.cfg.Warmup {
		for c, s := range z.scorers {
			if sc := s.score(values[c]); c == 0 || sc > j.Score {
				j.Score, col = sc, c
			}
		}
		switch {
		case j.Score >= z.cfg.High:
			j.Level = Anomaly
		case j.Score >= z.cfg.Low:
			j.Level = Uncertain
		}
	}
	for c, s := range z.scorers {
		z.raw[c].push(values[c])
		s.fold(values[c])
	}
	if j.Emit = z.inc.step(j.Level); j.Emit {
		j.Window = z.raw[col].values()
	}
	return j
}

// zscorer keeps the statistics of the last readings (the edge's
// zscore.Scorer rule).
type zscorer struct {
	clamp     float64
	vals      *ring
	dirty     bool
	mean, std float64
}

func newZScorer(window int, clamp float64) *zscorer {
	return &zscorer{clamp: clamp, vals: newRing(window)}
}

func (s *zscorer) stats() (float64, float64) {
	if s.dirty {
		// In storage order, as the edge does, so sums round the same way.
		s.mean, s.std = meanStd(s.vals.buf[:s.vals.count])
		s.dirty = false
	}
	return s.mean, s.std
}

// score is |v - mean| / std over the folded readings; 0 with fewer than two;
// a zero deviation is floored at 1e-9·max(1, |mean|).
func (s *zscorer) score(v float64) float64 {
	if s.vals.count < 2 {
		return 0
	}
	mean, std := s.stats()
	if floor := 1e-9 * math.Max(1, math.Abs(mean)); std < floor {
		std = floor
	}
	z := math.Abs(v-mean) / std
	if math.IsNaN(z) {
		return math.Inf(1)
	}
	return z
}

// fold adds v clamped to mean ± clamp·std (as it is while the held readings
// have no deviation); NaN and infinities are not folded.
func (s *zscorer) fold(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if s.vals.count >= 2 {
		mean, std := s.stats()
		if std > 1e-9*math.Max(1, math.Abs(mean)) {
			v = math.Min(math.Max(v, mean-s.clamp*std), mean+s.clamp*std)
		}
	}
	s.vals.push(v)
	s.dirty = true
}

func meanStd(xs []float64) (float64, float64) {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
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
