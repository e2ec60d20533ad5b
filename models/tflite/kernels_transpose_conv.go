package tflite

import (
	"fmt"

	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// TRANSPOSE_CONV: inputs (output_shape int32 [4], filter [OutC,KH,KW,InC],
// input NHWC, optional bias), one output. The output shape input may be a
// runtime tensor; its values must match the output tensor's static shape,
// which the arena was planned for.

func init() {
	register(OpTransposeConv, prepareTransposeConv)
}

func prepareTransposeConv(c *opCtx) (*prepared, error) {
	if err := c.numIO(3, 4, 1); err != nil {
		return nil, err
	}
	shapeT, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	filter, err := c.mustIn(1)
	if err != nil {
		return nil, err
	}
	in, err := c.mustIn(2)
	if err != nil {
		return nil, err
	}
	bias := c.in(3)
	out := c.out(0)
	if err := c.wantConst("filter", filter); err != nil {
		return nil, err
	}
	if err := c.wantType("output_shape", shapeT, Int32); err != nil {
		return nil, err
	}
	if shapeT.NumElements() != 4 {
		return nil, c.errorf("output_shape tensor has shape %v, want 4 elements", shapeT.Shape)
	}
	for _, t := range []*TensorInfo{in, filter, out} {
		if err := c.wantRank("", t, 4); err != nil {
			return nil, err
		}
	}
	if shapeT.Constant && !sameShape(int32sToInts(asInt32s(shapeT.Data)), out.Shape) {
		return nil, c.errorf("output_shape %v differs from the output tensor's shape %v", asInt32s(shapeT.Data), out.Shape)
	}
	outC := out.Shape[3]
	if bias != nil && bias.NumElements() != outC {
		return nil, c.errorf("bias tensor %d %q has shape %v, want %d elements", bias.Index, bias.Name, bias.Shape, outC)
	}
	t, err := c.options(schema.OptTransposeConv)
	if err != nil {
		return nil, err
	}
	var o ops.ConvOptions
	pad, err := t.Int8(0, 0)
	if err != nil {
		return nil, err
	}
	sw, err := t.Int32(1, 0)
	if err != nil {
		return nil, err
	}
	sh, err := t.Int32(2, 0)
	if err != nil {
		return nil, err
	}
	act, err := t.Int8(3, 0)
	if err != nil {
		return nil, err
	}
	if sw < 1 || sh < 1 || sw > 1<<16 || sh > 1<<16 {
		return nil, c.errorf("strides (%d,%d) must be in 1..65536", sh, sw)
	}
	o.Padding, o.StrideW, o.StrideH, o.Activation = ops.Padding(pad), int(sw), int(sh), ops.Activation(act)

	var q *ops.ConvQuant
	biasType := Float32
	switch in.Type {
	case Float32:
		if err := c.sameType(in, filter, out); err != nil {
			return nil, err
		}
	case Int8, Int16:
		bits := 8
		biasType = Int32
		if in.Type == Int16 {
			bits, biasType = 16, Int64
		}
		if err := c.wantType("filter", filter, Int8); err != nil {
			return nil, err
		}
		if err := c.sameType(in, out); err != nil {
			return nil, err
		}
		if q, err = convQuant(c, in, filter, out, bits); err != nil {
			return nil, err
		}
	default:
		return nil, c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
	}
	if bias != nil {
		if err := c.wantType("bias", bias, biasType); err != nil {
			return nil, err
		}
	}
	p, err := ops.PrepareTransposeConv(o, in.Shape, filter.Shape, out.Shape, q)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	var scratch []int
	switch in.Type {
	case Int8:
		scratch = []int{4 * p.ScratchInt32}
	case Int16:
		scratch = []int{8 * p.ScratchInt64}
	}
	want := [4]int32{int32(out.Shape[0]), int32(out.Shape[1]), int32(out.Shape[2]), int32(out.Shape[3])}
	return &prepared{scratch: scratch, bind: func(b *binding) (evalFunc, error) {
		shape := asInt32s(b.in[0].data)
		check := func() error {
			if [4]int32(shape) != want {
				return fmt.Errorf("output_shape input %v differs from the output tensor's shape %v: %w", shape, want, ErrUnsupported)
			}
			return nil
		}
		switch in.Type {
		case Float32:
			x, w, y := asFloat32s(b.in[2].data), asFloat32s(b.in[1].data), asFloat32s(b.out[0].data)
			var bs []float32
			if t := b.opt(3); t != nil {
				bs = asFloat32s(t.data)
			}
			return func() error {
				if err := check(); err != nil {
					return err
				}
				ops.TransposeConvFloat(p, x, w, bs, y)
				return nil
			}, nil
		case Int8:
			x, w, y, s := asInt8s(b.in[2].data), asInt8s(b.in[1].data), asInt8s(b.out[0].data), asInt32s(b.scratch[0])
			var bs []int32
			if t := b.opt(3); t != nil {
				bs = asInt32s(t.data)
			}
			return func() error {
				if err := check(); err != nil {
					return err
				}
				ops.TransposeConvInt8(p, x, w, bs, y, s)
				return nil
			}, nil
		default:
			x, w, y, s := asInt16s(b.in[2].data), asInt8s(b.in[1].data), asInt16s(b.out[0].data), asInt64s(b.scratch[0])
			var bs []int64
			if t := b.opt(3); t != nil {
				bs = asInt64s(t.data)
			}
			return func() error {
				if err := check(); err != nil {
					return err
				}
				ops.TransposeConvInt16(p, x, w, bs, y, s)
				return nil
			}, nil
		}
	}}, nil
}

func int32sToInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
