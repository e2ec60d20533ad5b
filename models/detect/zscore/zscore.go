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
//
// The mean and deviation cost O(1) per reading: running sums of the held
// readings' deviations from a reference k (the mean when they were last
// summed exactly), updated as readings come and go. They are summed again
// exactly from the ring (O(window), two-pass) after Window updates, when a
// removal cancelled most of the sum of squares (a spike left the window),
// and when the mean has moved so far from k that the variance would lose
// digits, so they stay within float rounding of the two-pass figures.
type Scorer struct {
	clamp float64
	vals  []float64 // ring of folded (clamped) values
	next  int       // index the next value goes to
	count int       // values held, up to len(vals)
	n     int       // held values that are not missing
	// missing is the number of held slots that are missing (NaN).
	missing int
	// k is the reference; s1 and s2 the sums of x - k and (x - k)² over the
	// held values that are not missing; s2max the largest s2 since the
	// last exact sum; upd the updates since then; exact false when the
	// sums must be redone before use.
	k, s1, s2, s2max float64
	upd              int
	exact            bool
	// resums counts the exact sums (for tests: the running sums must do
	// most of the work).
	resums int
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
	return &Scorer{clamp: clamp, vals: make([]float64, window), exact: true}
}

// Count is the number of slots held (readings and missing samples).
func (s *Scorer) Count() int { return s.count }

// resumFraction: a sum of squares that fell below this fraction of its
// largest value since the last exact sum has lost too many digits to
// cancellation and is summed again.
const resumFraction = 1e-6

// Stats returns the mean and standard deviation of the held readings
// (missing samples left out).
func (s *Scorer) Stats() (mean, std float64) {
	if s.n == 0 {
		return 0, 0
	}
	if !s.exact || s.upd >= len(s.vals) || s.s2 < resumFraction*s.s2max {
		s.resum()
	}
	n := float64(s.n)
	m1 := s.s1 / n
	v := s.s2/n - m1*m1
	if v < 0 || m1*m1 > 1e3*v && m1 != 0 {
		// The mean moved far from k: the difference would lose digits.
		s.resum()
		m1 = s.s1 / n
		v = max(s.s2/n-m1*m1, 0)
	}
	return s.k + m1, math.Sqrt(v)
}

// resum sums the held values again exactly, around their mean.
func (s *Scorer) resum() {
	mean, _, n := s.meanStd()
	s.k, s.n = mean, n
	s.s1, s.s2 = 0, 0
	s.forHeld(func(x float64) {
		d := x - mean
		s.s1 += d
		s.s2 += d * d
	})
	s.s2max, s.upd, s.exact = s.s2, 0, true
	s.resums++
}

// forHeld calls f with every held value that is not missing, oldest first.
func (s *Scorer) forHeld(f func(x float64)) {
	start := s.next - s.count
	if start < 0 {
		start += len(s.vals)
	}
	for i := 0; i < s.count; i++ {
		k := start + i
		if k >= len(s.vals) {
			k -= len(s.vals)
		}
		if x := s.vals[k]; x == x {
			f(x)
		}
	}
}

// add and remove fold a present value into and out of the running sums.
func (s *Scorer) add(x float64) {
	if s.n == 0 {
		s.k, s.s1, s.s2, s.s2max = x, 0, 0, 0
	}
	d := x - s.k
	s.s1 += d
	s.s2 += d * d
	s.s2max = max(s.s2max, s.s2)
	s.n++
	s.upd++
}

func (s *Scorer) remove(x float64) {
	d := x - s.k
	s.s1 -= d
	s.s2 -= d * d
	s.n--
	s.upd++
	if s.n == 0 {
		s.s1, s.s2, s.s2max = 0, 0, 0
	}
}

// present is the number of held readings that are not missing.
func (s *Scorer) present() int { return s.n }

// Evict forgets the oldest held slot, if any.
func (s *Scorer) Evict() {
	if s.count > 0 {
		oldest := s.next - s.count
		if oldest < 0 {
			oldest += len(s.vals)
		}
		if x := s.vals[oldest]; x != x {
			s.missing--
		} else {
			s.remove(x)
		}
		s.count--
	}
}

// Reset forgets every held slot.
func (s *Scorer) Reset() {
	s.count, s.next, s.missing = 0, 0, 0
	s.n, s.k, s.s1, s.s2, s.s2max, s.upd, s.exact = 0, 0, 0, 0, 0, 0, true
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
	if s.count == len(s.vals) {
		if x := s.vals[s.next]; x != x {
			s.missing-- // overwrites a missing slot
		} else {
			s.remove(x)
		}
	}
	if v != v {
		s.missing++
	} else {
		s.add(v)
	}
	s.vals[s.next] = v
	s.next = (s.next + 1) % len(s.vals)
	if s.count < len(s.vals) {
		s.count++
	}
}

// meanStd returns the mean and population deviation of the held values
// that are not missing, and how many there are, summed exactly from the
// ring (two passes; O(window)).
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
