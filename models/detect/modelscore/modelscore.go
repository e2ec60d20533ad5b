// Package modelscore scores a stream with a TFLite model and its manifest
// (models/manifest), as a detect.Scorer: the edge agent's model-backed
// scorer. It computes exactly what stock.Scorer computes (the evaluation's
// ModelDetector runs stock.Scorer, and a test holds the two equal reading
// for reading), with two differences the agent needs: the interpreter is a
// Runner that many streams judged on one goroutine share (an interpreter
// per worker, not per stream), and the running state (the model's window
// of readings, the residual scale and its warm-up) is checkpointed with the
// detector's (detect.Detector.MarshalBinary).
//
// Scoring a reading allocates nothing.
package modelscore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// ErrState: a checkpointed scorer state does not fit this scorer.
var ErrState = errors.New("modelscore: bad state")

// Load returns the model spec names, checked against its manifest's sha256
// and loaded: a stock model's name ("ae-edge"), or the path of a manifest
// file ("models/my-edge.json") whose model file lies beside it.
func Load(spec string) (*manifest.Manifest, *tflite.Model, error) {
	if strings.HasSuffix(spec, ".json") {
		if _, err := os.Stat(spec); err != nil {
			return nil, nil, fmt.Errorf("modelscore: %w", err)
		}
		return stock.LoadDir(filepath.Dir(spec), strings.TrimSuffix(filepath.Base(spec), ".json"))
	}
	return stock.Load(spec)
}

// Runner is one interpreter of a model. The scorers of the streams judged
// on one goroutine share a Runner; it is not safe for concurrent use, so a
// goroutine (worker) that judges streams needs a Runner of its own.
type Runner struct {
	m       *manifest.Manifest
	id      string
	ip      *tflite.Interpreter
	in, out []float32
}

// NewRunner returns a runner of model, which m describes. It checks that
// the model's input and output are what the manifest says.
func NewRunner(m *manifest.Manifest, model *tflite.Model) (*Runner, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	ip, err := model.NewInterpreter()
	if err != nil {
		return nil, fmt.Errorf("modelscore: %s: %w", m.ID(), err)
	}
	if len(ip.Inputs()) != 1 || len(ip.Outputs()) != 1 {
		return nil, fmt.Errorf("modelscore: %s: %d inputs and %d outputs, want 1 and 1", m.ID(), len(ip.Inputs()), len(ip.Outputs()))
	}
	in, out := ip.Input(0), ip.Output(0)
	wantOut := 1
	if m.Kind == manifest.KindAutoencoder {
		wantOut = m.Window
	}
	if in.Type() != tflite.Float32 || out.Type() != tflite.Float32 || len(in.Float32s()) != m.Window || len(out.Float32s()) != wantOut {
		return nil, fmt.Errorf("modelscore: %s: model input %v %v, output %v %v; the manifest wants float32 [1,%d] and float32 [1,%d]",
			m.ID(), in.Type(), in.Shape(), out.Type(), out.Shape(), m.Window, wantOut)
	}
	return &Runner{m: m, id: m.ID(), ip: ip, in: in.Float32s(), out: out.Float32s()}, nil
}

// Manifest returns the runner's manifest.
func (r *Runner) Manifest() *manifest.Manifest { return r.m }

// Model is the model's "name@version".
func (r *Runner) Model() string { return r.id }

// Scorer is the running state of one stream scored by a model: the last
// Window readings and the residual scale. It implements detect.Scorer.
// Not safe for concurrent use, nor for use concurrently with other
// scorers of its Runner.
type Scorer struct {
	r *Runner
	// hist is a ring of the last Window readings, mirrored (hist[i] ==
	// hist[i+Window]) so that the readings oldest first are always one
	// slice, hist[next:next+Window], once the ring is full.
	hist []float64
	next int
	n    int // readings held, up to Window
	// sc is the residual scale (the first manifest Warmup residuals set
	// it).
	sc manifest.ResidualScale
	// residual: Step scores |residual| itself (NewResidual).
	residual bool
}

var _ detect.Scorer = (*Scorer)(nil)

// New returns a scorer of one stream running on r.
func New(r *Runner) *Scorer {
	return &Scorer{r: r, hist: make([]float64, 2*r.m.Window)}
}

// NewResidual returns a scorer of one stream running on r whose score is
// the |residual| itself, in the units of the readings, rather than
// |residual| / scale: for a detector whose likelihood stage
// (detect.Config.Likelihood) judges the raw scores against their own
// history, which the scale would distort. Everything else (the warm-up,
// the scale it keeps, the checkpointed state) is as New's.
func NewResidual(r *Runner) *Scorer {
	s := New(r)
	s.residual = true
	return s
}

// Model implements detect.Scorer: the model's "name@version".
func (s *Scorer) Model() string { return s.r.id }

// Runner returns the scorer's runner.
func (s *Scorer) Runner() *Runner { return s.r }

