package eval

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// RobustModel is the cloud scorer's name and version.
const RobustModel = "robust-mad@1"

// madScale turns a median absolute deviation into a standard deviation for
// normal data (1/Φ⁻¹(3/4)).
const madScale = 1.4826

// RobustConfig configures the cloud's robust detector: the distance of a
// reading from the median of the previous Window readings, in scaled median
// absolute deviations (MAD). Zero fields take the defaults.
type RobustConfig struct {
	// Window is the number of previous readings the streaming detector
	// (cloud-only mode) judges against. Default 1000.
	Window int `json:"window"`
	// Threshold: a score at or above it is an anomaly (streaming) or
	// confirms a forwarded window (second stage). Default 10.
	Threshold float64 `json:"threshold"`
	// Cooldown is how many consecutive normal readings end an incident of
	// the streaming detector. Default 20; negative means 0.
	Cooldown int `json:"cooldown"`
	// Warmup is the number of readings folded before any is scored by the
	// streaming detector. Default 120; negative means 0.
	Warmup int `json:"warmup"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c RobustConfig) WithDefaults() RobustConfig {
	if c.Window == 0 {
		c.Window = 1000
	}
	if c.Threshold == 0 {
		c.Threshold = 10
	}
	c.Cooldown = defaultCount(c.Cooldown, 20)
	c.Warmup = defaultCount(c.Warmup, 120)
	return c
}

// Validate reports a configuration the detector cannot run with.
func (c RobustConfig) Validate() error {
	switch {
	case c.Window < 3:
		return fmt.Errorf("cloud.window: %d < 3", c.Window)
	case c.Threshold <= 0:
		return fmt.Errorf("cloud.threshold: %g <= 0", c.Threshold)
	}
	return nil
}

// RobustScore scores v against the values of ref (any order, not modified):
// |v - median| / scale, where scale is 1.4826·MAD, or, when more than half
// of ref is one value (MAD 0), 1.2533 × the mean absolute deviation from the
// median, floored at 1e-9·max(1, |median|). With fewer than two values the
// score is 0.
func RobustScore(v float64, ref []float64) float64 {
	if len(ref) < 2 {
		return 0
	}
	s := append([]float64(nil), ref...)
	sort.Float64s(s)
	return robustScoreSorted(v, s)
}

func robustScoreSorted(v float64, s []float64) float64 {
	n := len(s)
	if n < 2 {
		return 0
	}
	med := medianSorted(s)
	scale := madScale * madSorted(s, med)
	if scale == 0 {
		var sum float64
		for _, x := range s {
			sum += math.Abs(x - med)
		}
		scale = 1.2533 * sum / float64(n)
	}
	if floor := 1e-9 * math.Max(1, math.Abs(med)); scale < floor {
		scale = floor
	}
	z := math.Abs(v-med) / scale
	if math.IsNaN(z) {
		return math.Inf(1)
	}
	return z
}

func medianSorted(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// madSorted is the median of |x - med| over sorted s, found by walking out
// from the median: the deviations left of it grow leftwards and those right
// of it grow rightwards, so they merge in order in O(n).
func madSorted(s []float64, med float64) float64 {
	n := len(s)
	// r is the first index with s[r] >= med; l = r-1.
	r := sort.SearchFloat64s(s, med)
	l := r - 1
	next := func() float64 {
		if l < 0 {
			d := s[r] - med
			r++
			return d
		}
		if r >= n {
			d := med - s[l]
			l--
			return d
		}
		dl, dr := med-s[l], s[r]-med
		if dl <= dr {
			l--
			return dl
		}
		r++
		return dr
	}
	var a float64
	for k := 0; k <= (n-1)/2; k++ {
		a = next()
	}
	if n%2 == 1 {
		return a
	}
	return (a + next()) / 2
}

// Robust is the cloud's detector. As a streaming Detector (cloud-only mode)
// it scores each reading against the previous Window readings (per value
// column, the highest counts), with the same incident and cool-down logic as
// the edge and no uncertain level. As a Confirmer (the second stage of the
// hybrid mode) it scores the last value of a forwarded window against the
// values before it in that window.
type Robust struct {
	cfg    RobustConfig
	cols   []*sortedRing
	seen   int
	inc    incident
	column int
}

// NewRobust returns a cloud detector for series with the given number of
// value columns. cfg must have its defaults filled and be valid.
func NewRobust(cfg RobustConfig, columns int) (*Robust, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if columns < 1 {
		return nil, fmt.Errorf("robust: %d value columns", columns)
	}
	r := &Robust{cfg: cfg, inc: incident{cooldown: cfg.Cooldown}}
	for i := 0; i < columns; i++ {
		r.cols = append(r.cols, newSortedRing(cfg.Window))
	}
	return r, nil
}

// Model implements Detector.
func (r *Robust) Model() string { return RobustModel }

// Judge implements Detector.
func (r *Robust) Judge(_ time.Time, values []float64) Judgement {
	var j Judgement
	r.seen++
	col := 0
	if r.seen > r.cfg.Warmup {
		for c, sr := range r.cols {
			if sc := robustScoreSorted(values[c], sr.sorted); c == 0 || sc > j.Score {
				j.Score, col = sc, c
			}
		}
		if j.Score >= r.cfg.Threshold {
			j.Level = Anomaly
		}
	}
	for c, sr := range r.cols {
		if !math.IsNaN(values[c]) && !math.IsInf(values[c], 0) {
			sr.push(values[c])
		}
	}
	if j.Emit = r.inc.step(j.Level); j.Emit {
		j.Window = r.cols[col].ring.values()
	}
	return j
}

// Confirm implements Confirmer: RobustScore of the window's last value
// against the rest of the window, confirmed at or above the threshold.
func (r *Robust) Confirm(window []float64) (float64, bool) {
	if len(window) < 3 {
		return 0, false
	}
	s := RobustScore(window[len(window)-1], window[:len(window)-1])
	return s, s >= r.cfg.Threshold
}

// sortedRing is a ring of the last values plus the same values kept sorted,
// for medians in O(log n) and updates in O(n) memmove.
type sortedRing struct {
	ring   *ring
	sorted []float64
}

func newSortedRing(n int) *sortedRing {
	return &sortedRing{ring: newRing(n), sorted: make([]float64, 0, n)}
}

func (s *sortedRing) push(v float64) {
	if old, ok := s.ring.push(v); ok {
		i := sort.SearchFloat64s(s.sorted, old)
		s.sorted = append(s.sorted[:i], s.sorted[i+1:]...)
	}
	i := sort.SearchFloat64s(s.sorted, v)
	s.sorted = append(s.sorted, 0)
	copy(s.sorted[i+1:], s.sorted[i:])
	s.sorted[i] = v
}
