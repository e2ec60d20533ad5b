package detect

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Defaults of LikelihoodConfig's zero fields.
const (
	DefaultLikelihoodAverage = 10
	DefaultLikelihoodFloor   = 0.01
	// likelihoodResum is how many updates of the running sums are made
	// before they are summed again exactly from the ring (bounds float
	// drift).
	likelihoodResum = 1024
	// likelihoodMinTail is the smallest tail probability told apart: a
	// likelihood score of 1.
	likelihoodMinTail = 1e-10
	// maxRaw caps raw scores so that sums of their squares stay finite.
	maxRaw = 1e100
)

// LikelihoodConfig configures the anomaly likelihood stage (Likelihood).
// Its zero value (Window 0) turns the stage off.
type LikelihoodConfig struct {
	// Window is the number of recent averaged raw scores the Gaussian is
	// fitted to. 0: no likelihood stage (the raw score is the score).
	Window int
	// Average is the number of raw scores in the moving average that is
	// judged. 0 means DefaultLikelihoodAverage.
	Average int
	// Learn is the number of averaged scores the history must hold before
	// the stage scores. 0 means Window/4 (at least 2).
	Learn int
	// Floor is the smallest standard deviation of the fit, as a fraction
	// of max(fitted mean, Floor): it keeps a history of near-constant raw
	// scores from turning every tiny change into an anomaly. 0 means
	// DefaultLikelihoodFloor.
	Floor float64
	// Cap, when > 0, caps raw scores at Cap before they are averaged, so
	// that one huge raw score does not inflate the fit for a whole Window.
	Cap float64
	// Clamp, when > 0, adds an average to the history at most Clamp
	// deviations above the fitted mean (once the stage scores), so that an
	// anomaly does not inflate the fit and mask the next one for a whole
	// Window; a lasting change still moves the fit, Clamp deviations at a
	// time.
	Clamp float64
}

// withDefaults returns c with zero fields filled (Window > 0).
func (c LikelihoodConfig) withDefaults() LikelihoodConfig {
	if c.Average == 0 {
		c.Average = DefaultLikelihoodAverage
	}
	if c.Learn == 0 {
		c.Learn = max(c.Window/4, 2)
	}
	if c.Floor == 0 {
		c.Floor = DefaultLikelihoodFloor
	}
	return c
}

// validate reports a configuration the stage cannot run with.
func (c LikelihoodConfig) validate() error {
	switch {
	case c.Window < 0 || c.Average < 0 || c.Learn < 0 || c.Floor < 0 || c.Cap < 0 || c.Clamp < 0:
		return fmt.Errorf("detect: negative likelihood window, average, learn, floor, cap or clamp")
	case c.Window == 0:
		return nil
	case c.Window < 2:
		return fmt.Errorf("detect: likelihood window %d < 2", c.Window)
	case c.Learn > c.Window:
		return fmt.Errorf("detect: likelihood learn %d > window %d", c.Learn, c.Window)
	}
	return nil
}

// Likelihood turns raw anomaly scores into an anomaly likelihood, as the
// "anomaly likelihood" of Numenta's HTM detector does: the moving average of
// the last Average raw scores is judged against a Gaussian fitted to the
// last Window such averages, and the score is the tail probability p of the
// new average under that fit, on a log scale:
//
//	score = min(1, -log10(max(p, 1e-10)) / 10)
//
// so that p = 1e-5 scores 0.5 and anything at or beyond 1e-10 scores 1.
// Only averages above the fitted mean are unlikely (p < 1/2). A raw score
// that is large for its stream's recent history scores high; a stream
// whose raw scores are always large (noisy) does not. The fit uses running
// sums (O(1) per score), summed again exactly every 1024 updates and when
// a removal cancels most of the sum of squares.
//
// Not safe for concurrent use.
type Likelihood struct {
	cfg LikelihoodConfig
	// short is the ring of the last Average raw scores and shortSum their
	// sum; sn how many it holds.
	short    []float64
	sNext    int
	sn       int
	shortSum float64
	// hist is the ring of the last Window averages and hn how many it
	// holds; s1 and s2 the running sums of their deviations from k (and
	// of the squares), s2max the largest s2 since the last exact sum, upd
	// the updates since then.
	hist  []float64
	hNext int
	hn    int
	k     float64
	s1    float64
	s2    float64
	s2max float64
	upd   int
}