// Scale returns the residual scale and the number of residuals seen.
func (s *Scorer) Scale() (scale float64, residuals int) { return s.sc.Scale, s.sc.N }

// Step implements detect.Scorer as stock.Scorer.Step does: an autoencoder
// scores the Window readings ending with v, a forecaster v against the
// Window before it; score = |residual| / scale, after the manifest's
// warm-up of residuals. A runtime error (which a model that passed
// NewRunner does not raise) scores 0 and is not folded into the scale.
func (s *Scorer) Step(v float64) (float64, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	m := s.r.m
	var r, mean float64
	have := false
	switch m.Kind {
	case manifest.KindForecast:
		if s.n == m.Window {
			var std float64
			mean, std = manifest.Normalise(s.r.in, s.window(), m.StdFloor)
			if s.r.ip.Invoke() == nil {
				r = v - (mean + std*float64(s.r.out[0]))
				have = true
			}
		}
		s.push(v)
	default:
		s.push(v)
		if s.n == m.Window {
			var std float64
			mean, std = manifest.Normalise(s.r.in, s.window(), m.StdFloor)
			if s.r.ip.Invoke() == nil {
				var ss float64
				for i, x := range s.r.in {
					d := float64(x - s.r.out[i])
					ss += d * d
				}
				r = std * math.Sqrt(ss/float64(m.Window))
				have = true
			}
		}
	}
	if !have {
		return 0, false
	}
	a := math.Abs(r)
	scale, ok := s.sc.Fold(m, m.Warmup, a, m.StdFloor*math.Max(1, math.Abs(mean)))
	if !ok {
		return 0, false
	}
	score := a / scale
	if s.residual {
		score = a
	}
	return score, true
}

// window is the readings held, oldest first (the ring must be full).
func (s *Scorer) window() []float64 {
	w := s.r.m.Window
	return s.hist[s.next : s.next+w]
}

func (s *Scorer) push(v float64) {
	w := s.r.m.Window
	s.hist[s.next], s.hist[s.next+w] = v, v
	if s.next++; s.next == w {
		s.next = 0
	}
	if s.n < w {
		s.n++
	}
}

// Fold implements detect.Scorer: v is scored and folded as by Step, the
// score dropped (a missing sample, NaN, is skipped: the model's window
// holds readings only).
func (s *Scorer) Fold(v float64) { s.Step(v) }

// Evict implements detect.Scorer: the model's window is its manifest's
// last Window readings, whatever the detector's window holds, so nothing
// is evicted.
func (s *Scorer) Evict() {}

// Reset implements detect.Scorer: it forgets the readings (the model
// scores again once it has Window new ones) and keeps the residual scale.
func (s *Scorer) Reset() { s.n, s.next = 0, 0 }

// stateVersion is the first byte of the scorer's state.
const stateVersion = 1

// AppendState implements detect.Scorer: the readings held (oldest first),
// the residual count and sum, and the scale.
func (s *Scorer) AppendState(b []byte) ([]byte, error) {
	w := s.r.m.Window
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(w))
	b = binary.AppendUvarint(b, uint64(s.n))
	start := s.next - s.n
	if start < 0 {
		start += w
	}
	for i := 0; i < s.n; i++ {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.hist[start+i]))
	}
	b = binary.AppendUvarint(b, uint64(s.sc.N))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.sc.Sum))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(s.sc.Scale)), nil
}

// RestoreState implements detect.Scorer; count is not used (the model's
// window is its own).
func (s *Scorer) RestoreState(b []byte, _ int) (detect.Scorer, []byte, error) {
	w := s.r.m.Window
	if len(b) < 1 || b[0] != stateVersion {
		return nil, nil, fmt.Errorf("%w: version", ErrState)
	}
	b = b[1:]
	uv := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	size, ok1 := uv()
	n, ok2 := uv()
	if !ok1 || !ok2 || size != uint64(w) || n > size || uint64(len(b)) < 8*n {
		return nil, nil, fmt.Errorf("%w: window %d of %d readings (window %d here)", ErrState, size, n, w)
	}
	c := New(s.r)
	c.residual = s.residual
	for i := 0; i < int(n); i++ {
		c.push(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
	}
	b = b[8*n:]
	res, ok := uv()
	if !ok || len(b) < 16 || res > math.MaxInt32 {
		return nil, nil, fmt.Errorf("%w: truncated", ErrState)
	}
	c.sc.N = int(res)
	c.sc.Sum = math.Float64frombits(binary.LittleEndian.Uint64(b))
	c.sc.Scale = math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	if math.IsNaN(c.sc.Scale) || c.sc.Scale < 0 || math.IsNaN(c.sc.Sum) {
		return nil, nil, fmt.Errorf("%w: scale %g", ErrState, c.sc.Scale)
	}
	return c, b[16:], nil
}
