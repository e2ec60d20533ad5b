package ops

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

// lstmTestSpec builds a standard (no CIFG/peephole/projection/layer-norm)
// LSTM spec with the given geometry and quantization parameters.
func lstmTestSpec(batch, time, nIn, nState int, timeMajor bool, q lstmTestQuant) *LSTMSpec {
	s := &LSTMSpec{Options: LSTMOptions{Activation: ActTanh, CellClip: q.cellClip, TimeMajor: timeMajor}}
	inShape := []int{batch, time, nIn}
	outShape := []int{batch, time, nState}
	if timeMajor {
		inShape = []int{time, batch, nIn}
		outShape = []int{time, batch, nState}
	}
	s.Inputs[LSTMInput] = LSTMTensorInfo{Present: true, Shape: inShape, Scale: q.inScale, ZeroPoint: q.inZP}
	for k := LSTMInputToInputWeights; k <= LSTMInputToOutputWeights; k++ {
		s.Inputs[k] = LSTMTensorInfo{Present: true, Shape: []int{nState, nIn}, Scale: q.wScale[k-1], ZeroPoint: q.wZP}
	}
	for k := LSTMRecurrentToInputWeights; k <= LSTMRecurrentToOutputWeights; k++ {
		s.Inputs[k] = LSTMTensorInfo{Present: true, Shape: []int{nState, nState}, Scale: q.wScale[k-1], ZeroPoint: q.wZP}
	}
	for k := LSTMInputGateBias; k <= LSTMOutputGateBias; k++ {
		s.Inputs[k] = LSTMTensorInfo{Present: true, Shape: []int{nState}}
	}
	s.Inputs[LSTMOutputState] = LSTMTensorInfo{Present: true, Shape: []int{batch, nState}, Scale: q.hScale, ZeroPoint: q.hZP}
	s.Inputs[LSTMCellState] = LSTMTensorInfo{Present: true, Shape: []int{batch, nState}, Scale: q.cScale}
	s.Output = LSTMTensorInfo{Present: true, Shape: outShape, Scale: q.hScale, ZeroPoint: q.hZP}
	return s
}

type lstmTestQuant struct {
	inScale  float64
	inZP     int
	wScale   [8]float64
	wZP      int
	hScale   float64
	hZP      int
	cScale   float64
	cellClip float32
}

// lstmRefFloat64 is a straightforward LSTM written from the equations, in
// float64, over a batch-major or time-major sequence:
//
//	f = σ(Wf x + Rf h + bf), i = σ(Wi x + Ri h + bi), g = tanh(Wc x + Rc h + bc)
//	o = σ(Wo x + Ro h + bo), c = clip(f*c + i*g), h = o * tanh(c).
func lstmRefFloat64(batch, time, nIn, nState int, timeMajor bool, clip float64,
	x []float64, w [8][]float64, b [4][]float64, h, c []float64) []float64 {
	out := make([]float64, batch*time*nState)
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	for bi := 0; bi < batch; bi++ {
		for t := 0; t < time; t++ {
			xo := (bi*time + t) * nIn
			oo := (bi*time + t) * nState
			if timeMajor {
				xo = (t*batch + bi) * nIn
				oo = (t*batch + bi) * nState
			}
			hs := h[bi*nState : (bi+1)*nState]
			cs := c[bi*nState : (bi+1)*nState]
			pre := func(gate int, u int) float64 {
				s := b[gate][u]
				for j := 0; j < nIn; j++ {
					s += w[gate][u*nIn+j] * x[xo+j]
				}
				for j := 0; j < nState; j++ {
					s += w[4+gate][u*nState+j] * hs[j]
				}
				return s
			}
			newH := make([]float64, nState)
			for u := 0; u < nState; u++ {
				ig := sig(pre(0, u))
				fg := sig(pre(1, u))
				g := math.Tanh(pre(2, u))
				og := sig(pre(3, u))
				cv := fg*cs[u] + ig*g
				if clip > 0 {
					cv = math.Max(-clip, math.Min(clip, cv))
				}
				cs[u] = cv
				newH[u] = og * math.Tanh(cv)
			}
			copy(hs, newH)
			copy(out[oo:oo+nState], newH)
		}
	}
	return out
}

func f32s(v []float64) []float32 {
	r := make([]float32, len(v))
	for i, x := range v {
		r[i] = float32(x)
	}
	return r
}

