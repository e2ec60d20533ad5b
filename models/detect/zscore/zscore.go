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

// Scorer keeps the statistics of the last Window folded readings. A slot
// may hold a missing sample (NaN), which takes its place in the window but
// not in the statistics; the oldest slots can be evicted (Evict) for
// windows bounded by time. It is not safe for concurrent use.
type Scorer struct {
	clamp float64
	vals  []float64 // ring of folded (clamped) values
	next  int       // index the next value goes to
	count int       // values held, up to len(vals)
	dirty bool
	mean  float64
	std   float64
	n     int // held values that are not missing
	// missing is the number of held slots that are missing (NaN).
	missing int
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

// Count is the number of slots held (readings and missing samples).
func (s *Scorer) Count() int { return s.count }

// Stats returns the mean and standard deviation of the held readings
// (missing samples left out).
func (s *Scorer) Stats() (mean, std float64) {
	if s.dirty {
		s.mean, s.std, s.n = s.meanStd()
		s.dirty = false
	}
	return s.mean, s.std
}

// present is the number of held readings that are not missing.
func (s *Scorer) present() int {
	s.Stats()
	return s.n
}

// Evict forgets the oldest held slot, if any.
func (s *Scorer) Evict() {
	if s.count > 0 {
		oldest := s.next - s.count
		if oldest < 0 {
			oldest += len(s.vals)
		}
		if s.vals[oldest] != s.vals[oldest] {
			s.missing--
		}
		s.count--
		s.dirty = true
	}
}

// Reset forgets every held slot.
func (s *Scorer) Reset() {
	s.count, s.next, s.missing, s.dirty = 0, 0, 0, true
}

// Score returns |v - mean| / std for the readings folded so far, without
// folding v. With fewer than two readings the score is 0. A zero deviation
// is floored at a tiny fraction of the mean, so any change in a constant
// stream scores very high.
func (s *Scorer) Score(v float64) float64 {
	if s.count < 2 || s.present() < 2 {
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
// of being pinned to the old value for ever. A NaN or infinite v is a
// missing sample: it takes a slot of the window and is left out of the
// statistics.
func (s *Scorer) Fold(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = math.NaN()
	} else if s.count >= 2 && s.present() >= 2 {
		mean, std := s.Stats()
		if std > 1e-9*math.Max(1, math.Abs(mean)) {
			lo, hi := mean-s.clamp*std, mean+s.clamp*std
			v = math.Min(math.Max(v, lo), hi)
		}
	}
	if s.count == len(s.vals) && s.vals[s.next] != s.vals[s.next] {
		s.missing-- // overwrites a missing slot
	}
	if v != v {
		s.missing++
	}
	s.vals[s.next] = v
	s.next = (s.next + 1) % len(s.vals)
	if s.count < len(s.vals) {
		s.count++
	}
	s.dirty = true
}

// meanStd returns the mean and population deviation of the held values
// that are not missing, and how many there are.
func (s *Scorer) meanStd() (float64, float64, int) {
	start := s.next - s.count
	if start < 0 {
		start += len(s.vals)
	}
	// The held slots are vals[start:] and vals[:rest] when they wrap; they
	// are summed in index order (a full ring: all of vals).
	a, b := s.vals[start:], s.vals[:0]
	if s.count == len(s.vals) {
		a = s.vals
	} else if start+s.count <= len(s.vals) {
		a = s.vals[start : start+s.count]
	} else {
		b = s.vals[:start+s.count-len(s.vals)]
	}
	if s.missing == 0 { // the common case: a plain mean and deviation
		if s.count == 0 {
			return 0, 0, 0
		}
		var sum float64
		for _, x := range b {
			sum += x
		}
		for _, x := range a {
			sum += x
		}
		mean := sum / float64(s.count)
		var ss float64
		for _, x := range b {
			ss += (x - mean) * (x - mean)
		}
		for _, x := range a {
			ss += (x - mean) * (x - mean)
		}
		return mean, math.Sqrt(ss / float64(s.count)), s.count
	}
	var sum float64
	n := 0
	for _, part := range [2][]float64{b, a} {
		for _, x := range part {
			if x == x { // not NaN (missing)
				sum += x
				n++
			}
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	mean := sum / float64(n)
	var ss float64
	for _, part := range [2][]float64{b, a} {
		for _, x := range part {
			if x == x {
				d := x - mean
				ss += d * d
			}
		}
	}
	return mean, math.Sqrt(ss / float64(n)), n
}
