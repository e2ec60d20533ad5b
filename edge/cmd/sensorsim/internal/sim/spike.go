package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// SpikeEvery says how often a spike is injected into each device's series:
// every N readings, or every Interval of wall time. The zero value injects
// none.
type SpikeEvery struct {
	N        int           // every N-th reading of a device (N, 2N, ...)
	Interval time.Duration // or the first reading after each Interval of wall time
}

// Enabled reports whether spikes are injected at all.
func (e SpikeEvery) Enabled() bool { return e.N > 0 || e.Interval > 0 }

// String formats e as ParseSpikeEvery reads it.
func (e SpikeEvery) String() string {
	switch {
	case e.N > 0:
		return strconv.Itoa(e.N)
	case e.Interval > 0:
		return e.Interval.String()
	}
	return "0"
}

// ParseSpikeEvery reads "N" (a reading count) or a Go duration ("30s");
// "" and "0" mean no spikes.
func ParseSpikeEvery(s string) (SpikeEvery, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return SpikeEvery{}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return SpikeEvery{}, fmt.Errorf("spike-every: %d must be >= 0", n)
		}
		return SpikeEvery{N: n}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return SpikeEvery{}, fmt.Errorf("spike-every: %q is neither a count nor a duration", s)
	}
	if d < 0 {
		return SpikeEvery{}, errors.New("spike-every: duration must be >= 0")
	}
	return SpikeEvery{Interval: d}, nil
}

// minHistory is how many readings a spiker needs before it can inject: the
// deviation of fewer readings means nothing.
const minHistory = 2

// spiker keeps the recent readings of one device's series and decides when to
// inject a spike. It is used by one goroutine.
type spiker struct {
	every  SpikeEvery
	sigma  float64
	window int
	hist   [][]float64 // per column, a ring of the last window readings
	n      int         // readings seen
	next   time.Duration
	owed   bool // a spike is due but history was too short
}

func newSpiker(every SpikeEvery, sigma float64, window, columns int) *spiker {
	s := &spiker{every: every, sigma: sigma, window: window, next: every.Interval}
	s.hist = make([][]float64, columns)
	for i := range s.hist {
		s.hist[i] = make([]float64, 0, window)
	}
	return s
}

// stagger moves the spiker's phase by a fixed pseudo-random offset for
// device i within its period: devices spike at different readings (or
// instants) instead of together.
func (s *spiker) stagger(i int) {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	switch {
	case s.every.N > 0:
		s.n = r.IntN(s.every.N)
	case s.every.Interval > 0:
		s.next = time.Duration(r.Int64N(int64(s.every.Interval))) + 1
	}
}

// due reports whether the next reading, published at wall offset now from
// the start, is to be spiked. It is called once per reading, before observe.
func (s *spiker) due(now time.Duration) bool {
	s.n++
	switch {
	case s.every.N > 0:
		if s.n%s.every.N == 0 {
			s.owed = true
		}
	case s.every.Interval > 0:
		for now >= s.next {
			s.owed = true
			s.next += s.every.Interval
		}
	default:
		return false
	}
	if s.owed && len(s.hist[0]) >= minHistory {
		s.owed = false
		return true
	}
	return false
}

// stats returns the mean and population standard deviation of column c's
// recent readings.
func (s *spiker) stats(c int) (mean, std float64) {
	h := s.hist[c]
	for _, v := range h {
		mean += v
	}
	mean /= float64(len(h))
	for _, v := range h {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(h)))
}

// spike returns the injected value for column c: mean + sigma x stddev of the
// recent readings. A flat history (stddev 0) would make no spike; then 1% of
// the mean's magnitude (at least 1) stands in for the deviation.
func (s *spiker) spike(c int) (value, mean, std float64) {
	mean, std = s.stats(c)
	d := std
	if d == 0 {
		d = math.Max(math.Abs(mean)*0.01, 1)
	}
	return mean + s.sigma*d, mean, std
}

// observe records a reading's original values (never the spiked ones).
func (s *spiker) observe(vals []float64) {
	for c, v := range vals {
		h := s.hist[c]
		if len(h) < s.window {
			s.hist[c] = append(h, v)
		} else {
			h[(s.n-1)%s.window] = v
		}
	}
}