func randF64(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (r.Float64()*2 - 1) * scale
	}
	return v
}

func TestLSTMFloatMatchesEquations(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, tc := range []struct {
		batch, time, nIn, nState int
		timeMajor                bool
		clip                     float32
	}{
		{1, 5, 3, 4, false, 0},
		{2, 4, 5, 3, false, 0.5},
		{3, 4, 2, 6, true, 0},
		{2, 3, 7, 5, true, 0.8},
	} {
		spec := lstmTestSpec(tc.batch, tc.time, tc.nIn, tc.nState, tc.timeMajor, lstmTestQuant{cellClip: tc.clip})
		p, err := PrepareLSTMFloat(spec)
		if err != nil {
			t.Fatal(err)
		}
		x := randF64(r, tc.batch*tc.time*tc.nIn, 1)
		var w [8][]float64
		for k := range w {
			cols := tc.nIn
			if k >= 4 {
				cols = tc.nState
			}
			w[k] = randF64(r, tc.nState*cols, 0.9)
		}
		var b [4][]float64
		for k := range b {
			b[k] = randF64(r, tc.nState, 0.5)
		}
		// Round the data to float32 first so both sides see the same values.
		for k := range w {
			w[k] = roundTrip32(w[k])
		}
		for k := range b {
			b[k] = roundTrip32(b[k])
		}
		x = roundTrip32(x)
		tt := &LSTMFloatTensors{
			Input:               f32s(x),
			InputToInputWeights: f32s(w[0]), InputToForgetWeights: f32s(w[1]), InputToCellWeights: f32s(w[2]), InputToOutputWeights: f32s(w[3]),
			RecurrentToInputWeights: f32s(w[4]), RecurrentToForgetWeights: f32s(w[5]), RecurrentToCellWeights: f32s(w[6]), RecurrentToOutputWeights: f32s(w[7]),
			InputGateBias: f32s(b[0]), ForgetGateBias: f32s(b[1]), CellGateBias: f32s(b[2]), OutputGateBias: f32s(b[3]),
			OutputState: make([]float32, tc.batch*tc.nState),
			CellState:   make([]float32, tc.batch*tc.nState),
			Output:      make([]float32, tc.batch*tc.time*tc.nState),
			Scratch:     make([]float32, p.ScratchFloat32),
		}
		h := make([]float64, tc.batch*tc.nState)
		c := make([]float64, tc.batch*tc.nState)
		// Two invokes: the state must carry over.
		for inv := 0; inv < 2; inv++ {
			want := lstmRefFloat64(tc.batch, tc.time, tc.nIn, tc.nState, tc.timeMajor, float64(tc.clip), x, w, b, h, c)
			LSTMFloat(p, tt)
			for i := range want {
				if d := math.Abs(float64(tt.Output[i]) - want[i]); d > 1e-5 {
					t.Fatalf("%+v invoke %d: output[%d] = %g, want %g", tc, inv, i, tt.Output[i], want[i])
				}
			}
			for i := range h {
				if math.Abs(float64(tt.OutputState[i])-h[i]) > 1e-5 || math.Abs(float64(tt.CellState[i])-c[i]) > 1e-5 {
					t.Fatalf("%+v invoke %d: state[%d] = (%g, %g), want (%g, %g)", tc, inv, i, tt.OutputState[i], tt.CellState[i], h[i], c[i])
				}
			}
			if tc.clip > 0 {
				for _, v := range tt.CellState {
					if v > tc.clip || v < -tc.clip {
						t.Fatalf("cell state %g outside clip %g", v, tc.clip)
					}
				}
			}
		}
		if allocs := testing.AllocsPerRun(10, func() { LSTMFloat(p, tt) }); allocs != 0 {
			t.Errorf("LSTMFloat allocates %v times per run", allocs)
		}
	}
}

func roundTrip32(v []float64) []float64 {
	r := make([]float64, len(v))
	for i, x := range v {
		r[i] = float64(float32(x))
	}
	return r
}