// NewLikelihood returns a likelihood stage for cfg (cfg.Window >= 2).
func NewLikelihood(cfg LikelihoodConfig) (*Likelihood, error) {
	if cfg.Window == 0 {
		return nil, fmt.Errorf("detect: likelihood window 0")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Likelihood{cfg: cfg, short: make([]float64, cfg.Average), hist: make([]float64, cfg.Window)}, nil
}

// Config returns the stage's configuration, defaults filled.
func (l *Likelihood) Config() LikelihoodConfig { return l.cfg }

// Step folds the raw score raw (>= 0; NaN counts as 0, anything above 1e100
// as 1e100) and returns the likelihood
// score of the new moving average against the history before it, then adds
// the average to the history. ok is false while the history holds fewer
// than Learn averages (the score is then 0).
func (l *Likelihood) Step(raw float64) (score float64, ok bool) {
	if raw != raw || raw < 0 {
		raw = 0
	}
	if raw > maxRaw { // +Inf too: the sums of squares stay finite
		raw = maxRaw
	}
	if l.cfg.Cap > 0 && raw > l.cfg.Cap {
		raw = l.cfg.Cap
	}
	// Moving average of the last Average raw scores.
	if l.sn == len(l.short) {
		l.shortSum -= l.short[l.sNext]
	} else {
		l.sn++
	}
	l.short[l.sNext] = raw
	l.shortSum += raw
	if l.sNext++; l.sNext == len(l.short) {
		l.sNext = 0
		l.shortSum = 0 // exact again once per lap
		for _, x := range l.short {
			l.shortSum += x
		}
	}
	avg := l.shortSum / float64(l.sn)
	if avg < 0 {
		avg = 0
	}
	if l.hn >= l.cfg.Learn {
		mean, std := l.Fit()
		score, ok = TailScore((avg-mean)/std), true
		if l.cfg.Clamp > 0 {
			avg = math.Min(avg, mean+l.cfg.Clamp*std)
		}
	}
	l.push(avg)
	return score, ok
}

// Fit returns the mean and standard deviation (floored) of the history.
func (l *Likelihood) Fit() (mean, std float64) {
	if l.hn == 0 {
		return 0, 0
	}
	if l.upd >= likelihoodResum || l.s2 < 1e-6*l.s2max {
		l.resum()
	}
	n := float64(l.hn)
	m1 := l.s1 / n
	v := l.s2/n - m1*m1
	if v < 0 || m1*m1 > 1e3*v && m1 != 0 {
		l.resum() // the mean moved far from k
		m1 = l.s1 / n
		v = max(l.s2/n-m1*m1, 0)
	}
	mean = l.k + m1
	std = math.Sqrt(v)
	if f := l.cfg.Floor * math.Max(mean, l.cfg.Floor); std < f {
		std = f
	}
	return mean, std
}

// TailScore is the likelihood score of a standard normal variate z: the
// upper tail probability p = P(Z > z) on the scale min(1, -log10(max(p,
// 1e-10))/10). TailScore(0) = 0.0301 (p = 1/2); z below 0 scores less.
func TailScore(z float64) float64 {
	if z != z {
		return 0
	}
	p := 0.5 * math.Erfc(z/math.Sqrt2)
	if p < likelihoodMinTail {
		return 1
	}
	return -math.Log10(p) / 10
}

// push adds an average to the history.
func (l *Likelihood) push(avg float64) {
	if l.hn == len(l.hist) {
		d := l.hist[l.hNext] - l.k
		l.s1 -= d
		l.s2 -= d * d
	} else {
		if l.hn == 0 {
			l.k, l.s1, l.s2, l.s2max = avg, 0, 0, 0
		}
		l.hn++
	}
	l.hist[l.hNext] = avg
	d := avg - l.k
	l.s1 += d
	l.s2 += d * d
	l.s2max = max(l.s2max, l.s2)
	if l.hNext++; l.hNext == len(l.hist) {
		l.hNext = 0
	}
	l.upd++
}

// resum sums the history again exactly, around its mean (two passes).
func (l *Likelihood) resum() {
	start := l.hNext - l.hn
	if start < 0 {
		start += len(l.hist)
	}
	var sum float64
	for k := 0; k < l.hn; k++ {
		sum += l.hist[(start+k)%len(l.hist)]
	}
	l.k = 0
	if l.hn > 0 {
		l.k = sum / float64(l.hn)
	}
	l.s1, l.s2 = 0, 0
	for k := 0; k < l.hn; k++ {
		d := l.hist[(start+k)%len(l.hist)] - l.k
		l.s1 += d
		l.s2 += d * d
	}
	l.s2max, l.upd = l.s2, 0
}

// Reset forgets the history and the moving average.
func (l *Likelihood) Reset() {
	l.sNext, l.sn, l.shortSum = 0, 0, 0
	l.hNext, l.hn, l.k, l.s1, l.s2, l.s2max, l.upd = 0, 0, 0, 0, 0, 0, 0
}

// likelihoodStateVersion is the first byte of the stage's state.
const likelihoodStateVersion = 1

// AppendState appends the stage's state (both rings, oldest first) to b.
func (l *Likelihood) AppendState(b []byte) []byte {
	b = append(b, likelihoodStateVersion)
	// The moving average's ring as it lies (its exact re-sum happens when
	// the ring wraps), then the history oldest first.
	b = binary.AppendUvarint(b, uint64(len(l.short)))
	b = binary.AppendUvarint(b, uint64(l.sn))
	b = binary.AppendUvarint(b, uint64(l.sNext))
	for k := 0; k < l.sn; k++ {
		b = appendFloat(b, l.short[k])
	}
	b = binary.AppendUvarint(b, uint64(len(l.hist)))
	b = binary.AppendUvarint(b, uint64(l.hn))
	for k := 0; k < l.hn; k++ {
		i := (l.hNext - l.hn + k + len(l.hist)) % len(l.hist)
		b = appendFloat(b, l.hist[i])
	}
	// The running sums, so that a restored stage continues bit for bit.
	for _, v := range [...]float64{l.shortSum, l.k, l.s1, l.s2, l.s2max} {
		b = appendFloat(b, v)
	}
	return binary.AppendUvarint(b, uint64(l.upd))
}

// restore reads a state written by AppendState from the front of r into a
// fresh stage like l (the receiver is unchanged).
func (l *Likelihood) restore(r *reader) (*Likelihood, error) {
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) < 1 || r.b[0] != likelihoodStateVersion {
		return nil, fmt.Errorf("%w: likelihood state version", ErrState)
	}
	r.b = r.b[1:]
	n := &Likelihood{cfg: l.cfg, short: make([]float64, len(l.short)), hist: make([]float64, len(l.hist))}
	size, cnt, next := r.uvarint(), r.uvarint(), r.uvarint()
	if r.err != nil || size != uint64(len(n.short)) || cnt > size || next >= size || cnt < size && next != cnt || uint64(len(r.b)) < 8*cnt {
		return nil, fmt.Errorf("%w: likelihood average of %d (here %d)", ErrState, size, len(n.short))
	}
	for k := uint64(0); k < cnt; k++ {
		n.short[k] = r.float()
	}
	n.sn, n.sNext = int(cnt), int(next)
	size, cnt = r.uvarint(), r.uvarint()
	if r.err != nil || size != uint64(len(n.hist)) || cnt > size || uint64(len(r.b)) < 8*cnt {
		return nil, fmt.Errorf("%w: likelihood history of %d (here %d)", ErrState, size, len(n.hist))
	}
	for k := uint64(0); k < cnt; k++ {
		n.hist[k] = r.float()
	}
	n.hn, n.hNext = int(cnt), int(cnt)%len(n.hist)
	n.shortSum, n.k, n.s1, n.s2, n.s2max = r.float(), r.float(), r.float(), r.float(), r.float()
	upd := r.uvarint()
	if r.err != nil {
		return nil, r.err
	}
	for _, v := range [...]float64{n.shortSum, n.k, n.s1, n.s2, n.s2max} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: likelihood sums", ErrState)
		}
	}
	n.upd = int(min(upd, likelihoodResum))
	return n, nil
}

// skipLikelihood reads past a state written by AppendState at the front of
// r (for a detector without a likelihood stage).
func skipLikelihood(r *reader) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) < 1 || r.b[0] != likelihoodStateVersion {
		return fmt.Errorf("%w: likelihood state version", ErrState)
	}
	r.b = r.b[1:]
	for i := range 2 {
		size, cnt := r.uvarint(), r.uvarint()
		if i == 0 {
			r.uvarint() // the ring's next slot
		}
		if r.err != nil || cnt > size || uint64(len(r.b)) < 8*cnt {
			return fmt.Errorf("%w: likelihood state truncated", ErrState)
		}
		r.b = r.b[8*cnt:]
	}
	for range 5 {
		r.float()
	}
	r.uvarint()
	return r.err
}
