package tflite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
)

// testTensor describes a tensor for buildModel.
type testTensor struct {
	name     string
	typ      TensorType
	shape    []int32
	buffer   uint32
	scales   []float32
	zps      []int64
	qdim     int32
	variable bool
}

// testOp describes an operator for buildModel.
type testOp struct {
	opcode  uint32
	inputs  []int32
	outputs []int32
	// options, if set, builds the builtin options table and returns its
	// union type.
	options func(b *flatbuffers.Builder) (uint8, flatbuffers.UOffsetT)
}

// testModel is a minimal model description that buildModel serialises
// with the flatbuffers builder, using the schema's field ids.
type testModel struct {
	codes   []int32 // builtin codes
	tensors []testTensor
	buffers [][]byte // buffer 0 should be empty
	inputs  []int32
	outputs []int32
	ops     []testOp
	// extraSubgraphs repeats subgraph 0 this many more times.
	extraSubgraphs int
	// external holds buffers stored after the flatbuffer (the > 2 GB
	// layout: Buffer.offset and size instead of data).
	external map[int][]byte
}

// extMarker is a placeholder offset patched once the file size is known.
const extMarker = 0x7ead_beef_0000_0000

func buildModel(tm testModel) []byte {
	b := flatbuffers.NewBuilder(1024)
	i32vec := func(v []int32) flatbuffers.UOffsetT {
		b.StartVector(4, len(v), 4)
		for i := len(v) - 1; i >= 0; i-- {
			b.PrependInt32(v[i])
		}
		return b.EndVector(len(v))
	}
	offVec := func(v []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
		b.StartVector(4, len(v), 4)
		for i := len(v) - 1; i >= 0; i-- {
			b.PrependUOffsetT(v[i])
		}
		return b.EndVector(len(v))
	}
	var bufs []flatbuffers.UOffsetT
	for _, d := range tm.buffers {
		var data flatbuffers.UOffsetT
		if d != nil {
			b.StartVector(1, len(d), 16)
			for i := len(d) - 1; i >= 0; i-- {
				b.PrependByte(d[i])
			}
			data = b.EndVector(len(d))
		}
		b.StartObject(3)
		if d != nil {
			b.PrependUOffsetTSlot(0, data, 0)
		}
		if e, ok := tm.external[len(bufs)]; ok {
			b.PrependUint64Slot(1, extMarker+uint64(len(bufs)), 0)
			b.PrependUint64Slot(2, uint64(len(e)), 0)
		}
		bufs = append(bufs, b.EndObject())
	}
	var tensors []flatbuffers.UOffsetT
	for _, t := range tm.tensors {
		name := b.CreateString(t.name)
		shape := i32vec(t.shape)
		var q flatbuffers.UOffsetT
		if t.scales != nil {
			b.StartVector(4, len(t.scales), 4)
			for i := len(t.scales) - 1; i >= 0; i-- {
				b.PrependFloat32(t.scales[i])
			}
			sv := b.EndVector(len(t.scales))
			b.StartVector(8, len(t.zps), 8)
			for i := len(t.zps) - 1; i >= 0; i-- {
				b.PrependInt64(t.zps[i])
			}
			zv := b.EndVector(len(t.zps))
			b.StartObject(7)
			b.PrependUOffsetTSlot(2, sv, 0)
			b.PrependUOffsetTSlot(3, zv, 0)
			b.PrependInt32Slot(6, t.qdim, 0)
			q = b.EndObject()
		}
		b.StartObject(8)
		b.PrependUOffsetTSlot(0, shape, 0)
		b.PrependInt8Slot(1, int8(t.typ), 0)
		b.PrependUint32Slot(2, t.buffer, 0)
		b.PrependUOffsetTSlot(3, name, 0)
		if q != 0 {
			b.PrependUOffsetTSlot(4, q, 0)
		}
		b.PrependBoolSlot(5, t.variable, false)
		tensors = append(tensors, b.EndObject())
	}
	var opers []flatbuffers.UOffsetT
	for _, o := range tm.ops {
		in, out := i32vec(o.inputs), i32vec(o.outputs)
		var optType uint8
		var opt flatbuffers.UOffsetT
		if o.options != nil {
			optType, opt = o.options(b)
		}
		b.StartObject(5)
		b.PrependUint32Slot(0, o.opcode, 0)
		b.PrependUOffsetTSlot(1, in, 0)
		b.PrependUOffsetTSlot(2, out, 0)
		if o.options != nil {
			b.PrependUint8Slot(3, optType, 0)
			b.PrependUOffsetTSlot(4, opt, 0)
		}
		opers = append(opers, b.EndObject())
	}
	tv, iv, ov, opv := offVec(tensors), i32vec(tm.inputs), i32vec(tm.outputs), offVec(opers)
	b.StartObject(5)
	b.PrependUOffsetTSlot(0, tv, 0)
	b.PrependUOffsetTSlot(1, iv, 0)
	b.PrependUOffsetTSlot(2, ov, 0)
	b.PrependUOffsetTSlot(3, opv, 0)
	sg := b.EndObject()
	var codes []flatbuffers.UOffsetT
	for _, c := range tm.codes {
		b.StartObject(4)
		dep := c
		if dep > 127 {
			dep = 127
		}
		b.PrependInt8Slot(0, int8(dep), 0)
		b.PrependInt32Slot(2, 1, 1)
		b.PrependInt32Slot(3, c, 0)
		codes = append(codes, b.EndObject())
	}
	sgs := []flatbuffers.UOffsetT{sg}
	for i := 0; i < tm.extraSubgraphs; i++ {
		sgs = append(sgs, sg)
	}
	cv, sv, bv := offVec(codes), offVec(sgs), offVec(bufs)
	b.StartObject(5)
	b.PrependUint32Slot(0, 3, 0)
	b.PrependUOffsetTSlot(1, cv, 0)
	b.PrependUOffsetTSlot(2, sv, 0)
	b.PrependUOffsetTSlot(4, bv, 0)
	root := b.EndObject()
	b.FinishWithFileIdentifier(root, []byte("TFL3"))
	out := append([]byte(nil), b.FinishedBytes()...)
	for i, e := range tm.external {
		for len(out)%16 != 0 {
			out = append(out, 0)
		}
		var mark [8]byte
		binary.LittleEndian.PutUint64(mark[:], extMarker+uint64(i))
		p := bytes.Index(out, mark[:])
		binary.LittleEndian.PutUint64(out[p:], uint64(len(out)))
		out = append(out, e...)
	}
	return out
}