func TestLSTMSigmoidTable(t *testing.T) {
	for k, v := range sigmoidTableUint16 {
		want := 65536 / (1 + math.Exp(-float64(k)/24))
		if math.Abs(float64(v)-want) > 2.5 {
			t.Errorf("sigmoidTableUint16[%d] = %d, formula gives %.2f", k, v, want)
		}
		if k > 0 && v < sigmoidTableUint16[k-1] {
			t.Errorf("table not monotonic at %d", k)
		}
	}
	if sigmoidTableUint16[255] != 65535 {
		t.Errorf("last entry %d, want 65535", sigmoidTableUint16[255])
	}
}

// TestLSTMInt16Activations checks the int16 sigmoid (Q3.12 -> Q0.15) and
// tanh over every int16 input against the real functions, and the exact
// values at a few points.
func TestLSTMInt16Activations(t *testing.T) {
	in := make([]int16, 65536)
	for i := range in {
		in[i] = int16(i - 32768)
	}
	sig := append([]int16(nil), in...)
	lstmSigmoidInt16(sig)
	th := make([]int16, len(in))
	lstmTanhInt16(3, 0, th, in)
	for i, x := range in {
		xf := float64(x) / 4096
		if d := math.Abs(float64(sig[i])/32768 - 1/(1+math.Exp(-xf))); d > 1.5e-4 {
			t.Fatalf("sigmoid(%d) = %d (%.6f), real %.6f", x, sig[i], float64(sig[i])/32768, 1/(1+math.Exp(-xf)))
		}
		if d := math.Abs(float64(th[i])/32768 - math.Tanh(xf)); d > 3e-4 {
			t.Fatalf("tanh(%d) = %d (%.6f), real %.6f", x, th[i], float64(th[i])/32768, math.Tanh(xf))
		}
		if i > 0 && (sig[i] < sig[i-1] || th[i] < th[i-1]) {
			t.Fatalf("not monotonic at %d", x)
		}
	}
	if sig[32768] != 16384 || th[32768] != 0 {
		t.Errorf("sigmoid(0) = %d, tanh(0) = %d; want 16384, 0", sig[32768], th[32768])
	}
	// Cell-state tanh with a 2^-11 cell scale doubles the input (multiplier 6).
	a := []int16{2048, -2048, 32767}
	b := make([]int16, 3)
	lstmTanhInt16(6, 0, b, a)
	for i, x := range a {
		if d := math.Abs(float64(b[i])/32768 - math.Tanh(float64(x)/2048)); d > 3e-4 {
			t.Errorf("tanh at cell scale 2^-11 of %d = %d", x, b[i])
		}
	}
}

// lstmQuantize rounds v/scale+zp to the nearest integer within [lo, hi].
func lstmQuantize(v, scale float64, zp int, lo, hi int) int {
	q := int(math.Round(v/scale)) + zp
	return max(lo, min(hi, q))
}

// lstmInt8Fixture is a random int8 LSTM with its float (dequantized) twin.
type lstmInt8Fixture struct {
	batch, time, nIn, nState int
	timeMajor                bool
	q                        lstmTestQuant
	spec                     *LSTMSpec
	x                        []int8
	w                        [8][]int8
	b                        [4][]int32
}

func newLSTMInt8Fixture(r *rand.Rand, batch, time, nIn, nState int, timeMajor bool, clip float32, wZP int) *lstmInt8Fixture {
	f := &lstmInt8Fixture{batch: batch, time: time, nIn: nIn, nState: nState, timeMajor: timeMajor}
	q := lstmTestQuant{inScale: 1.0 / 255, inZP: -128, wZP: wZP, hScale: 1.0 / 128, hZP: 3, cScale: 1.0 / 2048, cellClip: clip}
	for k := range q.wScale {
		q.wScale[k] = float64(float32(0.004 + 0.006*r.Float64()))
	}
	f.q = q
	f.spec = lstmTestSpec(batch, time, nIn, nState, timeMajor, q)
	f.x = make([]int8, batch*time*nIn)
	for i := range f.x {
		f.x[i] = int8(r.Intn(256) - 128)
	}
	for k := range f.w {
		cols := nIn
		if k >= 4 {
			cols = nState
		}
		f.w[k] = make([]int8, nState*cols)
		for i := range f.w[k] {
			f.w[k][i] = int8(r.Intn(255) - 127)
		}
	}
	for k := range f.b {
		f.b[k] = make([]int32, nState)
		bs := q.inScale * q.wScale[k]
		for i := range f.b[k] {
			f.b[k][i] = int32(math.Round((r.Float64()*2 - 1) * 0.5 / bs))
		}
	}
	return f
}

