package modelscore

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// Vector models (manifest Features > 1, e.g. the stock ae-video) read one
// vector of features per time step rather than one value: a camera's
// per-bucket video features. NewVectorRunner runs one, a VectorScorer keeps
// one camera's state (computing exactly what stock.VectorScorer computes;
// a test holds the two equal), and an Assembler groups the decoder's
// per-feature readings (<prefix>/<feature>, one reading per feature and
// bucket) into the vectors. NewRunner refuses vector models, so a profile
// that names one for a single-value stream fails at load.

// NewVectorRunner returns a runner of a vector model (manifest Features >
// 1), which m describes. It checks that the model's input and output are
// float32 [1, Window·Features].
func NewVectorRunner(m *manifest.Manifest, model *tflite.Model) (*Runner, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.Features < 2 {
		return nil, fmt.Errorf("modelscore: %s reads one value per reading; use NewRunner", m.ID())
	}
	ip, err := model.NewInterpreter()
	if err != nil {
		return nil, fmt.Errorf("modelscore: %s: %w", m.ID(), err)
	}
	if len(ip.Inputs()) != 1 || len(ip.Outputs()) != 1 {
		return nil, fmt.Errorf("modelscore: %s: %d inputs and %d outputs, want 1 and 1", m.ID(), len(ip.Inputs()), len(ip.Outputs()))
	}
	in, out := ip.Input(0), ip.Output(0)
	n := m.InputSize()
	if in.Type() != tflite.Float32 || out.Type() != tflite.Float32 || len(in.Float32s()) != n || len(out.Float32s()) != n {
		return nil, fmt.Errorf("modelscore: %s: model input %v %v, output %v %v; the manifest wants float32 [1,%d] in and out",
			m.ID(), in.Type(), in.Shape(), out.Type(), out.Shape(), n)
	}
	return &Runner{m: m, id: m.ID(), ip: ip, in: in.Float32s(), out: out.Float32s()}, nil
}

// IsVector reports whether the runner's model reads vectors (Features > 1).
func (r *Runner) IsVector() bool { return r.m.Features > 1 }

// VectorScorer is the running state of one vector stream (one camera)
// scored by a vector model: the last Window normalised vectors, the
// per-feature baseline (manifest.NormFeatureZ) and the residual scale. Not
// safe for concurrent use, nor concurrently with other scorers of its
// Runner.
type VectorScorer struct {
	r    *Runner
	hist []float32 // the last Window normalised vectors, oldest first, flattened
	n    int       // vectors held, up to Window
	base manifest.Baseline
	// sc is the residual scale.
	sc manifest.ResidualScale
}

// NewVector returns a scorer of one vector stream running on r (from
// NewVectorRunner).
func NewVector(r *Runner) *VectorScorer {
	s := &VectorScorer{r: r, hist: make([]float32, r.m.InputSize())}
	s.base.Mean = make([]float64, 0, r.m.Features)
	s.base.Var = make([]float64, 0, r.m.Features)
	return s
}

// Model is the model's "name@version".
func (s *VectorScorer) Model() string { return s.r.id }

// Runner returns the scorer's runner.
func (s *VectorScorer) Runner() *Runner { return s.r }

// Reset forgets the vectors and the baseline (the model scores again once
// it has Window new vectors) and keeps the residual scale.
func (s *VectorScorer) Reset() {
	s.n = 0
	s.base.Started = false
}

// StepVector scores the vector v (the manifest's FeatureNames order; NaN
// for a missing feature) with the Window-1 vectors before it, as
// stock.VectorScorer.Step does, and folds it in. ok is false while the
// window fills and the scale warms up, and for a vector of the wrong
// length. A runtime error (which a model that passed NewVectorRunner does
// not raise) scores 0 and is not folded into the scale. It does not
// allocate.
func (s *VectorScorer) StepVector(v []float64) (score float64, ok bool) {
	m := s.r.m
	F := m.Features
	if len(v) != F {
		return 0, false
	}
	copy(s.hist, s.hist[F:])
	m.NormaliseVector(s.hist[len(s.hist)-F:], v, &s.base)
	if s.n < m.Window {
		s.n++
	}
	if s.n < m.Window {
		return 0, false
	}
	copy(s.r.in, s.hist)
	if s.r.ip.Invoke() != nil {
		return 0, false
	}
	r := m.VectorResidual(s.r.in, s.r.out)
	scale, ok := s.sc.Fold(m, m.Warmup, r, 1e-6)
	if !ok {
		return 0, false
	}
	score = r / scale
	return score, true
}

