package stock

import (
	"fmt"
	"math"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// Scorer turns one value column's readings into anomaly scores with a model
// and its manifest, as a stream:
//
//   - forecast: the Window readings before a reading are normalised
//     (manifest.Normalise), the model predicts the reading in the same
//     units, and the residual is reading - (mean + std·prediction);
//   - autoencoder: the Window readings ending with the reading are
//     normalised and reconstructed, and the residual is std · the RMS
//     reconstruction error;
//
// then score = |residual| / scale. With manifest.ScaleMean the scale is the
// mean |residual| over the first Warmup residuals (no score while warming
// up) and afterwards an exponential mean (weight ScaleAlpha) of |residual|
// folded clamped at ScaleClamp·scale, so an anomaly does not drown the ones
// after it; with manifest.ScaleMax it is the largest |residual| of the
// warm-up, then decays by (1 - ScaleAlpha) per reading and rises to
// |residual| (at most ScaleClamp·scale) when one exceeds it. The scale is
// floored at StdFloor·max(1, |window mean|).
//
// A Scorer is not safe for concurrent use.
type Scorer struct {
	m       *manifest.Manifest
	ip      *tflite.Interpreter
	in, out []float32
	hist    []float64 // the last Window readings, oldest first (shifted)
	win     []float64
	warmup  int
	sc      manifest.ResidualScale
	// Last holds the last residual and prediction (for tests and reports).
	Last struct {
		Residual float64
		Output   []float32
	}
}

// NewScorer returns a scorer running model (built from the file m
// describes) with its own interpreter.
func NewScorer(m *manifest.Manifest, model *tflite.Model) (*Scorer, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	ip, err := model.NewInterpreter()
	if err != nil {
		return nil, fmt.Errorf("stock: %s: %w", m.ID(), err)
	}
	if len(ip.Inputs()) != 1 || len(ip.Outputs()) != 1 {
		return nil, fmt.Errorf("stock: %s: %d inputs and %d outputs, want 1 and 1", m.ID(), len(ip.Inputs()), len(ip.Outputs()))
	}
	in, out := ip.Input(0), ip.Output(0)
	wantOut := 1
	if m.Kind == manifest.KindAutoencoder {
		wantOut = m.Window
	}
	if in.Type() != tflite.Float32 || out.Type() != tflite.Float32 || len(in.Float32s()) != m.Window || len(out.Float32s()) != wantOut {
		return nil, fmt.Errorf("stock: %s: model input %v %v, output %v %v; the manifest wants float32 [1,%d] and float32 [1,%d]",
			m.ID(), in.Type(), in.Shape(), out.Type(), out.Shape(), m.Window, wantOut)
	}
	return &Scorer{m: m, ip: ip, in: in.Float32s(), out: out.Float32s(), hist: make([]float64, 0, m.Window),
		win: make([]float64, m.Window), warmup: m.Warmup}, nil
}

// Manifest returns the scorer's manifest.
func (s *Scorer) Manifest() *manifest.Manifest { return s.m }

// Reset forgets every reading.
func (s *Scorer) Reset() {
	s.hist = s.hist[:0]
	s.sc = manifest.ResidualScale{}
	s.warmup = s.m.Warmup
}

// Step scores reading v against the readings before it and folds it in. ok
// is false while the scorer is warming up (and for NaN or infinite
// readings, which are not folded).
func (s *Scorer) Step(v float64) (score float64, ok bool, err error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, nil
	}
	W := s.m.Window
	var r, mean float64
	have := false
	switch s.m.Kind {
	case manifest.KindForecast:
		if len(s.hist) == W {
			var std float64
			mean, std = manifest.Normalise(s.in, s.hist, s.m.StdFloor)
			if err := s.ip.Invoke(); err != nil {
				return 0, false, err
			}
			r = v - (mean + std*float64(s.out[0]))
			have = true
		}
		s.push(v)
	default:
		s.push(v)
		if len(s.hist) == W {
			var std float64
			mean, std = manifest.Normalise(s.in, s.hist, s.m.StdFloor)
			if err := s.ip.Invoke(); err != nil {
				return 0, false, err
			}
			var ss float64
			for i, x := range s.in {
				d := float64(x - s.out[i])
				ss += d * d
			}
			r = std * math.Sqrt(ss/float64(W))
			have = true
		}
	}
	if !have {
		return 0, false, nil
	}
	s.Last.Residual, s.Last.Output = r, s.out
	a := math.Abs(r)
	scale, ok := s.sc.Fold(s.m, s.warmup, a, s.m.StdFloor*math.Max(1, math.Abs(mean)))
	if !ok {
		return 0, false, nil
	}
	score = a / scale
	return score, true, nil
}

func (s *Scorer) push(v float64) {
	if len(s.hist) == cap(s.hist) {
		copy(s.hist, s.hist[1:])
		s.hist[len(s.hist)-1] = v
		return
	}
	s.hist = append(s.hist, v)
}

// Level is the decision on a score by the manifest's thresholds: 0 normal
// (score < Low), 1 uncertain, 2 anomaly (score >= High).
func Level(m *manifest.Manifest, score float64) int {
	switch {
	case score >= m.High:
		return 2
	case score >= m.Low:
		return 1
	}
	return 0
}

// ScoreWindow scores the last value of window (oldest first) against the
// values before it: a fresh scorer warms up on every residual but the last
// one (their mean |residual| is the scale) and scores the last. It needs at
// least Window + 2 values (forecast; Window + 1 for an autoencoder).
func (s *Scorer) ScoreWindow(window []float64) (float64, error) {
	s.Reset()
	first := s.m.Window // index of the first reading with a residual
	if s.m.Kind == manifest.KindAutoencoder {
		first = s.m.Window - 1
	}
	if len(window) < first+2 {
		return 0, fmt.Errorf("stock: %s: a window of %d values is too short (need %d)", s.m.ID(), len(window), first+2)
	}
	s.warmup = len(window) - 1 - first
	var score float64
	var ok bool
	for _, v := range window {
		sc, k, err := s.Step(v)
		if err != nil {
			return 0, err
		}
		score, ok = sc, k
	}
	if !ok {
		return 0, fmt.Errorf("stock: %s: the window's last value was not scored (NaN?)", s.m.ID())
	}
	return score, nil
}
