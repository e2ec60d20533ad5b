package ops

import "fmt"

// FCQuant holds the quantization of a quantized FULLY_CONNECTED.
// FilterScales has one entry (per-tensor, the usual case) or one per output
// unit (per-channel). ActBits is 8 (int8) or 16 (16x8).
type FCQuant struct {
	InputScale      float32
	InputZeroPoint  int
	FilterScales    []float32
	FilterZeroPoint int
	OutputScale     float32
	OutputZeroPoint int
	ActBits         int
}

// FCParams is what TFLM's FullyConnected Prepare computes.
type FCParams struct {
	Batches   int // FlatSize(input) / Depth
	Depth     int // accumulation depth (filter dims[1])
	Units     int // output units (filter dims[0])
	InputOff  int32
	FilterOff int32
	OutputOff int32
	OutMult   []int32 // per unit (all equal when per-tensor)
	OutShift  []int
	ActMin    int32
	ActMax    int32
	FActMin   float32
	FActMax   float32
	folded    []int32
	packed    []int64
	qs        []chanQ
	sg        *simdGemm
}

// PrepareFullyConnected prepares a FULLY_CONNECTED. in is any shape whose
// element count is a multiple of the filter's depth, filter [units, depth],
// out has Batches*units elements. q is nil for float32. The multiplier is
// QuantizeMultiplier(double(inScale)*double(filterScale)/double(outScale)),
// as TFLM's GetQuantizedConvolutionMultipler.
func PrepareFullyConnected(act Activation, in, filter, out Shape, q *FCQuant) (*FCParams, error) {
	if err := checkShape("fully_connected filter", filter, 2); err != nil {
		return nil, err
	}
	if err := nonNegative("fully_connected", in, out); err != nil {
		return nil, err
	}
	p := &FCParams{Units: filter[0], Depth: filter[1]}
	n := FlatSize(in)
	if n%p.Depth != 0 {
		return nil, fmt.Errorf("fully_connected: input %v not a multiple of depth %d", in, p.Depth)
	}
	p.Batches = n / p.Depth
	if FlatSize(out) != p.Batches*p.Units {
		return nil, fmt.Errorf("fully_connected: output %v, want %d x %d elements", out, p.Batches, p.Units)
	}
	var err error
	if q == nil {
		p.FActMin, p.FActMax, err = ActivationRangeFloat(act)
		return p, err
	}
	if q.ActBits != 8 && q.ActBits != 16 {
		return nil, fmt.Errorf("fully_connected: unsupported activation width %d", q.ActBits)
	}
	p.InputOff = int32(-q.InputZeroPoint)
	p.FilterOff = int32(-q.FilterZeroPoint)
	p.OutputOff = int32(q.OutputZeroPoint)
	p.OutMult, p.OutShift, err = perChannelMultipliers(q.InputScale, q.FilterScales, q.OutputScale, p.Units)
	if err != nil {
		return nil, fmt.Errorf("fully_connected: %w", err)
	}
	p.ActMin, p.ActMax, err = ActivationRangeQuantized(act, q.ActBits, q.OutputScale, q.OutputZeroPoint)
	return p, err
}

// PrecomputeInt8 folds the input zero point into the bias for the fast
// path, from the constant filter and bias (bias may be nil). The same filter
// must then be passed to FullyConnectedInt8. Only for a filter zero point of
// 0 (always the case for int8 models).
func (p *FCParams) PrecomputeInt8(filter []int8, bias []int32) {
	if p.FilterOff != 0 || len(filter) < p.Units*p.Depth {
		return
	}
	p.folded = make([]int32, p.Units)
	for u := range p.folded {
		var s int32
		for _, w := range filter[u*p.Depth : (u+1)*p.Depth] {
			s += int32(w)
		}
		p.folded[u] = p.InputOff * s
		if bias != nil {
			p.folded[u] += bias[u]
		}
	}
	p.packed = packTriples(filter, p.Units, p.Depth)
	p.qs = makeChanQ(p.OutMult, p.OutShift)
	if int8Range(p.ActMin, p.ActMax) {
		p.sg = newSimdGemm(filter[:p.Units*p.Depth], p.Units, p.Depth, p.folded, p.qs)
	}
}

