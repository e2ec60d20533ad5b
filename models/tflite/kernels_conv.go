package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// CONV_2D and DEPTHWISE_CONV_2D: inputs (input NHWC, filter, optional bias),
// one output. float32; int8 with int32 bias; 16x8 (int16 activations, int8
// filter, int64 bias).

func init() {
	register(OpConv2D, prepareConv(false))
	register(OpDepthwiseConv2D, prepareConv(true))
}

// convOptions reads Conv2DOptions or DepthwiseConv2DOptions.
func convOptions(c *opCtx, depthwise bool) (ops.ConvOptions, error) {
	var o ops.ConvOptions
	want := uint8(schema.OptConv2D)
	if depthwise {
		want = schema.OptDepthwiseConv2D
	}
	t, err := c.options(want)
	if err != nil {
		return o, err
	}
	geti := func(id int, def int32) int {
		if err != nil {
			return 0
		}
		var v int32
		v, err = t.Int32(id, def)
		return int(v)
	}
	getb := func(id int) int {
		if err != nil {
			return 0
		}
		var v int8
		v, err = t.Int8(id, 0)
		return int(v)
	}
	o.Padding = ops.Padding(getb(0))
	o.StrideW = geti(1, 0)
	o.StrideH = geti(2, 0)
	if depthwise {
		o.DepthMultiplier = geti(3, 0)
		o.Activation = ops.Activation(getb(4))
		o.DilationW = geti(5, 1)
		o.DilationH = geti(6, 1)
	} else {
		o.Activation = ops.Activation(getb(3))
		o.DilationW = geti(4, 1)
		o.DilationH = geti(5, 1)
	}
	if err != nil {
		return o, err
	}
	if o.StrideW < 1 || o.StrideH < 1 || o.DilationW < 1 || o.DilationH < 1 || o.StrideW > 1<<16 || o.StrideH > 1<<16 || o.DilationW > 1<<16 || o.DilationH > 1<<16 {
		return o, c.errorf("strides (%d,%d) and dilations (%d,%d) must be in 1..65536", o.StrideH, o.StrideW, o.DilationH, o.DilationW)
	}
	if o.DepthMultiplier < 0 {
		return o, c.errorf("depth_multiplier %d is negative", o.DepthMultiplier)
	}
	return o, nil
}

// convQuant collects the quantization of a quantized conv-like operator.
func convQuant(c *opCtx, in, filter, out *TensorInfo, bits int) (*ops.ConvQuant, error) {
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
	for k, z := range filter.Quantization.ZeroPoints {
		if z != 0 {
			return nil, c.unsupportedf("filter tensor %d %q has zero point %d at %d; TFLite requires symmetric filters", filter.Index, filter.Name, z, k)
		}
	}
	return &ops.ConvQuant{
		InputScale: float32(inS), InputZeroPoint: inZ,
		FilterScales: filter.Quantization.Scales,
		OutputScale:  float32(outS), OutputZeroPoint: outZ,
		ActBits: bits,
	}, nil
}

func prepareConv(depthwise bool) prepareFunc {
	return func(c *opCtx) (*prepared, error) {
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
		// Filters are model constants in every converter's output; the
		// per-channel tables Prepare builds are then bounded by the file.
		if err := c.wantConst("filter", filter); err != nil {
			return nil, err
		}
		opts, err := convOptions(c, depthwise)
		if err != nil {
			return nil, err
		}
		for _, t := range []*TensorInfo{in, filter, out} {
			if err := c.wantRank("", t, 4); err != nil {
				return nil, err
			}
		}
		outC := out.Shape[3]
		if bias != nil && bias.NumElements() != outC {
			return nil, c.errorf("bias tensor %d %q has shape %v, want %d elements", bias.Index, bias.Name, bias.Shape, outC)
		}
		prep := ops.PrepareConv2D
		if depthwise {
			prep = ops.PrepareDepthwiseConv2D
		}
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
			p, err := prep(opts, in.Shape, filter.Shape, out.Shape, nil)
			if err != nil {
				return nil, c.errorf("%v", err)
			}
			return simple(func(b *binding) (evalFunc, error) {
				x, w, y := asFloat32s(b.in[0].data), asFloat32s(b.in[1].data), asFloat32s(b.out[0].data)
				var bs []float32
				if t := b.opt(2); t != nil {
					bs = asFloat32s(t.data)
				}
				if depthwise {
					return func() error { ops.DepthwiseConv2DFloat(p, x, w, bs, y); return nil }, nil
				}
				return func() error { ops.Conv2DFloat(p, x, w, bs, y); return nil }, nil
			}), nil
		case Int8:
			if err := c.wantType("filter", filter, Int8); err != nil {
				return nil, err
			}
			if err := c.wantType("output", out, Int8); err != nil {
				return nil, err
			}
			if bias != nil {
				if err := c.wantType("bias", bias, Int32); err != nil {
					return nil, err
				}
			}
			q, err := convQuant(c, in, filter, out, 8)
			if err != nil {
				return nil, err
			}
			p, err := prep(opts, in.Shape, filter.Shape, out.Shape, q)
			if err != nil {
				return nil, c.errorf("%v", err)
			}
			// The fast paths fold the input offset into the bias, which
			// needs the filter and bias at load time.
			if filter.Constant && (bias == nil || bias.Constant) {
				var bs []int32
				if bias != nil {
					bs = asInt32s(bias.Data)
				}
				if depthwise {
					p.PrecomputeDepthwiseInt8(asInt8s(filter.Data), bs)
				} else {
					p.PrecomputeInt8(asInt8s(filter.Data), bs)
				}
			}
			scratch := []int{p.ScratchInt8}
			if depthwise {
				scratch = []int{4 * p.ScratchInt32}
			}
			return &prepared{scratch: scratch, bind: func(b *binding) (evalFunc, error) {
				x, w, y := asInt8s(b.in[0].data), asInt8s(b.in[1].data), asInt8s(b.out[0].data)
				var bs []int32
				if t := b.opt(2); t != nil {
					bs = asInt32s(t.data)
				}
				if depthwise {
					s := asInt32s(b.scratch[0])
					return func() error { ops.DepthwiseConv2DInt8(p, x, w, bs, y, s); return nil }, nil
				}
				s := asInt8s(b.scratch[0])
				return func() error { ops.Conv2DInt8(p, x, w, bs, y, s); return nil }, nil
			}}, nil
		case Int16:
			if err := c.wantType("filter", filter, Int8); err != nil {
				return nil, err
			}
			if err := c.wantType("output", out, Int16); err != nil {
				return nil, err
			}
			if bias != nil {
				if err := c.wantType("bias", bias, Int64); err != nil {
					return nil, err
				}
			}
			q, err := convQuant(c, in, filter, out, 16)
			if err != nil {
				return nil, err
			}
			p, err := prep(opts, in.Shape, filter.Shape, out.Shape, q)
			if err != nil {
				return nil, c.errorf("%v", err)
			}
			return simple(func(b *binding) (evalFunc, error) {
				x, w, y := asInt16s(b.in[0].data), asInt8s(b.in[1].data), asInt16s(b.out[0].data)
				var bs []int64
				if t := b.opt(2); t != nil {
					bs = asInt64s(t.data)
				}
				if depthwise {
					return func() error { ops.DepthwiseConv2DInt16(p, x, w, bs, y); return nil }, nil
				}
				return func() error { ops.Conv2DInt16(p, x, w, bs, y); return nil }, nil
			}), nil
		}
		return nil, c.unsupportedf("input type %s (want float32, int8 or int16)", in.Type)
	}
}
