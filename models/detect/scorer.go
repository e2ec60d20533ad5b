package detect

import (
	"fmt"

	"github.com/outpost-iot/outpost/models/detect/zscore"
)

// Scorer scores the readings of one stream for a Detector. The Detector
// calls it on the stream's goroutine only; it need not be safe for
// concurrent use. The z-score scorer (New) and the model-backed scorer
// (package modelscore, through NewWithScorer) implement it.
type Scorer interface {
	// Model is the scorer's "name@version", as events and state report it.
	Model() string
	// Step scores v, a finite reading, against the samples folded before
	// it (or, for a model whose window ends with the reading, with it),
	// then folds v in. ok is false while the scorer cannot score yet
	// (warming up); the score is then 0. Step must not allocate.
	Step(v float64) (score float64, ok bool)
	// Fold folds a sample without judging it: a reading during the
	// detector's warm-up or a gap's fill. A NaN is a missing sample.
	Fold(v float64)
	// Evict forgets the oldest sample, for windows bounded by time. A
	// scorer with a fixed window of its own may ignore it.
	Evict()
	// Reset forgets the window (after a gap too long to fill).
	Reset()
	// AppendState appends the scorer's running state to b.
	AppendState(b []byte) ([]byte, error)
	// RestoreState returns a scorer like the receiver holding the state
	// at the front of b (written by AppendState), and the rest of b. The
	// receiver is unchanged. count is the number of samples the detector's
	// window holds, for scorers that keep the same window.
	RestoreState(b []byte, count int) (Scorer, []byte, error)
}

// zscoreScorer is the z-score scorer (package zscore) as a Scorer.
type zscoreScorer struct{ s *zscore.Scorer }

func (z zscoreScorer) Model() string { return zscore.Model }

func (z zscoreScorer) Step(v float64) (float64, bool) {
	sc := z.s.Score(v)
	z.s.Fold(v)
	return sc, true
}

func (z zscoreScorer) Fold(v float64) { z.s.Fold(v) }
func (z zscoreScorer) Evict()         { z.s.Evict() }
func (z zscoreScorer) Reset()         { z.s.Reset() }

func (z zscoreScorer) AppendState(b []byte) ([]byte, error) { return z.s.AppendBinary(b) }

func (z zscoreScorer) RestoreState(b []byte, count int) (Scorer, []byte, error) {
	sc := *z.s
	sc.ResetBuffer()
	rest, err := sc.DecodeFrom(b)
	if err != nil {
		return nil, nil, err
	}
	if sc.Count() != count {
		return nil, nil, fmt.Errorf("scorer holds %d samples, window %d", sc.Count(), count)
	}
	return zscoreScorer{&sc}, rest, nil
}