func (f *lstmInt8Fixture) tensors(p *LSTMInt8Params) *LSTMInt8Tensors {
	return &LSTMInt8Tensors{
		Input:               f.x,
		InputToInputWeights: f.w[0], InputToForgetWeights: f.w[1], InputToCellWeights: f.w[2], InputToOutputWeights: f.w[3],
		RecurrentToInputWeights: f.w[4], RecurrentToForgetWeights: f.w[5], RecurrentToCellWeights: f.w[6], RecurrentToOutputWeights: f.w[7],
		InputGateBias: f.b[0], ForgetGateBias: f.b[1], CellGateBias: f.b[2], OutputGateBias: f.b[3],
		OutputState: make([]int8, f.batch*f.nState),
		CellState:   make([]int16, f.batch*f.nState),
		Output:      make([]int8, f.batch*f.time*f.nState),
		Scratch:     make([]int16, p.ScratchInt16),
	}
}

// TestLSTMInt8ApproximatesFloat runs the int8 LSTM and the float equations on
// the dequantized data: the hidden states must agree within a few output
// quanta (the int8 path rounds at every stage).
func TestLSTMInt8ApproximatesFloat(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for _, tm := range []bool{false, true} {
		f := newLSTMInt8Fixture(r, 2, 6, 5, 4, tm, 0, 0)
		p, err := PrepareLSTMInt8(f.spec)
		if err != nil {
			t.Fatal(err)
		}
		tt := f.tensors(p)
		for i := range tt.OutputState {
			tt.OutputState[i] = int8(f.q.hZP) // a zero hidden state
		}
		LSTMInt8(p, tt)
		x := make([]float64, len(f.x))
		for i, v := range f.x {
			x[i] = (float64(v) - float64(f.q.inZP)) * f.q.inScale
		}
		var w [8][]float64
		for k := range w {
			w[k] = make([]float64, len(f.w[k]))
			for i, v := range f.w[k] {
				w[k][i] = float64(v) * f.q.wScale[k]
			}
		}
		var b [4][]float64
		for k := range b {
			b[k] = make([]float64, len(f.b[k]))
			for i, v := range f.b[k] {
				b[k][i] = float64(v) * f.q.inScale * f.q.wScale[k]
			}
		}
		h := make([]float64, f.batch*f.nState)
		c := make([]float64, f.batch*f.nState)
		want := lstmRefFloat64(f.batch, f.time, f.nIn, f.nState, tm, 0, x, w, b, h, c)
		maxErr := 0.0
		for i, v := range tt.Output {
			got := float64(int(v)-f.q.hZP) * f.q.hScale
			maxErr = math.Max(maxErr, math.Abs(got-want[i]))
		}
		if maxErr > 4*f.q.hScale {
			t.Errorf("timeMajor=%v: int8 LSTM differs from float by %.4f (> 4 quanta of %.4f)", tm, maxErr, f.q.hScale)
		}
		for i, v := range tt.CellState {
			if d := math.Abs(float64(v)*f.q.cScale - c[i]); d > 0.02 {
				t.Errorf("cell state %d: %g vs float %g", i, float64(v)*f.q.cScale, c[i])
			}
		}
		if allocs := testing.AllocsPerRun(10, func() { LSTMInt8(p, tt) }); allocs != 0 {
			t.Errorf("LSTMInt8 allocates %v times per run", allocs)
		}
	}
}

