package tflite

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func loadCorpus(t testing.TB, name string) *Model {
	t.Helper()
	m, err := LoadFile(filepath.Join(corpusDir, name, "model.tflite"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func TestTensorAPI(t *testing.T) {
	m := loadCorpus(t, "hello_world_int8")
	ip, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	if len(ip.Inputs()) != 1 || len(ip.Outputs()) != 1 {
		t.Fatalf("%d inputs, %d outputs", len(ip.Inputs()), len(ip.Outputs()))
	}
	if ip.Input(1) != nil || ip.Output(-1) != nil || ip.InputByName("nope") != nil || ip.OutputByName("nope") != nil {
		t.Fatal("out-of-range lookups must return nil")
	}
	in := ip.Input(0)
	if in.Type() != Int8 || !sameShape(in.Shape(), []int{1, 1}) {
		t.Fatalf("input %s %v", in.Type(), in.Shape())
	}
	q := in.Quantization()
	if q.Scale() != 0.0244801156 || q.ZeroPoint() != -128 || !q.Quantized() {
		t.Fatalf("input quantization %+v", q)
	}
	if in.Int8s() == nil || in.Float32s() != nil || in.Int16s() != nil || in.Int32s() != nil {
		t.Fatal("typed views must match the tensor type")
	}
	s := in.Shape()
	s[0] = 99
	if in.Shape()[0] != 1 {
		t.Fatal("Shape must return a copy")
	}
	in.Int8s()[0] = -96 // 0.77 in the input's quantization
	if err := ip.Invoke(); err != nil {
		t.Fatal(err)
	}
	out := ip.Output(0)
	y := float64(int(out.Int8s()[0])-int(out.Quantization().ZeroPoint())) * float64(out.Quantization().Scale())
	// sin(0.77) = 0.696; the model is within 0.05 of it (upstream test).
	if y < 0.646 || y > 0.746 {
		t.Fatalf("sin(0.77) ~ %v", y)
	}
}

// TestSharedModel runs several interpreters of one model concurrently;
// each must get the golden answers (run with -race: kernels must treat the
// Model's prepared parameters as read-only).
func TestSharedModel(t *testing.T) {
	for _, name := range []string{"simple_add", "micro_speech", "mnist_lstm_int8", "seanet_conv0", "seanet_transpose_conv4"} {
		m := loadCorpus(t, name)
		man := readManifest(t, name)
		var wg sync.WaitGroup
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				ip, err := m.NewInterpreter()
				if err != nil {
					t.Error(err)
					return
				}
				for r := 0; r < 3; r++ {
					c := man.Cases[(g+r)%len(man.Cases)]
					ip.Reset()
					for i, f := range c.Inputs {
						copy(ip.Input(i).Bytes(), readCorpusFile(t, name, f))
					}
					if err := ip.Invoke(); err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(ip.Output(0).Bytes(), readCorpusFile(t, name, c.Outputs[0])) {
						t.Errorf("%s: interpreter %d case %s: wrong output", name, g, c.Name)
					}
				}
			}(g)
		}
		wg.Wait()
	}
}

// TestPlan checks the arena plan of every corpus model that loads: no two
// tensors whose lifetimes overlap share memory, every tensor lies inside
// the arena aligned to 16, and lifetime sharing makes the arena smaller
// than the sum of the tensors for the multi-op models.
func TestPlan(t *testing.T) {
	for _, name := range corpusModels(t) {
		m, err := LoadFile(filepath.Join(corpusDir, name, "model.tflite"))
		if err != nil {
			continue
		}
		type span struct{ first, last, off, end, idx int }
		var spans []span
		sum := 0
		for i := range m.Tensors() {
			first, last, off, ok := m.TensorLifetime(i)
			if !ok {
				continue
			}
			n := m.Tensors()[i].NumBytes()
			sum += alignUp(n)
			if off%arenaAlign != 0 || off+n > m.ArenaBytes() {
				t.Errorf("%s: tensor %d at %d+%d outside arena %d or misaligned", name, i, off, n, m.ArenaBytes())
			}
			spans = append(spans, span{first, last, off, off + n, i})
		}
		for a := range spans {
			for b := a + 1; b < len(spans); b++ {
				x, y := spans[a], spans[b]
				if x.first <= y.last && y.first <= x.last && x.off < y.end && y.off < x.end {
					t.Errorf("%s: tensors %d and %d are live together and overlap in memory", name, x.idx, y.idx)
				}
			}
		}
		if m.ArenaBytes() > sum+scratchBytes(m) {
			t.Errorf("%s: arena %d bytes, more than its tensors and scratch need", name, m.ArenaBytes())
		}
		if name == "person_detect" && m.ArenaBytes() > sum/2 {
			t.Errorf("%s: arena %d bytes for %d bytes of tensors: lifetimes are not shared", name, m.ArenaBytes(), sum)
		}
		t.Logf("%s: arena %d bytes for %d bytes of non-constant tensors", name, m.ArenaBytes(), sum)
	}
}

// TestVariableState: LSTM state persists between Invoke calls and Reset
// clears it.
func TestVariableState(t *testing.T) {
	name := "mnist_lstm_float"
	m := loadCorpus(t, name)
	man := readManifest(t, name)
	ip, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	var vars []*Tensor
	for i, ti := range m.Tensors() {
		if ti.Variable {
			vars = append(vars, ip.Tensor(i))
		}
	}
	if len(vars) == 0 {
		t.Fatal("no variable tensors in the LSTM model")
	}
	allZero := func() bool {
		for _, v := range vars {
			for _, x := range v.Float32s() {
				if x != 0 {
					return false
				}
			}
		}
		return true
	}
	if !allZero() {
		t.Fatal("state is not zero in a fresh interpreter")
	}
	c := man.Cases[3]
	copy(ip.Input(0).Bytes(), readCorpusFile(t, name, c.Inputs[0]))
	if err := ip.Invoke(); err != nil {
		t.Fatal(err)
	}
	if allZero() {
		t.Fatal("state is still zero after Invoke")
	}
	first := append([]byte(nil), ip.Output(0).Bytes()...)
	if err := ip.Invoke(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, ip.Output(0).Bytes()) {
		t.Fatal("second Invoke without Reset gave the same output: state was not kept")
	}
	ip.Reset()
	if !allZero() {
		t.Fatal("Reset did not zero the state")
	}
	if err := ip.Invoke(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, ip.Output(0).Bytes()) {
		t.Fatal("Invoke after Reset differs from the first Invoke")
	}
}

func TestWriteSummary(t *testing.T) {
	m := loadCorpus(t, "person_detect")
	var sb strings.Builder
	if err := m.WriteSummary(&sb); err != nil {
		t.Fatal(err)
	}
	s := sb.String()
	for _, want := range []string{"CONV_2D (builtin 3", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "SOFTMAX", "int8 [1 96 96 1] scale=0.007843138 zp=-1", "per-channel(dim 0,", "const"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(s)
	}
}

func scratchBytes(m *Model) int {
	n := 0
	for _, p := range m.nodes {
		for _, s := range p.scratch {
			n += alignUp(s)
		}
	}
	return n
}

// TestResetInt8ZeroPoint: int8 variable tensors start at, and Reset
// returns them to, their zero point (TFLM's ResetVariableTensors); others
// to 0.
func TestResetInt8ZeroPoint(t *testing.T) {
	q := func(tt testTensor, zp int64) testTensor {
		tt.scales, tt.zps = []float32{1}, []int64{zp}
		return tt
	}
	tm := testModel{
		codes: []int32{OpAdd},
		tensors: []testTensor{
			q(testTensor{name: "x", typ: Int8, shape: []int32{4}}, 0),
			q(testTensor{name: "state", typ: Int8, shape: []int32{4}, variable: true}, 5),
			q(testTensor{name: "y", typ: Int8, shape: []int32{4}}, 0),
		},
		buffers: [][]byte{nil},
		inputs:  []int32{0},
		outputs: []int32{2},
		ops:     []testOp{{opcode: 0, inputs: []int32{0, 1}, outputs: []int32{2}}},
	}
	ip := runOne(t, tm, []byte{1, 2, 3, 4})
	state := ip.Tensor(1).Int8s()
	for _, v := range state {
		if v != 5 {
			t.Fatalf("fresh state %v, want all 5", state)
		}
	}
	// y = x + (state - 5) = x.
	if got := ip.Output(0).Int8s(); got[0] != 1 || got[3] != 4 {
		t.Fatalf("output %v, want [1 2 3 4]", got)
	}
	state[0], state[3] = 9, -9
	ip.Reset()
	for _, v := range state {
		if v != 5 {
			t.Fatalf("state after Reset %v, want all 5", state)
		}
	}
}
