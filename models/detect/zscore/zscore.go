// Package zscore is the plainest edge scorer: a reading's distance from the
// mean of the stream's recent readings, in standard deviations of those
// readings. It imports nothing of MQTT or NATS; the edge agent and the
// evaluation share it through package detect.
package zscore

import "math"

// Model is the scorer's name and version as reported in events.
const Model = "zscore@1"

// DefaultClamp is how many standard deviations from the mean a reading may
// pull the statistics; readings further out are folded in at this distance,
// so one spike barely moves the mean and deviation that judge the next ones.
const DefaultClamp = 3.0

// Scorer keeps the statistics of the last Window folded readings. It is not
// safe for concurrent use.
type Scorer struct {
	clamp float64
	vals  []float64 // ring of folded (clamped) values
	next  int       // index the next value goes to
	count int       // values held, up to len(vals)
	dirty bool
	mean  float64
	std   float64
}

// New returns a scorer over a window of the given size (>= 2). clamp <= 0
// means DefaultClamp.
func New(window int, clamp float64) *Scorer {
	if window < 2 {
		window = 2
	}
	if clamp <= 0 {
		clamp = DefaultClamp
	}
	return &Scorer{clamp: clamp, vals: make([]float64, window)}
}

// Count is the number of readings the statistics are made of.
func (s *Scorer) Count() int { return s.count }

// Stats returns the mean and standard deviation of the held readings.
func (s *Scorer) Stats() (mean, std float64) {
	if s.dirty {
		s.mean, s.std = meanStd(s.vals[:s.count])
		s.dirty = false
	}
	return s.mean, s.std
}

// Score returns |v - mean| / std for the readings folded so far, without
// folding v. With fewer than two readings the score is 0. A zero deviation
// is floored at a tiny fraction of the mean, so any change in a constant
// stream scores very high.
func (s *Scorer) Score(v float64) float64 {
	if s.count < 2 {
		return 0
	}
	mean, std := s.Stats()
	floor := 1e-9 * math.Max(1, math.Abs(mean))
	if std < floor {
		std = floor
	}
	z := math.Abs(v-mean) / std
	if math.IsNaN(z) {
		return math.Inf(1)
	}
	return z
}

// Fold adds v to the statistics, clamped to mean ± clamp·std. While the held
// readings are all equal (no deviation to clamp by) v is folded as it is, so a
// stream that was constant and then moves to a new level adapts to it instead
// of being pinned to the old value for ever.
func (s *Scorer) Fold(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if s.count >= 2 {
		mean, std := s.Stats()
		if std > 1e-9*math.Max(1, math.Abs(mean)) {
			lo, hi := mean-s.clamp*std, mean+s.clamp*std
			v = math.Min(math.Max(v, lo), hi)
		}
	}
	s.vals[s.next] = v
	s.next = (s.next + 1) % len(s.vals)
	if s.count < len(s.vals) {
		s.count++
	}
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