// TestLSTMInt8MatchesSlowReference compares LSTMInt8 with lstmSlowInt8, a
// deliberately literal transcription of TFLM's definitions (see
// lstm_ref_test.go), bit for bit, over random models including nonzero
// weight zero points, clipping, time-major batches and several invokes.
func TestLSTMInt8MatchesSlowReference(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for it := 0; it < 40; it++ {
		batch := 1 + r.Intn(3)
		time := 1 + r.Intn(5)
		nIn := 1 + r.Intn(9)
		nState := 1 + r.Intn(8)
		tm := r.Intn(2) == 0
		clip := float32(0)
		if r.Intn(2) == 0 {
			clip = float32(0.05 + r.Float64()*2)
		}
		wZP := 0
		if it%5 == 4 {
			wZP = r.Intn(7) - 3
		}
		f := newLSTMInt8Fixture(r, batch, time, nIn, nState, tm, clip, wZP)
		if it%3 == 0 {
			f.q.cScale = math.Ldexp(1, -9-r.Intn(8)) // 2^-9 .. 2^-16
			f.spec.Inputs[LSTMCellState].Scale = f.q.cScale
		}
		p, err := PrepareLSTMInt8(f.spec)
		if err != nil {
			t.Fatal(err)
		}
		tt := f.tensors(p)
		ref := f.tensors(p)
		for i := range tt.OutputState {
			v := int8(r.Intn(256) - 128)
			tt.OutputState[i], ref.OutputState[i] = v, v
			c := int16(r.Intn(65536) - 32768)
			tt.CellState[i], ref.CellState[i] = c, c
		}
		for inv := 0; inv < 2; inv++ {
			LSTMInt8(p, tt)
			lstmSlowInt8(f.spec, ref)
			for i := range tt.Output {
				if tt.Output[i] != ref.Output[i] {
					t.Fatalf("iteration %d invoke %d (b%d t%d in%d s%d tm=%v clip=%g wzp=%d cs=%g): output[%d] = %d, reference %d",
						it, inv, batch, time, nIn, nState, tm, clip, wZP, f.q.cScale, i, tt.Output[i], ref.Output[i])
				}
			}
			for i := range tt.CellState {
				if tt.CellState[i] != ref.CellState[i] || tt.OutputState[i] != ref.OutputState[i] {
					t.Fatalf("iteration %d invoke %d: state %d differs: cell %d vs %d, hidden %d vs %d", it, inv, i, tt.CellState[i], ref.CellState[i], tt.OutputState[i], ref.OutputState[i])
				}
			}
		}
	}
}

