package detect

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Defaults and limits of SeasonalConfig.
const (
	// DefaultSeasonalPeriod is the period of the seasonal channel: a day.
	DefaultSeasonalPeriod = 24 * time.Hour
	// maxSeasonLen bounds the readings a season holds (a day at one
	// reading a minute); a stream sampled faster has no seasonal channel.
	maxSeasonLen = 1440
	// seasonSpacings is how many spacings between readings the season's
	// length is learnt from (their median).
	seasonSpacings = 16
)

// SeasonalConfig configures the seasonal channel of a Detector: how far the
// stream is from where it was one period (a day) earlier. The channel's
// raw score is |x_t - x_(t-n)|, n the number of readings in a period
// (Period over the median of the stream's first 16 spacings); a likelihood
// stage of its own (Config.Likelihood's settings, but averaging the last
// Average differences) judges their moving average against its history,
// and that likelihood score, scaled by Config.High / High, raises the
// detector's score when it is higher. A daily pattern that skips a cycle,
// shifts or changes its shape raises it; a stream without a daily pattern
// has large differences all the time, which its likelihood learns. It
// counts readings, not time: it assumes regular sampling (a gap the
// detector resets on restarts the season). Silent during the novelty
// channel's hold-off, like the volatility channel. Average 0 turns it off.
type SeasonalConfig struct {
	// Average is the number of recent differences whose mean is judged;
	// 0: no seasonal channel.
	Average int
	// High is the channel's likelihood score that counts as the
	// detector's High. 0 means Config.High.
	High float64
	// Period is the season's length. 0 means DefaultSeasonalPeriod.
	Period time.Duration
}

// validate reports a configuration the channel cannot run with.
func (c SeasonalConfig) validate() error {
	if c.Average == 0 {
		return nil
	}
	if c.Average < 1 || c.High < 0 || math.IsNaN(c.High) || c.Period < 0 {
		return fmt.Errorf("detect: seasonal average %d (1 or more), high %g or period %s", c.Average, c.High, c.Period)
	}
	return nil
}

// seasonal is the running state of the seasonal channel.
type seasonal struct {
	period int64
	// The first spacings (ns), until the season's length is known.
	sp    [seasonSpacings]int64
	nsp   int
	lastT int64
	hasT  bool
	// n is the season's length in readings: 0 not known yet, -1 none (the
	// stream is sampled too fast or too slow).
	n int
	// ring holds the last n readings (allocated once n is known); next is
	// the slot of the reading one season ago, have how many it holds.
	ring []float64
	next int
	have int
	lik  *Likelihood
}

func newSeasonal(c SeasonalConfig, lc LikelihoodConfig) (*seasonal, error) {
	lc.Average = c.Average
	lik, err := NewLikelihood(lc)
	if err != nil {
		return nil, err
	}
	p := c.Period
	if p == 0 {
		p = DefaultSeasonalPeriod
	}
	return &seasonal{period: int64(p), lik: lik}, nil
}

// step folds the reading v taken at t (unix ns) and returns the channel's
// likelihood score (ok false while the season's length is learnt, the
// first season fills, and the likelihood learns).
func (s *seasonal) step(t int64, v float64) (score float64, ok bool) {
	if s.n == 0 && !s.learn(t) {
		return 0, false
	}
	if s.n < 0 {
		return 0, false
	}
	full := s.have == s.n
	prev := s.ring[s.next]
	s.ring[s.next] = v
	if s.next++; s.next == s.n {
		s.next = 0
	}
	if !full {
		s.have++
		return 0, false
	}
	return s.lik.Step(math.Abs(v - prev))
}

