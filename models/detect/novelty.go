package detect

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Defaults and limits of NoveltyConfig.
const (
	DefaultNoveltyLength = 3
	// maxNoveltyContexts bounds Bins^Length (the counts a stream keeps).
	maxNoveltyContexts = 1 << 16
)

// NoveltyConfig configures the novelty channel of a Detector: how new the
// recent course of the readings is. Each reading is quantised into one of
// Bins equal bins spanning the range of the stream's readings so far; the
// last Length bins form a context; the channel's raw score is
// 1 / (1 + the number of times that context was seen before), so a course
// the stream never took scores 1 and a familiar one about 0. The raw
// scores go through a likelihood stage of their own (Config.Likelihood's
// settings), and that likelihood score, scaled by Config.High / High,
// raises the detector's score when it is higher. Bins 0 turns it off.
//
// Holdoff, when > 0, silences the channel for Holdoff readings after a
// reading judged anomalous (by any channel): an anomaly, above all one that
// widens the stream's range and so moves every bin, makes the readings
// after it look new for a while, and those echoes are the same incident.
type NoveltyConfig struct {
	// Bins is the number of bins (2 to 255); 0: no novelty channel.
	Bins int
	// Length is the number of readings in a context (1 to 8). 0 means
	// DefaultNoveltyLength.
	Length int
	// High is the channel's likelihood score that counts as the
	// detector's High. 0 means Config.High.
	High float64
	// Holdoff is the number of readings after an anomalous reading during
	// which the channel does not raise the score (it keeps learning). 0:
	// none.
	Holdoff int
}

// validate reports a configuration the channel cannot run with.
func (c NoveltyConfig) validate() error {
	if c.Bins == 0 {
		return nil
	}
	if c.Bins < 2 || c.Bins > 255 || c.Length < 0 || c.Length > 8 || c.High < 0 || math.IsNaN(c.High) || c.Holdoff < 0 {
		return fmt.Errorf("detect: novelty bins %d (2 to 255), length %d (1 to 8), high %g or hold-off %d", c.Bins, c.Length, c.High, c.Holdoff)
	}
	n := 1
	for range max(c.Length, 1) {
		if n *= c.Bins; n > maxNoveltyContexts {
			return fmt.Errorf("detect: novelty of %d bins and length %d keeps more than %d contexts", c.Bins, c.Length, maxNoveltyContexts)
		}
	}
	return nil
}

// novelty is the running state of the novelty channel.
type novelty struct {
	bins, length int
	// last holds the bins of the last length-1 readings, oldest first;
	// have how many of them are set.
	last []uint8
	have int
	// counts holds, per context, how often it was seen (saturating).
	counts []uint16
	lik    *Likelihood
}

func newNovelty(c NoveltyConfig, lc LikelihoodConfig) (*novelty, error) {
	lik, err := NewLikelihood(lc)
	if err != nil {
		return nil, err
	}
	n := 1
	for range c.Length {
		n *= c.Bins
	}
	return &novelty{bins: c.Bins, length: c.Length, last: make([]uint8, c.Length-1), counts: make([]uint16, n), lik: lik}, nil
}

// step quantises v (within the range lo..hi, which holds it), scores its
// context's novelty, counts the context and returns the channel's
// likelihood score (ok false while it learns, or while fewer than length
// readings were seen).
func (n *novelty) step(v, lo, hi float64) (score float64, ok bool) {
	q := 0
	if hi > lo {
		q = int(float64(n.bins) * (v - lo) / (hi - lo))
	}
	q = min(max(q, 0), n.bins-1)
	if n.have < len(n.last) {
		n.last[n.have] = uint8(q)
		n.have++
		return 0, false
	}
	idx := 0
	for _, b := range n.last {
		idx = idx*n.bins + int(b)
	}
	idx = idx*n.bins + q
	c := n.counts[idx]
	raw := 1 / (1 + float64(c))
	if c < math.MaxUint16 {
		n.counts[idx] = c + 1
	}
	if len(n.last) > 0 {
		copy(n.last, n.last[1:])
		n.last[len(n.last)-1] = uint8(q)
	}
	return n.lik.Step(raw)
}

// resetContext forgets the recent readings (after a gap), keeping the
// counts and the likelihood.
func (n *novelty) resetContext() { n.have = 0 }

// appendState appends the channel's state: the recent bins, the contexts
// seen (as index, count pairs) and the likelihood stage.
func (n *novelty) appendState(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(n.bins))
	b = binary.AppendUvarint(b, uint64(n.length))
	b = binary.AppendUvarint(b, uint64(n.have))
	b = append(b, n.last[:n.have]...)
	seen := 0
	for _, c := range n.counts {
		if c > 0 {
			seen++
		}
	}
	b = binary.AppendUvarint(b, uint64(seen))
	prev := -1
	for i, c := range n.counts {
		if c > 0 {
			b = binary.AppendUvarint(b, uint64(i-prev)) // gaps: small
			b = binary.AppendUvarint(b, uint64(c))
			prev = i
		}
	}
	return n.lik.AppendState(b)
}

// restore reads a state written by appendState from the front of r into a
// fresh channel like n (n is unchanged).
func (n *novelty) restore(r *reader) (*novelty, error) {
	bins, length, have := r.uvarint(), r.uvarint(), r.uvarint()
	if r.err != nil || bins != uint64(n.bins) || length != uint64(n.length) || have > uint64(len(n.last)) || uint64(len(r.b)) < have {
		return nil, fmt.Errorf("%w: novelty of %d bins, length %d (here %d, %d)", ErrState, bins, length, n.bins, n.length)
	}
	c := &novelty{bins: n.bins, length: n.length, last: make([]uint8, len(n.last)), have: int(have), counts: make([]uint16, len(n.counts))}
	copy(c.last, r.b[:have])
	r.b = r.b[have:]
	for _, q := range c.last[:c.have] {
		if int(q) >= c.bins {
			return nil, fmt.Errorf("%w: novelty bin %d", ErrState, q)
		}
	}
	seen := r.uvarint()
	if r.err != nil || seen > uint64(len(c.counts)) {
		return nil, fmt.Errorf("%w: %d novelty contexts", ErrState, seen)
	}
	i := -1
	for k := uint64(0); k < seen; k++ {
		gap, cnt := r.uvarint(), r.uvarint()
		if r.err != nil || gap == 0 || gap > uint64(len(c.counts)) || cnt == 0 || cnt > math.MaxUint16 {
			return nil, fmt.Errorf("%w: novelty context", ErrState)
		}
		if i += int(gap); i >= len(c.counts) {
			return nil, fmt.Errorf("%w: novelty context %d", ErrState, i)
		}
		c.counts[i] = uint16(cnt)
	}
	lik, err := n.lik.restore(r)
	if err != nil {
		return nil, err
	}
	c.lik = lik
	return c, nil
}

// skipNovelty reads past a novelty state at the front of r (for a detector
// without the channel).
func skipNovelty(r *reader) error {
	r.uvarint()
	r.uvarint()
	have := r.uvarint()
	if r.err != nil || have > 8 || uint64(len(r.b)) < have {
		return fmt.Errorf("%w: novelty state", ErrState)
	}
	r.b = r.b[have:]
	seen := r.uvarint()
	if r.err != nil || seen > maxNoveltyContexts {
		return fmt.Errorf("%w: novelty state", ErrState)
	}
	for k := uint64(0); k < seen && r.err == nil; k++ {
		r.uvarint()
		r.uvarint()
	}
	if r.err != nil {
		return r.err
	}
	return skipLikelihood(r)
}
