package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// PAD, PADV2 and STRIDED_SLICE move elements without arithmetic, so they work on
// any element type; their index tensors (paddings; begin, end, strides)
// must be constants. Quantized input and output must share their
// quantization, as TFLite requires.

const opPadV2 = 60

func init() {
	register(OpPad, preparePad)
	register(opPadV2, preparePad)
	register(OpStridedSlice, prepareStridedSlice)
}

// constInts reads a constant int32 or int64 index tensor.
func constInts(c *opCtx, what string, t *TensorInfo) ([]int, error) {
	if err := c.wantConst(what, t); err != nil {
		return nil, err
	}
	if err := c.wantType(what, t, Int32, Int64); err != nil {
		return nil, err
	}
	var out []int
	if t.Type == Int32 {
		for _, v := range asInt32s(t.Data) {
			out = append(out, int(v))
		}
	} else {
		for _, v := range asInt64s(t.Data) {
			if v < -1<<31 || v > 1<<31-1 {
				return nil, c.errorf("%s tensor %d %q: value %d out of range", what, t.Index, t.Name, v)
			}
			out = append(out, int(v))
		}
	}
	return out, nil
}

func wantSameQuant(c *opCtx, in, out *TensorInfo) error {
	if (in.Type == Int8 || in.Type == Int16 || in.Type == Uint8) && !sameQuant(in.Quantization, out.Quantization) {
		return c.unsupportedf("input and output quantization differ")
	}
	return nil
}

func preparePad(c *opCtx) (*prepared, error) {
	if err := c.numIO(2, 3, 1); err != nil {
		return nil, err
	}
	in, err := c.mustIn(0)
	if err != nil {
		return nil, err
	}
	padT, err := c.mustIn(1)
	if err != nil {
		return nil, err
	}
	out := c.out(0)
	if err := c.sameType(in, out); err != nil {
		return nil, err
	}
	if err := wantSameQuant(c, in, out); err != nil {
		return nil, err
	}
	pads, err := constInts(c, "paddings", padT)
	if err != nil {
		return nil, err
	}
	p, err := ops.PreparePad(in.Shape, pads, out.Shape)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	// The pad value: the optional constant_values input, else 0 (the
	// output zero point for quantized tensors).
	value := make([]byte, in.Type.Size())
	if cv := c.in(2); cv != nil {
		if err := c.wantConst("constant_values", cv); err != nil {
			return nil, err
		}
		if err := c.sameType(in, cv); err != nil {
			return nil, err
		}
		if cv.NumElements() != 1 {
			return nil, c.errorf("constant_values has shape %v, want one element", cv.Shape)
		}
		copy(value, cv.Data)
	} else if out.Quantization.Quantized() {
		zp := out.Quantization.ZeroPoint()
		for i := range value {
			value[i] = byte(zp >> (8 * i))
		}
	}
	return simple(func(b *binding) (evalFunc, error) {
		x, y := b.in[0].data, b.out[0].data
		switch len(value) {
		case 1:
			xs, ys, v := asInt8s(x), asInt8s(y), int8(value[0])
			return func() error { ops.Pad(p, xs, ys, v); return nil }, nil
		case 2:
			xs, ys, v := asInt16s(x), asInt16s(y), asInt16s(value)[0]
			return func() error { ops.Pad(p, xs, ys, v); return nil }, nil
		case 4:
			xs, ys, v := asInt32s(x), asInt32s(y), asInt32s(alignedCopy(value))[0]
			return func() error { ops.Pad(p, xs, ys, v); return nil }, nil
		default:
			xs, ys, v := asInt64s(x), asInt64s(y), asInt64s(alignedCopy(value))[0]
			return func() error { ops.Pad(p, xs, ys, v); return nil }, nil
		}
	}), nil
}

// alignedCopy returns b copied to 16-byte-aligned memory.
func alignedCopy(b []byte) []byte {
	c := alignedBytes(len(b))
	copy(c, b)
	return c
}

func prepareStridedSlice(c *opCtx) (*prepared, error) {
	if err := c.numIO(3, 4, 1); err != nil {
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
	if err := wantSameQuant(c, in, out); err != nil {
		return nil, err
	}
	var o ops.StridedSliceOptions
	for k, dst := range []*[]int{&o.Begin, &o.End, &o.Strides} {
		t := c.in(k + 1)
		if t == nil {
			if k == 2 {
				continue // strides default to 1
			}
			return nil, c.errorf("required input %d is missing", k+1)
		}
		if *dst, err = constInts(c, []string{"begin", "end", "strides"}[k], t); err != nil {
			return nil, err
		}
	}
	if o.Strides == nil {
		o.Strides = make([]int, len(o.Begin))
		for i := range o.Strides {
			o.Strides[i] = 1
		}
	}
	for _, s := range o.Strides {
		if s == 0 {
			return nil, c.errorf("a stride is 0")
		}
	}
	t, err := c.options(schema.OptStridedSlice)
	if err != nil {
		return nil, err
	}
	for id, dst := range []*int{&o.BeginMask, &o.EndMask, &o.EllipsisMask, &o.NewAxisMask, &o.ShrinkAxisMask} {
		v, err := t.Int32(id, 0)
		if err != nil {
			return nil, err
		}
		*dst = int(v)
	}
	if o.Offset, err = t.Bool(5, false); err != nil {
		return nil, err
	}
	p, err := ops.PrepareStridedSlice(in.Shape, o, out.Shape)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	if p.N != out.NumElements() {
		return nil, c.errorf("the slice has %d elements, output shape %v has %d", p.N, out.Shape, out.NumElements())
	}
	return simple(func(b *binding) (evalFunc, error) {
		x, y := b.in[0].data, b.out[0].data
		switch in.Type.Size() {
		case 1:
			xs, ys := asInt8s(x), asInt8s(y)
			return func() error { ops.StridedSlice(p, xs, ys); return nil }, nil
		case 2:
			xs, ys := asInt16s(x), asInt16s(y)
			return func() error { ops.StridedSlice(p, xs, ys); return nil }, nil
		case 4:
			xs, ys := asInt32s(x), asInt32s(y)
			return func() error { ops.StridedSlice(p, xs, ys); return nil }, nil
		default:
			xs, ys := asInt64s(x), asInt64s(y)
			return func() error { ops.StridedSlice(p, xs, ys); return nil }, nil
		}
	}), nil
}
