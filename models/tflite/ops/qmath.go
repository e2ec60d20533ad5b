package ops

import (
	"math"
	"math/bits"
)

// This file holds the fixed-point primitives of TFLite's quantized
// arithmetic (gemmlowp's fixedpoint.h and tensorflow/lite/kernels/internal/
// common.h, in TFLM's default "double rounding" configuration, i.e.
// TFLITE_SINGLE_ROUNDING undefined). Every kernel builds on these; they are
// exported for the LSTM kernels.

// SaturatingRoundingDoublingHighMul returns round(a*b / 2^31), rounding half
// away from zero, saturated: the only overflowing case, a == b == MinInt32,
// returns MaxInt32. (gemmlowp's SaturatingRoundingDoublingHighMul.)
func SaturatingRoundingDoublingHighMul(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	// Go's division truncates toward zero, like C++'s.
	return int32((ab + nudge) / (1 << 31))
}

// RoundingDivideByPOT returns x / 2^exponent rounded to nearest, ties away
// from zero (gemmlowp's RoundingDivideByPOT). exponent must be in [0, 31].
func RoundingDivideByPOT(x int32, exponent int) int32 {
	mask := int32(uint32(1)<<uint(exponent) - 1)
	remainder := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	r := x >> uint(exponent)
	if remainder > threshold {
		r++
	}
	return r
}

// RoundingDivideByPOT64 is RoundingDivideByPOT for int64 values.
func RoundingDivideByPOT64(x int64, exponent int) int64 {
	mask := int64(uint64(1)<<uint(exponent) - 1)
	remainder := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	r := x >> uint(exponent)
	if remainder > threshold {
		r++
	}
	return r
}

// SaturatingLeftShift returns x * 2^exponent saturated to int32
// (gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent).
func SaturatingLeftShift(x int32, exponent int) int32 {
	threshold := int32(1)<<uint(31-exponent) - 1
	if x > threshold {
		return math.MaxInt32
	}
	if x < -threshold {
		return math.MinInt32
	}
	return x << uint(exponent)
}

// SaturatingRoundingMultiplyByPOT returns x * 2^exponent: a saturating left
// shift for exponent > 0, a rounding right shift for exponent < 0.
func SaturatingRoundingMultiplyByPOT(x int32, exponent int) int32 {
	switch {
	case exponent > 0:
		return SaturatingLeftShift(x, exponent)
	case exponent < 0:
		return RoundingDivideByPOT(x, -exponent)
	}
	return x
}

// MultiplyByQuantizedMultiplier returns x * multiplier * 2^shift where
// multiplier is a Q0.31 fixed-point value, exactly as TFLite's
// MultiplyByQuantizedMultiplier(int32_t, int32_t, int) with double rounding:
// a (wrapping) left shift by max(shift,0), SaturatingRoundingDoublingHighMul,
// then RoundingDivideByPOT by max(-shift,0).
func MultiplyByQuantizedMultiplier(x, multiplier int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	return RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x*(int32(1)<<uint(left)), multiplier), right)
}

// MultiplyByQuantizedMultiplier64 is TFLite's MultiplyByQuantizedMultiplier
// for an int64 accumulator (the 16x8 conv/transpose-conv/FC paths): the
// multiplier is reduced to 16 bits (rounded), then one rounding shift:
//
//	reduced = mult < 0x7FFF0000 ? (mult + 2^15) >> 16 : 0x7FFF
//	result  = int32((x*reduced + 2^(14-shift)) >> (15-shift))
//
// Valid for shift in [-31, 7], x in [-2^47, 2^47).
func MultiplyByQuantizedMultiplier64(x int64, multiplier int32, shift int) int32 {
	reduced := int64(0x7FFF)
	if multiplier < 0x7FFF0000 {
		reduced = int64((multiplier + (1 << 15)) >> 16)
	}
	total := uint(15 - shift)
	x = x*reduced + int64(1)<<(total-1)
	return int32(x >> total)
}

// MultiplyByQuantizedMultiplierSmallerThanOneExp is TFLite's function of
// that name: RoundingDivideByPOT(SRDHM(x, multiplier), -leftShift), for
// leftShift <= 0.
func MultiplyByQuantizedMultiplierSmallerThanOneExp(x, multiplier int32, leftShift int) int32 {
	return RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, multiplier), -leftShift)
}

// MultiplyByQuantizedMultiplierGreaterThanOne is TFLite's function of that
// name: SRDHM(x * 2^leftShift, multiplier) with a wrapping int32 shift.
func MultiplyByQuantizedMultiplierGreaterThanOne(x, multiplier int32, leftShift int) int32 {
	return SaturatingRoundingDoublingHighMul(x*(int32(1)<<uint(leftShift)), multiplier)
}

// QuantizeMultiplier decomposes a real multiplier into a Q0.31 significand
// in [2^30, 2^31) (or 0) and a power-of-two exponent, so that
// m ≈ significand * 2^(shift-31), as TFLite's QuantizeMultiplier does:
// frexp, round half away from zero, renormalise 2^31, and flush to zero
// when shift < -31.
func QuantizeMultiplier(m float64) (multiplier int32, shift int) {
	if m == 0 {
		return 0, 0
	}
	q, sh := math.Frexp(m)
	qFixed := int64(math.Round(q * (1 << 31)))
	if qFixed == 1<<31 {
		qFixed /= 2
		sh++
	}
	if sh < -31 {
		return 0, 0
	}
	return int32(qFixed), sh
}

// QuantizeMultiplierSmallerThanOneExp is QuantizeMultiplier for multipliers
// below one; the returned shift is <= 0 (TFLite checks this).
func QuantizeMultiplierSmallerThanOneExp(m float64) (multiplier int32, shift int, ok bool) {
	multiplier, shift = QuantizeMultiplier(m)
	return multiplier, shift, shift <= 0
}

// QuantizeMultiplierGreaterThanOne is QuantizeMultiplier for multipliers
// above one; the returned shift is >= 0 (TFLite checks this).
func QuantizeMultiplierGreaterThanOne(m float64) (multiplier int32, shift int, ok bool) {
	multiplier, shift = QuantizeMultiplier(m)
	return multiplier, shift, shift >= 0
}

// CalculateInputRadius is TFLite's CalculateInputRadius with 31 total
// signed bits: floor(((2^intBits - 1) * 2^(31-intBits)) / 2^leftShift).
func CalculateInputRadius(inputIntegerBits, inputLeftShift int) int {
	maxInputRescaled := 1.0 * float64(int64(1)<<uint(inputIntegerBits)-1) *
		float64(int64(1)<<uint(31-inputIntegerBits)) / float64(int64(1)<<uint(inputLeftShift))
	return int(math.Floor(maxInputRescaled))
}

// CountLeadingZeros32 returns the number of leading zero bits of x (32 for 0).
func CountLeadingZeros32(x uint32) int { return bits.LeadingZeros32(x) }

// CountLeadingSignBits32 returns the number of leading bits equal to the sign
// bit, minus one (GCC's __builtin_clrsb); 31 for 0 and -1.
func CountLeadingSignBits32(x int32) int {
	if x < 0 {
		x = ^x
	}
	return bits.LeadingZeros32(uint32(x)) - 1
}

// roundHalfAway rounds a float32 half away from zero (C's roundf).
func roundHalfAway32(x float32) float32 { return float32(math.Round(float64(x))) }

func clamp32(x, lo, hi int32) int32 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