// addModel is a float ADD of an input and a constant.
func addModel() testModel {
	c := make([]byte, 16)
	return testModel{
		codes: []int32{OpAdd},
		tensors: []testTensor{
			{name: "x", typ: Float32, shape: []int32{1, 4}},
			{name: "c", typ: Float32, shape: []int32{1, 4}, buffer: 1},
			{name: "y", typ: Float32, shape: []int32{1, 4}},
		},
		buffers: [][]byte{nil, c},
		inputs:  []int32{0},
		outputs: []int32{2},
		ops:     []testOp{{opcode: 0, inputs: []int32{0, 1}, outputs: []int32{2}}},
	}
}

func TestBuildModelLoads(t *testing.T) {
	// The hand-built model is valid as far as the reader is concerned;
	// whether ADD is wired or not, the error (if any) must be about ADD.
	_, err := Load(buildModel(addModel()))
	if err != nil && !strings.Contains(err.Error(), "ADD") {
		t.Fatalf("Load: %v", err)
	}
}

func TestHostileModels(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*testModel)
		want   string // substring of the error
	}{
		{"negative dim", func(m *testModel) { m.tensors[0].shape = []int32{1, -4} }, `tensor 0 "x": shape [1 -4] has a negative dimension`},
		{"overflowing shape", func(m *testModel) {
			m.tensors[0].shape = []int32{1 << 30, 1 << 30, 1 << 30, 1 << 30}
		}, "is larger than"},
		{"buffer size mismatch", func(m *testModel) {
			m.tensors[1] = testTensor{name: "conv1/bias", typ: Int32, shape: []int32{16}, buffer: 1}
			m.buffers[1] = make([]byte, 40)
		}, `tensor 1 "conv1/bias": buffer 1 has 40 bytes, shape [16] int32 needs 64`},
		{"buffer index", func(m *testModel) { m.tensors[1].buffer = 9 }, "buffer index 9 out of range (2 buffers)"},
		{"input index", func(m *testModel) { m.inputs = []int32{7} }, "input 0: tensor index 7 out of range"},
		{"op input index", func(m *testModel) { m.ops[0].inputs = []int32{0, 99} }, "input 1: tensor index 99 out of range"},
		{"op output index", func(m *testModel) { m.ops[0].outputs = []int32{-1} }, "output 0: tensor index -1 out of range"},
		{"opcode index", func(m *testModel) { m.ops[0].opcode = 5 }, "opcode index 5 out of range (1 operator codes)"},
		{"unknown op", func(m *testModel) { m.codes[0] = 128 }, "operator 0 uses CUMSUM (builtin 128), which this runtime does not implement"},
		{"output is constant", func(m *testModel) { m.ops[0].outputs = []int32{1} }, `output 0: tensor 1 "c" is a constant`},
		{"read before written", func(m *testModel) { m.ops[0].inputs = []int32{0, 2} }, `input 1: tensor 2 "y" is read before any operator writes it`},
		{"output never written", func(m *testModel) { m.ops = nil }, `output 0: tensor 2 "y" is never written`},
		{"rank too large", func(m *testModel) { m.tensors[0].shape = []int32{1, 1, 1, 1, 1, 1, 1, 1, 1} }, "rank 9"},
		{"unsupported type", func(m *testModel) { m.tensors[0].typ = TensorType(10) }, "element type float64"},
		{"scales vs zero points", func(m *testModel) {
			m.tensors[0].scales, m.tensors[0].zps = []float32{0.5, 0.5}, []int64{0}
		}, "2 scales but 1 zero points"},
		{"per-channel length", func(m *testModel) {
			m.tensors[0].scales, m.tensors[0].zps, m.tensors[0].qdim = []float32{1, 1, 1}, []int64{0, 0, 0}, 1
		}, "3 per-channel scales but dimension 1 of shape [1 4] is 4"},
		{"quantized dimension", func(m *testModel) {
			m.tensors[0].scales, m.tensors[0].zps, m.tensors[0].qdim = []float32{1, 1, 1, 1}, []int64{0, 0, 0, 0}, 5
		}, "quantized_dimension 5 out of range"},
		{"negative scale", func(m *testModel) {
			m.tensors[0].scales, m.tensors[0].zps = []float32{-1}, []int64{0}
		}, "scales must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tm := addModel()
			tc.mutate(&tm)
			_, err := Load(buildModel(tm))
			if err == nil {
				t.Fatalf("Load accepted the model, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %q wraps neither ErrInvalidModel nor ErrUnsupported", err)
			}
		})
	}
}

