package ops

import (
	"fmt"
	"math"
)

// Shape is a tensor's dims, outermost first, as stored in the model.
type Shape = []int

// Activation is a fused activation function, with the values of the TFLite
// schema's ActivationFunctionType.
type Activation int

// Fused activations (schema values).
const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
	ActTanh      Activation = 4
	ActSignBit   Activation = 5
)

// Padding is a conv/pool padding scheme, with the TFLite schema's values.
type Padding int

// Paddings (schema values).
const (
	PaddingSame  Padding = 0
	PaddingValid Padding = 1
)

// FlatSize returns the number of elements of a shape (1 for a scalar).
func FlatSize(s Shape) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// nonNegative returns an error if a dim of s is negative.
func nonNegative(what string, ss ...Shape) error {
	for _, s := range ss {
		for _, d := range s {
			if d < 0 {
				return fmt.Errorf("%s: negative dimension in shape %v", what, s)
			}
		}
	}
	return nil
}

// checkShape returns an error if s is not of rank r with positive dims.
func checkShape(what string, s Shape, r int) error {
	if len(s) != r {
		return fmt.Errorf("%s: want rank %d, got shape %v", what, r, s)
	}
	for _, d := range s {
		if d <= 0 {
			return fmt.Errorf("%s: bad shape %v", what, s)
		}
	}
	return nil
}

// QuantRange returns the representable range of a quantized type given by
// its bit width (8, 16 or 32).
func QuantRange(bits int) (lo, hi int32) {
	switch bits {
	case 8:
		return math.MinInt8, math.MaxInt8
	case 16:
		return math.MinInt16, math.MaxInt16
	}
	return math.MinInt32, math.MaxInt32
}

// ActivationRangeQuantized is TFLite's CalculateActivationRangeQuantized:
// the clamping range of a quantized output of the given bit width, scale
// and zero point under a fused activation. TANH and SIGN_BIT are refused.
func ActivationRangeQuantized(act Activation, bits int, scale float32, zeroPoint int) (lo, hi int32, err error) {
	qmin, qmax := QuantRange(bits)
	quantize := func(x float32) int32 {
		return int32(zeroPoint) + int32(roundHalfAway32(x/scale))
	}
	switch act {
	case ActNone:
		return qmin, qmax, nil
	case ActRelu:
		return max(qmin, quantize(0)), qmax, nil
	case ActRelu6:
		return max(qmin, quantize(0)), min(qmax, quantize(6)), nil
	case ActReluN1To1:
		return max(qmin, quantize(-1)), min(qmax, quantize(1)), nil
	}
	return 0, 0, fmt.Errorf("unsupported fused activation %d", act)
}

// ActivationRangeFloat is TFLite's CalculateActivationRange for float32.
func ActivationRangeFloat(act Activation) (lo, hi float32, err error) {
	switch act {
	case ActNone:
		return -math.MaxFloat32, math.MaxFloat32, nil
	case ActRelu:
		return 0, math.MaxFloat32, nil
	case ActRelu6:
		return 0, 6, nil
	case ActReluN1To1:
		return -1, 1, nil
	}
	return 0, 0, fmt.Errorf("unsupported fused activation %d", act)
}

// ComputeOutSize is TFLite's ComputeOutSize.
func ComputeOutSize(p Padding, imageSize, filterSize, stride, dilation int) int {
	eff := (filterSize-1)*dilation + 1
	if stride == 0 {
		return 0
	}
	if p == PaddingSame {
		return (imageSize + stride - 1) / stride
	}
	return (imageSize + stride - eff) / stride
}

// ComputePadding is TFLite's ComputePaddingWithOffset: the padding before
// the first element (and the extra padding after, as offset).
func ComputePadding(stride, dilation, inSize, filterSize, outSize int) (pad, offset int) {
	eff := (filterSize-1)*dilation + 1
	total := (outSize-1)*stride + eff - inSize
	if total < 0 {
		total = 0
	}
	return total / 2, total % 2
}

func clampF(x, lo, hi float32) float32 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

// perChannelMultipliers computes TFLM's PopulateConvolutionQuantizationParams
// per-channel multipliers: for each output channel,
// QuantizeMultiplier(double(inScale) * double(filterScale[c]) / double(outScale)).
// filterScales may have one entry (per-tensor), broadcast to all channels.
func perChannelMultipliers(inScale float32, filterScales []float32, outScale float32, channels int) ([]int32, []int, error) {
	if len(filterScales) != 1 && len(filterScales) != channels {
		return nil, nil, fmt.Errorf("filter has %d scales for %d output channels", len(filterScales), channels)
	}
	mult := make([]int32, channels)
	shift := make([]int, channels)
	for c := 0; c < channels; c++ {
		fs := filterScales[0]
		if len(filterScales) > 1 {
			fs = filterScales[c]
		}
		eff := float64(inScale) * float64(fs) / float64(outScale)
		mult[c], shift[c] = QuantizeMultiplier(eff)
	}
	return mult, shift, nil
}
