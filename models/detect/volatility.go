package detect

import (
	"fmt"
	"math"
)

// VolatilityConfig configures the volatility channel of a Detector: how
// much the stream moves from one reading to the next, against how much it
// moved lately. The channel's raw score is |x_t - x_(t-1)|, the size of a
// step; a likelihood stage of its own (Config.Likelihood's settings, but
// averaging the last Average steps) judges their moving average against
// its history, and that likelihood score, scaled by Config.High / High,
// raises the detector's score when it is higher. A stream that starts to
// oscillate, or grows noisier, within its usual range (which the range
// rule does not see and a model of window-normalised shapes may not
// either) raises it; so does a burst of large steps. Average 0 turns it
// off.
type VolatilityConfig struct {
	// Average is the number of recent steps whose mean is judged (2 or
	// more); 0: no volatility channel.
	Average int
	// High is the channel's likelihood score that counts as the
	// detector's High. 0 means Config.High.
	High float64
}

// validate reports a configuration the channel cannot run with.
func (c VolatilityConfig) validate() error {
	if c.Average == 0 {
		return nil
	}
	if c.Average < 2 || c.High < 0 || math.IsNaN(c.High) {
		return fmt.Errorf("detect: volatility average %d (2 or more) or high %g", c.Average, c.High)
	}
	return nil
}

// volatility is the running state of the volatility channel.
type volatility struct {
	has  bool
	last float64
	lik  *Likelihood
}

func newVolatility(c VolatilityConfig, lc LikelihoodConfig) (*volatility, error) {
	lc.Average = c.Average
	if lc.Learn > lc.Window {
		lc.Learn = lc.Window
	}
	lik, err := NewLikelihood(lc)
	if err != nil {
		return nil, err
	}
	return &volatility{lik: lik}, nil
}

// step folds the reading v and returns the channel's likelihood score (ok
// false while it learns, and for the first reading after a reset).
func (c *volatility) step(v float64) (score float64, ok bool) {
	if !c.has {
		c.last, c.has = v, true
		return 0, false
	}
	raw := math.Abs(v - c.last)
	c.last = v
	return c.lik.Step(raw)
}

// reset forgets the last reading (after a gap), keeping the likelihood.
func (c *volatility) reset() { c.has = false }

// appendState appends the channel's state: the last reading and the
// likelihood stage.
func (c *volatility) appendState(b []byte) []byte {
	var has byte
	if c.has {
		has = 1
	}
	b = appendFloat(append(b, has), c.last)
	return c.lik.AppendState(b)
}

// restore reads a state written by appendState from the front of r into a
// fresh channel like c (c is unchanged).
func (c *volatility) restore(r *reader) (*volatility, error) {
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) < 1 || r.b[0] > 1 {
		return nil, fmt.Errorf("%w: volatility state", ErrState)
	}
	n := &volatility{has: r.b[0] == 1}
	r.b = r.b[1:]
	n.last = r.float()
	if r.err != nil || math.IsNaN(n.last) || math.IsInf(n.last, 0) {
		return nil, fmt.Errorf("%w: volatility state", ErrState)
	}
	lik, err := c.lik.restore(r)
	if err != nil {
		return nil, err
	}
	n.lik = lik
	return n, nil
}

// skipVolatility reads past a volatility state at the front of r (for a
// detector without the channel).
func skipVolatility(r *reader) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) < 9 {
		return fmt.Errorf("%w: volatility state", ErrState)
	}
	r.b = r.b[9:]
	return skipLikelihood(r)
}
