// Package secondstage is the cloud's second stage with a model: it
// re-scores a window the edge forwarded (raw values, oldest first, ending
// with the reading in question) and confirms or rejects that reading. The
// evaluation (models/eval, hybrid mode) and outpost-cloud both decide with
// this code, so what the evaluation measures is what the cloud does.
//
// The score is stock.Scorer.ScoreWindow's: a fresh scorer warms up on every
// residual of the window but the last one, and the last residual is scored
// against them (above 1: bigger than anything earlier in the window). The
// reading is confirmed when the score is at least the threshold, by default
// DefaultConfirmAt times the model's low threshold (Threshold).
//
// A window shorter than MinWindow cannot be scored: Score returns
// ErrShortWindow and Confirm does not confirm. What to decide then is the
// caller's rule (the evaluation's hybrid rule anomaly-or-confirmed lets an
// edge anomaly stand and drops an uncertain reading).
package secondstage

import (
	"errors"
	"fmt"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// DefaultConfirmAt is the confirm threshold as a multiple of the model's
// low threshold.
const DefaultConfirmAt = 3

// ErrShortWindow: the window has fewer values than the model needs.
var ErrShortWindow = errors.New("secondstage: window too short for the model")

// Threshold returns the confirm threshold of m: confirmAt times m.Low
// (DefaultConfirmAt when confirmAt is 0).
func Threshold(m *manifest.Manifest, confirmAt float64) float64 {
	if confirmAt == 0 {
		confirmAt = DefaultConfirmAt
	}
	return confirmAt * m.Low
}

// Confirmer re-scores windows with one model. It holds an interpreter and
// is not safe for concurrent use: use one per goroutine.
type Confirmer struct {
	s *stock.Scorer
	// Threshold is the score at or above which a window's last reading is
	// confirmed.
	Threshold float64
}

// New returns a confirmer running model, which m describes, confirming at
// or above threshold (Threshold(m, 0) when threshold is 0).
func New(m *manifest.Manifest, model *tflite.Model, threshold float64) (*Confirmer, error) {
	if threshold < 0 {
		return nil, fmt.Errorf("secondstage: %s: threshold %v is negative", m.ID(), threshold)
	}
	s, err := stock.NewScorer(m, model)
	if err != nil {
		return nil, err
	}
	if threshold == 0 {
		threshold = Threshold(m, 0)
	}
	return &Confirmer{s: s, Threshold: threshold}, nil
}

// Manifest returns the model's manifest.
func (c *Confirmer) Manifest() *manifest.Manifest { return c.s.Manifest() }

// MinWindow is the fewest values a window needs to be scored: the model's
// input, one reading with a residual to warm up on, and the reading scored.
func (c *Confirmer) MinWindow() int { return MinWindow(c.s.Manifest()) }

// MinWindow is the fewest values a window needs to be scored with m.
func MinWindow(m *manifest.Manifest) int {
	if m.Kind == manifest.KindAutoencoder {
		return m.Window + 1
	}
	return m.Window + 2
}

// Score scores the last value of window against the values before it.
// A window shorter than MinWindow gives ErrShortWindow.
func (c *Confirmer) Score(window []float64) (float64, error) {
	if n := c.MinWindow(); len(window) < n {
		return 0, fmt.Errorf("%w: %s needs %d values, got %d", ErrShortWindow, c.s.Manifest().ID(), n, len(window))
	}
	return c.s.ScoreWindow(window)
}

// Decide scores window and reports whether its last reading is confirmed
// (score at or above Threshold); err is Score's.
func (c *Confirmer) Decide(window []float64) (score float64, confirmed bool, err error) {
	sc, err := c.Score(window)
	if err != nil {
		return 0, false, err
	}
	return sc, sc >= c.Threshold, nil
}

// Confirm is Decide for a caller whose rule for a window that cannot be
// scored is "not confirmed" (score 0).
func (c *Confirmer) Confirm(window []float64) (float64, bool) {
	sc, ok, _ := c.Decide(window)
	return sc, ok
}
