package ops

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// These tests run the LSTM of the corpus models mnist_lstm_float and
// mnist_lstm_int8 directly (without the interpreter): a minimal flatbuffer
// walk reads the LSTM's tensors, then the model's tail (RESHAPE,
// FULLY_CONNECTED, SOFTMAX) is computed here so the result can be compared
// with the golden outputs produced by TFLM.

// fbModel is just enough of a .tflite reader for these tests. The files are
// trusted corpus files; a malformed file makes the test panic.
type fbModel struct{ b []byte }

func (m fbModel) u32(o int) int { return int(binary.LittleEndian.Uint32(m.b[o:])) }

// field returns the absolute offset of field idx of the table at t, or 0.
func (m fbModel) field(t, idx int) int {
	vt := t - int(int32(binary.LittleEndian.Uint32(m.b[t:])))
	vlen := int(binary.LittleEndian.Uint16(m.b[vt:]))
	if 4+2*idx >= vlen {
		return 0
	}
	off := int(binary.LittleEndian.Uint16(m.b[vt+4+2*idx:]))
	if off == 0 {
		return 0
	}
	return t + off
}

func (m fbModel) ref(o int) int { return o + m.u32(o) }

// vec returns the start and length of the vector in field idx of table t.
func (m fbModel) vec(t, idx int) (int, int) {
	f := m.field(t, idx)
	if f == 0 {
		return 0, 0
	}
	v := m.ref(f)
	return v + 4, m.u32(v)
}

func (m fbModel) tables(t, idx int) []int {
	s, n := m.vec(t, idx)
	r := make([]int, n)
	for i := range r {
		r[i] = m.ref(s + 4*i)
	}
	return r
}

func (m fbModel) ints(t, idx int) []int {
	s, n := m.vec(t, idx)
	r := make([]int, n)
	for i := range r {
		r[i] = int(int32(m.u32(s + 4*i)))
	}
	return r
}

type fbTensor struct {
	shape []int
	data  []byte
	scale float64
	zp    int
}

type fbOp struct {
	builtin     int
	inputs      []int
	outputs     []int
	options     int // table offset of builtin_options, or 0
	activation  int
	cellClip    float32
	timeMajor   bool
	softmaxBeta float32
}

func readFBModel(t *testing.T, path string) ([]fbTensor, []fbOp) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := fbModel{b}
	root := m.ref(0)
	codes := m.tables(root, 1)
	sg := m.tables(root, 2)[0]
	bufs := m.tables(root, 4)
	var tensors []fbTensor
	for _, tt := range m.tables(sg, 0) {
		var x fbTensor
		x.shape = m.ints(tt, 0)
		if f := m.field(tt, 2); f != 0 {
			if s, n := m.vec(bufs[m.u32(f)], 0); n > 0 {
				x.data = b[s : s+n]
			}
		}
		if f := m.field(tt, 4); f != 0 {
			q := m.ref(f)
			if s, n := m.vec(q, 2); n > 0 {
				x.scale = float64(math.Float32frombits(uint32(m.u32(s))))
			}
			if s, n := m.vec(q, 3); n > 0 {
				x.zp = int(int64(binary.LittleEndian.Uint64(b[s:])))
			}
		}
		tensors = append(tensors, x)
	}
	var ops []fbOp
	for _, o := range m.tables(sg, 3) {
		var op fbOp
		opcode := 0
		if f := m.field(o, 0); f != 0 {
			opcode = m.u32(f)
		}
		c := codes[opcode]
		if f := m.field(c, 0); f != 0 {
			op.builtin = int(int8(b[f]))
		}
		if f := m.field(c, 3); f != 0 {
			op.builtin = max(op.builtin, m.u32(f))
		}
		op.inputs = m.ints(o, 1)
		op.outputs = m.ints(o, 2)
		if f := m.field(o, 4); f != 0 {
			op.options = m.ref(f)
			switch op.builtin {
			case 44:
				if f := m.field(op.options, 0); f != 0 {
					op.activation = int(int8(b[f]))
				}
				if f := m.field(op.options, 1); f != 0 {
					op.cellClip = math.Float32frombits(uint32(m.u32(f)))
				}
				if f := m.field(op.options, 3); f != 0 {
					op.timeMajor = b[f] != 0
				}
			case 25:
				op.softmaxBeta = 1
				if f := m.field(op.options, 0); f != 0 {
					op.softmaxBeta = math.Float32frombits(uint32(m.u32(f)))
				}
			}
		}
		ops = append(ops, op)
	}
	return tensors, ops
}

