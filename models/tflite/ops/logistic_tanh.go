package ops

import (
	"fmt"
	"math"
)

// SigmoidParams holds what TFLM's LOGISTIC / TANH Prepare computes for
// quantized tensors.
type SigmoidParams struct {
	// int8: gemmlowp fixed-point logistic/tanh on a Q4.27 input.
	InZeroPoint int32
	Radius      int32
	Mult        int32
	Shift       int
	// int16: the 256-entry sigmoid table with interpolation.
	Mult16  int32
	Shift16 int
}

// PrepareLogistic prepares LOGISTIC; bits is 8 or 16 (float32 needs no
// params). int8 output must have scale 1/256 and zero point -128; int16
// needs zero points 0 and output scale 2^-15.
func PrepareLogistic(bits int, inScale float32, inZeroPoint int) (*SigmoidParams, error) {
	return prepareSigmoid(bits, inScale, inZeroPoint, false)
}

// PrepareTanh prepares TANH; bits is 8 or 16. int8 output has scale 1/128
// and zero point 0; int16 needs zero points 0 and output scale 2^-15.
func PrepareTanh(bits int, inScale float32, inZeroPoint int) (*SigmoidParams, error) {
	return prepareSigmoid(bits, inScale, inZeroPoint, true)
}

func prepareSigmoid(bits int, inScale float32, inZeroPoint int, tanh bool) (*SigmoidParams, error) {
	p := &SigmoidParams{InZeroPoint: int32(inZeroPoint)}
	switch bits {
	case 8:
		const inputIntegerBits = 4
		real := float64(inScale) * float64(int64(1)<<(31-inputIntegerBits))
		q, sh := math.Frexp(real)
		p.Mult = int32(int64(math.Round(q * (1 << 31))))
		p.Shift = sh
		p.Radius = int32(CalculateInputRadius(inputIntegerBits, sh))
	case 16:
		if inZeroPoint != 0 {
			return nil, fmt.Errorf("int16 logistic/tanh needs input zero point 0")
		}
		const inputIntegerBits = 3
		l2, pot := checkedLog2(inScale)
		p.Shift16 = (15 - inputIntegerBits) + l2
		if tanh {
			pot = pot && (p.Shift16 == 0 || p.Shift16 == 1)
		} else {
			pot = pot && p.Shift16 == 0
		}
		if pot {
			p.Mult16 = 0
		} else {
			m := float64(inScale) * 4096.0 * 3.0
			p.Shift16 = 0
			for m <= 32767.0/2.0 && p.Shift16 <= 30 {
				p.Shift16++
				m *= 2
			}
			p.Mult16 = int32(m)
		}
	default:
		return nil, fmt.Errorf("logistic/tanh: unsupported width %d", bits)
	}
	return p, nil
}

// checkedLog2 is TFLite's CheckedLog2 (in float32).
func checkedLog2(x float32) (int, bool) {
	l := float32(math.Log(float64(x))) * (1 / float32(math.Log(2)))
	r := roundHalfAway32(l)
	return int(r), math.Abs(float64(l-r)) < 1e-3
}

// LogisticInt8 is LOGISTIC for int8 (TFLM's reference_integer_ops::Logistic).
func LogisticInt8(p *SigmoidParams, in, out []int8) {
	out = out[:len(in)]
	for i, v := range in {
		x := int32(v) - p.InZeroPoint
		switch {
		case x <= -p.Radius:
			out[i] = -128
		case x >= p.Radius:
			out[i] = 127
		default:
			q4 := MultiplyByQuantizedMultiplier(x, p.Mult, p.Shift)
			r := RoundingDivideByPOT(FixedLogistic(q4, 4), 31-8)
			out[i] = int8(clamp32(r-128, -128, 127))
		}
	}
}

// TanhInt8 is TANH for int8 (TFLM's reference_integer_ops::Tanh).
func TanhInt8(p *SigmoidParams, in, out []int8) {
	out = out[:len(in)]
	for i, v := range in {
		x := int32(v) - p.InZeroPoint
		switch {
		case x <= -p.Radius:
			out[i] = -128
		case x >= p.Radius:
			out[i] = 127
		default:
			q4 := MultiplyByQuantizedMultiplier(x, p.Mult, p.Shift)
			r := RoundingDivideByPOT(FixedTanh(q4, 4), 31-7)
			out[i] = int8(clamp32(r, -128, 127))
		}
	}
}

// FixedLogistic is gemmlowp's logistic: a is fixed-point with integerBits
// integer bits, the result Q0.31.
func FixedLogistic(a int32, integerBits int) int32 {
	if a == 0 {
		return 1 << 30
	}
	abs := a
	if a < 0 {
		abs = -a
	}
	pos := OneOverOnePlusXForXIn01(ExpOnNegativeValues(-abs, integerBits))
	if a > 0 {
		return pos
	}
	return fpOne0 - pos
}

