package tflite

// Operators that only move bytes: RESHAPE, SQUEEZE and EXPAND_DIMS copy
// their input to their output, whose static shape (from the model) has the
// same element count. Their second input (new shape or axis), if any, is
// not read: the output shape is known at load time.

const opExpandDims = 70

func init() {
	register(OpReshape, prepareReshape)
	register(OpSqueeze, prepareReshape)
	register(opExpandDims, prepareReshape)
}

func prepareReshape(c *opCtx) (*prepared, error) {
	if err := c.numIO(1, 2, 1); err != nil {
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
	if in.NumElements() != out.NumElements() {
		return nil, c.errorf("input shape %v and output shape %v have different element counts", in.Shape, out.Shape)
	}
	if in.Type == Int8 || in.Type == Int16 {
		// TFLite requires equal quantization; a mismatch would silently
		// rescale values.
		if !sameQuant(in.Quantization, out.Quantization) {
			return nil, c.errorf("input and output quantization differ")
		}
	}
	return simple(func(b *binding) (evalFunc, error) {
		src, dst := b.in[0].data, b.out[0].data
		return func() error {
			copy(dst, src)
			return nil
		}, nil
	}), nil
}

func sameQuant(a, b Quantization) bool {
	if len(a.Scales) != len(b.Scales) || len(a.ZeroPoints) != len(b.ZeroPoints) {
		return false
	}
	for i := range a.Scales {
		if a.Scales[i] != b.Scales[i] {
			return false
		}
	}
	for i := range a.ZeroPoints {
		if a.ZeroPoints[i] != b.ZeroPoints[i] {
			return false
		}
	}
	return true
}
