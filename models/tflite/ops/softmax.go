package ops

import (
	"fmt"
	"math"
)

// SoftmaxParams is what TFLM's CalculateSoftmaxParams computes.
type SoftmaxParams struct {
	Outer, Depth int // rows and row length (last dimension)

	Beta float32 // float path

	// int8 input: gemmlowp fixed-point exp.
	InputMultiplier int32
	InputLeftShift  int
	DiffMin         int32

	// int16 input: LUTs.
	ExpLUT     []int16 // 513 entries, exp on [-10, 0]
	OneOverLUT []int16 // 513 entries, 1/(1+x) on [0, 1]
}

// PrepareSoftmax prepares a SOFTMAX over the last dimension of shape.
// inBits is 0 for float32, 8 for int8 input (output int8 with scale 1/256
// and zero point -128, or int16 with scale 1/65536 and zero point -32768),
// 16 for int16 input (zero points 0, output scale 1/32768).
func PrepareSoftmax(beta float32, shape Shape, inBits int, inScale float32) (*SoftmaxParams, error) {
	if len(shape) == 0 {
		return nil, fmt.Errorf("softmax: scalar input")
	}
	if err := nonNegative("softmax", shape); err != nil {
		return nil, err
	}
	p := &SoftmaxParams{Beta: beta, Depth: shape[len(shape)-1]}
	if p.Depth <= 0 {
		return nil, fmt.Errorf("softmax: bad shape %v", shape)
	}
	p.Outer = FlatSize(shape) / p.Depth
	switch inBits {
	case 0:
	case 8:
		if !(beta > 0 && inScale > 0) {
			return nil, fmt.Errorf("softmax: beta %g and input scale %g must be positive", beta, inScale)
		}
		const scaledDiffIntegerBits = 5
		// PreprocessSoftmaxScaling with double rounding: cap at 2^31-1.
		realMult := math.Min(float64(beta)*float64(inScale)*float64(int64(1)<<(31-scaledDiffIntegerBits)), float64(1<<31)-1)
		m, sh, ok := QuantizeMultiplierGreaterThanOne(realMult)
		if !ok {
			return nil, fmt.Errorf("softmax: input scale %g * beta %g too small", inScale, beta)
		}
		p.InputMultiplier, p.InputLeftShift = m, sh
		p.DiffMin = int32(-1.0 * float64(CalculateInputRadius(scaledDiffIntegerBits, sh)))
	case 16:
		m, sh := QuantizeMultiplier(float64(inScale) * float64(beta) / (10.0 / 65535.0))
		p.InputMultiplier, p.InputLeftShift = m, sh
		p.ExpLUT = make([]int16, 513)
		p.OneOverLUT = make([]int16, 513)
		genLUTInt16(expf, -10, 0, -1, 1, p.ExpLUT)
		genLUTInt16(func(x float32) float32 { return 1 / (1 + x) }, 0, 1, -1, 1, p.OneOverLUT)
	default:
		return nil, fmt.Errorf("softmax: unsupported input width %d", inBits)
	}
	return p, nil
}

// SoftmaxInt8 is SOFTMAX with int8 input and int8 output (scale 1/256, zero
// point -128), bit-exact with TFLM's reference_ops::Softmax.
func SoftmaxInt8(p *SoftmaxParams, in, out []int8) { softmaxQ(p, in, out, 8, -128, 127) }

// SoftmaxInt8Int16 is SOFTMAX with int8 input and int16 output (scale
// 1/65536, zero point -32768).
func SoftmaxInt8Int16(p *SoftmaxParams, in []int8, out []int16) {
	softmaxQ(p, in, out, 16, math.MinInt16, math.MaxInt16)
}

func softmaxQ[O int8 | int16](p *SoftmaxParams, in []int8, out []O, outBits int, omin, omax int32) {
	const scaledDiffIntegerBits = 5
	const accumulationIntegerBits = 12
	d := p.Depth
	for r := 0; r < p.Outer; r++ {
		x := in[r*d : (r+1)*d]
		o := out[r*d : (r+1)*d]
		o = o[:len(x)]
		maxV := int32(math.MinInt8)
		for _, v := range x {
			if int32(v) > maxV {
				maxV = int32(v)
			}
		}
		var sum int32 // Q12
		for _, v := range x {
			diff := int32(v) - maxV
			if diff >= p.DiffMin {
				rescaled := MultiplyByQuantizedMultiplierGreaterThanOne(diff, p.InputMultiplier, p.InputLeftShift)
				e := ExpOnNegativeValues(rescaled, scaledDiffIntegerBits)
				sum += RoundingDivideByPOT(e, accumulationIntegerBits)
			}
		}
		scale, bitsOver := GetReciprocal(sum, accumulationIntegerBits)
		for i, v := range x {
			diff := int32(v) - maxV
			if diff >= p.DiffMin {
				rescaled := MultiplyByQuantizedMultiplierGreaterThanOne(diff, p.InputMultiplier, p.InputLeftShift)
				e := ExpOnNegativeValues(rescaled, scaledDiffIntegerBits)
				u := RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(scale, e), bitsOver+31-outBits)
				o[i] = O(clamp32(u+omin, omin, omax))
			} else {
				o[i] = O(omin)
			}
		}
	}
}

