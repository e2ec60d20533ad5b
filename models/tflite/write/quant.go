package tflwrite

import (
	"fmt"
	"math"
)

// The helpers below compute quantization parameters and quantized data the
// way TFLite's converter does for int8 models ("full integer" post-training
// quantization): activations asymmetric per tensor over [-128, 127] with
// zero exactly representable, weights symmetric per channel over
// [-127, 127], biases int32 with scale input_scale * weight_scale[c] and
// zero point 0.

// Int8Params returns the per-tensor int8 quantization of values observed
// in [lo, hi]: the range is widened to include 0, the scale is
// (hi - lo) / 255 and the zero point is -128 - lo/scale, rounded and
// clamped, so that 0.0 is exactly representable.
func Int8Params(lo, hi float32) *Quant {
	lo64, hi64 := math.Min(float64(lo), 0), math.Max(float64(hi), 0)
	scale := (hi64 - lo64) / 255
	if scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		scale = 1
	}
	zp := math.Round(-128 - lo64/scale)
	zp = math.Min(math.Max(zp, -128), 127)
	return PerTensor(float32(scale), int64(zp))
}

// roundHalfAway rounds as TFLite's reference QUANTIZE and the converter do
// (std::round: half away from zero).
func roundHalfAway(x float64) float64 { return math.Round(x) }

// QuantizeInt8 quantizes values with per-tensor parameters q:
// round(x / scale) + zero_point, clamped to [-128, 127].
func QuantizeInt8(x []float32, q *Quant) []int8 {
	out := make([]int8, len(x))
	s, zp := float64(q.Scales[0]), float64(q.ZeroPoints[0])
	for i, v := range x {
		r := roundHalfAway(float64(v)/s) + zp
		out[i] = int8(math.Min(math.Max(r, -128), 127))
	}
	return out
}

// QuantizeWeightsPerChannel quantizes a weight tensor symmetrically per
// channel along dimension dim (0 for CONV_2D's and FULLY_CONNECTED's
// output channels, 3 for DEPTHWISE_CONV_2D's): scale[c] = max|w| / 127
// over channel c (1 for an all-zero channel), zero point 0, values in
// [-127, 127].
func QuantizeWeightsPerChannel(w []float32, shape []int, dim int) ([]int8, *Quant, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(w) || dim < 0 || dim >= len(shape) || shape[dim] == 0 {
		return nil, nil, fmt.Errorf("%w: %d weights do not fit shape %v with channel dimension %d", ErrInvalid, len(w), shape, dim)
	}
	channels := shape[dim]
	inner := 1
	for _, d := range shape[dim+1:] {
		inner *= d
	}
	chanOf := func(i int) int { return (i / inner) % channels }
	maxAbs := make([]float64, channels)
	for i, v := range w {
		c := chanOf(i)
		maxAbs[c] = math.Max(maxAbs[c], math.Abs(float64(v)))
	}
	scales := make([]float32, channels)
	for c, m := range maxAbs {
		scales[c] = float32(m / 127)
		if scales[c] == 0 {
			scales[c] = 1
		}
	}
	q := make([]int8, len(w))
	for i, v := range w {
		r := roundHalfAway(float64(v) / float64(scales[chanOf(i)]))
		q[i] = int8(math.Min(math.Max(r, -127), 127))
	}
	return q, PerChannel(scales, nil, dim), nil
}

// QuantizeBias quantizes a bias for an int8 convolution or fully
// connected layer: channel c gets scale inputScale * weights.Scales[c] (or
// the single weight scale), zero point 0, values round(b / scale) clamped
// to int32. The result's quantization is per channel (dimension 0) when
// the weights are.
func QuantizeBias(b []float32, inputScale float32, weights *Quant) ([]int32, *Quant, error) {
	if weights == nil || len(weights.Scales) == 0 {
		return nil, nil, fmt.Errorf("%w: bias quantization needs quantized weights", ErrInvalid)
	}
	if len(weights.Scales) != 1 && len(weights.Scales) != len(b) {
		return nil, nil, fmt.Errorf("%w: %d bias values but %d weight scales", ErrInvalid, len(b), len(weights.Scales))
	}
	scales := make([]float32, len(weights.Scales))
	for c, ws := range weights.Scales {
		scales[c] = inputScale * ws
	}
	q := make([]int32, len(b))
	for i, v := range b {
		s := scales[0]
		if len(scales) > 1 {
			s = scales[i]
		}
		r := roundHalfAway(float64(v) / float64(s))
		q[i] = int32(math.Min(math.Max(r, math.MinInt32), math.MaxInt32))
	}
	if len(scales) == 1 {
		return q, PerTensor(scales[0], 0), nil
	}
	return q, PerChannel(scales, nil, 0), nil
}

// QuantizeWeightsPerTensor quantizes weights symmetrically with one scale,
// max|w| / 127 (as the converter does for FULLY_CONNECTED weights by
// default), zero point 0, values in [-127, 127].
func QuantizeWeightsPerTensor(w []float32) ([]int8, *Quant) {
	m := 0.0
	for _, v := range w {
		m = math.Max(m, math.Abs(float64(v)))
	}
	scale := float32(m / 127)
	if scale == 0 {
		scale = 1
	}
	q := make([]int8, len(w))
	for i, v := range w {
		r := roundHalfAway(float64(v) / float64(scale))
		q[i] = int8(math.Min(math.Max(r, -127), 127))
	}
	return q, PerTensor(scale, 0)
}