// TestPerChannelRank1Bias: a rank-1 tensor with per-channel scales and a
// quantized_dimension beyond its rank (as person_detect's biases have) is
// accepted, with the channel dimension taken as 0.
func TestPerChannelRank1Bias(t *testing.T) {
	tm := addModel()
	tm.tensors[1] = testTensor{name: "bias", typ: Int32, shape: []int32{4}, buffer: 1, scales: []float32{1, 2, 3, 4}, zps: []int64{0, 0, 0, 0}, qdim: 3}
	tm.ops, tm.outputs = nil, []int32{0}
	m, err := Load(buildModel(tm))
	if err != nil {
		t.Fatal(err)
	}
	if q := m.Tensors()[1].Quantization; q.Dim != 0 || len(q.Scales) != 4 {
		t.Fatalf("quantization %+v, want 4 scales on dim 0", q)
	}
}

// TestRawCorruption patches bytes of a valid file at the flatbuffer level.
func TestRawCorruption(t *testing.T) {
	good := buildModel(addModel())
	patch := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	root := binary.LittleEndian.Uint32(good)
	cases := map[string][]byte{
		"empty":            {},
		"short":            good[:7],
		"root outside":     patch(func(b []byte) { binary.LittleEndian.PutUint32(b, uint32(len(b)+100)) }),
		"root misaligned":  patch(func(b []byte) { binary.LittleEndian.PutUint32(b, root+1) }),
		"vtable outside":   patch(func(b []byte) { binary.LittleEndian.PutUint32(b[root:], 0x80000000) }),
		"wrong identifier": patch(func(b []byte) { copy(b[4:8], "ABCD") }),
		"huge vtable": patch(func(b []byte) {
			vt := int64(root) - int64(int32(binary.LittleEndian.Uint32(b[root:])))
			binary.LittleEndian.PutUint16(b[vt:], 0xfffe)
		}),
		"huge vector length":    patchVectorLen(good, 0xfffffff0),
		"vector length 1 << 31": patchVectorLen(good, 1<<31),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(b)
			if err == nil {
				t.Fatal("Load accepted a corrupt file")
			}
			if !errors.Is(err, ErrInvalidModel) {
				t.Fatalf("error %q does not wrap ErrInvalidModel", err)
			}
		})
	}
}

