package ops

import (
	"fmt"
	"math"
)

// QuantizeParams is what TFLM's QUANTIZE Prepare computes.
type QuantizeParams struct {
	// Float input: AffineQuantize.
	OutScale     float64 // output scale widened from float32, as TFLM keeps it
	OutZeroPoint int32
	// Integer input: Requantize.
	InZeroPoint int32
	Mult        int32
	Shift       int
	OutMin      int32 // output type range
	OutMax      int32
}

// PrepareQuantize prepares QUANTIZE. inScale/inZeroPoint are ignored for a
// float32 input; outBits is the output width (8 or 16; 32 is accepted for
// completeness). For an integer input the multiplier is
// QuantizeMultiplier(double(inScale) / double(outScale)).
func PrepareQuantize(inScale float32, inZeroPoint int, outScale float32, outZeroPoint int, outBits int) (*QuantizeParams, error) {
	if outScale <= 0 || math.IsNaN(float64(outScale)) {
		return nil, fmt.Errorf("quantize: bad output scale %g", outScale)
	}
	p := &QuantizeParams{OutScale: float64(outScale), OutZeroPoint: int32(outZeroPoint), InZeroPoint: int32(inZeroPoint)}
	switch outBits {
	case 8, 16, 32:
		p.OutMin, p.OutMax = QuantRange(outBits)
	default:
		return nil, fmt.Errorf("quantize: unsupported output width %d", outBits)
	}
	p.Mult, p.Shift = QuantizeMultiplier(float64(inScale) / float64(outScale))
	return p, nil
}

// QuantizeFloatToInt8 is QUANTIZE float32 -> int8 (TFLite's AffineQuantize:
// round(x / float32(scale)) + zero point, clamped).
func QuantizeFloatToInt8(p *QuantizeParams, in []float32, out []int8) { affineQuantize(p, in, out) }

// QuantizeFloatToInt16 is QUANTIZE float32 -> int16.
func QuantizeFloatToInt16(p *QuantizeParams, in []float32, out []int16) {
	affineQuantize(p, in, out)
}

func affineQuantize[T int8 | int16](p *QuantizeParams, in []float32, out []T) {
	out = out[:len(in)]
	s := float32(p.OutScale)
	for i, v := range in {
		q := int32(roundHalfAway32(v/s)) + p.OutZeroPoint
		out[i] = T(clamp32(q, p.OutMin, p.OutMax))
	}
}

// Requantize is QUANTIZE between integer types (int8<->int8, int8<->int16,
// int16->int16, int32->int16, ...), as TFLite's reference Requantize:
// MultiplyByQuantizedMultiplier(x - inZeroPoint) + outZeroPoint, clamped.
func Requantize[I int8 | int16 | int32, O int8 | int16 | int32](p *QuantizeParams, in []I, out []O) {
	out = out[:len(in)]
	for i, v := range in {
		r := MultiplyByQuantizedMultiplier(int32(v)-p.InZeroPoint, p.Mult, p.Shift) + p.OutZeroPoint
		out[i] = O(clamp32(r, p.OutMin, p.OutMax))
	}
}

// Dequantize is DEQUANTIZE: float32(double(scale) * (q - zeroPoint)), as
// TFLite's reference Dequantize computes it.
func Dequantize[I int8 | int16 | int32](scale float32, zeroPoint int, in []I, out []float32) {
	out = out[:len(in)]
	s := float64(scale)
	zp := int32(zeroPoint)
	for i, v := range in {
		out[i] = float32(s * float64(int32(v)-zp))
	}
}
