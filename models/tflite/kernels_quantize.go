package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
)

// QUANTIZE (float32 -> int8/int16, or requantization between int8, int16
// and int32) and DEQUANTIZE (int8/int16/int32 -> float32). Per-tensor
// quantization only.

func init() {
	register(OpQuantize, prepareQuantize)
	register(OpDequantize, prepareDequantize)
}

func bitsOf(t TensorType) int {
	switch t {
	case Int8:
		return 8
	case Int16:
		return 16
	case Int32:
		return 32
	}
	return 0
}

func prepareQuantize(c *opCtx) (*prepared, error) {
	if err := c.numIO(1, 1, 1); err != nil {
		return nil, err
	}
	in, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	out := c.out(0)
	if in.NumElements() != out.NumElements() {
		return nil, c.errorf("input shape %v and output shape %v differ", in.Shape, out.Shape)
	}
	if err := c.wantType("input", in, Float32, Int8, Int16, Int32); err != nil {
		return nil, err
	}
	if err := c.wantType("output", out, Int8, Int16, Int32); err != nil {
		return nil, err
	}
	if in.Type == Int32 && out.Type == Int32 {
		return nil, c.unsupportedf("int32 -> int32 requantization")
	}
	outS, outZ, err := c.wantQuant("output", out)
	if err != nil {
		return nil, err
	}
	var inS float64
	var inZ int
	if in.Type != Float32 {
		if inS, inZ, err = c.wantQuant("input", in); err != nil {
			return nil, err
		}
	}
	p, err := ops.PrepareQuantize(float32(inS), inZ, float32(outS), outZ, bitsOf(out.Type))
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	return simple(func(b *binding) (evalFunc, error) {
		x, y := b.in[0].data, b.out[0].data
		switch {
		case in.Type == Float32 && out.Type == Int8:
			xf, yi := asFloat32s(x), asInt8s(y)
			return func() error { ops.QuantizeFloatToInt8(p, xf, yi); return nil }, nil
		case in.Type == Float32 && out.Type == Int16:
			xf, yi := asFloat32s(x), asInt16s(y)
			return func() error { ops.QuantizeFloatToInt16(p, xf, yi); return nil }, nil
		case in.Type == Float32:
			return nil, c.unsupportedf("float32 -> %s", out.Type)
		}
		return requantizeEval(p, in.Type, out.Type, x, y), nil
	}), nil
}

// requantizeEval instantiates ops.Requantize for the input and output types.
func requantizeEval(p *ops.QuantizeParams, it, ot TensorType, x, y []byte) evalFunc {
	switch it {
	case Int8:
		xi := asInt8s(x)
		switch ot {
		case Int8:
			yo := asInt8s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		case Int16:
			yo := asInt16s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		default:
			yo := asInt32s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		}
	case Int16:
		xi := asInt16s(x)
		switch ot {
		case Int8:
			yo := asInt8s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		case Int16:
			yo := asInt16s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		default:
			yo := asInt32s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		}
	default:
		xi := asInt32s(x)
		switch ot {
		case Int8:
			yo := asInt8s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		default:
			yo := asInt16s(y)
			return func() error { ops.Requantize(p, xi, yo); return nil }
		}
	}
}

func prepareDequantize(c *opCtx) (*prepared, error) {
	if err := c.numIO(1, 1, 1); err != nil {
		return nil, err
	}
	in, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	out := c.out(0)
	if in.NumElements() != out.NumElements() {
		return nil, c.errorf("input shape %v and output shape %v differ", in.Shape, out.Shape)
	}
	if err := c.wantType("input", in, Int8, Int16, Int32); err != nil {
		return nil, err
	}
	if err := c.wantType("output", out, Float32); err != nil {
		return nil, err
	}
	s, z, err := c.wantQuant("input", in)
	if err != nil {
		return nil, err
	}
	scale := float32(s)
	return simple(func(b *binding) (evalFunc, error) {
		y := asFloat32s(b.out[0].data)
		switch in.Type {
		case Int8:
			x := asInt8s(b.in[0].data)
			return func() error { ops.Dequantize(scale, z, x, y); return nil }, nil
		case Int16:
			x := asInt16s(b.in[0].data)
			return func() error { ops.Dequantize(scale, z, x, y); return nil }, nil
		default:
			x := asInt32s(b.in[0].data)
			return func() error { ops.Dequantize(scale, z, x, y); return nil }, nil
		}
	}), nil
}
