package secondstage

import (
	"fmt"
	"math"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// DefaultVectorConfirmAt is the confirm threshold of a vector (video)
// model as a multiple of its manifest's low threshold: the low threshold
// itself, a quantile of the same residual on held-out normal buckets.
const DefaultVectorConfirmAt = 1

// VectorThreshold returns the confirm threshold of a vector model m:
// confirmAt times m.Low (DefaultVectorConfirmAt when confirmAt is 0). It
// is in the manifest's residual units (see VectorConfirmer).
func VectorThreshold(m *manifest.Manifest, confirmAt float64) float64 {
	if confirmAt == 0 {
		confirmAt = DefaultVectorConfirmAt
	}
	return confirmAt * m.Low
}

// VectorConfirmer re-scores the feature vectors a vector-model event
// carries (wire.Event.Features: rows of the manifest's Features values,
// oldest first, ending with the event's bucket) with a float vector
// autoencoder, e.g. the stock ae-video-cloud.
//
// The score is the residual of the event's bucket computed from the
// event's rows alone, so the cloud needs no state per camera: the last
// Window rows are normalised in order against a fresh baseline
// (manifest.NormaliseVector: started at the first row, then folded in row
// by row), reconstructed by the model, and the residual is the RMS
// reconstruction error of the newest ResidualLast rows (manifest
// VectorResidual), in normalised units, not divided by a running scale.
// The manifest's low and high thresholds are quantiles of this same
// residual on held-out normal buckets (train.BuildVideoCloud). The bucket
// is confirmed when the residual is at least Threshold.
//
// Fewer than Window rows give ErrShortWindow. A VectorConfirmer holds an
// interpreter and is not safe for concurrent use.
type VectorConfirmer struct {
	s    *stock.VectorScorer
	norm []float32
	row  []float64
	base manifest.Baseline
	// Threshold is the residual at or above which the bucket is
	// confirmed.
	Threshold float64
}

// NewVector returns a confirmer running the vector model model, which m
// describes, confirming at or above threshold (VectorThreshold(m, 0) when
// threshold is 0).
func NewVector(m *manifest.Manifest, model *tflite.Model, threshold float64) (*VectorConfirmer, error) {
	if threshold < 0 || math.IsNaN(threshold) {
		return nil, fmt.Errorf("secondstage: %s: threshold %v is negative", m.ID(), threshold)
	}
	if m.Normalisation != manifest.NormFeatureZ {
		return nil, fmt.Errorf("secondstage: %s: normalisation %q; a vector confirmer runs %s models", m.ID(), m.Normalisation, manifest.NormFeatureZ)
	}
	s, err := stock.NewVectorScorer(m, model)
	if err != nil {
		return nil, fmt.Errorf("secondstage: %w", err)
	}
	if threshold == 0 {
		threshold = VectorThreshold(m, 0)
	}
	return &VectorConfirmer{s: s, norm: make([]float32, m.InputSize()), row: make([]float64, m.Features), Threshold: threshold}, nil
}

// Manifest returns the model's manifest.
func (c *VectorConfirmer) Manifest() *manifest.Manifest { return c.s.Manifest() }

// Rows is the number of feature rows the confirmer needs: the model's
// window.
func (c *VectorConfirmer) Rows() int { return c.s.Manifest().Window }

// Score returns the residual of the last row of features (rows of
// Features values, oldest first, flattened; only the last Window rows are
// read). missing lists indices of features that the buckets did not have;
// those are read as missing whatever their value.
func (c *VectorConfirmer) Score(features []float64, missing []int) (float64, error) {
	m := c.s.Manifest()
	F, W := m.Features, m.Window
	if len(features)%F != 0 {
		return 0, fmt.Errorf("secondstage: %s: %d feature values are not rows of %d", m.ID(), len(features), F)
	}
	if rows := len(features) / F; rows < W {
		return 0, fmt.Errorf("%w: %s needs %d rows of %d features, got %d", ErrShortWindow, m.ID(), W, F, rows)
	}
	first := len(features) - W*F
	isMissing := func(i int) bool {
		for _, k := range missing {
			if k == i {
				return true
			}
		}
		return false
	}
	c.base.Started = false
	for r := 0; r < W; r++ {
		off := first + r*F
		for f := 0; f < F; f++ {
			x := features[off+f]
			if isMissing(off+f) || math.IsInf(x, 0) {
				x = math.NaN()
			}
			c.row[f] = x
		}
		m.NormaliseVector(c.norm[r*F:(r+1)*F], c.row, &c.base)
	}
	return c.s.Residual(c.norm)
}

// Decide scores features and reports whether the last bucket is confirmed
// (residual at or above Threshold); err is Score's.
func (c *VectorConfirmer) Decide(features []float64, missing []int) (score float64, confirmed bool, err error) {
	sc, err := c.Score(features, missing)
	if err != nil {
		return 0, false, err
	}
	return sc, sc >= c.Threshold, nil
}
