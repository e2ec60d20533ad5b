package ops

import (
	"fmt"
	"math"
)

const maxReduceDims = 6

// MeanParams is a resolved MEAN over some axes.
type MeanParams struct {
	rank       int
	inDims     [maxReduceDims]int
	outStrides [maxReduceDims]int // 0 on reduced axes
	NOut       int                // output elements (int32 scratch needed by MeanInt8/Int16)
	Count      int                // input elements per output
	// Quantized (TFLM's QuantizedMeanOrSum, float rescale).
	Scale        float32 // inScale / outScale in float32
	Bias         float32 // -inZeroPoint * Scale
	OutZeroPoint float32
}

// PrepareMean prepares MEAN over axes (negative axes count from the end,
// duplicates allowed) of in. For quantized tensors pass the scales and
// zero points (they are ignored for float32).
func PrepareMean(in Shape, axes []int, out Shape, inScale float32, inZeroPoint int, outScale float32, outZeroPoint int) (*MeanParams, error) {
	r := len(in)
	if r > maxReduceDims {
		return nil, fmt.Errorf("mean: rank %d > %d", r, maxReduceDims)
	}
	if err := nonNegative("mean", in, out); err != nil {
		return nil, err
	}
	var reduced [maxReduceDims]bool
	for _, a := range axes {
		if a < 0 {
			a += r
		}
		if a < 0 || a >= r {
			return nil, fmt.Errorf("mean: axis %d out of range for %v", a, in)
		}
		reduced[a] = true
	}
	p := &MeanParams{rank: r, NOut: 1, Count: 1}
	st := 1
	for i := r - 1; i >= 0; i-- {
		p.inDims[i] = in[i]
		if reduced[i] {
			p.Count *= in[i]
			continue
		}
		p.outStrides[i] = st
		st *= in[i]
	}
	p.NOut = st
	if FlatSize(out) != p.NOut {
		return nil, fmt.Errorf("mean: output %v, reduction gives %d elements", out, p.NOut)
	}
	if outScale != 0 {
		p.Scale = inScale / outScale
		p.Bias = float32(-inZeroPoint) * p.Scale
		p.OutZeroPoint = float32(outZeroPoint)
	}
	return p, nil
}

// sumInto adds each input element into acc at its output index, walking
// the input in order (as TFLite's ReduceSumImpl).
func sumInto[T int8 | int16 | float32, A int32 | float32](p *MeanParams, in []T, acc []A) {
	var idx [maxReduceDims]int
	o := 0
	last := p.rank - 1
	if p.rank == 0 {
		acc[0] += A(in[0])
		return
	}
	n := FlatSize(p.inDims[:p.rank])
	for i := 0; i < n; {
		// innermost run
		s := p.outStrides[last]
		for j := 0; j < p.inDims[last]; j++ {
			acc[o+j*s] += A(in[i+j])
		}
		i += p.inDims[last]
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			o += p.outStrides[d]
			if idx[d] < p.inDims[d] {
				break
			}
			o -= idx[d] * p.outStrides[d]
			idx[d] = 0
		}
	}
}

// MeanFloat is MEAN for float32: sums in input order, then divides.
func MeanFloat(p *MeanParams, in, out []float32) {
	out = out[:p.NOut]
	for i := range out {
		out[i] = 0
	}
	sumInto(p, in, out)
	c := float32(p.Count)
	for i := range out {
		out[i] /= c
	}
}

// MeanInt8 is MEAN for int8 as TFLM's QuantizedMeanOrSum: integer sums,
// then round(float(sum)/count * scale + bias) + output zero point, clamped.
// scratch needs p.NOut int32 elements.
func MeanInt8(p *MeanParams, in, out []int8, scratch []int32) { meanQ(p, in, out, scratch, -128, 127) }

// MeanInt16 is MEAN for int16 (see MeanInt8).
func MeanInt16(p *MeanParams, in, out []int16, scratch []int32) {
	meanQ(p, in, out, scratch, math.MinInt16, math.MaxInt16)
}

func meanQ[T int8 | int16](p *MeanParams, in, out []T, scratch []int32, lo, hi float32) {
	acc := scratch[:p.NOut]
	for i := range acc {
		acc[i] = 0
	}
	sumInto(p, in, acc)
	c := float32(p.Count)
	for i, s := range acc {
		m := float32(s) / c
		r := roundHalfAway32(float32(m*p.Scale)+p.Bias) + p.OutZeroPoint
		out[i] = T(max(min(r, hi), lo))
	}
}

// ConcatParams is a resolved CONCATENATION.
type ConcatParams struct {
	Outer  int   // product of dims before the axis
	Chunks []int // per input: elements per outer step (axis dim * inner)
	N      int
}

// PrepareConcat prepares CONCATENATION of inputs along axis (negative
// counts from the end). Quantized inputs must share the output's scale and
// zero point (TFLM requires it; there is no requantization).
func PrepareConcat(inputs []Shape, axis int, out Shape) (*ConcatParams, error) {
	r := len(out)
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r || len(inputs) == 0 {
		return nil, fmt.Errorf("concatenation: axis %d for output %v", axis, out)
	}
	if err := nonNegative("concatenation", inputs...); err != nil {
		return nil, err
	}
	if err := nonNegative("concatenation", out); err != nil {
		return nil, err
	}
	p := &ConcatParams{Outer: 1, N: FlatSize(out)}
	for i := 0; i < axis; i++ {
		p.Outer *= out[i]
	}
	inner := 1
	for i := axis + 1; i < r; i++ {
		inner *= out[i]
	}
	total := 0
	for _, s := range inputs {
		if len(s) != r {
			return nil, fmt.Errorf("concatenation: input %v for output %v", s, out)
		}
		for i := range s {
			if i != axis && s[i] != out[i] {
				return nil, fmt.Errorf("concatenation: input %v for output %v", s, out)
			}
		}
		p.Chunks = append(p.Chunks, s[axis]*inner)
		total += s[axis]
	}
	if total != out[axis] {
		return nil, fmt.Errorf("concatenation: inputs sum to %d on axis %d, output has %d", total, axis, out[axis])
	}
	return p, nil
}

// Concat is CONCATENATION for any element type; ins are the inputs in order.
func Concat[T any](p *ConcatParams, ins [][]T, out []T) {
	o := 0
	for k := 0; k < p.Outer; k++ {
		for i, in := range ins {
			c := p.Chunks[i]
			copy(out[o:o+c], in[k*c:(k+1)*c])
			o += c
		}
	}
}