// SoftmaxFloat is SOFTMAX in float32, as the reference: exp((x-max)*beta)
// normalised by the row sum.
func SoftmaxFloat(p *SoftmaxParams, in, out []float32) {
	d := p.Depth
	for r := 0; r < p.Outer; r++ {
		x := in[r*d : (r+1)*d]
		o := out[r*d : (r+1)*d]
		o = o[:len(x)]
		m := float32(-math.MaxFloat32)
		for _, v := range x {
			if v > m {
				m = v
			}
		}
		var sum float32
		for i, v := range x {
			e := float32(math.Exp(float64((v - m) * p.Beta)))
			o[i] = e
			sum += e
		}
		for i := range o {
			o[i] /= sum
		}
	}
}

// SoftmaxInt16 is SOFTMAX with int16 input and output (zero points 0,
// output scale 1/32768), as TFLM's reference_ops::SoftmaxInt16 with the
// exp and 1/(1+x) lookup tables.
func SoftmaxInt16(p *SoftmaxParams, in, out []int16) {
	d := p.Depth
	for r := 0; r < p.Outer; r++ {
		x := in[r*d : (r+1)*d]
		o := out[r*d : (r+1)*d]
		o = o[:len(x)]
		maxV := int16(math.MinInt16)
		for _, v := range x {
			if v > maxV {
				maxV = v
			}
		}
		var sum int32 // Q16.15
		for i, v := range x {
			diff := int32(v) - int32(maxV)
			scaled := MultiplyByQuantizedMultiplier(diff, p.InputMultiplier, p.InputLeftShift)
			e := LUTLookupInt16(int16(clamp32(scaled+32767, math.MinInt16, math.MaxInt16)), p.ExpLUT)
			o[i] = e
			sum += int32(e)
		}
		headroomPlusOne := CountLeadingZeros32(uint32(sum))
		shiftedSum := int32(((int64(sum) << uint(headroomPlusOne-1)) + (1 << 13)) >> 14)
		symShiftedSum := shiftedSum - ((1 << 15) + (1 << 16))
		recip := int64(LUTLookupInt16(int16(clamp32(symShiftedSum, math.MinInt16, math.MaxInt16)), p.OneOverLUT))
		rightShift := uint(31 - headroomPlusOne)
		round := int64(1) << (rightShift - 1)
		for i, e := range o {
			v := int32((int64(e)*recip + round) >> rightShift)
			o[i] = int16(clamp32(v, 0, 32767))
		}
	}
}

// genLUTInt16 is TFLM's gen_lut<float, int16_t, int16_t>: a 513-entry table
// of f over [inMin, inMax] with outputs scaled from [outMin, outMax] to
// int16, each entry biased to halve the midpoint interpolation error.
func genLUTInt16(f func(float32) float32, inMin, inMax, outMin, outMax float32, lut []int16) {
	const nbSteps = 512
	step := (inMax - inMin) / nbSteps
	halfStep := step / 2
	scalingInv := float32(65536) / (outMax - outMin)
	const tableMin, tableMax = float32(math.MinInt16), float32(math.MaxInt16)
	for i := 0; i < nbSteps; i++ {
		val := f(inMin + float32(float32(i)*step))
		valMid := f(inMin + float32(float32(i)*step) + halfStep)
		valNext := f(inMin + float32(float32(i+1)*step))
		// float32() around products keeps Go from fusing them into FMAs.
		sample := roundHalfAway32(val * scalingInv)
		midInterp := roundHalfAway32((float32(valNext*scalingInv) + roundHalfAway32(val*scalingInv)) / 2)
		midVal := roundHalfAway32(valMid * scalingInv)
		bias := roundHalfAway32((midInterp - midVal) / 2)
		lut[i] = int16(min(max(sample-bias, tableMin), tableMax))
	}
	lut[nbSteps] = int16(min(max(roundHalfAway32(f(inMax)*scalingInv), tableMin), tableMax))
}

// LUTLookupInt16 is TFLite's int16 LUTLookup: the top 9 bits index a
// 513-entry table, the low 7 bits interpolate linearly with rounding.
func LUTLookupInt16(v int16, lut []int16) int16 {
	index := 256 + int(v>>7)
	offset := int32(v & 0x7f)
	base := lut[index]
	slope := int32(int16(lut[index+1] - lut[index]))
	delta := (slope*offset + 64) >> 7
	return int16(int32(base) + delta)
}

// expf is C's expf: exp computed in double and rounded to float32 (glibc's
// expf is correctly rounded in all but rare cases, as is this).
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }
