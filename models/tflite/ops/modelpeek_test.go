package ops

import (
	"os"
	"path/filepath"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
)

// A tiny test-only reader of the single-operator corpus models, enough to
// take an operator's options and constant tensors so that the int16
// kernels can be checked bit-exactly against TFLM's outputs. The real
// reader is the runtime's (models/tflite); this one trusts its input.

type peekTensor struct {
	shape     []int
	typ       int8
	data      []byte
	scales    []float32
	zeroPoint []int64
}

type peekModel struct {
	tensors []peekTensor
	inputs  []int
	outputs []int
	options *flatbuffers.Table // builtin_options of operator 0
}

func tableField(t *flatbuffers.Table, id int) flatbuffers.UOffsetT {
	return flatbuffers.UOffsetT(t.Offset(flatbuffers.VOffsetT(4 + 2*id)))
}

func subTable(t *flatbuffers.Table, id int) *flatbuffers.Table {
	o := tableField(t, id)
	if o == 0 {
		return nil
	}
	return &flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(o + t.Pos)}
}

func vecTable(t *flatbuffers.Table, id, i int) *flatbuffers.Table {
	o := tableField(t, id)
	v := t.Vector(o) + flatbuffers.UOffsetT(4*i)
	return &flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(v)}
}

func vecLen(t *flatbuffers.Table, id int) int {
	o := tableField(t, id)
	if o == 0 {
		return 0
	}
	return t.VectorLen(o)
}

func vecInt32(t *flatbuffers.Table, id int) []int {
	n := vecLen(t, id)
	r := make([]int, n)
	if n == 0 {
		return r
	}
	v := t.Vector(tableField(t, id))
	for i := range r {
		r[i] = int(flatbuffers.GetInt32(t.Bytes[v+flatbuffers.UOffsetT(4*i):]))
	}
	return r
}

