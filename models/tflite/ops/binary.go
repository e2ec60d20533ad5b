package ops

import (
	"fmt"
	"math"
)

// BinaryOp selects ADD, SUB or MUL.
type BinaryOp int

// Binary operators.
const (
	OpAdd BinaryOp = iota
	OpSub
	OpMul
)

func (o BinaryOp) String() string {
	switch o {
	case OpAdd:
		return "ADD"
	case OpSub:
		return "SUB"
	case OpMul:
		return "MUL"
	}
	return fmt.Sprintf("BinaryOp(%d)", int(o))
}

// BinaryQuant holds the quantization of a quantized ADD/SUB/MUL. ActBits is
// 8 (int8) or 16 (int16; zero points must then be 0 for MUL).
type BinaryQuant struct {
	In1Scale, In2Scale, OutScale float32
	In1ZeroPoint, In2ZeroPoint   int
	OutZeroPoint                 int
	ActBits                      int
}

const maxBroadcastDims = 6

// BinaryParams is what TFLM's ADD/SUB/MUL Prepare computes, plus the
// broadcast strides.
type BinaryParams struct {
	Op BinaryOp
	N  int // output elements

	// Broadcast: output dims and input strides (0 where an input is
	// broadcast), right-aligned to maxBroadcastDims.
	Broadcast bool
	dims      [maxBroadcastDims]int
	s1, s2    [maxBroadcastDims]int

	// Quantized.
	LeftShift                 int
	In1Offset, In2Offset      int32 // -zero point
	OutOffset                 int32 // zero point
	In1Mult, In2Mult, OutMult int32
	In1Shift, In2Shift        int
	OutShift                  int
	ActMin, ActMax            int32 // also the int32 activation range

	// Float.
	FActMin, FActMax float32

	t1, t2 []int32 // int8 ADD/SUB: scaled input values per int8 value
	q1, q2 chanQ   // ADD/SUB input rescaling, MUL/ADD/SUB output rescaling
	qo     chanQ
}

// PrepareBinary prepares ADD, SUB or MUL with numpy-style broadcasting of
// in1 and in2 (up to 6 dims) into out. q is nil for float32 and int32
// (int32 needs intOps = true to compute the int32 activation range).
func PrepareBinary(op BinaryOp, act Activation, in1, in2, out Shape, q *BinaryQuant) (*BinaryParams, error) {
	if len(in1) > maxBroadcastDims || len(in2) > maxBroadcastDims || len(out) > maxBroadcastDims {
		return nil, fmt.Errorf("%v: more than %d dims", op, maxBroadcastDims)
	}
	if err := nonNegative(op.String(), in1, in2, out); err != nil {
		return nil, err
	}
	p := &BinaryParams{Op: op, N: FlatSize(out)}
	if err := p.setBroadcast(in1, in2, out); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	var err error
	if q == nil {
		p.FActMin, p.FActMax, err = ActivationRangeFloat(act)
		if err == nil {
			p.ActMin, p.ActMax = int32RangeFor(act)
		}
		return p, err
	}
	if q.ActBits != 8 && q.ActBits != 16 {
		return nil, fmt.Errorf("%v: unsupported activation width %d", op, q.ActBits)
	}
	p.ActMin, p.ActMax, err = ActivationRangeQuantized(act, q.ActBits, q.OutScale, q.OutZeroPoint)
	if err != nil {
		return nil, err
	}
	p.In1Offset, p.In2Offset, p.OutOffset = int32(-q.In1ZeroPoint), int32(-q.In2ZeroPoint), int32(q.OutZeroPoint)
	switch op {
	case OpMul:
		if q.ActBits == 16 && (q.In1ZeroPoint != 0 || q.In2ZeroPoint != 0 || q.OutZeroPoint != 0) {
			return nil, fmt.Errorf("MUL: int16 needs zero points 0")
		}
		p.OutMult, p.OutShift = QuantizeMultiplier(float64(q.In1Scale) * float64(q.In2Scale) / float64(q.OutScale))
		p.qo = oneChanQ(p.OutMult, p.OutShift)
		return p, nil
	case OpAdd:
		// TFLM add_common.cc computes in double.
		p.LeftShift = 20
		if q.ActBits == 16 {
			p.LeftShift = 15
		}
		twiceMax := 2 * float64(max(q.In1Scale, q.In2Scale))
		r1 := float64(q.In1Scale) / twiceMax
		r2 := float64(q.In2Scale) / twiceMax
		ro := twiceMax / (float64(int64(1)<<p.LeftShift) * float64(q.OutScale))
		if err := p.setAddSubMultipliers(r1, r2, ro); err != nil {
			return nil, err
		}
	case OpSub:
		// TFLM sub_common.cc computes in float32, then widens.
		p.LeftShift = 20
		if q.ActBits == 16 {
			p.LeftShift = 15
		}
		twiceMax := 2 * max(q.In1Scale, q.In2Scale)
		r1 := float64(q.In1Scale / twiceMax)
		r2 := float64(q.In2Scale / twiceMax)
		ro := float64(twiceMax / (float32(int64(1)<<p.LeftShift) * q.OutScale))
		if err := p.setAddSubMultipliers(r1, r2, ro); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown binary op %d", op)
	}
	p.q1, p.q2 = oneChanQ(p.In1Mult, p.In1Shift), oneChanQ(p.In2Mult, p.In2Shift)
	p.qo = oneChanQ(p.OutMult, p.OutShift)
	if q.ActBits == 8 {
		p.t1 = make([]int32, 256)
		p.t2 = make([]int32, 256)
		for v := -128; v < 128; v++ {
			p.t1[uint8(int8(v))] = p.scaled(int32(v), p.In1Offset, p.In1Mult, p.In1Shift)
			p.t2[uint8(int8(v))] = p.scaled(int32(v), p.In2Offset, p.In2Mult, p.In2Shift)
		}
	}
	return p, nil
}

