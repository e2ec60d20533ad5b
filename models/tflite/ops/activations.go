package ops

import (
	"fmt"
	"math"
)

// ReluParams is TFLM's ReluOpData for quantized RELU / RELU_N1_TO_1, and
// the bounds of RELU6 (which TFLM clamps without rescaling).
type ReluParams struct {
	InZeroPoint  int32
	OutZeroPoint int32
	Mult         int32
	Shift        int
	ActMin       int32
	ActMax       int32
	// RELU6 int8/int16: plain clamp of the input to [Zero, Six].
	Zero, Six int32
	// Float bounds.
	FMin, FMax float32
}

// PrepareRelu prepares RELU (lo=0, hi=+inf), RELU_N1_TO_1 (lo=-1, hi=1) or
// RELU_0_TO_1; bits is 0 for float32, 8 or 16 for quantized tensors. It
// follows TFLM's CalculateReluOpData: multiplier
// double(inScale)/double(outScale), bounds zp + roundf(bound/outScale)
// clamped to the type.
func PrepareRelu(lo, hi float32, bits int, inScale float32, inZeroPoint int, outScale float32, outZeroPoint int) (*ReluParams, error) {
	p := &ReluParams{FMin: lo, FMax: hi, InZeroPoint: int32(inZeroPoint), OutZeroPoint: int32(outZeroPoint)}
	if bits == 0 {
		return p, nil
	}
	if bits != 8 && bits != 16 {
		return nil, fmt.Errorf("relu: unsupported width %d", bits)
	}
	qmin, qmax := QuantRange(bits)
	p.Mult, p.Shift = QuantizeMultiplier(float64(inScale) / float64(outScale))
	p.ActMin = max(qmin, int32(outZeroPoint)+int32(roundHalfAway32(lo/outScale)))
	if math.IsInf(float64(hi), 1) {
		p.ActMax = qmax
	} else {
		p.ActMax = min(qmax, int32(outZeroPoint)+int32(roundHalfAway32(hi/outScale)))
	}
	return p, nil
}

// PrepareRelu6 prepares RELU6 as TFLM does: for quantized tensors the
// input is clamped to [zero point, quantize(6)] with no rescaling.
func PrepareRelu6(bits int, inScale float32, inZeroPoint int) (*ReluParams, error) {
	p := &ReluParams{FMin: 0, FMax: 6}
	if bits == 0 {
		return p, nil
	}
	if bits != 8 && bits != 16 {
		return nil, fmt.Errorf("relu6: unsupported width %d", bits)
	}
	qmin, qmax := QuantRange(bits)
	p.Zero = int32(inZeroPoint)
	six := float64(roundHalfAway32(6/inScale)) + float64(inZeroPoint)
	p.Six = int32(math.Max(math.Min(six, float64(qmax)), float64(qmin)))
	return p, nil
}

// ReluFloat clamps to [FMin, FMax] (RELU, RELU6, RELU_N1_TO_1 in float32).
func ReluFloat(p *ReluParams, in, out []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = clampF(v, p.FMin, p.FMax)
	}
}

// ReluInt8 is quantized RELU / RELU_N1_TO_1 for int8.
func ReluInt8(p *ReluParams, in, out []int8) { reluQ(p, in, out) }

// ReluInt16 is quantized RELU / RELU_N1_TO_1 for int16.
func ReluInt16(p *ReluParams, in, out []int16) { reluQ(p, in, out) }

func reluQ[T int8 | int16](p *ReluParams, in, out []T) {
	out = out[:len(in)]
	for i, v := range in {
		r := p.OutZeroPoint + MultiplyByQuantizedMultiplier(int32(v)-p.InZeroPoint, p.Mult, p.Shift)
		out[i] = T(clamp32(r, p.ActMin, p.ActMax))
	}
}

// Relu6Int8 is RELU6 for int8 (clamp to [Zero, Six]).
func Relu6Int8(p *ReluParams, in, out []int8) { relu6Q(p, in, out) }

// Relu6Int16 is RELU6 for int16.
func Relu6Int16(p *ReluParams, in, out []int16) { relu6Q(p, in, out) }

func relu6Q[T int8 | int16](p *ReluParams, in, out []T) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = T(clamp32(int32(v), p.Zero, p.Six))
	}
}

// LeakyReluParams is TFLM's LeakyReluOpData.
type LeakyReluParams struct {
	Alpha                  float32
	InZeroPoint            int32
	OutZeroPoint           int32
	MultAlpha, MultIdent   int32
	ShiftAlpha, ShiftIdent int
	QMin, QMax             int32
}

// PrepareLeakyRelu prepares LEAKY_RELU. bits is 0 for float32, 8 or 16.
// As TFLM, the multipliers are formed in float32 and then widened:
// double(inScale*alpha/outScale) and double(inScale/outScale).
func PrepareLeakyRelu(alpha float32, bits int, inScale float32, inZeroPoint int, outScale float32, outZeroPoint int) (*LeakyReluParams, error) {
	p := &LeakyReluParams{Alpha: alpha, InZeroPoint: int32(inZeroPoint), OutZeroPoint: int32(outZeroPoint)}
	if bits == 0 {
		return p, nil
	}
	if bits != 8 && bits != 16 {
		return nil, fmt.Errorf("leaky_relu: unsupported width %d", bits)
	}
	p.QMin, p.QMax = QuantRange(bits)
	p.MultAlpha, p.ShiftAlpha = QuantizeMultiplier(float64(float32(inScale*alpha) / outScale))
	p.MultIdent, p.ShiftIdent = QuantizeMultiplier(float64(inScale / outScale))
	return p, nil
}

// LeakyReluFloat is LEAKY_RELU in float32: x > 0 ? x : x*alpha.
func LeakyReluFloat(p *LeakyReluParams, in, out []float32) {
	out = out[:len(in)]
	for i, v := range in {
		if v > 0 {
			out[i] = v
		} else {
			out[i] = v * p.Alpha
		}
	}
}

// LeakyReluInt8 is LEAKY_RELU for int8 (TFLite's QuantizeLeakyRelu).
func LeakyReluInt8(p *LeakyReluParams, in, out []int8) { leakyQ(p, in, out) }

// LeakyReluInt16 is LEAKY_RELU for int16.
func LeakyReluInt16(p *LeakyReluParams, in, out []int16) { leakyQ(p, in, out) }

func leakyQ[T int8 | int16](p *LeakyReluParams, in, out []T) {
	out = out[:len(in)]
	for i, v := range in {
		x := int32(v) - p.InZeroPoint
		var r int32
		if x >= 0 {
			r = p.OutZeroPoint + MultiplyByQuantizedMultiplier(x, p.MultIdent, p.ShiftIdent)
		} else {
			r = p.OutZeroPoint + MultiplyByQuantizedMultiplier(x, p.MultAlpha, p.ShiftAlpha)
		}
		out[i] = T(clamp32(r, p.QMin, p.QMax))
	}
}