func peek(t *testing.T, model string) *peekModel {
	b, err := os.ReadFile(filepath.Join(corpusDir(t), model, "model.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	root := &flatbuffers.Table{Bytes: b, Pos: flatbuffers.GetUOffsetT(b)}
	sg := vecTable(root, 2, 0)
	op := vecTable(sg, 3, 0)
	m := &peekModel{inputs: vecInt32(op, 1), outputs: vecInt32(op, 2), options: subTable(op, 4)}
	for i := 0; i < vecLen(sg, 0); i++ {
		tt := vecTable(sg, 0, i)
		pt := peekTensor{shape: vecInt32(tt, 0)}
		if o := tableField(tt, 1); o != 0 {
			pt.typ = tt.GetInt8(o + tt.Pos)
		}
		if o := tableField(tt, 2); o != 0 {
			buf := vecTable(root, 4, int(tt.GetUint32(o+tt.Pos)))
			if n := vecLen(buf, 0); n > 0 {
				v := buf.Vector(tableField(buf, 0))
				pt.data = buf.Bytes[v : v+flatbuffers.UOffsetT(n)]
			}
		}
		if q := subTable(tt, 4); q != nil {
			if n := vecLen(q, 2); n > 0 {
				v := q.Vector(tableField(q, 2))
				for j := 0; j < n; j++ {
					pt.scales = append(pt.scales, q.GetFloat32(v+flatbuffers.UOffsetT(4*j)))
				}
			}
			if n := vecLen(q, 3); n > 0 {
				v := q.Vector(tableField(q, 3))
				for j := 0; j < n; j++ {
					pt.zeroPoint = append(pt.zeroPoint, q.GetInt64(v+flatbuffers.UOffsetT(8*j)))
				}
			}
		}
		m.tensors = append(m.tensors, pt)
	}
	return m
}

// optInt and optFloat read scalar fields of the operator's options table.
func (m *peekModel) optInt(id int, def int32) int32 {
	if m.options == nil {
		return def
	}
	o := tableField(m.options, id)
	if o == 0 {
		return def
	}
	return m.options.GetInt32(o + m.options.Pos)
}

func (m *peekModel) optByte(id int, def int8) int8 {
	if m.options == nil {
		return def
	}
	o := tableField(m.options, id)
	if o == 0 {
		return def
	}
	return m.options.GetInt8(o + m.options.Pos)
}

func (m *peekModel) optFloat(id int) float32 {
	o := tableField(m.options, id)
	if o == 0 {
		return 0
	}
	return m.options.GetFloat32(o + m.options.Pos)
}

func (m *peekModel) input(i int) *peekTensor  { return &m.tensors[m.inputs[i]] }
func (m *peekModel) output(i int) *peekTensor { return &m.tensors[m.outputs[i]] }

func (pt *peekTensor) zp() int {
	if len(pt.zeroPoint) == 0 {
		return 0
	}
	return int(pt.zeroPoint[0])
}

// goldenCases returns each case's input files' bytes and output bytes.
func goldenCases(t *testing.T, model string) (ins [][][]byte, outs [][]byte) {
	man, dir := loadManifest(t, model)
	for _, c := range man.Cases {
		var in [][]byte
		for _, f := range c.Inputs {
			in = append(in, readBin(t, dir, f))
		}
		ins = append(ins, in)
		outs = append(outs, readBin(t, dir, c.Outputs[0]))
	}
	return ins, outs
}

func compareInt16(t *testing.T, what string, got []int16, want []byte) {
	w := asInt16(want)
	if len(got) != len(w) {
		t.Fatalf("%s: %d outputs, want %d", what, len(got), len(w))
	}
	bad := 0
	for i := range w {
		if got[i] != w[i] {
			if bad < 3 {
				t.Errorf("%s: element %d = %d, want %d", what, i, got[i], w[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d elements differ", what, bad, len(w))
	}
}

func TestGoldenSeanetLeakyRelu(t *testing.T) {
	m := peek(t, "seanet_leaky_relu0")
	in, out := m.input(0), m.output(0)
	p, err := PrepareLeakyRelu(m.optFloat(0), 16, in.scales[0], in.zp(), out.scales[0], out.zp())
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := goldenCases(t, "seanet_leaky_relu0")
	for ci := range ins {
		x := asInt16(ins[ci][0])
		got := make([]int16, len(x))
		LeakyReluInt16(p, x, got)
		compareInt16(t, "leaky_relu", got, outs[ci])
	}
}

func TestGoldenSeanetPad(t *testing.T) {
	m := peek(t, "seanet_pad0")
	in, out := m.input(0), m.output(0)
	pads := asInt32(m.input(1).data)
	padInts := make([]int, len(pads))
	for i, v := range pads {
		padInts[i] = int(v)
	}
	p, err := PreparePad(in.shape, padInts, out.shape)
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := goldenCases(t, "seanet_pad0")
	for ci := range ins {
		got := make([]int16, p.N)
		Pad(p, asInt16(ins[ci][0]), got, int16(out.zp()))
		compareInt16(t, "pad", got, outs[ci])
	}
}

func TestGoldenSeanetStridedSlice(t *testing.T) {
	m := peek(t, "seanet_strided_slice0")
	ints := func(i int) []int {
		v := asInt32(m.input(i).data)
		r := make([]int, len(v))
		for j, x := range v {
			r[j] = int(x)
		}
		return r
	}
	// StridedSliceOptions: begin_mask 0, end_mask 1, ellipsis_mask 2,
	// new_axis_mask 3, shrink_axis_mask 4, offset 5.
	o := StridedSliceOptions{Begin: ints(1), End: ints(2), Strides: ints(3),
		BeginMask: int(m.optInt(0, 0)), EndMask: int(m.optInt(1, 0)), EllipsisMask: int(m.optInt(2, 0)),
		NewAxisMask: int(m.optInt(3, 0)), ShrinkAxisMask: int(m.optInt(4, 0)), Offset: m.optByte(5, 0) != 0}
	p, err := PrepareStridedSlice(m.input(0).shape, o, m.output(0).shape)
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := goldenCases(t, "seanet_strided_slice0")
	for ci := range ins {
		got := make([]int16, p.N)
		StridedSlice(p, asInt16(ins[ci][0]), got)
		compareInt16(t, "strided_slice", got, outs[ci])
	}
}

func int64s(b []byte) []int64 {
	r := make([]int64, len(b)/8)
	for i := range r {
		r[i] = int64(uint64(b[8*i]) | uint64(b[8*i+1])<<8 | uint64(b[8*i+2])<<16 | uint64(b[8*i+3])<<24 |
			uint64(b[8*i+4])<<32 | uint64(b[8*i+5])<<40 | uint64(b[8*i+6])<<48 | uint64(b[8*i+7])<<56)
	}
	return r
}

func TestGoldenSeanetConv(t *testing.T) {
	m := peek(t, "seanet_conv0")
	in, filter, bias, out := m.input(0), m.input(1), m.input(2), m.output(0)
	if bias.typ != 4 { // TensorType INT64
		t.Fatalf("bias type %d, want INT64", bias.typ)
	}
	// Conv2DOptions: padding 0, stride_w 1, stride_h 2, activation 3,
	// dilation_w 4, dilation_h 5.
	opts := ConvOptions{Padding: Padding(m.optByte(0, 0)), StrideW: int(m.optInt(1, 1)), StrideH: int(m.optInt(2, 1)),
		Activation: Activation(m.optByte(3, 0)), DilationW: int(m.optInt(4, 1)), DilationH: int(m.optInt(5, 1))}
	q := &ConvQuant{InputScale: in.scales[0], FilterScales: filter.scales, OutputScale: out.scales[0], ActBits: 16}
	p, err := PrepareConv2D(opts, in.shape, filter.shape, out.shape, q)
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := goldenCases(t, "seanet_conv0")
	for ci := range ins {
		got := make([]int16, FlatSize(out.shape))
		Conv2DInt16(p, asInt16(ins[ci][0]), asInt8(filter.data), int64s(bias.data), got)
		compareInt16(t, "conv", got, outs[ci])
	}
}

func TestGoldenSeanetTransposeConv(t *testing.T) {
	m := peek(t, "seanet_transpose_conv4")
	// Inputs: output_shape, weights, input, (bias).
	filter, in, out := m.input(1), m.input(2), m.output(0)
	var bias []int64
	if len(m.inputs) > 3 && m.inputs[3] >= 0 {
		b := m.input(3)
		if b.typ != 4 {
			t.Fatalf("bias type %d, want INT64", b.typ)
		}
		bias = int64s(b.data)
	}
	// TransposeConvOptions: padding 0, stride_w 1, stride_h 2, activation 3.
	opts := ConvOptions{Padding: Padding(m.optByte(0, 0)), StrideW: int(m.optInt(1, 1)), StrideH: int(m.optInt(2, 1)),
		Activation: Activation(m.optByte(3, 0))}
	q := &ConvQuant{InputScale: in.scales[0], FilterScales: filter.scales, OutputScale: out.scales[0], ActBits: 16}
	p, err := PrepareTransposeConv(opts, in.shape, filter.shape, out.shape, q)
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := goldenCases(t, "seanet_transpose_conv4")
	scratch := make([]int64, p.ScratchInt64)
	for ci := range ins {
		got := make([]int16, FlatSize(out.shape))
		TransposeConvInt16(p, asInt16(ins[ci][1]), asInt8(filter.data), bias, got, scratch)
		compareInt16(t, "transpose_conv", got, outs[ci])
	}
}
