package train

import (
	"fmt"
	"math"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/nab"
)

// TargetClip bounds a forecaster's normalised target: a reading more than
// TargetClip window deviations from its context's mean (a jump after a flat
// stretch) is trained on as TargetClip, so that rare jumps do not dominate
// the squared error.
const TargetClip = 8

// Set is a training set: inputs and targets.
type Set struct {
	X, Y [][]float64
}

// Len is the number of examples.
func (s *Set) Len() int { return len(s.X) }

// Range selects, per value column of every series, the rows whose target
// reading lies in [From, To) of the series' probationary period (fractions:
// 0, 0.8 is its first 80%).
type Range struct {
	From, To float64
}

// Windows returns the examples a model of the given kind and window learns
// from in rng of every series' probationary period (nab.Probation): for a
// forecaster, the Window readings before a reading, normalised
// (manifest.Normalise), and the reading normalised the same way (clipped at
// ±TargetClip); for an autoencoder, the Window readings ending with a
// reading, normalised, as input and target. Every stride-th reading is
// taken. Windows holding a NaN or an infinity are skipped. No labels are
// read.
func Windows(c *nab.Corpus, kind string, window int, stdFloor float64, rng Range, stride int) (*Set, error) {
	if kind != manifest.KindForecast && kind != manifest.KindAutoencoder {
		return nil, fmt.Errorf("train: kind %q", kind)
	}
	if stride < 1 {
		stride = 1
	}
	set := &Set{}
	buf := make([]float64, window)
	norm := make([]float32, window)
	for _, s := range c.Series {
		p := nab.Probation(s.Len())
		lo, hi := int(rng.From*float64(p)), int(rng.To*float64(p))
		for col := range s.Columns {
		rows:
			for t := max(lo, window); t < hi; t += stride {
				first := t - window
				if kind == manifest.KindAutoencoder {
					first++
				}
				for k := range buf {
					v := s.Values[first+k][col]
					if math.IsNaN(v) || math.IsInf(v, 0) {
						continue rows
					}
					buf[k] = v
				}
				mean, std := manifest.Normalise(norm, buf, stdFloor)
				x := make([]float64, window)
				for k, v := range norm {
					x[k] = float64(v)
				}
				var y []float64
				if kind == manifest.KindForecast {
					v := s.Values[t][col]
					if math.IsNaN(v) || math.IsInf(v, 0) {
						continue
					}
					y = []float64{math.Max(-TargetClip, math.Min(TargetClip, (v-mean)/std))}
				} else {
					y = x
				}
				set.X = append(set.X, x)
				set.Y = append(set.Y, y)
			}
		}
	}
	if set.Len() == 0 {
		return nil, fmt.Errorf("train: no %s windows of %d readings in %s", kind, window, c.Dir)
	}
	return set, nil
}
