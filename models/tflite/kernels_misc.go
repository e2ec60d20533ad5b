package tflite

import (
	"math"

	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// LOGISTIC, TANH, MEAN and CONCATENATION.

func init() {
	register(OpLogistic, prepareSigmoid(false))
	register(OpTanh, prepareSigmoid(true))
	register(OpMean, prepareMean)
	register(OpConcatenation, prepareConcat)
}

// prepareSigmoid wires LOGISTIC (tanh false) or TANH. Quantized outputs
// must have the fixed quantization TFLite requires: LOGISTIC int8 1/256 and
// -128, TANH int8 1/128 and 0, int16 2^-15 and 0.
func prepareSigmoid(tanh bool) prepareFunc {
	return func(c *opCtx) (*prepared, error) {
		in, out, bits, err := unaryIO(c)
		if err != nil {
			return nil, err
		}
		var p *ops.SigmoidParams
		if bits != 0 {
			inS, inZ, outS, outZ, err := ioQuant(c, in, out, bits)
			if err != nil {
				return nil, err
			}
			wantS, wantZ := 1.0/32768, 0
			if bits == 8 {
				wantS, wantZ = 1.0/256, -128
				if tanh {
					wantS, wantZ = 1.0/128, 0
				}
			}
			if outZ != wantZ || math.Abs(float64(outS)-wantS) > 0.001*wantS {
				return nil, c.unsupportedf("output quantization scale %g zero point %d; want %g and %d", outS, outZ, wantS, wantZ)
			}
			if tanh {
				p, err = ops.PrepareTanh(bits, inS, inZ)
			} else {
				p, err = ops.PrepareLogistic(bits, inS, inZ)
			}
			if err != nil {
				return nil, c.errorf("%v", err)
			}
		}
		return simple(func(b *binding) (evalFunc, error) {
			switch bits {
			case 0:
				x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
				if tanh {
					return func() error { ops.TanhFloat(x, y); return nil }, nil
				}
				return func() error { ops.LogisticFloat(x, y); return nil }, nil
			case 8:
				x, y := asInt8s(b.in[0].data), asInt8s(b.out[0].data)
				if tanh {
					return func() error { ops.TanhInt8(p, x, y); return nil }, nil
				}
				return func() error { ops.LogisticInt8(p, x, y); return nil }, nil
			default:
				x, y := asInt16s(b.in[0].data), asInt16s(b.out[0].data)
				if tanh {
					return func() error { ops.TanhInt16(p, x, y); return nil }, nil
				}
				return func() error { ops.LogisticInt16(p, x, y); return nil }, nil
			}
		}), nil
	}
}

func prepareMean(c *opCtx) (*prepared, error) {
	if err := c.numIO(2, 2, 1); err != nil {
		return nil, err
	}
	in, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	axesT, err := c.mustIn(1)
	if err != nil {
		return nil, err
	}
	out := c.out(0)
	if err := c.sameType(in, out); err != nil {
		return nil, err
	}
	if _, err := c.options(schema.OptReducer); err != nil {
		return nil, err
	}
	axes, err := constInts(c, "axis", axesT)
	if err != nil {
		return nil, err
	}
	bits := 0
	switch in.Type {
	case Float32:
	case Int8:
		bits = 8
	case Int16:
		bits = 16
	default:
		return nil, c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
	}
	inS, inZ, outS, outZ, err := ioQuant(c, in, out, bits)
	if err != nil {
		return nil, err
	}
	// keep_dims only changes the output's shape, which the model states.
	p, err := ops.PrepareMean(in.Shape, axes, out.Shape, inS, inZ, outS, outZ)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	var scratch []int
	if bits != 0 {
		scratch = []int{4 * p.NOut}
	}
	return &prepared{scratch: scratch, bind: func(b *binding) (evalFunc, error) {
		switch bits {
		case 0:
			x, y := asFloat32s(b.in[0].data), asFloat32s(b.out[0].data)
			return func() error { ops.MeanFloat(p, x, y); return nil }, nil
		case 8:
			x, y, s := asInt8s(b.in[0].data), asInt8s(b.out[0].data), asInt32s(b.scratch[0])
			return func() error { ops.MeanInt8(p, x, y, s); return nil }, nil
		default:
			x, y, s := asInt16s(b.in[0].data), asInt16s(b.out[0].data), asInt32s(b.scratch[0])
			return func() error { ops.MeanInt16(p, x, y, s); return nil }, nil
		}
	}}, nil
}

func prepareConcat(c *opCtx) (*prepared, error) {
	if err := c.numIO(1, -1, 1); err != nil {
		return nil, err
	}
	out := c.out(0)
	var shapes []ops.Shape
	for k := range c.o.Inputs {
		in, err := c.mustIn(k)
		if err != nil {
			return nil, err
		}
		if err := c.sameType(out, in); err != nil {
			return nil, err
		}
		if err := wantSameQuant(c, in, out); err != nil {
			return nil, err
		}
		shapes = append(shapes, in.Shape)
	}
	t, err := c.options(schema.OptConcatenation)
	if err != nil {
		return nil, err
	}
	axis, err := t.Int32(0, 0)
	if err != nil {
		return nil, err
	}
	act, err := t.Int8(1, 0)
	if err != nil {
		return nil, err
	}
	if act != 0 {
		return nil, c.unsupportedf("fused activation %d", act)
	}
	p, err := ops.PrepareConcat(shapes, int(axis), out.Shape)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	return simple(func(b *binding) (evalFunc, error) {
		switch out.Type.Size() {
		case 1:
			return concatEval(p, b, asInt8s), nil
		case 2:
			return concatEval(p, b, asInt16s), nil
		case 4:
			return concatEval(p, b, asInt32s), nil
		default:
			return concatEval(p, b, asInt64s), nil
		}
	}), nil
}

func concatEval[T any](p *ops.ConcatParams, b *binding, view func([]byte) []T) evalFunc {
	ins := make([][]T, len(b.in))
	for i, t := range b.in {
		ins[i] = view(t.data)
	}
	y := view(b.out[0].data)
	return func() error { ops.Concat(p, ins, y); return nil }
}