// vectorStateVersion is the first byte of a VectorScorer's state.
const vectorStateVersion = 1

// AppendState appends the scorer's running state to b: the window size
// and features, the normalised vectors held, the baseline, the residual
// count and sum, and the scale.
func (s *VectorScorer) AppendState(b []byte) []byte {
	m := s.r.m
	f64 := func(b []byte, x float64) []byte { return binary.LittleEndian.AppendUint64(b, math.Float64bits(x)) }
	b = append(b, vectorStateVersion)
	b = binary.AppendUvarint(b, uint64(m.Window))
	b = binary.AppendUvarint(b, uint64(m.Features))
	b = binary.AppendUvarint(b, uint64(s.n))
	for _, x := range s.hist[len(s.hist)-s.n*m.Features:] {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	if s.base.Started {
		b = append(b, 1)
		for f := 0; f < m.Features; f++ {
			b = f64(f64(b, s.base.Mean[f]), s.base.Var[f])
		}
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(s.sc.N))
	return f64(f64(b, s.sc.Sum), s.sc.Scale)
}

// RestoreState returns a scorer on the same runner holding the state at
// the front of b (written by AppendState), and the rest of b. The receiver
// is unchanged.
func (s *VectorScorer) RestoreState(b []byte) (*VectorScorer, []byte, error) {
	m := s.r.m
	bad := func(what string) (*VectorScorer, []byte, error) {
		return nil, nil, fmt.Errorf("%w: vector state: %s", ErrState, what)
	}
	if len(b) < 1 || b[0] != vectorStateVersion {
		return bad("version")
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
	w, ok1 := uv()
	f, ok2 := uv()
	n, ok3 := uv()
	if !ok1 || !ok2 || !ok3 || w != uint64(m.Window) || f != uint64(m.Features) || n > w {
		return bad(fmt.Sprintf("window %d features %d held %d (window %d features %d here)", w, f, n, m.Window, m.Features))
	}
	F := m.Features
	c := NewVector(s.r)
	c.n = int(n)
	vals := int(n) * F
	if len(b) < 4*vals+1 {
		return bad("truncated")
	}
	dst := c.hist[len(c.hist)-vals:]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	b = b[4*vals:]
	started := b[0]
	b = b[1:]
	if started > 1 {
		return bad("baseline flag")
	}
	if started == 1 {
		if len(b) < 16*F {
			return bad("truncated baseline")
		}
		for i := 0; i < F; i++ {
			mean := math.Float64frombits(binary.LittleEndian.Uint64(b[16*i:]))
			v := math.Float64frombits(binary.LittleEndian.Uint64(b[16*i+8:]))
			if math.IsNaN(mean) || math.IsNaN(v) || v < 0 {
				return bad("baseline value")
			}
			c.base.Mean = append(c.base.Mean, mean)
			c.base.Var = append(c.base.Var, v)
		}
		c.base.Started = true
		b = b[16*F:]
	}
	res, ok := uv()
	if !ok || len(b) < 16 || res > math.MaxInt32 {
		return bad("truncated")
	}
	c.sc.N = int(res)
	c.sc.Sum = math.Float64frombits(binary.LittleEndian.Uint64(b))
	c.sc.Scale = math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	if math.IsNaN(c.sc.Scale) || c.sc.Scale < 0 || math.IsNaN(c.sc.Sum) {
		return bad(fmt.Sprintf("scale %g", c.sc.Scale))
	}
	return c, b[16:], nil
}

// Assembler groups per-feature readings, as the edge's video decoder emits
// them (stream <prefix>/<feature>, all features of a bucket with the
// bucket's time), into one vector per prefix and time in a vector model's
// feature order. Readings of other features (the decoder's "frames") are
// not the model's and are left to the caller. A vector is complete when a
// reading of a later time arrives for its prefix, or at Flush; features
// that never came are NaN (missing). Not safe for concurrent use.
type Assembler struct {
	index   map[string]int
	pending map[string]*pendingVector
	order   []string // prefixes with a pending vector, in arrival order
	free    []*pendingVector
}

type pendingVector struct {
	ts time.Time
	v  []float64
}

// NewAssembler returns an assembler for the features of m (FeatureNames).
func NewAssembler(m *manifest.Manifest) *Assembler {
	a := &Assembler{index: map[string]int{}, pending: map[string]*pendingVector{}}
	for i, n := range m.FeatureNames {
		a.index[n] = i
	}
	return a
}

// Split returns the prefix and feature of a stream id ("cameras/cam-1",
// "count_person") and whether the feature is one of the model's.
func (a *Assembler) Split(stream string) (prefix, feature string, ok bool) {
	i := strings.LastIndexByte(stream, '/')
	if i < 0 {
		return "", stream, false
	}
	prefix, feature = stream[:i], stream[i+1:]
	_, ok = a.index[feature]
	return prefix, feature, ok
}

// Add adds one reading. It returns false (and keeps nothing) when the
// stream's feature is not one of the model's. When the reading's time is
// later than the pending vector of its prefix, that vector is complete and
// emit is called with it first (the slice is reused after emit returns).
// A reading older than its prefix's pending vector is dropped (true is
// returned: it was the model's, and it is late).
func (a *Assembler) Add(stream string, ts time.Time, value float64, emit func(prefix string, ts time.Time, v []float64)) bool {
	prefix, feature, ok := a.Split(stream)
	if !ok {
		return false
	}
	p := a.pending[prefix]
	if p != nil && ts.After(p.ts) {
		a.complete(prefix, p, emit)
		p = nil
	}
	if p == nil {
		p = a.get()
		p.ts = ts
		a.pending[prefix] = p
		a.order = append(a.order, prefix)
	}
	if ts.Equal(p.ts) {
		p.v[a.index[feature]] = value
	}
	return true
}

// Flush completes every pending vector, calling emit for each in the order
// their prefixes first arrived. An agent calls it after the readings of one
// decoded message (the decoder emits a bucket's features together), so a
// bucket is scored without waiting for the next one.
func (a *Assembler) Flush(emit func(prefix string, ts time.Time, v []float64)) {
	for _, prefix := range a.order {
		if p := a.pending[prefix]; p != nil {
			delete(a.pending, prefix)
			emit(prefix, p.ts, p.v)
			a.free = append(a.free, p)
		}
	}
	a.order = a.order[:0]
}

func (a *Assembler) complete(prefix string, p *pendingVector, emit func(string, time.Time, []float64)) {
	delete(a.pending, prefix)
	for i, x := range a.order {
		if x == prefix {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
	emit(prefix, p.ts, p.v)
	a.free = append(a.free, p)
}

func (a *Assembler) get() *pendingVector {
	var p *pendingVector
	if n := len(a.free); n > 0 {
		p, a.free = a.free[n-1], a.free[:n-1]
	} else {
		p = &pendingVector{v: make([]float64, len(a.index))}
	}
	for i := range p.v {
		p.v[i] = math.NaN()
	}
	return p
}

// Passthrough is a detect.Scorer whose score is the value offered: for a
// detector that judges the scores a VectorScorer computed (the agent
// offers a camera's vector score as the reading of a stream of its own,
// e.g. "<camera prefix>/<model name>", and the detector applies the
// thresholds, cool-down and events as for any stream).
type Passthrough struct{ model string }

// NewPassthrough returns a Passthrough reporting model ("name@version") as
// its model.
func NewPassthrough(model string) *Passthrough { return &Passthrough{model: model} }

var _ detect.Scorer = (*Passthrough)(nil)

// Model implements detect.Scorer.
func (p *Passthrough) Model() string { return p.model }

// Step implements detect.Scorer: the score is v.
func (p *Passthrough) Step(v float64) (float64, bool) { return v, true }

// Fold implements detect.Scorer; there is nothing to fold.
func (p *Passthrough) Fold(float64) {}

// Evict implements detect.Scorer; there is nothing to evict.
func (p *Passthrough) Evict() {}

// Reset implements detect.Scorer; there is nothing to forget.
func (p *Passthrough) Reset() {}

// AppendState implements detect.Scorer: a Passthrough has no state.
func (p *Passthrough) AppendState(b []byte) ([]byte, error) { return b, nil }

// RestoreState implements detect.Scorer.
func (p *Passthrough) RestoreState(b []byte, _ int) (detect.Scorer, []byte, error) {
	return &Passthrough{model: p.model}, b, nil
}
