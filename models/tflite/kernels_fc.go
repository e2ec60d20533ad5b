package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// FULLY_CONNECTED: inputs (input, weights [units, depth], optional bias),
// one output. float32; int8 with int32 bias; 16x8 with int64 bias.

func init() {
	register(OpFullyConnected, prepareFC)
}

func prepareFC(c *opCtx) (*prepared, error) {
	if err := c.numIO(2, 3, 1); err != nil {
		return nil, err
	}
	in, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	filter, err := c.mustIn(1)
	if err != nil {
		return nil, err
	}
	bias := c.in(2)
	out := c.out(0)
	t, err := c.options(schema.OptFullyConnected)
	if err != nil {
		return nil, err
	}
	act, err := t.Int8(0, 0)
	if err != nil {
		return nil, err
	}
	wf, err := t.Int8(1, 0)
	if err != nil {
		return nil, err
	}
	if wf != 0 {
		return nil, c.unsupportedf("weights_format %d (only DEFAULT)", wf)
	}
	if err := c.wantRank("filter", filter, 2); err != nil {
		return nil, err
	}
	if bias != nil && bias.NumElements() != filter.Shape[0] {
		return nil, c.errorf("bias tensor %d %q has shape %v, want %d elements", bias.Index, bias.Name, bias.Shape, filter.Shape[0])
	}
	var q *ops.FCQuant
	var bits int
	switch in.Type {
	case Float32:
		if err := c.sameType(in, filter, out); err != nil {
			return nil, err
		}
		if bias != nil {
			if err := c.wantType("bias", bias, Float32); err != nil {
				return nil, err
			}
		}
	case Int8, Int16:
		bits = 8
		biasType := Int32
		if in.Type == Int16 {
			bits, biasType = 16, Int64
		}
		if err := c.wantType("filter", filter, Int8); err != nil {
			return nil, err
		}
		if err := c.sameType(in, out); err != nil {
			return nil, err
		}
		if bias != nil {
			if err := c.wantType("bias", bias, biasType); err != nil {
				return nil, err
			}
		}
		inS, inZ, err := c.wantQuant("input", in)
		if err != nil {
			return nil, err
		}
		outS, outZ, err := c.wantQuant("output", out)
		if err != nil {
			return nil, err
		}
		if !filter.Quantization.Quantized() {
			return nil, c.errorf("filter tensor %d %q is not quantized", filter.Index, filter.Name)
		}
		q = &ops.FCQuant{
			InputScale: float32(inS), InputZeroPoint: inZ,
			FilterScales: filter.Quantization.Scales, FilterZeroPoint: int(filter.Quantization.ZeroPoint()),
			OutputScale: float32(outS), OutputZeroPoint: outZ,
			ActBits: bits,
		}
	default:
		return nil, c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
	}
	p, err := ops.PrepareFullyConnected(ops.Activation(act), in.Shape, filter.Shape, out.Shape, q)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	switch in.Type {
	case Float32:
		return simple(func(b *binding) (evalFunc, error) {
			x, w, y := asFloat32s(b.in[0].data), asFloat32s(b.in[1].data), asFloat32s(b.out[0].data)
			var bs []float32
			if t := b.opt(2); t != nil {
				bs = asFloat32s(t.data)
			}
			return func() error { ops.FullyConnectedFloat(p, x, w, bs, y); return nil }, nil
		}), nil
	case Int8:
		if filter.Constant && (bias == nil || bias.Constant) {
			var bs []int32
			if bias != nil {
				bs = asInt32s(bias.Data)
			}
			p.PrecomputeInt8(asInt8s(filter.Data), bs)
		}
		return simple(func(b *binding) (evalFunc, error) {
			x, w, y := asInt8s(b.in[0].data), asInt8s(b.in[1].data), asInt8s(b.out[0].data)
			var bs []int32
			if t := b.opt(2); t != nil {
				bs = asInt32s(t.data)
			}
			return func() error { ops.FullyConnectedInt8(p, x, w, bs, y); return nil }, nil
		}), nil
	default:
		return simple(func(b *binding) (evalFunc, error) {
			x, w, y := asInt16s(b.in[0].data), asInt8s(b.in[1].data), asInt16s(b.out[0].data)
			var bs []int64
			if t := b.opt(2); t != nil {
				bs = asInt64s(t.data)
			}
			return func() error { ops.FullyConnectedInt16(p, x, w, bs, y); return nil }, nil
		}), nil
	}
}