// FullyConnectedInt8 is FULLY_CONNECTED with int8 input/filter/output and
// int32 bias (may be nil), bit-exact with TFLM's
// reference_integer_ops::FullyConnected (and FullyConnectedPerChannel).
func FullyConnectedInt8(p *FCParams, in, filter []int8, bias []int32, out []int8) {
	if p.sg != nil {
		p.sg.run(in[:p.Batches*p.Depth], p.Batches, p.OutputOff, p.ActMin, p.ActMax, out[:p.Batches*p.Units])
		return
	}
	if p.folded != nil {
		gemmPacked(in[:p.Batches*p.Depth], p.Batches, p.Depth, p.packed, p.Units,
			p.folded, p.qs, p.OutputOff, p.ActMin, p.ActMax, out[:p.Batches*p.Units])
		return
	}
	for b := 0; b < p.Batches; b++ {
		x := in[b*p.Depth : (b+1)*p.Depth]
		for u := 0; u < p.Units; u++ {
			f := filter[u*p.Depth : (u+1)*p.Depth]
			f = f[:len(x)]
			var acc int32
			for i, v := range x {
				acc += (int32(f[i]) + p.FilterOff) * (int32(v) + p.InputOff)
			}
			if bias != nil {
				acc += bias[u]
			}
			out[b*p.Units+u] = requant8(acc, p.OutMult[u], p.OutShift[u], p.OutputOff, p.ActMin, p.ActMax)
		}
	}
}

// FullyConnectedInt16 is FULLY_CONNECTED with 16x8 quantization: int16
// input/output, int8 filter, int64 bias (may be nil), as TFLM's
// reference_integer_ops::FullyConnected for int16.
func FullyConnectedInt16(p *FCParams, in []int16, filter []int8, bias []int64, out []int16) {
	for b := 0; b < p.Batches; b++ {
		x := in[b*p.Depth : (b+1)*p.Depth]
		for u := 0; u < p.Units; u++ {
			f := filter[u*p.Depth : (u+1)*p.Depth]
			f = f[:len(x)]
			var acc int64
			for i, v := range x {
				acc += (int64(f[i]) + int64(p.FilterOff)) * int64(v)
			}
			if bias != nil {
				acc += bias[u]
			}
			r := clamp32(MultiplyByQuantizedMultiplier64(acc, p.OutMult[u], p.OutShift[u]), p.ActMin, p.ActMax)
			out[b*p.Units+u] = int16(r)
		}
	}
}

// FullyConnectedFloat is FULLY_CONNECTED in float32 (bias may be nil),
// summing in the reference order then adding the bias.
func FullyConnectedFloat(p *FCParams, in, filter, bias, out []float32) {
	d := p.Depth
	for b := 0; b < p.Batches; b++ {
		x := in[b*d : (b+1)*d]
		u := 0
		for ; u+4 <= p.Units; u += 4 {
			a0, a1, a2, a3 := dot4f(x, filter[u*d:(u+1)*d], filter[(u+1)*d:(u+2)*d], filter[(u+2)*d:(u+3)*d], filter[(u+3)*d:(u+4)*d], 0, 0, 0, 0)
			if bias != nil {
				a0, a1, a2, a3 = a0+bias[u], a1+bias[u+1], a2+bias[u+2], a3+bias[u+3]
			}
			out[b*p.Units+u] = clampF(a0, p.FActMin, p.FActMax)
			out[b*p.Units+u+1] = clampF(a1, p.FActMin, p.FActMax)
			out[b*p.Units+u+2] = clampF(a2, p.FActMin, p.FActMax)
			out[b*p.Units+u+3] = clampF(a3, p.FActMin, p.FActMax)
		}
		for ; u < p.Units; u++ {
			f := filter[u*d : (u+1)*d]
			f = f[:len(x)]
			var acc float32
			for i, v := range x {
				acc += v * f[i]
			}
			if bias != nil {
				acc += bias[u]
			}
			out[b*p.Units+u] = clampF(acc, p.FActMin, p.FActMax)
		}
	}
}
