package manifest

import "math"

// ResidualScale is the running scale a model's residuals are scored
// against, as the manifest's Scale, ScaleAlpha and ScaleClamp describe it:
// the first warm-up residuals set it (their mean, or with ScaleMax their
// largest magnitude); afterwards it follows |residual|, folded clamped at
// ScaleClamp·scale, by an exponential mean of weight ScaleAlpha, or with
// ScaleMax it decays by (1 - ScaleAlpha) per residual and rises to one
// that exceeds it. Its zero value is a scale that has seen nothing.
type ResidualScale struct {
	// N counts the residuals folded (at most math.MaxInt32).
	N int
	// Sum is the sum of the warm-up's |residuals|.
	Sum float64
	// Scale is the scale.
	Scale float64
}

// Fold folds the magnitude a of one residual. During the warm-up (the
// first warmup residuals) it returns ok false; afterwards it returns the
// scale a is to be divided by (the scale before a was folded, at least
// floor) and ok true.
func (s *ResidualScale) Fold(m *Manifest, warmup int, a, floor float64) (scale float64, ok bool) {
	if s.N < warmup {
		s.N++
		s.Sum += a
		if m.Scale == ScaleMax {
			s.Scale = math.Max(s.Scale, a)
		} else {
			s.Scale = s.Sum / float64(s.N)
		}
		return 0, false
	}
	scale = s.Scale
	if !(scale >= floor) {
		scale = floor
	}
	if s.N < math.MaxInt32 {
		s.N++
	}
	if m.Scale == ScaleMax {
		s.Scale = math.Max(s.Scale*(1-m.ScaleAlpha), math.Min(a, m.ScaleClamp*scale))
	} else {
		s.Scale += m.ScaleAlpha * (math.Min(a, m.ScaleClamp*scale) - s.Scale)
	}
	return scale, true
}

// VectorResidual is the RMS difference between a vector model's input and
// output (both Window·Features values), over the newest ResidualLast
// vectors when that is set, else over all.
func (m *Manifest) VectorResidual(in, out []float32) float64 {
	first := 0
	if k := m.ResidualLast; k > 0 {
		first = (m.Window - k) * m.Features
	}
	var ss float64
	for i := first; i < len(in); i++ {
		d := float64(in[i] - out[i])
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(in)-first))
}
