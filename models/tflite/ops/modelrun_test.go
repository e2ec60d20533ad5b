package ops

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
)

// A test-only chain of this package's kernels over the int8 corpus models
// (hello_world, micro_speech, person_detect), to check the Prepare
// arithmetic and the fast paths end to end against TFLM's outputs. The
// runtime's interpreter and its conformance test are the real thing.

type peekOp struct {
	code    int
	inputs  []int
	outputs []int
	options *flatbuffers.Table
}

func peekOps(t *testing.T, model string) (*peekModel, []peekOp) {
	m := peek(t, model)
	b, err := os.ReadFile(filepath.Join(corpusDir(t), model, "model.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	root := &flatbuffers.Table{Bytes: b, Pos: flatbuffers.GetUOffsetT(b)}
	sg := vecTable(root, 2, 0)
	var codes []int
	for i := 0; i < vecLen(root, 1); i++ {
		oc := vecTable(root, 1, i)
		c := 0
		if o := tableField(oc, 0); o != 0 {
			c = int(oc.GetInt8(o + oc.Pos))
		}
		if o := tableField(oc, 3); o != 0 {
			c = max(c, int(oc.GetInt32(o+oc.Pos)))
		}
		codes = append(codes, c)
	}
	var ops []peekOp
	for i := 0; i < vecLen(sg, 3); i++ {
		op := vecTable(sg, 3, i)
		idx := 0
		if o := tableField(op, 0); o != 0 {
			idx = int(op.GetUint32(o + op.Pos))
		}
		ops = append(ops, peekOp{code: codes[idx], inputs: vecInt32(op, 1), outputs: vecInt32(op, 2), options: subTable(op, 4)})
	}
	m.inputs, m.outputs = vecInt32(sg, 1), vecInt32(sg, 2)
	return m, ops
}

func (o peekOp) i32(id int, def int32) int32 {
	if o.options == nil {
		return def
	}
	if f := tableField(o.options, id); f != 0 {
		return o.options.GetInt32(f + o.options.Pos)
	}
	return def
}

func (o peekOp) i8(id int) int8 {
	if o.options == nil {
		return 0
	}
	if f := tableField(o.options, id); f != 0 {
		return o.options.GetInt8(f + o.options.Pos)
	}
	return 0
}

func (o peekOp) f32(id int, def float32) float32 {
	if o.options == nil {
		return def
	}
	if f := tableField(o.options, id); f != 0 {
		return o.options.GetFloat32(f + o.options.Pos)
	}
	return def
}

func asFloat32(b []byte) []float32 {
	r := make([]float32, len(b)/4)
	for i := range r {
		r[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return r
}

// runInt8Model runs an int8 model's ops over one input; fast selects the
// precomputed fast paths.
func runInt8Model(t *testing.T, m *peekModel, ops []peekOp, input []int8, fast bool) []int8 {
	vals := map[int][]int8{m.inputs[0]: input}
	get := func(i int) []int8 {
		if v, ok := vals[i]; ok {
			return v
		}
		return asInt8(m.tensors[i].data)
	}
	bias := func(op peekOp) []int32 {
		if len(op.inputs) < 3 || op.inputs[2] < 0 {
			return nil
		}
		return asInt32(m.tensors[op.inputs[2]].data)
	}
	for _, op := range ops {
		in, out := &m.tensors[op.inputs[0]], &m.tensors[op.outputs[0]]
		res := make([]int8, FlatSize(out.shape))
		switch op.code {
		case 3, 4: // CONV_2D, DEPTHWISE_CONV_2D
			f := &m.tensors[op.inputs[1]]
			q := &ConvQuant{InputScale: in.scales[0], InputZeroPoint: in.zp(), FilterScales: f.scales,
				OutputScale: out.scales[0], OutputZeroPoint: out.zp(), ActBits: 8}
			if op.code == 3 {
				opts := ConvOptions{Padding: Padding(op.i8(0)), StrideW: int(op.i32(1, 1)), StrideH: int(op.i32(2, 1)),
					Activation: Activation(op.i8(3)), DilationW: int(op.i32(4, 1)), DilationH: int(op.i32(5, 1))}
				p, err := PrepareConv2D(opts, in.shape, f.shape, out.shape, q)
				if err != nil {
					t.Fatal(err)
				}
				if fast {
					p.PrecomputeInt8(get(op.inputs[1]), bias(op))
				}
				Conv2DInt8(p, get(op.inputs[0]), get(op.inputs[1]), bias(op), res, make([]int8, p.ScratchInt8))
			} else {
				opts := ConvOptions{Padding: Padding(op.i8(0)), StrideW: int(op.i32(1, 1)), StrideH: int(op.i32(2, 1)),
					DepthMultiplier: int(op.i32(3, 0)), Activation: Activation(op.i8(4)), DilationW: int(op.i32(5, 1)), DilationH: int(op.i32(6, 1))}
				p, err := PrepareDepthwiseConv2D(opts, in.shape, f.shape, out.shape, q)
				if err != nil {
					t.Fatal(err)
				}
				if fast {
					p.PrecomputeDepthwiseInt8(get(op.inputs[1]), bias(op))
				}
				DepthwiseConv2DInt8(p, get(op.inputs[0]), get(op.inputs[1]), bias(op), res, make([]int32, p.ScratchInt32))
			}
		case 9: // FULLY_CONNECTED
			f := &m.tensors[op.inputs[1]]
			q := &FCQuant{InputScale: in.scales[0], InputZeroPoint: in.zp(), FilterScales: f.scales, FilterZeroPoint: f.zp(),
				OutputScale: out.scales[0], OutputZeroPoint: out.zp(), ActBits: 8}
			p, err := PrepareFullyConnected(Activation(op.i8(0)), in.shape, f.shape, out.shape, q)
			if err != nil {
				t.Fatal(err)
			}
			if fast {
				p.PrecomputeInt8(get(op.inputs[1]), bias(op))
			}
			FullyConnectedInt8(p, get(op.inputs[0]), get(op.inputs[1]), bias(op), res)
		case 1: // AVERAGE_POOL_2D
			opts := ConvOptions{Padding: Padding(op.i8(0)), StrideW: int(op.i32(1, 1)), StrideH: int(op.i32(2, 1)),
				FilterW: int(op.i32(3, 1)), FilterH: int(op.i32(4, 1)), Activation: Activation(op.i8(5))}
			p, err := PreparePool2D(opts, in.shape, out.shape, 8, out.scales[0], out.zp())
			if err != nil {
				t.Fatal(err)
			}
			AveragePoolInt8(p, get(op.inputs[0]), res, make([]int32, p.C))
		case 22: // RESHAPE
			Copy(get(op.inputs[0]), res)
		case 25: // SOFTMAX
			p, err := PrepareSoftmax(op.f32(0, 1), in.shape, 8, in.scales[0])
			if err != nil {
				t.Fatal(err)
			}
			SoftmaxInt8(p, get(op.inputs[0]), res)
		default:
			t.Fatalf("op %d not in this test's chain", op.code)
		}
		vals[op.outputs[0]] = res
	}
	return vals[m.outputs[0]]
}

func checkInt8Model(t *testing.T, model string) {
	m, ops := peekOps(t, model)
	ins, outs := goldenCases(t, model)
	for ci := range ins {
		for _, fast := range []bool{false, true} {
			got := runInt8Model(t, m, ops, asInt8(ins[ci][0]), fast)
			want := asInt8(outs[ci])
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s case %d (fast=%v): output %v, want %v", model, ci, fast, got, want)
				}
			}
		}
	}
}

func TestGoldenHelloWorldInt8(t *testing.T) { checkInt8Model(t, "hello_world_int8") }
func TestGoldenMicroSpeech(t *testing.T)    { checkInt8Model(t, "micro_speech") }
func TestGoldenPersonDetect(t *testing.T)   { checkInt8Model(t, "person_detect") }

func TestGoldenHelloWorldFloat(t *testing.T) {
	m, ops := peekOps(t, "hello_world_float")
	ins, outs := goldenCases(t, "hello_world_float")
	for ci := range ins {
		x := asFloat32(ins[ci][0])
		for _, op := range ops {
			in, f, out := &m.tensors[op.inputs[0]], &m.tensors[op.inputs[1]], &m.tensors[op.outputs[0]]
			p, err := PrepareFullyConnected(Activation(op.i8(0)), in.shape, f.shape, out.shape, nil)
			if err != nil {
				t.Fatal(err)
			}
			var b []float32
			if len(op.inputs) > 2 && op.inputs[2] >= 0 {
				b = asFloat32(m.tensors[op.inputs[2]].data)
			}
			y := make([]float32, FlatSize(out.shape))
			FullyConnectedFloat(p, x, asFloat32(f.data), b, y)
			x = y
		}
		want := asFloat32(outs[ci])
		for i := range want {
			if math.Abs(float64(x[i]-want[i])) > 1e-5 {
				t.Fatalf("case %d: %v, want %v", ci, x, want)
			}
		}
	}
}