// patchVectorLen sets the length of the model's subgraphs vector.
func patchVectorLen(good []byte, n uint32) []byte {
	b := append([]byte(nil), good...)
	root := binary.LittleEndian.Uint32(b)
	vt := int64(root) - int64(int32(binary.LittleEndian.Uint32(b[root:])))
	off := binary.LittleEndian.Uint16(b[vt+4+2*2:]) // Model field 2: subgraphs
	pos := root + uint32(off)
	vec := pos + binary.LittleEndian.Uint32(b[pos:])
	binary.LittleEndian.PutUint32(b[vec:], n)
	return b
}

// tryModel loads b and, if it loads, runs it once; it reports a panic as a
// test failure. Running matters: a corrupt file that passes verification
// must still not make a kernel read out of bounds.
func tryModel(t *testing.T, what string, b []byte) (loaded bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v", what, r)
		}
	}()
	m, err := Load(b)
	if err != nil {
		if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%s: error %q wraps neither ErrInvalidModel nor ErrUnsupported", what, err)
		}
		return false
	}
	ip, err := m.NewInterpreter(WithMaxArenaBytes(1 << 20))
	if err != nil {
		return true
	}
	_ = ip.Invoke()
	return true
}

func TestTruncatedCorpus(t *testing.T) {
	for _, name := range corpusModels(t) {
		b, err := os.ReadFile(filepath.Join(corpusDir, name, "model.tflite"))
		if err != nil {
			t.Fatal(err)
		}
		// Every length for small files, ~400 lengths for large ones.
		step := len(b)/400 + 1
		for n := 0; n < len(b); n += step {
			if tryModel(t, fmt.Sprintf("%s truncated to %d", name, n), b[:n]) && n < len(b)-64 {
				// Only trailing padding or constant data can be cut off
				// and still load; a model whose tables were cut must not.
				if _, err := Load(b[:n]); err == nil && n < len(b)/2 {
					t.Errorf("%s truncated to %d of %d bytes still loads", name, n, len(b))
				}
			}
		}
	}
}

