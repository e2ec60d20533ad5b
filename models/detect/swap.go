package detect

import "fmt"

// SwapScorer replaces the detector's scorer with s (a new model) and its
// thresholds with low and high, between two readings. What the detector
// holds is kept: the window of raw readings and their times, the reorder
// buffer, the gap state, the online normalisation, the warm-up count and
// the incident in progress (hysteresis and cool-down), so a swap neither
// drops a reading nor judges one twice, and an incident is not raised
// again because the model changed.
//
// The new scorer must be fresh: the samples the window holds are folded
// into it, oldest first (Scorer.Fold; a missing sample as NaN), so that it
// holds what it would hold had it scored the window's readings itself. A
// model scorer whose window and warm-up fit in the detector's window is
// warm at once; otherwise it warms up on the readings that follow, which
// are judged normal meanwhile. The old scorer's running state (a model's
// residual scale) is dropped: it belongs to the old model.
//
// The detector owns s from then on. On error the detector is unchanged.
func (d *Detector) SwapScorer(s Scorer, low, high float64) error {
	if s == nil {
		return fmt.Errorf("detect: nil scorer")
	}
	if !(high > low) {
		return fmt.Errorf("detect: high %g <= low %g", high, low)
	}
	start := (d.next - d.count + len(d.raw)) % len(d.raw)
	for i := 0; i < d.count; i++ {
		s.Fold(d.raw[(start+i)%len(d.raw)])
	}
	d.scorer = s
	d.cfg.Low, d.cfg.High = low, high
	if d.lik != nil {
		// The likelihood stage's history holds the old scorer's raw
		// scores: it learns the new scorer's afresh (the stream's range
		// is kept: it belongs to the readings).
		d.lik.Reset()
	}
	return nil
}
