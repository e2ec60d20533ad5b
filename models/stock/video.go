package stock

import (
	"fmt"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// VectorScorer turns a stream of reading vectors (one per time step, the
// manifest's Features values in FeatureNames order; NaN for a missing
// feature) into anomaly scores with a vector autoencoder (Features > 1,
// normalisation manifest.NormFeatureZ): each vector is normalised against
// the stream's own baseline and the manifest's per-feature std, the Window
// vectors ending with
// the new one are reconstructed, and the residual is the RMS reconstruction
// error in normalised units; then score = residual / scale with the scale
// of manifest.Scale, warm-up and clamp as Scorer keeps it (floored at
// 1e-6). The stock ae-video model is one: a camera's per-bucket video
// features.
//
// A VectorScorer is not safe for concurrent use.
type VectorScorer struct {
	m       *manifest.Manifest
	ip      *tflite.Interpreter
	in, out []float32
	hist    []float32 // the last Window normalised vectors, oldest first, flattened
	base    manifest.Baseline
	n       int // vectors held, up to Window
	sc      manifest.ResidualScale
	// Last holds the last residual (for tests and reports).
	Last struct {
		Residual float64
		Output   []float32
	}
}

// vectorScaleFloor keeps a vector model's scale above zero.
const vectorScaleFloor = 1e-6

// NewVectorScorer returns a scorer running model (built from the file m
// describes, Features > 1) with its own interpreter.
func NewVectorScorer(m *manifest.Manifest, model *tflite.Model) (*VectorScorer, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.Features < 2 {
		return nil, fmt.Errorf("stock: %s: %d feature per reading; a VectorScorer runs vector models (use Scorer)", m.ID(), m.Features)
	}
	ip, err := model.NewInterpreter()
	if err != nil {
		return nil, fmt.Errorf("stock: %s: %w", m.ID(), err)
	}
	if len(ip.Inputs()) != 1 || len(ip.Outputs()) != 1 {
		return nil, fmt.Errorf("stock: %s: %d inputs and %d outputs, want 1 and 1", m.ID(), len(ip.Inputs()), len(ip.Outputs()))
	}
	in, out := ip.Input(0), ip.Output(0)
	n := m.InputSize()
	if in.Type() != tflite.Float32 || out.Type() != tflite.Float32 || len(in.Float32s()) != n || len(out.Float32s()) != n {
		return nil, fmt.Errorf("stock: %s: model input %v %v, output %v %v; the manifest wants float32 [1,%d] in and out",
			m.ID(), in.Type(), in.Shape(), out.Type(), out.Shape(), n)
	}
	return &VectorScorer{m: m, ip: ip, in: in.Float32s(), out: out.Float32s(), hist: make([]float32, n)}, nil
}

// Manifest returns the scorer's manifest.
func (s *VectorScorer) Manifest() *manifest.Manifest { return s.m }

// Reset forgets every reading.
func (s *VectorScorer) Reset() {
	s.n, s.sc = 0, manifest.ResidualScale{}
	s.base.Started = false
}

// Step scores the reading vector v (len Features) with the vectors before
// it and folds it in. ok is false while the scorer fills its window and
// warms up.
func (s *VectorScorer) Step(v []float64) (score float64, ok bool, err error) {
	F := s.m.Features
	if len(v) != F {
		return 0, false, fmt.Errorf("stock: %s: a reading of %d features, want %d", s.m.ID(), len(v), F)
	}
	copy(s.hist, s.hist[F:])
	s.m.NormaliseVector(s.hist[len(s.hist)-F:], v, &s.base)
	if s.n < s.m.Window {
		s.n++
	}
	if s.n < s.m.Window {
		return 0, false, nil
	}
	r, err := s.Residual(s.hist)
	if err != nil {
		return 0, false, err
	}
	scale, ok := s.sc.Fold(s.m, s.m.Warmup, r, vectorScaleFloor)
	if !ok {
		return 0, false, nil
	}
	score = r / scale
	return score, true, nil
}

// Residual runs the model on one normalised, flattened window (len Window
// · Features) and returns the RMS reconstruction error (of the newest
// manifest ResidualLast vectors, if set).
func (s *VectorScorer) Residual(window []float32) (float64, error) {
	copy(s.in, window)
	if err := s.ip.Invoke(); err != nil {
		return 0, err
	}
	r := s.m.VectorResidual(s.in, s.out)
	s.Last.Residual, s.Last.Output = r, s.out
	return r, nil
}
