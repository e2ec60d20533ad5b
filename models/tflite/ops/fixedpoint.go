package ops

import "math"

// gemmlowp fixed-point helpers used by the quantized softmax (and available
// to the LSTM kernels). A value "Qm" here is a raw int32 whose real value is
// raw * 2^(m-31), i.e. gemmlowp's FixedPoint<int32_t, m>.

// fpOne0 is 1.0 in Q0 (saturated to MaxInt32, as gemmlowp's One()).
const fpOne0 = math.MaxInt32

// ExpOnIntervalBetweenNegativeOneQuarterAnd0Excl is gemmlowp's
// exp_on_interval_between_negative_one_quarter_and_0_excl: a is Q0 in
// [-1/4, 0), the result Q0.
func ExpOnIntervalBetweenNegativeOneQuarterAnd0Excl(a int32) int32 {
	const constantTerm = 1895147668  // exp(-1/8) in Q0
	const constant1Over3 = 715827883 // 1/3 in Q0
	x := a + (1 << 28)               // a + 1/8
	x2 := SaturatingRoundingDoublingHighMul(x, x)
	x3 := SaturatingRoundingDoublingHighMul(x2, x)
	x4 := SaturatingRoundingDoublingHighMul(x2, x2)
	x4Over4 := RoundingDivideByPOT(x4, 2)
	t := RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x4Over4+x3, constant1Over3)+x2, 1)
	return constantTerm + SaturatingRoundingDoublingHighMul(constantTerm, x+t)
}

// ExpOnNegativeValues is gemmlowp's exp_on_negative_values: a is a
// non-positive fixed-point number with integerBits integer bits (raw int32);
// the result is exp(a) in Q0.
func ExpOnNegativeValues(a int32, integerBits int) int32 {
	fractionalBits := 31 - integerBits
	oneQuarter := int32(1) << uint(fractionalBits-2)
	mask := oneQuarter - 1
	aModQuarterMinusOneQuarter := (a & mask) - oneQuarter
	result := ExpOnIntervalBetweenNegativeOneQuarterAnd0Excl(
		SaturatingRoundingMultiplyByPOT(aModQuarterMinusOneQuarter, integerBits))
	remainder := aModQuarterMinusOneQuarter - a
	barrel := [...]struct {
		exponent   int
		multiplier int32
	}{
		{-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308},
		{2, 39332535}, {3, 720401}, {4, 242},
	}
	for _, b := range barrel {
		if integerBits > b.exponent {
			shiftAmount := fractionalBits + b.exponent
			if remainder&(int32(1)<<uint(shiftAmount)) != 0 {
				result = SaturatingRoundingDoublingHighMul(result, b.multiplier)
			}
		}
	}
	if integerBits > 5 {
		clampB := 36 - integerBits
		clampV := -(int32(1) << uint(clampB))
		if a < clampV {
			result = 0
		}
	}
	if a == 0 {
		result = fpOne0
	}
	return result
}

// RoundingHalfSum is gemmlowp's RoundingHalfSum for int32: (a+b)/2 rounded
// half away from zero, computed in 64 bits.
func RoundingHalfSum(a, b int32) int32 {
	sum := int64(a) + int64(b)
	sign := int64(1)
	if sum < 0 {
		sign = -1
	}
	return int32((sum + sign) / 2)
}

// OneOverOnePlusXForXIn01 is gemmlowp's one_over_one_plus_x_for_x_in_0_1:
// a is Q0 in [0, 1); the result 1/(1+a) is Q0.
func OneOverOnePlusXForXIn01(a int32) int32 {
	halfDenominator := RoundingHalfSum(a, fpOne0)                                                   // Q0
	const constant48Over17 = 1515870810                                                             // Q2
	const constantNeg32Over17 = -1010580540                                                         // Q2
	x := constant48Over17 + SaturatingRoundingDoublingHighMul(halfDenominator, constantNeg32Over17) // Q2
	const oneQ2 = 1 << 29
	for i := 0; i < 3; i++ {
		halfDenominatorTimesX := SaturatingRoundingDoublingHighMul(halfDenominator, x) // Q2
		oneMinus := oneQ2 - halfDenominatorTimesX                                      // Q2
		x = x + SaturatingLeftShift(SaturatingRoundingDoublingHighMul(x, oneMinus), 2) // Q4 -> Q2
	}
	// ExactMulByPot<-1>: Q2 -> Q1 with the same raw value, then Rescale<0>.
	return SaturatingLeftShift(x, 1)
}

// GetReciprocal is TFLite's GetReciprocal: x is a positive fixed-point
// value with xIntegerDigits integer bits; it returns a Q0 value s and
// numBitsOverUnit such that 1/x = s * 2^-numBitsOverUnit.
func GetReciprocal(x int32, xIntegerDigits int) (scale int32, numBitsOverUnit int) {
	headroomPlusOne := CountLeadingZeros32(uint32(x))
	numBitsOverUnit = xIntegerDigits - headroomPlusOne
	shiftedSumMinusOne := int32((uint32(x) << uint(headroomPlusOne)) - (uint32(1) << 31))
	return OneOverOnePlusXForXIn01(shiftedSumMinusOne), numBitsOverUnit
}