// learn records the spacing before a reading at t and, once it has
// seasonSpacings of them, sets the season's length; it reports whether the
// length is known.
func (s *seasonal) learn(t int64) bool {
	if s.hasT && t > s.lastT {
		s.sp[s.nsp] = t - s.lastT
		s.nsp++
	}
	s.lastT, s.hasT = t, true
	if s.nsp < seasonSpacings {
		return false
	}
	sp := s.sp
	for i := 1; i < len(sp); i++ { // insertion sort: no allocation
		for k := i; k > 0 && sp[k] < sp[k-1]; k-- {
			sp[k], sp[k-1] = sp[k-1], sp[k]
		}
	}
	iv := (sp[seasonSpacings/2-1] + sp[seasonSpacings/2]) / 2
	n := math.Round(float64(s.period) / float64(iv))
	if n < 2 || n > maxSeasonLen {
		s.n = -1
		return true
	}
	s.setLen(int(n))
	return true
}

// setLen sets the season's length and allocates its ring.
func (s *seasonal) setLen(n int) {
	s.n = n
	s.ring = make([]float64, n)
	s.next, s.have = 0, 0
}

// reset restarts the season (after a gap that reset the window), keeping
// its length and the likelihood.
func (s *seasonal) reset() { s.next, s.have = 0, 0 }

// appendState appends the channel's state: the season's length, the
// spacings learnt so far, the last season's readings (oldest first) and
// the likelihood stage.
func (s *seasonal) appendState(b []byte) []byte {
	b = binary.AppendVarint(b, int64(s.n))
	b = binary.AppendUvarint(b, uint64(s.nsp))
	for _, x := range s.sp[:s.nsp] {
		b = binary.AppendVarint(b, x)
	}
	var hasT byte
	if s.hasT {
		hasT = 1
	}
	b = binary.AppendVarint(append(b, hasT), s.lastT)
	b = binary.AppendUvarint(b, uint64(s.have))
	for k := 0; k < s.have; k++ {
		// The oldest of have readings sits have slots before next.
		b = appendFloat(b, s.ring[(s.next-s.have+k+s.n)%s.n])
	}
	return s.lik.AppendState(b)
}

// restore reads a state written by appendState from the front of r into a
// fresh channel like s (s is unchanged).
func (s *seasonal) restore(r *reader) (*seasonal, error) {
	c := &seasonal{period: s.period}
	n, nsp := r.varint(), r.uvarint()
	if r.err != nil || n < -1 || n > maxSeasonLen || n == 1 || nsp > seasonSpacings {
		return nil, fmt.Errorf("%w: seasonal state", ErrState)
	}
	c.nsp = int(nsp)
	for i := range c.nsp {
		c.sp[i] = r.varint()
	}
	if r.err != nil || len(r.b) < 1 || r.b[0] > 1 {
		return nil, fmt.Errorf("%w: seasonal state", ErrState)
	}
	c.hasT = r.b[0] == 1
	r.b = r.b[1:]
	c.lastT = r.varint()
	have := r.uvarint()
	if r.err != nil || (n <= 0 && have > 0) || (n > 0 && have > uint64(n)) || uint64(len(r.b)) < 8*have {
		return nil, fmt.Errorf("%w: seasonal state", ErrState)
	}
	c.n = int(n)
	if n > 0 {
		c.setLen(int(n))
		for k := range int(have) {
			c.ring[k] = r.float()
		}
		c.have = int(have)
		c.next = c.have % c.n
	}
	lik, err := s.lik.restore(r)
	if err != nil {
		return nil, err
	}
	c.lik = lik
	return c, nil
}

// skipSeasonal reads past a seasonal state at the front of r (for a
// detector without the channel).
func skipSeasonal(r *reader) error {
	r.varint()
	nsp := r.uvarint()
	if r.err != nil || nsp > seasonSpacings {
		return fmt.Errorf("%w: seasonal state", ErrState)
	}
	for range nsp {
		r.varint()
	}
	if r.err != nil || len(r.b) < 1 {
		return fmt.Errorf("%w: seasonal state", ErrState)
	}
	r.b = r.b[1:]
	r.varint()
	have := r.uvarint()
	if r.err != nil || have > maxSeasonLen || uint64(len(r.b)) < 8*have {
		return fmt.Errorf("%w: seasonal state", ErrState)
	}
	r.b = r.b[8*have:]
	return skipLikelihood(r)
}
