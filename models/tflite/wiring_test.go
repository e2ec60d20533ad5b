package tflite

import (
	"encoding/binary"
	"math"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// These tests check the wiring of operators the corpus does not cover
// (or covers in one type only): options read from the right fields, inputs
// taken in the right order, results as TFLite defines them. The arithmetic
// itself is tested in package ops.

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i32bytes(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// opts builds an options table with int8/int32/float32 fields.
type optField struct {
	id  int
	i8  int8
	i32 int32
	f32 float32
	k   byte // 'b' int8, 'i' int32, 'f' float32
}

func optTable(typ uint8, fields ...optField) func(b *flatbuffers.Builder) (uint8, flatbuffers.UOffsetT) {
	return func(b *flatbuffers.Builder) (uint8, flatbuffers.UOffsetT) {
		n := 0
		for _, f := range fields {
			n = max(n, f.id+1)
		}
		b.StartObject(n)
		for _, f := range fields {
			switch f.k {
			case 'b':
				b.PrependInt8(f.i8)
			case 'i':
				b.PrependInt32(f.i32)
			case 'f':
				b.PrependFloat32(f.f32)
			}
			b.Slot(f.id) // always written, even when equal to the default
		}
		return typ, b.EndObject()
	}
}

func fb(id int, v int8) optField    { return optField{id: id, i8: v, k: 'b'} }
func fi(id int, v int32) optField   { return optField{id: id, i32: v, k: 'i'} }
func ff(id int, v float32) optField { return optField{id: id, f32: v, k: 'f'} }

// runOne builds a one-operator model and runs it on float or raw inputs.
func runOne(t *testing.T, tm testModel, inputs ...[]byte) *Interpreter {
	t.Helper()
	m, err := Load(buildModel(tm))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ip, err := m.NewInterpreter()
	if err != nil {
		t.Fatalf("NewInterpreter: %v", err)
	}
	for i, in := range inputs {
		if len(in) != len(ip.Input(i).Bytes()) {
			t.Fatalf("input %d: %d bytes for a %d-byte tensor", i, len(in), len(ip.Input(i).Bytes()))
		}
		copy(ip.Input(i).Bytes(), in)
	}
	if err := ip.Invoke(); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return ip
}

func wantFloats(t *testing.T, got []float32, want ...float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// unary is a float model: x -> op -> y, with extra constant inputs.
func unary(code int32, inShape, outShape []int32, typ TensorType, opt func(*flatbuffers.Builder) (uint8, flatbuffers.UOffsetT), consts ...testTensor) testModel {
	tm := testModel{
		codes:   []int32{code},
		tensors: []testTensor{{name: "x", typ: typ, shape: inShape}, {name: "y", typ: typ, shape: outShape}},
		buffers: [][]byte{nil},
		inputs:  []int32{0},
		outputs: []int32{1},
	}
	op := testOp{opcode: 0, inputs: []int32{0}, outputs: []int32{1}, options: opt}
	for _, c := range consts {
		tm.tensors = append(tm.tensors, c)
		op.inputs = append(op.inputs, int32(len(tm.tensors)-1))
	}
	tm.ops = []testOp{op}
	return tm
}

// constT returns a constant tensor whose data is buffer index len(bufs).
func constT(tm *testModel, name string, typ TensorType, shape []int32, data []byte) testTensor {
	tm.buffers = append(tm.buffers, data)
	return testTensor{name: name, typ: typ, shape: shape, buffer: uint32(len(tm.buffers) - 1)}
}

func TestWiringMulBroadcastRelu(t *testing.T) {
	tm := unary(OpMul, []int32{2, 3}, []int32{2, 3}, Float32, optTable(schema.OptMul, fb(0, 1)))
	c := constT(&tm, "c", Float32, []int32{3}, f32bytes(1, -2, 3))
	tm.tensors = append(tm.tensors, c)
	tm.ops[0].inputs = append(tm.ops[0].inputs, 2)
	ip := runOne(t, tm, f32bytes(1, 2, 3, -1, -2, -3))
	wantFloats(t, ip.Output(0).Float32s(), 1, 0, 9, 0, 4, 0)
}

func TestWiringPools(t *testing.T) {
	x := make([]float32, 16)
	for i := range x {
		x[i] = float32(i)
	}
	// padding VALID (1), stride 2x2, filter 2x2.
	opt := optTable(schema.OptPool2D, fb(0, 1), fi(1, 2), fi(2, 2), fi(3, 2), fi(4, 2))
	ip := runOne(t, unary(OpMaxPool2D, []int32{1, 4, 4, 1}, []int32{1, 2, 2, 1}, Float32, opt), f32bytes(x...))
	wantFloats(t, ip.Output(0).Float32s(), 5, 7, 13, 15)
	ip = runOne(t, unary(OpAveragePool2D, []int32{1, 4, 4, 1}, []int32{1, 2, 2, 1}, Float32, opt), f32bytes(x...))
	wantFloats(t, ip.Output(0).Float32s(), 2.5, 4.5, 10.5, 12.5)
}

func TestWiringRelus(t *testing.T) {
	in := f32bytes(-3, -0.5, 0.5, 7)
	s := []int32{4}
	ip := runOne(t, unary(OpRelu, s, s, Float32, nil), in)
	wantFloats(t, ip.Output(0).Float32s(), 0, 0, 0.5, 7)
	ip = runOne(t, unary(OpRelu6, s, s, Float32, nil), in)
	wantFloats(t, ip.Output(0).Float32s(), 0, 0, 0.5, 6)
	ip = runOne(t, unary(opReluN1To1, s, s, Float32, nil), in)
	wantFloats(t, ip.Output(0).Float32s(), -1, -0.5, 0.5, 1)
	ip = runOne(t, unary(OpLeakyRelu, s, s, Float32, optTable(schema.OptLeakyRelu, ff(0, 0.25))), in)
	wantFloats(t, ip.Output(0).Float32s(), -0.75, -0.125, 0.5, 7)
}

func TestWiringSqueeze(t *testing.T) {
	ip := runOne(t, unary(OpSqueeze, []int32{1, 3, 1}, []int32{3}, Float32, nil), f32bytes(1, 2, 3))
	wantFloats(t, ip.Output(0).Float32s(), 1, 2, 3)
}

func TestWiringQuantizeDequantize(t *testing.T) {
	tm := unary(OpQuantize, []int32{3}, []int32{3}, Float32, nil)
	tm.tensors[1].typ = Int8
	tm.tensors[1].scales, tm.tensors[1].zps = []float32{0.5}, []int64{1}
	ip := runOne(t, tm, f32bytes(1, -1.26, 100))
	if got := ip.Output(0).Int8s(); got[0] != 3 || got[1] != -2 || got[2] != 127 {
		t.Fatalf("quantize: got %v, want [3 -2 127]", got)
	}
	tm = unary(OpDequantize, []int32{2}, []int32{2}, Float32, nil)
	tm.tensors[0].typ = Int8
	tm.tensors[0].scales, tm.tensors[0].zps = []float32{0.5}, []int64{1}
	ip = runOne(t, tm, []byte{3, 0xfe})
	wantFloats(t, ip.Output(0).Float32s(), 1, -1.5)
}

func TestWiringConvFloat(t *testing.T) {
	// 3x3 input, 2x2 filter of ones, bias 10, stride 1, VALID.
	x := f32bytes(1, 2, 3, 4, 5, 6, 7, 8, 9)
	tm := unary(OpConv2D, []int32{1, 3, 3, 1}, []int32{1, 2, 2, 1}, Float32,
		optTable(schema.OptConv2D, fb(0, 1), fi(1, 1), fi(2, 1)))
	w := constT(&tm, "w", Float32, []int32{1, 2, 2, 1}, f32bytes(1, 1, 1, 1))
	bias := constT(&tm, "b", Float32, []int32{1}, f32bytes(10))
	tm.tensors = append(tm.tensors, w, bias)
	tm.ops[0].inputs = []int32{0, 2, 3}
	ip := runOne(t, tm, x)
	wantFloats(t, ip.Output(0).Float32s(), 22, 26, 34, 38)

	// Depthwise: 2 channels scaled by 2 and 3 (1x1 filter), no bias.
	tm = unary(OpDepthwiseConv2D, []int32{1, 1, 2, 2}, []int32{1, 1, 2, 2}, Float32,
		optTable(schema.OptDepthwiseConv2D, fb(0, 0), fi(1, 1), fi(2, 1), fi(3, 1)))
	w = constT(&tm, "w", Float32, []int32{1, 1, 1, 2}, f32bytes(2, 3))
	tm.tensors = append(tm.tensors, w)
	tm.ops[0].inputs = []int32{0, 2, -1}
	ip = runOne(t, tm, f32bytes(1, 1, 2, 2))
	wantFloats(t, ip.Output(0).Float32s(), 2, 3, 4, 6)
}

func TestWiringFullyConnectedFloat(t *testing.T) {
	tm := unary(OpFullyConnected, []int32{1, 3}, []int32{1, 2}, Float32, optTable(schema.OptFullyConnected, fb(0, 0)))
	w := constT(&tm, "w", Float32, []int32{2, 3}, f32bytes(1, 2, 3, -1, -1, -1))
	bias := constT(&tm, "b", Float32, []int32{2}, f32bytes(0.5, 1))
	tm.tensors = append(tm.tensors, w, bias)
	tm.ops[0].inputs = []int32{0, 2, 3}
	ip := runOne(t, tm, f32bytes(1, 1, 1))
	wantFloats(t, ip.Output(0).Float32s(), 6.5, -2)
}

func TestWiringPadAndSlice(t *testing.T) {
	tm := unary(OpPad, []int32{1, 2}, []int32{3, 3}, Float32, nil)
	pads := constT(&tm, "pads", Int32, []int32{2, 2}, i32bytes(1, 1, 0, 1))
	tm.tensors = append(tm.tensors, pads)
	tm.ops[0].inputs = []int32{0, 2}
	ip := runOne(t, tm, f32bytes(1, 2))
	wantFloats(t, ip.Output(0).Float32s(), 0, 0, 0, 1, 2, 0, 0, 0, 0)

	// x[0:4:2] on a [5] tensor -> [x0, x2].
	tm = unary(OpStridedSlice, []int32{5}, []int32{2}, Float32, optTable(schema.OptStridedSlice, fi(0, 0)))
	b := constT(&tm, "begin", Int32, []int32{1}, i32bytes(0))
	e := constT(&tm, "end", Int32, []int32{1}, i32bytes(4))
	s := constT(&tm, "strides", Int32, []int32{1}, i32bytes(2))
	tm.tensors = append(tm.tensors, b, e, s)
	tm.ops[0].inputs = []int32{0, 2, 3, 4}
	ip = runOne(t, tm, f32bytes(10, 11, 12, 13, 14))
	wantFloats(t, ip.Output(0).Float32s(), 10, 12)
}

// TestWiringTransposeConvShape: a runtime output_shape input that
// disagrees with the planned output makes Invoke fail instead of writing
// out of bounds.
func TestWiringTransposeConvShape(t *testing.T) {
	tm := testModel{
		codes: []int32{OpTransposeConv},
		tensors: []testTensor{
			{name: "shape", typ: Int32, shape: []int32{4}},
			{name: "x", typ: Float32, shape: []int32{1, 1, 1, 1}},
			{name: "y", typ: Float32, shape: []int32{1, 2, 2, 1}},
		},
		buffers: [][]byte{nil},
		inputs:  []int32{0, 1},
		outputs: []int32{2},
	}
	w := constT(&tm, "w", Float32, []int32{1, 2, 2, 1}, f32bytes(1, 2, 3, 4))
	tm.tensors = append(tm.tensors, w)
	tm.ops = []testOp{{opcode: 0, inputs: []int32{0, 3, 1}, outputs: []int32{2},
		options: optTable(schema.OptTransposeConv, fb(0, 1), fi(1, 2), fi(2, 2))}}
	ip := runOne(t, tm, i32bytes(1, 2, 2, 1), f32bytes(2))
	wantFloats(t, ip.Output(0).Float32s(), 2, 4, 6, 8)
	copy(ip.Input(0).Bytes(), i32bytes(1, 4, 4, 1))
	if err := ip.Invoke(); err == nil {
		t.Fatal("Invoke accepted an output_shape that differs from the output tensor")
	}
}

// TestWiringWrongOptionsType: an options table of another operator's type
// is refused.
func TestWiringWrongOptionsType(t *testing.T) {
	tm := unary(OpMaxPool2D, []int32{1, 4, 4, 1}, []int32{1, 2, 2, 1}, Float32,
		optTable(schema.OptConv2D, fb(0, 1), fi(1, 2), fi(2, 2)))
	if _, err := Load(buildModel(tm)); err == nil {
		t.Fatal("Load accepted MAX_POOL_2D with Conv2DOptions")
	}
}

func TestWiringLogisticTanh(t *testing.T) {
	in := f32bytes(-1, 0, 2)
	s := []int32{3}
	ip := runOne(t, unary(OpLogistic, s, s, Float32, nil), in)
	wantFloats(t, ip.Output(0).Float32s(), float32(1/(1+math.Exp(1))), 0.5, float32(1/(1+math.Exp(-2))))
	ip = runOne(t, unary(OpTanh, s, s, Float32, nil), in)
	wantFloats(t, ip.Output(0).Float32s(), float32(math.Tanh(-1)), 0, float32(math.Tanh(2)))

	// int8 LOGISTIC: output quantization must be 1/256, -128.
	tm := unary(OpLogistic, s, s, Int8, nil)
	tm.tensors[0].scales, tm.tensors[0].zps = []float32{0.1}, []int64{0}
	tm.tensors[1].scales, tm.tensors[1].zps = []float32{1.0 / 256}, []int64{-128}
	ip = runOne(t, tm, []byte{0xf6, 0, 20}) // -1.0, 0, 2.0
	got := ip.Output(0).Int8s()
	for i, x := range []float64{-1, 0, 2} {
		want := 1/(1+math.Exp(-x))*256 - 128
		if math.Abs(float64(got[i])-want) > 1 {
			t.Fatalf("int8 logistic(%v) = %d, want about %.1f", x, got[i], want)
		}
	}
	tm.tensors[1].zps = []int64{0}
	if _, err := Load(buildModel(tm)); err == nil {
		t.Fatal("int8 LOGISTIC with output zero point 0 was accepted")
	}
}

func TestWiringMeanConcat(t *testing.T) {
	tm := unary(OpMean, []int32{1, 2, 3}, []int32{1, 1, 3}, Float32, nil)
	axes := constT(&tm, "axes", Int32, []int32{1}, i32bytes(1))
	tm.tensors = append(tm.tensors, axes)
	tm.ops[0].inputs = []int32{0, 2}
	ip := runOne(t, tm, f32bytes(1, 2, 3, 5, 6, 7))
	wantFloats(t, ip.Output(0).Float32s(), 3, 4, 5)

	tm = testModel{
		codes: []int32{OpConcatenation},
		tensors: []testTensor{
			{name: "a", typ: Float32, shape: []int32{2, 1}},
			{name: "b", typ: Float32, shape: []int32{2, 2}},
			{name: "y", typ: Float32, shape: []int32{2, 3}},
		},
		buffers: [][]byte{nil},
		inputs:  []int32{0, 1},
		outputs: []int32{2},
		ops: []testOp{{opcode: 0, inputs: []int32{0, 1}, outputs: []int32{2},
			options: optTable(schema.OptConcatenation, fi(0, -1))}},
	}
	ip = runOne(t, tm, f32bytes(1, 2), f32bytes(3, 4, 5, 6))
	wantFloats(t, ip.Output(0).Float32s(), 1, 3, 4, 2, 5, 6)
}
