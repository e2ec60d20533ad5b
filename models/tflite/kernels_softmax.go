package tflite

import (
	"math"

	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// SOFTMAX over the last dimension: float32; int8 -> int8 (output scale
// 1/256, zero point -128) or int8 -> int16 (1/65536, -32768); int16 -> int16
// (output scale 1/32768, zero points 0).

func init() {
	register(OpSoftmax, prepareSoftmax)
}

func prepareSoftmax(c *opCtx) (*prepared, error) {
	if err := c.numIO(1, 1, 1); err != nil {
		return nil, err
	}
	in, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	out := c.out(0)
	if !sameShape(in.Shape, out.Shape) {
		return nil, c.errorf("input shape %v and output shape %v differ", in.Shape, out.Shape)
	}
	if len(in.Shape) == 0 || in.NumElements() == 0 {
		return nil, c.errorf("input shape %v is empty", in.Shape)
	}
	t, err := c.options(schema.OptSoftmax)
	if err != nil {
		return nil, err
	}
	beta, err := t.Float32(0, 0)
	if err != nil {
		return nil, err
	}
	// wantOut checks the fixed output quantization TFLite requires.
	wantOut := func(scale float64, zp int) error {
		s, z, err := c.wantQuant("output", out)
		if err != nil {
			return err
		}
		if z != zp || math.Abs(s-scale) > 0.001*scale {
			return c.unsupportedf("output quantization scale %g zero point %d; want %g and %d", s, z, scale, zp)
		}
		return nil
	}
	bits := 0
	var inS float64
	switch in.Type {
	case Float32:
		if err := c.wantType("output", out, Float32); err != nil {
			return nil, err
		}
	case Int8:
		bits = 8
		if err := c.wantType("output", out, Int8, Int16); err != nil {
			return nil, err
		}
		if out.Type == Int8 {
			err = wantOut(1.0/256, -128)
		} else {
			err = wantOut(1.0/65536, -32768)
		}
		if err != nil {
			return nil, err
		}
		if inS, _, err = c.wantQuant("input", in); err != nil {
			return nil, err
		}
	case Int16:
		bits = 16
		if err := c.wantType("output", out, Int16); err != nil {
			return nil, err
		}
		if err := wantOut(1.0/32768, 0); err != nil {
			return nil, err
		}
		var z int
		if inS, z, err = c.wantQuant("input", in); err != nil {
			return nil, err
		}
		if z != 0 {
			return nil, c.unsupportedf("int16 input zero point %d (want 0)", z)
		}
	default:
		return nil, c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
	}
	p, err := ops.PrepareSoftmax(beta, in.Shape, bits, float32(inS))
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	return simple(func(b *binding) (evalFunc, error) {
		switch {
		case in.Type == Float32:
			x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
			return func() error { ops.SoftmaxFloat(p, x, y); return nil }, nil
		case in.Type == Int8 && out.Type == Int8:
			x, y := asInt8s(b.in[0].data), asInt8s(b.out[0].data)
			return func() error { ops.SoftmaxInt8(p, x, y); return nil }, nil
		case in.Type == Int8:
			x, y := asInt8s(b.in[0].data), asInt16s(b.out[0].data)
			return func() error { ops.SoftmaxInt8Int16(p, x, y); return nil }, nil
		default:
			x, y := asInt16s(b.in[0].data), asInt16s(b.out[0].data)
			return func() error { ops.SoftmaxInt16(p, x, y); return nil }, nil
		}
	}), nil
}