func bytesF32(b []byte) []float32 {
	r := make([]float32, len(b)/4)
	for i := range r {
		r[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return r
}

func bytesI8(b []byte) []int8 {
	r := make([]int8, len(b))
	for i, v := range b {
		r[i] = int8(v)
	}
	return r
}

func bytesI32(b []byte) []int32 {
	r := make([]int32, len(b)/4)
	for i := range r {
		r[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return r
}

type lstmCase struct {
	Name    string   `json:"name"`
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
}

func readCases(t *testing.T, dir string) []lstmCase {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Cases []lstmCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.Cases) == 0 {
		t.Fatal("no cases")
	}
	return man.Cases
}

// lstmSpecFromModel fills an LSTMSpec from operator 0 of the model, as the
// interpreter does.
func lstmSpecFromModel(tensors []fbTensor, op fbOp) *LSTMSpec {
	spec := &LSTMSpec{Options: LSTMOptions{Activation: Activation(op.activation), CellClip: op.cellClip, TimeMajor: op.timeMajor}}
	for k, ti := range op.inputs {
		if ti >= 0 {
			x := tensors[ti]
			spec.Inputs[k] = LSTMTensorInfo{Present: true, Shape: x.shape, Scale: x.scale, ZeroPoint: x.zp}
		}
	}
	o := tensors[op.outputs[0]]
	spec.Output = LSTMTensorInfo{Present: true, Shape: o.shape, Scale: o.scale, ZeroPoint: o.zp}
	return spec
}

func TestLSTMModelFloat(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "mnist_lstm_float")
	tensors, ops := readFBModel(t, filepath.Join(dir, "model.tflite"))
	if len(ops) != 4 || ops[0].builtin != 44 || ops[2].builtin != 9 || ops[3].builtin != 25 {
		t.Fatalf("unexpected operators %+v", ops)
	}
	lop := ops[0]
	p, err := PrepareLSTMFloat(lstmSpecFromModel(tensors, lop))
	if err != nil {
		t.Fatal(err)
	}
	in := func(k int) []float32 { return bytesF32(tensors[lop.inputs[k]].data) }
	sz := p.Size
	tt := &LSTMFloatTensors{
		InputToInputWeights: in(1), InputToForgetWeights: in(2), InputToCellWeights: in(3), InputToOutputWeights: in(4),
		RecurrentToInputWeights: in(5), RecurrentToForgetWeights: in(6), RecurrentToCellWeights: in(7), RecurrentToOutputWeights: in(8),
		InputGateBias: in(12), ForgetGateBias: in(13), CellGateBias: in(14), OutputGateBias: in(15),
		OutputState: make([]float32, sz.Batch*sz.State),
		CellState:   make([]float32, sz.Batch*sz.State),
		Output:      make([]float32, sz.Batch*sz.Time*sz.State),
		Scratch:     make([]float32, p.ScratchFloat32),
	}
	fc := ops[2]
	w := bytesF32(tensors[fc.inputs[1]].data)
	bias := bytesF32(tensors[fc.inputs[2]].data)
	units := tensors[fc.inputs[1]].shape[0]
	for _, c := range readCases(t, dir) {
		x, err := os.ReadFile(filepath.Join(dir, c.Inputs[0]))
		if err != nil {
			t.Fatal(err)
		}
		wantB, err := os.ReadFile(filepath.Join(dir, c.Outputs[0]))
		if err != nil {
			t.Fatal(err)
		}
		want := bytesF32(wantB)
		tt.Input = bytesF32(x)
		clear(tt.OutputState)
		clear(tt.CellState)
		LSTMFloat(p, tt)
		// FULLY_CONNECTED over the flattened sequence, then SOFTMAX.
		logits := make([]float64, units)
		maxL := math.Inf(-1)
		for u := range logits {
			var s float32
			for d, v := range tt.Output {
				s += v * w[u*len(tt.Output)+d]
			}
			logits[u] = float64(s + bias[u])
			maxL = math.Max(maxL, logits[u])
		}
		sum := 0.0
		for u := range logits {
			logits[u] = math.Exp((logits[u] - maxL) * float64(ops[3].softmaxBeta))
			sum += logits[u]
		}
		for u := range logits {
			if d := math.Abs(logits[u]/sum - float64(want[u])); d > 1e-5 {
				t.Errorf("case %s: output[%d] = %.7f, golden %.7f", c.Name, u, logits[u]/sum, want[u])
			}
		}
	}
}

func TestLSTMModelInt8(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "mnist_lstm_int8")
	tensors, ops := readFBModel(t, filepath.Join(dir, "model.tflite"))
	if len(ops) != 4 || ops[0].builtin != 44 || ops[2].builtin != 9 || ops[3].builtin != 25 {
		t.Fatalf("unexpected operators %+v", ops)
	}
	lop := ops[0]
	p, err := PrepareLSTMInt8(lstmSpecFromModel(tensors, lop))
	if err != nil {
		t.Fatal(err)
	}
	in := func(k int) []int8 { return bytesI8(tensors[lop.inputs[k]].data) }
	bi := func(k int) []int32 { return bytesI32(tensors[lop.inputs[k]].data) }
	sz := p.Size
	tt := &LSTMInt8Tensors{
		InputToInputWeights: in(1), InputToForgetWeights: in(2), InputToCellWeights: in(3), InputToOutputWeights: in(4),
		RecurrentToInputWeights: in(5), RecurrentToForgetWeights: in(6), RecurrentToCellWeights: in(7), RecurrentToOutputWeights: in(8),
		InputGateBias: bi(12), ForgetGateBias: bi(13), CellGateBias: bi(14), OutputGateBias: bi(15),
		OutputState: make([]int8, sz.Batch*sz.State),
		CellState:   make([]int16, sz.Batch*sz.State),
		Output:      make([]int8, sz.Batch*sz.Time*sz.State),
		Scratch:     make([]int16, p.ScratchInt16),
	}
	// The tail: int8 FULLY_CONNECTED (per-tensor, reference arithmetic) and
	// int8 SOFTMAX (package ops).
	fc := ops[2]
	fin, fw, fb, fout := tensors[fc.inputs[0]], tensors[fc.inputs[1]], tensors[fc.inputs[2]], tensors[fc.outputs[0]]
	w := bytesI8(fw.data)
	bias := bytesI32(fb.data)
	units := fw.shape[0]
	fm, fs := QuantizeMultiplier(fin.scale * fw.scale / fout.scale)
	sp, err := PrepareSoftmax(ops[3].softmaxBeta, []int{1, units}, 8, float32(fout.scale))
	if err != nil {
		t.Fatal(err)
	}
	logits := make([]int8, units)
	got := make([]int8, units)
	for _, c := range readCases(t, dir) {
		x, err := os.ReadFile(filepath.Join(dir, c.Inputs[0]))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, c.Outputs[0]))
		if err != nil {
			t.Fatal(err)
		}
		tt.Input = bytesI8(x)
		clear(tt.OutputState)
		clear(tt.CellState)
		LSTMInt8(p, tt)
		for u := range logits {
			var acc int32
			for d, v := range tt.Output {
				acc += int32(w[u*len(tt.Output)+d]) * (int32(v) - int32(fin.zp))
			}
			acc = MultiplyByQuantizedMultiplier(acc+bias[u], fm, fs) + int32(fout.zp)
			logits[u] = int8(clamp32(acc, -128, 127))
		}
		SoftmaxInt8(sp, logits, got)
		for u := range got {
			if got[u] != int8(want[u]) {
				t.Errorf("case %s: output %v, golden %v", c.Name, got, bytesI8(want))
				break
			}
		}
	}
}

