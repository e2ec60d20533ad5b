package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// AVERAGE_POOL_2D and MAX_POOL_2D: one NHWC input, one output of the same
// type (float32, int8 or int16).

func init() {
	register(OpAveragePool2D, preparePool(false))
	register(OpMaxPool2D, preparePool(true))
}

func preparePool(isMax bool) prepareFunc {
	return func(c *opCtx) (*prepared, error) {
		if err := c.numIO(1, 1, 1); err != nil {
			return nil, err
		}
		in, err := c.mustIn(0)
		if err != nil {
			return nil, err
		}
		out := c.out(0)
		if err := c.sameType(in, out); err != nil {
			return nil, err
		}
		if err := c.wantRank("input", in, 4); err != nil {
			return nil, err
		}
		if err := c.wantRank("output", out, 4); err != nil {
			return nil, err
		}
		t, err := c.options(schema.OptPool2D)
		if err != nil {
			return nil, err
		}
		var o ops.ConvOptions
		var pad, act int8
		var sw, sh, fw, fh int32
		for _, f := range []func() error{
			func() (e error) { pad, e = t.Int8(0, 0); return },
			func() (e error) { sw, e = t.Int32(1, 0); return },
			func() (e error) { sh, e = t.Int32(2, 0); return },
			func() (e error) { fw, e = t.Int32(3, 0); return },
			func() (e error) { fh, e = t.Int32(4, 0); return },
			func() (e error) { act, e = t.Int8(5, 0); return },
		} {
			if err := f(); err != nil {
				return nil, err
			}
		}
		if sw < 1 || sh < 1 || fw < 1 || fh < 1 || sw > 1<<16 || sh > 1<<16 || fw > 1<<16 || fh > 1<<16 {
			return nil, c.errorf("strides (%d,%d) and filter (%d,%d) must be in 1..65536", sh, sw, fh, fw)
		}
		o.Padding, o.Activation = ops.Padding(pad), ops.Activation(act)
		o.StrideW, o.StrideH, o.FilterW, o.FilterH = int(sw), int(sh), int(fw), int(fh)
		bits := 0
		var outS float64
		var outZ int
		switch in.Type {
		case Float32:
		case Int8, Int16:
			bits = 8
			if in.Type == Int16 {
				bits = 16
			}
			if outS, outZ, err = c.wantQuant("output", out); err != nil {
				return nil, err
			}
		default:
			return nil, c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
		}
		p, err := ops.PreparePool2D(o, in.Shape, out.Shape, bits, float32(outS), outZ)
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		var scratch []int
		if !isMax && bits != 0 {
			scratch = []int{4 * p.C}
		}
		return &prepared{scratch: scratch, bind: func(b *binding) (evalFunc, error) {
			switch in.Type {
			case Float32:
				x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
				if isMax {
					return func() error { ops.MaxPoolFloat(p, x, y); return nil }, nil
				}
				return func() error { ops.AveragePoolFloat(p, x, y); return nil }, nil
			case Int8:
				x, y := asInt8s(b.in[0].data), asInt8s(b.out[0].data)
				if isMax {
					return func() error { ops.MaxPoolInt8(p, x, y); return nil }, nil
				}
				acc := asInt32s(b.scratch[0])
				return func() error { ops.AveragePoolInt8(p, x, y, acc); return nil }, nil
			default:
				x, y := asInt16s(b.in[0].data), asInt16s(b.out[0].data)
				if isMax {
					return func() error { ops.MaxPoolInt16(p, x, y); return nil }, nil
				}
				acc := asInt32s(b.scratch[0])
				return func() error { ops.AveragePoolInt16(p, x, y, acc); return nil }, nil
			}
		}}, nil
	}
}