func TestLSTMPrepareErrors(t *testing.T) {
	base := func() *LSTMSpec {
		return lstmTestSpec(1, 3, 4, 5, false, lstmTestQuant{inScale: 0.01, wScale: [8]float64{.01, .01, .01, .01, .01, .01, .01, .01}, hScale: 0.01, cScale: 1.0 / 4096})
	}
	for _, tc := range []struct {
		name   string
		modify func(s *LSTMSpec)
		want   string
	}{
		{"cifg", func(s *LSTMSpec) { s.Inputs[LSTMInputToInputWeights] = LSTMTensorInfo{} }, "CIFG"},
		{"peephole", func(s *LSTMSpec) { s.Inputs[LSTMCellToForgetWeights] = LSTMTensorInfo{Present: true, Shape: []int{5}} }, "peephole"},
		{"projection", func(s *LSTMSpec) { s.Inputs[LSTMProjectionWeights] = LSTMTensorInfo{Present: true, Shape: []int{5, 5}} }, "projection"},
		{"activation", func(s *LSTMSpec) { s.Options.Activation = ActRelu }, "activation"},
		{"weight shape", func(s *LSTMSpec) { s.Inputs[LSTMInputToCellWeights].Shape = []int{5, 3} }, "input_to_cell_weights"},
		{"recurrent shape", func(s *LSTMSpec) { s.Inputs[LSTMRecurrentToOutputWeights].Shape = []int{5, 4} }, "recurrent_to_output_weights"},
		{"bias shape", func(s *LSTMSpec) { s.Inputs[LSTMForgetGateBias].Shape = []int{4} }, "forget_gate_bias"},
		{"input rank", func(s *LSTMSpec) { s.Inputs[LSTMInput].Shape = []int{3, 4} }, "rank 3"},
		{"state size", func(s *LSTMSpec) { s.Inputs[LSTMCellState].Shape = []int{2, 5} }, "cell_state"},
		{"output shape", func(s *LSTMSpec) { s.Output.Shape = []int{1, 3, 4} }, "output"},
		{"negative dim", func(s *LSTMSpec) { s.Inputs[LSTMInput].Shape = []int{1, -3, 4} }, "invalid shape"},
		{"huge dims", func(s *LSTMSpec) {
			s.Inputs[LSTMInput].Shape = []int{1 << 14, 1 << 14, 4}
			s.Output.Shape = []int{1 << 14, 1 << 14, 5}
		}, "too large"},
	} {
		s := base()
		tc.modify(s)
		_, err := PrepareLSTMFloat(s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: PrepareLSTMFloat error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	s := base()
	s.Inputs[LSTMCellState].Scale = 0.0003
	if _, err := PrepareLSTMInt8(s); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Errorf("non-power-of-two cell scale: error %v", err)
	}
	s = base()
	s.Inputs[LSTMInputToForgetWeights].Scale = 0
	if _, err := PrepareLSTMInt8(s); err == nil {
		t.Errorf("zero weight scale accepted")
	}
	if _, err := PrepareLSTMInt8(base()); err != nil {
		t.Errorf("valid spec refused: %v", err)
	}
}

// TestLSTMInt8PrepareParams checks prepared values derived by hand for the
// mnist_lstm_int8 model's quantization.
func TestLSTMInt8PrepareParams(t *testing.T) {
	q := lstmTestQuant{
		inScale: float64(float32(0.003921568859368563)), inZP: -128,
		hScale: float64(float32(0.007816792465746403)), cScale: 1.0 / 4096, cellClip: 10,
	}
	for k := range q.wScale {
		q.wScale[k] = 0.01
	}
	p, err := PrepareLSTMInt8(lstmTestSpec(1, 28, 28, 20, false, q))
	if err != nil {
		t.Fatal(err)
	}
	if p.CellScalePower != -12 || p.QuantizedCellClip != 32767 || p.TanhMultiplier != 3 || p.TanhShift != 0 {
		t.Errorf("cell: power %d clip %d tanh (%d, %d); want -12, 32767, (3, 0)", p.CellScalePower, p.QuantizedCellClip, p.TanhMultiplier, p.TanhShift)
	}
	// TFLM's Q0.15 scale is float32(0.00003051757) = 2^-15 * (1 - 2^-22):
	// forget x cell: s15 * s / s -> 2^31*(1-2^-22) = 2147483136, shift -15.
	if p.ForgetCellMul.Multiplier != 2147483136 || p.ForgetCellMul.Shift != -15 {
		t.Errorf("forget-cell mul %+v", p.ForgetCellMul)
	}
	// input x cell gate: s15^2 / 2^-12 = 2^-18*(1-2^-22)^2 -> 2147482624, shift -18.
	if p.InputMul.Multiplier != 2147482624 || p.InputMul.Shift != -18 {
		t.Errorf("input mul %+v", p.InputMul)
	}
	if p.InputOffset != 128 || p.HiddenOffset != 0 || p.ForgetGate.Input.WeightOffset != 0 {
		t.Errorf("offsets %d %d %+v", p.InputOffset, p.HiddenOffset, p.ForgetGate)
	}
	m, s := QuantizeMultiplier(q.inScale * 0.01 * 4096)
	if p.CellGate.Input.Multiplier != m || p.CellGate.Input.Shift != s {
		t.Errorf("cell gate input FC %+v, want (%d, %d)", p.CellGate.Input, m, s)
	}
	if p.OutputMul.ZeroPoint != 0 || p.OutputMul.Min != -128 || p.OutputMul.Max != 127 {
		t.Errorf("output mul %+v", p.OutputMul)
	}
	if p.ScratchInt16 != 4*20+28+20 {
		t.Errorf("scratch %d, want 128", p.ScratchInt16)
	}
}

// TestLSTMRequant checks that the precomputed requantization equals
// MultiplyByQuantizedMultiplier for every shift the LSTM can use.
func TestLSTMRequant(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	edges := []int32{0, 1, -1, 2, -2, math.MaxInt32, math.MinInt32, 1 << 30, -(1 << 30), 12345, -12345}
	for shift := -31; shift <= 30; shift++ {
		for k := 0; k < 300; k++ {
			m := int32(1<<30 + r.Int63n(1<<30))
			if k == 0 {
				m = 0
			}
			q := newLSTMRequant(m, shift)
			for j := 0; j < 40; j++ {
				var x int32
				if j < len(edges) {
					x = edges[j]
				} else {
					x = int32(r.Uint32())
					if j%2 == 0 {
						x >>= uint(r.Intn(31))
					}
				}
				if got, want := q.apply(x), MultiplyByQuantizedMultiplier(x, m, shift); got != want {
					t.Fatalf("requant(%d, %d, %d) = %d, want %d", x, m, shift, got, want)
				}
			}
		}
	}
}