func BenchmarkLSTMInt8MNIST(b *testing.B) {
	r := newLSTMInt8Fixture(rngForBench(), 1, 28, 28, 20, false, 10, 0)
	p, err := PrepareLSTMInt8(r.spec)
	if err != nil {
		b.Fatal(err)
	}
	tt := r.tensors(p)
	b.ReportAllocs()
	for b.Loop() {
		LSTMInt8(p, tt)
	}
}

func BenchmarkLSTMFloatMNIST(b *testing.B) {
	spec := lstmTestSpec(1, 28, 28, 20, false, lstmTestQuant{cellClip: 10})
	p, err := PrepareLSTMFloat(spec)
	if err != nil {
		b.Fatal(err)
	}
	rnd := rngForBench()
	w := func(n int) []float32 { return f32s(randF64(rnd, n, 0.3)) }
	tt := &LSTMFloatTensors{
		Input:               w(28 * 28),
		InputToInputWeights: w(560), InputToForgetWeights: w(560), InputToCellWeights: w(560), InputToOutputWeights: w(560),
		RecurrentToInputWeights: w(400), RecurrentToForgetWeights: w(400), RecurrentToCellWeights: w(400), RecurrentToOutputWeights: w(400),
		InputGateBias: w(20), ForgetGateBias: w(20), CellGateBias: w(20), OutputGateBias: w(20),
		OutputState: make([]float32, 20), CellState: make([]float32, 20),
		Output: make([]float32, 28*20), Scratch: make([]float32, p.ScratchFloat32),
	}
	b.ReportAllocs()
	for b.Loop() {
		LSTMFloat(p, tt)
	}
}

func rngForBench() *rand.Rand { return rand.New(rand.NewSource(42)) }