func TestBitFlipCorpus(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	iters := 300
	if testing.Short() {
		iters = 50
	}
	for _, name := range corpusModels(t) {
		good, err := os.ReadFile(filepath.Join(corpusDir, name, "model.tflite"))
		if err != nil {
			t.Fatal(err)
		}
		loaded := 0
		for i := 0; i < iters; i++ {
			b := append([]byte(nil), good...)
			// Flip 1 to 8 random bytes; half the time aim at the first
			// 4 KiB and the last 2 KiB, where the tables usually are.
			for k := rng.Intn(8) + 1; k > 0; k-- {
				p := rng.Intn(len(b))
				if rng.Intn(2) == 0 {
					if rng.Intn(2) == 0 && len(b) > 4096 {
						p = rng.Intn(4096)
					} else if len(b) > 2048 {
						p = len(b) - 1 - rng.Intn(2048)
					}
				}
				b[p] ^= byte(rng.Intn(255) + 1)
			}
			if tryModel(t, fmt.Sprintf("%s flip #%d", name, i), b) {
				loaded++
			}
		}
		t.Logf("%s: %d of %d corrupted copies still loaded and ran", name, loaded, iters)
	}
}

// FuzzLoad feeds arbitrary bytes to Load and runs whatever loads:
//
//	go test ./tflite -run '^$' -fuzz FuzzLoad -fuzztime 5m -fuzzminimizetime 5s
//
// (minimizing a 40 KB model input takes long; bound it as above).
//
// It is seeded with the corpus models and the hand-built model; inputs
// that once found bugs live in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, name := range corpusModels(f) {
		b, err := os.ReadFile(filepath.Join(corpusDir, name, "model.tflite"))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 64<<10 {
			f.Add(b)
		}
	}
	f.Add(buildModel(addModel()))
	fc := unary(OpFullyConnected, []int32{1, 3}, []int32{1, 2}, Float32, nil)
	fc.tensors = append(fc.tensors, constT(&fc, "w", Float32, []int32{2, 3}, f32bytes(1, 2, 3, 4, 5, 6)))
	fc.ops[0].inputs = []int32{0, 2} // no bias
	f.Add(buildModel(fc))
	pool := unary(OpMaxPool2D, []int32{1, 4, 4, 1}, []int32{1, 2, 2, 1}, Float32,
		optTable(5, fb(0, 1), fi(1, 2), fi(2, 2), fi(3, 2), fi(4, 2)))
	f.Add(buildModel(pool))
	f.Fuzz(func(t *testing.T, b []byte) {
		tryModel(t, "fuzz input", b)
	})
}

// TestExternalBuffers: constant data stored after the flatbuffer, located
// by Buffer.offset and size, is read; an offset outside the file is an
// error.
func TestExternalBuffers(t *testing.T) {
	tm := addModel()
	tm.buffers[1] = nil
	tm.external = map[int][]byte{1: f32bytes(1, 2, 3, 4)}
	ip := runOne(t, tm, f32bytes(10, 20, 30, 40))
	wantFloats(t, ip.Output(0).Float32s(), 11, 22, 33, 44)

	b := buildModel(tm)
	_, err := Load(b[:len(b)-8])
	if err == nil || !strings.Contains(err.Error(), "lies outside the file") {
		t.Fatalf("truncated external buffer: %v", err)
	}
}

// TestSeveralSubgraphs: subgraph 0 runs; the others are verified only.
func TestSeveralSubgraphs(t *testing.T) {
	tm := addModel()
	tm.buffers[1] = f32bytes(1, 1, 1, 1)
	tm.extraSubgraphs = 2
	ip := runOne(t, tm, f32bytes(1, 2, 3, 4))
	wantFloats(t, ip.Output(0).Float32s(), 2, 3, 4, 5)
	b := patchVectorLen(buildModel(addModel()), 0)
	if _, err := Load(b); err == nil || !strings.Contains(err.Error(), "no subgraphs") {
		t.Fatalf("model without subgraphs: %v", err)
	}
}
