package ops

import (
	"math/rand"
	"testing"
)

// TestPrepareRobust feeds the Prepare functions random, often inconsistent
// shapes and options, as a hostile model could: they must return an error
// or params under which eval runs on buffers of the declared sizes.
func TestPrepareRobust(t *testing.T) {
	r := rand.New(rand.NewSource(30))
	dim := func() int { return []int{0, 1, 2, 3, 5, 8, -1}[r.Intn(7)] }
	shape := func(rank int) Shape {
		s := make(Shape, rank)
		for i := range s {
			s[i] = dim()
		}
		return s
	}
	small := func() int { return r.Intn(5) - 1 }
	for it := 0; it < 20000; it++ {
		opts := ConvOptions{Padding: Padding(r.Intn(3)), StrideH: small(), StrideW: small(), DilationH: small(), DilationW: small(),
			Activation: Activation(r.Intn(7)), DepthMultiplier: small(), FilterH: small(), FilterW: small()}
		q := &ConvQuant{InputScale: 0.1, FilterScales: []float32{0.01}, OutputScale: 0.2, ActBits: []int{8, 16, 12}[r.Intn(3)]}
		if r.Intn(4) == 0 {
			q = nil
		}
		in, f, out := shape(4), shape(4), shape(4)
		if r.Intn(2) == 0 { // sometimes consistent
			in = Shape{1, 1 + r.Intn(6), 1 + r.Intn(6), 1 + r.Intn(3)}
			f = Shape{1 + r.Intn(3), 1 + r.Intn(3), 1 + r.Intn(3), in[3]}
			if opts.StrideH > 0 && opts.StrideW > 0 {
				dh, dw := max(opts.DilationH, 1), max(opts.DilationW, 1)
				out = Shape{1, ComputeOutSize(opts.Padding, in[1], f[1], opts.StrideH, dh), ComputeOutSize(opts.Padding, in[2], f[2], opts.StrideW, dw), f[0]}
			}
		}
		if p, err := PrepareConv2D(opts, in, f, out, q); err == nil {
			n := FlatSize(out)
			switch {
			case q == nil:
				Conv2DFloat(p, make([]float32, FlatSize(in)), make([]float32, FlatSize(f)), make([]float32, f[0]), make([]float32, n))
			case q.ActBits == 8:
				w := make([]int8, FlatSize(f))
				p.PrecomputeInt8(w, nil)
				Conv2DInt8(p, make([]int8, FlatSize(in)), w, nil, make([]int8, n), make([]int8, p.ScratchInt8))
			default:
				Conv2DInt16(p, make([]int16, FlatSize(in)), make([]int8, FlatSize(f)), nil, make([]int16, n))
			}
		}
		df := Shape{1, f[1], f[2], in[3] * max(opts.DepthMultiplier, 1)}
		dout := Shape{out[0], out[1], out[2], df[3]}
		if p, err := PrepareDepthwiseConv2D(opts, in, df, dout, q); err == nil && q != nil && q.ActBits == 8 {
			w := make([]int8, FlatSize(df))
			p.PrecomputeDepthwiseInt8(w, nil)
			DepthwiseConv2DInt8(p, make([]int8, FlatSize(in)), w, nil, make([]int8, FlatSize(dout)), make([]int32, p.ScratchInt32))
		}
		pout := Shape{in[0], out[1], out[2], in[3]}
		if p, err := PreparePool2D(opts, in, pout, 8, 0.1, 0); err == nil {
			AveragePoolInt8(p, make([]int8, FlatSize(in)), make([]int8, FlatSize(pout)), make([]int32, p.C))
			MaxPoolInt8(p, make([]int8, FlatSize(in)), make([]int8, FlatSize(pout)))
		}
		if p, err := PrepareTransposeConv(opts, in, f, out, q); err == nil && q != nil && q.ActBits == 16 {
			TransposeConvInt16(p, make([]int16, FlatSize(in)), make([]int8, FlatSize(f)), nil, make([]int16, FlatSize(out)), make([]int64, p.ScratchInt64))
		}
		rank := r.Intn(5)
		s := shape(rank)
		o := StridedSliceOptions{BeginMask: r.Intn(32), EndMask: r.Intn(32), EllipsisMask: r.Intn(4), ShrinkAxisMask: r.Intn(32), Offset: r.Intn(2) == 0}
		for i := 0; i < r.Intn(6); i++ {
			o.Begin, o.End, o.Strides = append(o.Begin, r.Intn(11)-5), append(o.End, r.Intn(11)-5), append(o.Strides, r.Intn(5)-2)
		}
		if p, err := PrepareStridedSlice(s, o, nil); err == nil && FlatSize(s) >= 0 {
			StridedSlice(p, make([]int16, max(FlatSize(s), 0)), make([]int16, p.N))
		}
		pads := make([]int, 2*rank)
		for i := range pads {
			pads[i] = r.Intn(4) - 1
		}
		if p, err := PreparePad(s, pads, nil); err == nil && FlatSize(s) >= 0 {
			Pad(p, make([]int8, FlatSize(s)), make([]int8, p.N), 0)
		}
		s2 := shape(r.Intn(5))
		if p, err := PrepareBinary(BinaryOp(r.Intn(3)), ActNone, s, s2, shape(rank), &BinaryQuant{In1Scale: 0.1, In2Scale: 0.1, OutScale: 0.1, ActBits: 16}); err == nil && FlatSize(s) >= 0 && FlatSize(s2) >= 0 && p.N >= 0 {
			BinaryInt16(p, make([]int16, FlatSize(s)), make([]int16, FlatSize(s2)), make([]int16, p.N))
		}
	}
}