func (p *BinaryParams) setAddSubMultipliers(r1, r2, ro float64) error {
	var ok1, ok2, ok3 bool
	p.In1Mult, p.In1Shift, ok1 = QuantizeMultiplierSmallerThanOneExp(r1)
	p.In2Mult, p.In2Shift, ok2 = QuantizeMultiplierSmallerThanOneExp(r2)
	p.OutMult, p.OutShift, ok3 = QuantizeMultiplierSmallerThanOneExp(ro)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("%v: scales give a multiplier above one", p.Op)
	}
	return nil
}

func int32RangeFor(act Activation) (int32, int32) {
	switch act {
	case ActRelu:
		return 0, math.MaxInt32
	case ActRelu6:
		return 0, 6
	case ActReluN1To1:
		return -1, 1
	}
	return math.MinInt32, math.MaxInt32
}

func (p *BinaryParams) setBroadcast(in1, in2, out Shape) error {
	n := len(out)
	for i := 0; i < maxBroadcastDims; i++ {
		p.dims[i] = 1
	}
	var d1, d2 [maxBroadcastDims]int
	for i := range d1 {
		d1[i], d2[i] = 1, 1
	}
	copy(d1[maxBroadcastDims-len(in1):], in1)
	copy(d2[maxBroadcastDims-len(in2):], in2)
	copy(p.dims[maxBroadcastDims-n:], out)
	st1, st2 := 1, 1
	for i := maxBroadcastDims - 1; i >= 0; i-- {
		o := p.dims[i]
		switch {
		case d1[i] == o:
			p.s1[i] = st1
		case d1[i] == 1:
			p.s1[i] = 0
			p.Broadcast = true
		default:
			return fmt.Errorf("shapes %v and %v do not broadcast to %v", in1, in2, out)
		}
		switch {
		case d2[i] == o:
			p.s2[i] = st2
		case d2[i] == 1:
			p.s2[i] = 0
			p.Broadcast = true
		default:
			return fmt.Errorf("shapes %v and %v do not broadcast to %v", in1, in2, out)
		}
		st1 *= d1[i]
		st2 *= d2[i]
	}
	return nil
}

// scaled is the per-input stage of quantized ADD/SUB.
func (p *BinaryParams) scaled(v, off, mult int32, shift int) int32 {
	return MultiplyByQuantizedMultiplierSmallerThanOneExp((v+off)*(int32(1)<<uint(p.LeftShift)), mult, shift)
}

// quantElem computes one quantized output element from raw input values.
func (p *BinaryParams) quantElem(a, b int32) int32 {
	var raw int32
	switch p.Op {
	case OpMul:
		raw = p.OutOffset + MultiplyByQuantizedMultiplier((a+p.In1Offset)*(b+p.In2Offset), p.OutMult, p.OutShift)
	case OpAdd:
		raw = MultiplyByQuantizedMultiplierSmallerThanOneExp(
			p.scaled(a, p.In1Offset, p.In1Mult, p.In1Shift)+p.scaled(b, p.In2Offset, p.In2Mult, p.In2Shift),
			p.OutMult, p.OutShift) + p.OutOffset
	default:
		raw = MultiplyByQuantizedMultiplierSmallerThanOneExp(
			p.scaled(a, p.In1Offset, p.In1Mult, p.In1Shift)-p.scaled(b, p.In2Offset, p.In2Mult, p.In2Shift),
			p.OutMult, p.OutShift) + p.OutOffset
	}
	return clamp32(raw, p.ActMin, p.ActMax)
}