// FixedTanh is gemmlowp's tanh: a is fixed-point with integerBits integer
// bits, the result Q0.31.
func FixedTanh(a int32, integerBits int) int32 {
	if a == 0 {
		return 0
	}
	n := a
	if a > 0 {
		n = -a
	}
	// neg_tanh_on_negative_values: (1-e)/(1+e) with e = exp(2n), where
	// ExactMulByPot<1> keeps the raw value and adds an integer bit.
	t := oneMinusXOverOnePlusXForXIn01(ExpOnNegativeValues(n, integerBits+1))
	if a < 0 {
		return -t
	}
	return t
}

// oneMinusXOverOnePlusXForXIn01 is gemmlowp's
// one_minus_x_over_one_plus_x_for_x_in_0_1 (Q0 in and out).
func oneMinusXOverOnePlusXForXIn01(a int32) int32 {
	halfDenominator := RoundingHalfSum(a, fpOne0)
	const constant48Over17 = 1515870810
	const constantNeg32Over17 = -1010580540
	x := constant48Over17 + SaturatingRoundingDoublingHighMul(halfDenominator, constantNeg32Over17)
	const oneQ2 = 1 << 29
	for i := 0; i < 3; i++ {
		hx := SaturatingRoundingDoublingHighMul(halfDenominator, x)
		x = x + SaturatingLeftShift(SaturatingRoundingDoublingHighMul(x, oneQ2-hx), 2)
	}
	return SaturatingLeftShift(x-oneQ2, 2)
}

// LogisticInt16 is LOGISTIC for int16 (TFLM's int16 reference: the
// sigmoid table with 9-bit interpolation).
func LogisticInt16(p *SigmoidParams, in, out []int16) {
	mult, shift := p.Mult16, p.Shift16
	if mult == 0 {
		mult = 3 << uint(shift)
		shift = 0
	}
	var round int32
	if shift > 0 {
		round = 1 << uint(shift-1)
	}
	out = out[:len(in)]
	for i, v := range in {
		x := (int32(v)*mult + round) >> uint(shift)
		ax := uint32(x)
		if x < 0 {
			ax = uint32(-x)
		}
		uh := ax >> 9
		var r uint32
		if uh >= 255 {
			r = 0x7FFF << 10
		} else {
			ua, ub := uint32(sigmoidTable[uh]), uint32(sigmoidTable[uh+1])
			r = (ua << 9) + (ax&0x1ff)*(ub-ua)
		}
		if x >= 0 {
			r += 1 << 9
		} else {
			r = (1 << (16 + 9)) - r + (1 << 9) - 1
		}
		out[i] = int16(r >> 10)
	}
}

// TanhInt16 is TANH for int16 (TFLM's int16 reference).
func TanhInt16(p *SigmoidParams, in, out []int16) {
	mult, shift := p.Mult16, p.Shift16
	if mult == 0 {
		mult = 3 << uint(shift)
		shift = 0
	}
	var round int32
	if shift > 0 {
		round = 1 << uint(shift-1)
	}
	out = out[:len(in)]
	for i, v := range in {
		x := (int32(v)*mult + round) >> uint(shift)
		ax := uint32(x)
		if x < 0 {
			ax = uint32(-x)
		}
		uh := ax >> 8
		var r int32
		if uh >= 255 {
			r = 0xFFFF << 8
		} else {
			ua, ub := uint32(sigmoidTable[uh]), uint32(sigmoidTable[uh+1])
			r = int32((ua << 8) + uint32(uint8(ax))*(ub-ua))
		}
		if x >= 0 {
			r = r - (1 << (14 + 9)) + (1 << (9 - 2))
		} else {
			r = -r + (1 << (14 + 9)) + (1 << (9 - 2)) - 1
		}
		out[i] = int16(r >> (9 - 1))
	}
}

// LogisticFloat is LOGISTIC in float32.
func LogisticFloat(in, out []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = float32(1 / (1 + math.Exp(-float64(v))))
	}
}

// TanhFloat is TANH in float32.
func TanhFloat(in, out []float32) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = float32(math.Tanh(float64(v)))
	}
}

// sigmoidTable is TFLite's sigmoid_table_uint16: sigmoid(i/24) in 0.16
// fixed point (the last entry saturates to 65535).
var sigmoidTable = [256]uint16{
	32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
	40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
	47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
	53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
	57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
	60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
	62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
	63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
	64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
	64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
	65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
	65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
	65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
	65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
	65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
	65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
	65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
	65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
	65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
	65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
	65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
	65534, 65534, 65534, 65535,
}
