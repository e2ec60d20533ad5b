package tflite

import (
	"math"

	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// Element-wise activations: RELU, RELU_N1_TO_1, RELU_0_TO_1, RELU6,
// LEAKY_RELU. One
// input and one output of the same type and element count (float32, int8
// or int16).

const (
	opReluN1To1 = 20
	opRelu0To1  = 152
)

func init() {
	register(OpRelu, prepareRelu(0, float32(math.Inf(1))))
	register(opReluN1To1, prepareRelu(-1, 1))
	register(opRelu0To1, prepareRelu(0, 1))
	register(OpRelu6, prepareRelu6)
	register(OpLeakyRelu, prepareLeakyRelu)
}

// unaryIO checks a one-input, one-output element-wise operator and returns
// its tensors and quantized width (0 for float32).
func unaryIO(c *opCtx) (in, out *TensorInfo, bits int, err error) {
	if err = c.numIO(1, 1, 1); err != nil {
		return
	}
	if in, err = c.mustIn(0); err != nil {
		return
	}
	out = c.out(0)
	if err = c.sameType(in, out); err != nil {
		return
	}
	if in.NumElements() != out.NumElements() {
		err = c.errorf("input shape %v and output shape %v differ", in.Shape, out.Shape)
		return
	}
	switch in.Type {
	case Float32:
	case Int8:
		bits = 8
	case Int16:
		bits = 16
	default:
		err = c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
	}
	return
}

// ioQuant returns the per-tensor quantization of an operator's input and
// output (zeros for float32).
func ioQuant(c *opCtx, in, out *TensorInfo, bits int) (inS float32, inZ int, outS float32, outZ int, err error) {
	if bits == 0 {
		return
	}
	var s float64
	if s, inZ, err = c.wantQuant("input", in); err != nil {
		return
	}
	inS = float32(s)
	if s, outZ, err = c.wantQuant("output", out); err != nil {
		return
	}
	outS = float32(s)
	return
}

func prepareRelu(lo, hi float32) prepareFunc {
	return func(c *opCtx) (*prepared, error) {
		in, out, bits, err := unaryIO(c)
		if err != nil {
			return nil, err
		}
		inS, inZ, outS, outZ, err := ioQuant(c, in, out, bits)
		if err != nil {
			return nil, err
		}
		p, err := ops.PrepareRelu(lo, hi, bits, inS, inZ, outS, outZ)
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		return simple(func(b *binding) (evalFunc, error) {
			switch bits {
			case 0:
				x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
				return func() error { ops.ReluFloat(p, x, y); return nil }, nil
			case 8:
				x, y := asInt8s(b.in[0].data), asInt8s(b.out[0].data)
				return func() error { ops.ReluInt8(p, x, y); return nil }, nil
			default:
				x, y := asInt16s(b.in[0].data), asInt16s(b.out[0].data)
				return func() error { ops.ReluInt16(p, x, y); return nil }, nil
			}
		}), nil
	}
}

func prepareRelu6(c *opCtx) (*prepared, error) {
	in, out, bits, err := unaryIO(c)
	if err != nil {
		return nil, err
	}
	inS, inZ, _, _, err := ioQuant(c, in, out, bits)
	if err != nil {
		return nil, err
	}
	if bits != 0 && !sameQuant(in.Quantization, out.Quantization) {
		// TFLM clamps without rescaling, which is only right when the
		// input and output share their quantization.
		return nil, c.unsupportedf("input and output quantization differ")
	}
	p, err := ops.PrepareRelu6(bits, inS, inZ)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	return simple(func(b *binding) (evalFunc, error) {
		switch bits {
		case 0:
			x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
			return func() error { ops.ReluFloat(p, x, y); return nil }, nil
		case 8:
			x, y := asInt8s(b.in[0].data), asInt8s(b.out[0].data)
			return func() error { ops.Relu6Int8(p, x, y); return nil }, nil
		default:
			x, y := asInt16s(b.in[0].data), asInt16s(b.out[0].data)
			return func() error { ops.Relu6Int16(p, x, y); return nil }, nil
		}
	}), nil
}

func prepareLeakyRelu(c *opCtx) (*prepared, error) {
	in, out, bits, err := unaryIO(c)
	if err != nil {
		return nil, err
	}
	inS, inZ, outS, outZ, err := ioQuant(c, in, out, bits)
	if err != nil {
		return nil, err
	}
	t, err := c.options(schema.OptLeakyRelu)
	if err != nil {
		return nil, err
	}
	alpha, err := t.Float32(0, 0)
	if err != nil {
		return nil, err
	}
	p, err := ops.PrepareLeakyRelu(alpha, bits, inS, inZ, outS, outZ)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	return simple(func(b *binding) (evalFunc, error) {
		switch bits {
		case 0:
			x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
			return func() error { ops.LeakyReluFloat(p, x, y); return nil }, nil
		case 8:
			x, y := asInt8s(b.in[0].data), asInt8s(b.out[0].data)
			return func() error { ops.LeakyReluInt8(p, x, y); return nil }, nil
		default:
			x, y := asInt16s(b.in[0].data), asInt16s(b.out[0].data)
			return func() error { ops.LeakyReluInt16(p, x, y); return nil }, nil
		}
	}), nil
}