// BinaryInt8 is ADD/SUB/MUL on int8 tensors, bit-exact with TFLM's
// reference kernels (including broadcasting).
func BinaryInt8(p *BinaryParams, in1, in2, out []int8) {
	last := maxBroadcastDims - 1
	st1, st2 := p.s1[last], p.s2[last]
	if !p.Broadcast {
		st1, st2 = 1, 1
	}
	if p.t1 != nil {
		t1, t2 := p.t1[:256], p.t2[:256]
		sub := p.Op == OpSub
		qo := &p.qo
		off, lo, hi := p.OutOffset, p.ActMin, p.ActMax
		var idx [maxBroadcastDims]int
		p.runs(&idx, func(i1, i2, o, n int) {
			for j := 0; j < n; j++ {
				a := t1[uint8(in1[i1+j*st1])]
				b := t2[uint8(in2[i2+j*st2])]
				if sub {
					a -= b
				} else {
					a += b
				}
				out[o+j] = int8(min(max(qo.apply(a)+off, lo), hi))
			}
		})
		return
	}
	var idx [maxBroadcastDims]int
	p.runs(&idx, func(i1, i2, o, n int) {
		for j := 0; j < n; j++ {
			out[o+j] = int8(p.quantElem(int32(in1[i1+j*st1]), int32(in2[i2+j*st2])))
		}
	})
}

// BinaryInt16 is ADD/SUB/MUL on int16 tensors, bit-exact with TFLM's
// reference kernels (including broadcasting, e.g. a [64] operand).
func BinaryInt16(p *BinaryParams, in1, in2, out []int16) {
	last := maxBroadcastDims - 1
	st1, st2 := p.s1[last], p.s2[last]
	if !p.Broadcast {
		st1, st2 = 1, 1
	}
	var idx [maxBroadcastDims]int
	q1, q2, qo := &p.q1, &p.q2, &p.qo
	o1, o2, off, lo, hi := p.In1Offset, p.In2Offset, p.OutOffset, p.ActMin, p.ActMax
	ls := uint(p.LeftShift)
	switch p.Op {
	case OpMul:
		p.runs(&idx, func(i1, i2, o, n int) {
			for j := 0; j < n; j++ {
				a, b := int32(in1[i1+j*st1])+o1, int32(in2[i2+j*st2])+o2
				out[o+j] = int16(min(max(qo.apply(a*b)+off, lo), hi))
			}
		})
	case OpAdd:
		p.runs(&idx, func(i1, i2, o, n int) {
			for j := 0; j < n; j++ {
				a := q1.apply((int32(in1[i1+j*st1]) + o1) << ls)
				b := q2.apply((int32(in2[i2+j*st2]) + o2) << ls)
				out[o+j] = int16(min(max(qo.apply(a+b)+off, lo), hi))
			}
		})
	default:
		p.runs(&idx, func(i1, i2, o, n int) {
			for j := 0; j < n; j++ {
				a := q1.apply((int32(in1[i1+j*st1]) + o1) << ls)
				b := q2.apply((int32(in2[i2+j*st2]) + o2) << ls)
				out[o+j] = int16(min(max(qo.apply(a-b)+off, lo), hi))
			}
		})
	}
}

// BinaryFloat is ADD/SUB/MUL on float32 tensors with the fused activation.
func BinaryFloat(p *BinaryParams, in1, in2, out []float32) {
	last := maxBroadcastDims - 1
	st1, st2 := p.s1[last], p.s2[last]
	if !p.Broadcast {
		st1, st2 = 1, 1
	}
	var idx [maxBroadcastDims]int
	p.runs(&idx, func(i1, i2, o, n int) {
		for j := 0; j < n; j++ {
			a, b := in1[i1+j*st1], in2[i2+j*st2]
			var r float32
			switch p.Op {
			case OpAdd:
				r = a + b
			case OpSub:
				r = a - b
			default:
				r = a * b
			}
			out[o+j] = clampF(r, p.FActMin, p.FActMax)
		}
	})
}

// BinaryInt32 is ADD/SUB/MUL on unquantized int32 tensors (wrapping), with
// the fused activation's int32 range.
func BinaryInt32(p *BinaryParams, in1, in2, out []int32) {
	last := maxBroadcastDims - 1
	st1, st2 := p.s1[last], p.s2[last]
	if !p.Broadcast {
		st1, st2 = 1, 1
	}
	var idx [maxBroadcastDims]int
	p.runs(&idx, func(i1, i2, o, n int) {
		for j := 0; j < n; j++ {
			a, b := in1[i1+j*st1], in2[i2+j*st2]
			var r int32
			switch p.Op {
			case OpAdd:
				r = a + b
			case OpSub:
				r = a - b
			default:
				r = a * b
			}
			out[o+j] = clamp32(r, p.ActMin, p.ActMax)
		}
	})
}

// runs is forEach with a caller-provided index array.
func (p *BinaryParams) runs(idx *[maxBroadcastDims]int, f func(i1, i2, o, n int)) {
	if !p.Broadcast {
		f(0, 0, 0, p.N)
		return
	}
	last := maxBroadcastDims - 1
	inner := p.dims[last]
	for o := 0; o < p.N; o += inner {
		i1, i2 := 0, 0
		for d := 0; d < last; d++ {
			i1 += idx[d] * p.s1[d]
			i2 += idx[d] * p.s2[d]
		}
		f(i1, i2, o, inner)
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < p.dims[d] {
				break
			}
			idx[d] = 0
		}
	}
}
