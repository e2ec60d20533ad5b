package ops

import (
	"math"
	"math/rand"
	"testing"
)

// slowBinaryIndex maps an output index to an input index under numpy
// broadcasting, from the definition.
func slowBinaryIndex(o int, out, in Shape) int {
	coords := make([]int, len(out))
	for d := len(out) - 1; d >= 0; d-- {
		coords[d] = o % out[d]
		o /= out[d]
	}
	idx := 0
	off := len(out) - len(in)
	for d := range in {
		c := coords[off+d]
		if in[d] == 1 {
			c = 0
		}
		idx = idx*in[d] + c
	}
	return idx
}

func randBroadcastShapes(r *rand.Rand) (a, b, out Shape) {
	rank := 1 + r.Intn(5)
	out = make(Shape, rank)
	for i := range out {
		out[i] = 1 + r.Intn(4)
	}
	mk := func() Shape {
		k := rank - r.Intn(rank)
		s := append(Shape(nil), out[rank-k:]...)
		for i := range s {
			if r.Intn(3) == 0 {
				s[i] = 1
			}
		}
		return s
	}
	a, b = mk(), mk()
	// Make out the true broadcast shape of a and b.
	for i := range out {
		da, db := 1, 1
		if j := i - (rank - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (rank - len(b)); j >= 0 {
			db = b[j]
		}
		out[i] = max(da, db)
	}
	return
}

func TestBinaryBroadcastInt(t *testing.T) {
	r := rand.New(rand.NewSource(20))
	for it := 0; it < 400; it++ {
		sa, sb, so := randBroadcastShapes(r)
		op := BinaryOp(r.Intn(3))
		bits := []int{8, 16}[r.Intn(2)]
		q := &BinaryQuant{In1Scale: 0.01 + r.Float32()*0.1, In2Scale: 0.01 + r.Float32()*0.1, OutScale: 0.05 + r.Float32()*0.2, ActBits: bits}
		if bits == 8 {
			q.In1ZeroPoint, q.In2ZeroPoint, q.OutZeroPoint = r.Intn(256)-128, r.Intn(256)-128, r.Intn(256)-128
		}
		act := []Activation{ActNone, ActRelu}[r.Intn(2)]
		p, err := PrepareBinary(op, act, sa, sb, so, q)
		if err != nil {
			t.Fatalf("%v %v %v: %v", sa, sb, so, err)
		}
		n := FlatSize(so)
		// The reference's per-element formula, written out.
		elem := func(a, b int32) int32 {
			var v int32
			switch op {
			case OpMul:
				v = p.OutOffset + MultiplyByQuantizedMultiplier((a-int32(q.In1ZeroPoint))*(b-int32(q.In2ZeroPoint)), p.OutMult, p.OutShift)
			default:
				x := MultiplyByQuantizedMultiplierSmallerThanOneExp((a-int32(q.In1ZeroPoint))<<uint(p.LeftShift), p.In1Mult, p.In1Shift)
				y := MultiplyByQuantizedMultiplierSmallerThanOneExp((b-int32(q.In2ZeroPoint))<<uint(p.LeftShift), p.In2Mult, p.In2Shift)
				if op == OpSub {
					y = -y
				}
				v = MultiplyByQuantizedMultiplierSmallerThanOneExp(x+y, p.OutMult, p.OutShift) + p.OutOffset
			}
			return clamp32(v, p.ActMin, p.ActMax)
		}
		if bits == 8 {
			a, b, got := randI8(r, FlatSize(sa)), randI8(r, FlatSize(sb)), make([]int8, n)
			BinaryInt8(p, a, b, got)
			for o := 0; o < n; o++ {
				want := elem(int32(a[slowBinaryIndex(o, so, sa)]), int32(b[slowBinaryIndex(o, so, sb)]))
				if int32(got[o]) != want {
					t.Fatalf("%v int8 %v %v -> %v: element %d = %d, want %d", op, sa, sb, so, o, got[o], want)
				}
			}
		} else {
			a, b, got := randI16(r, FlatSize(sa)), randI16(r, FlatSize(sb)), make([]int16, n)
			BinaryInt16(p, a, b, got)
			for o := 0; o < n; o++ {
				want := elem(int32(a[slowBinaryIndex(o, so, sa)]), int32(b[slowBinaryIndex(o, so, sb)]))
				if int32(got[o]) != want {
					t.Fatalf("%v int16 %v %v -> %v: element %d = %d, want %d", op, sa, sb, so, o, got[o], want)
				}
			}
		}
		// float
		pf, err := PrepareBinary(op, ActNone, sa, sb, so, nil)
		if err != nil {
			t.Fatal(err)
		}
		fa, fb, fg := randF32(r, FlatSize(sa)), randF32(r, FlatSize(sb)), make([]float32, n)
		BinaryFloat(pf, fa, fb, fg)
		for o := 0; o < n; o++ {
			x, y := fa[slowBinaryIndex(o, so, sa)], fb[slowBinaryIndex(o, so, sb)]
			want := []float32{x + y, x - y, x * y}[op]
			if fg[o] != want {
				t.Fatalf("float %v: %g want %g", op, fg[o], want)
			}
		}
	}
}

func TestStridedSliceDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	for it := 0; it < 500; it++ {
		rank := 1 + r.Intn(4)
		in := make(Shape, rank)
		for i := range in {
			in[i] = 1 + r.Intn(6)
		}
		o := StridedSliceOptions{}
		for i := 0; i < rank; i++ {
			s := []int{1, 1, 2, 3, -1, -2}[r.Intn(6)]
			o.Begin = append(o.Begin, r.Intn(2*in[i]+3)-in[i]-1)
			o.End = append(o.End, r.Intn(2*in[i]+3)-in[i]-1)
			o.Strides = append(o.Strides, s)
		}
		o.BeginMask, o.EndMask = r.Intn(1<<rank), r.Intn(1<<rank)
		if r.Intn(3) == 0 {
			// Shrinking with a negative stride selects nothing in TFLite's
			// reference loop; models use stride 1 there.
			a := r.Intn(rank)
			o.ShrinkAxisMask = 1 << a
			o.Strides[a] = 1
		}
		p, err := PrepareStridedSlice(in, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]int32, FlatSize(in))
		for i := range x {
			x[i] = int32(i)
		}
		got := make([]int32, p.N)
		StridedSlice(p, x, got)
		// Python-style slicing from the definition, one axis at a time.
		idx := [][]int{{}}
		for a := 0; a < rank; a++ {
			size, s := in[a], o.Strides[a]
			var sel []int
			if o.ShrinkAxisMask>>a&1 != 0 {
				b := o.Begin[a]
				if b < 0 {
					b += size
				}
				if o.BeginMask>>a&1 != 0 { // TFLite applies the begin mask here too
					b = 0
				}
				if b >= 0 && b < size {
					sel = []int{b}
				}
			} else {
				b, e := o.Begin[a], o.End[a]
				if b < 0 {
					b += size
				}
				if e < 0 {
					e += size
				}
				if s > 0 {
					b, e = clampInt(b, 0, size), clampInt(e, 0, size)
					if o.BeginMask>>a&1 != 0 {
						b = 0
					}
					if o.EndMask>>a&1 != 0 {
						e = size
					}
					for i := b; i < e; i += s {
						sel = append(sel, i)
					}
				} else {
					b, e = clampInt(b, -1, size-1), clampInt(e, -1, size-1)
					if o.BeginMask>>a&1 != 0 {
						b = size - 1
					}
					if o.EndMask>>a&1 != 0 {
						e = -1
					}
					for i := b; i > e; i += s {
						sel = append(sel, i)
					}
				}
			}
			var next [][]int
			for _, pre := range idx {
				for _, v := range sel {
					next = append(next, append(append([]int(nil), pre...), v))
				}
			}
			idx = next
		}
		if len(idx) != p.N {
			t.Fatalf("in %v opts %+v: %d elements, want %d", in, o, p.N, len(idx))
		}
		for k, c := range idx {
			flat := 0
			for a := range c {
				flat = flat*in[a] + c[a]
			}
			if got[k] != int32(flat) {
				t.Fatalf("in %v opts %+v: element %d = %d, want %d", in, o, k, got[k], flat)
			}
		}
	}
}

func TestStridedSliceEllipsis(t *testing.T) {
	// x[..., 1] on [2,3,4] == shrink of the last axis at 1.
	p, err := PrepareStridedSlice([]int{2, 3, 4}, StridedSliceOptions{Begin: []int{0, 1}, End: []int{0, 2}, Strides: []int{1, 1},
		EllipsisMask: 1, ShrinkAxisMask: 2}, []int{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]int32, 24)
	for i := range x {
		x[i] = int32(i)
	}
	got := make([]int32, p.N)
	StridedSlice(p, x, got)
	for i, v := range got {
		if v != int32(i*4+1) {
			t.Fatalf("got %v", got)
		}
	}
}

func TestPadHand(t *testing.T) {
	p, err := PreparePad([]int{2, 2}, []int{1, 0, 0, 2}, []int{3, 4})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int8, p.N)
	Pad(p, []int8{1, 2, 3, 4}, got, -5)
	want := []int8{-5, -5, -5, -5, 1, 2, -5, -5, 3, 4, -5, -5}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestLeakyReluHand(t *testing.T) {
	// Scales equal, alpha 0.5: identity for x >= 0, x/2 (SRDHM rounding) below.
	p, err := PrepareLeakyRelu(0.5, 16, 0.01, 0, 0.01, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int16, 5)
	LeakyReluInt16(p, []int16{100, 0, -100, -3, -32768}, got)
	want := []int16{100, 0, -50, -1, -16384}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
}

func TestQuantizeDequantize(t *testing.T) {
	p, err := PrepareQuantize(0, 0, 0.5, 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int8, 6)
	QuantizeFloatToInt8(p, []float32{0, 1, -1.25, 0.25, 1000, -1000}, got)
	want := []int8{3, 5, 0, 4, 127, -128} // -2.5 rounds away to -3; 0.5 to 1
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("quantize: got %v want %v", got, want)
		}
	}
	f := make([]float32, 3)
	Dequantize(0.5, 3, []int8{3, 5, -128}, f)
	if f[0] != 0 || f[1] != 1 || f[2] != -65.5 {
		t.Fatalf("dequantize: %v", f)
	}
	// int8 -> int8 requantize with scale ratio 2: (x - zp) * 2 + zp'.
	p, _ = PrepareQuantize(1, -1, 0.5, 2, 8)
	r8 := make([]int8, 3)
	Requantize(p, []int8{-1, 9, 127}, r8)
	if r8[0] != 2 || r8[1] != 22 || r8[2] != 127 {
		t.Fatalf("requantize: %v", r8)
	}
}

func TestReluMeanConcat(t *testing.T) {
	p, err := PrepareRelu(0, float32(math.Inf(1)), 8, 0.1, -10, 0.1, -10)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int8, 3)
	ReluInt8(p, []int8{-20, -10, 50}, got)
	if got[0] != -10 || got[1] != -10 || got[2] != 50 {
		t.Fatalf("relu: %v", got)
	}
	p6, _ := PrepareRelu6(8, 0.1, 0)
	Relu6Int8(p6, []int8{-5, 30, 100}, got)
	if got[0] != 0 || got[1] != 30 || got[2] != 60 {
		t.Fatalf("relu6: %v", got)
	}

	// MEAN over H, W of [1,2,2,2] int8 with equal quantization.
	mp, err := PrepareMean([]int{1, 2, 2, 2}, []int{1, -2}, []int{1, 1, 1, 2}, 0.5, 1, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]int8, 2)
	MeanInt8(mp, []int8{1, 10, 2, 20, 3, 30, 5, 41}, m, make([]int32, mp.NOut))
	// channel 0: (1+2+3+5)/4 = 2.75 -> 3 (then -1+1); channel 1: 101/4 = 25.25 -> 25.
	if m[0] != 3 || m[1] != 25 {
		t.Fatalf("mean: %v", m)
	}
	mf := make([]float32, 2)
	MeanFloat(mp, []float32{1, 10, 2, 20, 3, 30, 5, 41}, mf)
	if mf[0] != 2.75 || mf[1] != 25.25 {
		t.Fatalf("mean float: %v", mf)
	}

	cp, err := PrepareConcat([]Shape{{2, 1}, {2, 2}}, -1, []int{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	c := make([]int16, 6)
	Concat(cp, [][]int16{{1, 2}, {3, 4, 5, 6}}, c)
	want := []int16{1, 3, 4, 2, 5, 6}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("concat: %v", c)
		}
	}
}

func TestLogisticTanhApprox(t *testing.T) {
	for _, scale := range []float32{0.02, 0.05, 0.1} {
		pl, _ := PrepareLogistic(8, scale, 3)
		pt, _ := PrepareTanh(8, scale, 3)
		in := make([]int8, 256)
		for i := range in {
			in[i] = int8(i - 128)
		}
		lo, to := make([]int8, 256), make([]int8, 256)
		LogisticInt8(pl, in, lo)
		TanhInt8(pt, in, to)
		for i, v := range in {
			x := float64(scale) * float64(int(v)-3)
			if d := math.Abs(float64(lo[i]) - (256/(1+math.Exp(-x)) - 128)); d > 1.01 && !(lo[i] == 127 && d < 1.6) {
				t.Fatalf("logistic(%g) = %d, want about %g", x, lo[i], 256/(1+math.Exp(-x))-128)
			}
			if d := math.Abs(float64(to[i]) - math.Min(127, 128*math.Tanh(x))); d > 1.01 {
				t.Fatalf("tanh(%g) = %d, want about %g", x, to[i], 128*math.Tanh(x))
			}
		}
	}
	for _, scale := range []float32{1.0 / 4096, 0.0003} {
		pl, _ := PrepareLogistic(16, scale, 0)
		pt, _ := PrepareTanh(16, scale, 0)
		in := randI16(rand.New(rand.NewSource(22)), 2000)
		lo, to := make([]int16, len(in)), make([]int16, len(in))
		LogisticInt16(pl, in, lo)
		TanhInt16(pt, in, to)
		for i, v := range in {
			x := float64(scale) * float64(v)
			if d := math.Abs(float64(lo[i]) - 32768/(1+math.Exp(-x))); d > 4 {
				t.Fatalf("logistic16(%g) = %d, want about %g", x, lo[i], 32768/(1+math.Exp(-x)))
			}
			if d := math.Abs(float64(to[i]) - 32768*math.Tanh(x)); d > 8 {
				t.Fatalf("tanh16(%g) = %d, want about %g", x, to[i], 32768*math.Tanh(x))
			}
		}
	}
}

func TestTransposeConvInt8AndFloat(t *testing.T) {
	r := rand.New(rand.NewSource(23))
	for it := 0; it < 100; it++ {
		n, ih, iw, ic, oc := 1, 1+r.Intn(5), 1+r.Intn(5), 1+r.Intn(4), 1+r.Intn(4)
		kh, kw, sh, sw := 1+r.Intn(3), 1+r.Intn(3), 1+r.Intn(2), 1+r.Intn(2)
		pad := Padding(r.Intn(2))
		var oh, ow int
		if pad == PaddingSame {
			oh, ow = ih*sh, iw*sw
		} else {
			oh, ow = (ih-1)*sh+kh, (iw-1)*sw+kw
		}
		q := &ConvQuant{InputScale: 0.05, InputZeroPoint: r.Intn(256) - 128, FilterScales: randScales(r, oc), OutputScale: 0.1 + r.Float32(), OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
		opts := ConvOptions{Padding: pad, StrideH: sh, StrideW: sw}
		p, err := PrepareTransposeConv(opts, []int{n, ih, iw, ic}, []int{oc, kh, kw, ic}, []int{n, oh, ow, oc}, q)
		if err != nil {
			t.Fatal(err)
		}
		_, ph := refGeom(pad, oh, kh, sh, 1)
		_, pw := refGeom(pad, ow, kw, sw, 1)
		in, filter := randI8(r, n*ih*iw*ic), randI8(r, oc*kh*kw*ic)
		bias := make([]int32, oc)
		for i := range bias {
			bias[i] = int32(r.Intn(2001) - 1000)
		}
		got := make([]int8, n*oh*ow*oc)
		TransposeConvInt8(p, in, filter, bias, got, make([]int32, p.ScratchInt32))
		// Gather form from the definition: out[y][x][o] sums over input
		// positions and taps with y = iy*sh - ph + ky.
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				for o := 0; o < oc; o++ {
					acc := bias[o]
					for iy := 0; iy < ih; iy++ {
						for ix := 0; ix < iw; ix++ {
							ky, kx := y-(iy*sh-ph), x-(ix*sw-pw)
							if ky < 0 || ky >= kh || kx < 0 || kx >= kw {
								continue
							}
							for c := 0; c < ic; c++ {
								acc += (int32(in[(iy*iw+ix)*ic+c]) - int32(q.InputZeroPoint)) * int32(filter[((o*kh+ky)*kw+kx)*ic+c])
							}
						}
					}
					want := int8(clamp32(MultiplyByQuantizedMultiplier(acc, p.OutMult[o], p.OutShift[o])+int32(q.OutputZeroPoint), -128, 127))
					if g := got[(y*ow+x)*oc+o]; g != want {
						t.Fatalf("transpose conv [%d,%d,%d] = %d, want %d", y, x, o, g, want)
					}
				}
			}
		}
	}
}

// TestEvalAllocs checks that eval functions allocate nothing.
func TestEvalAllocs(t *testing.T) {
	r := rand.New(rand.NewSource(24))
	cp, _ := PrepareConv2D(ConvOptions{Padding: PaddingSame, StrideH: 2, StrideW: 2}, []int{1, 9, 9, 3}, []int{8, 3, 3, 3}, []int{1, 5, 5, 8},
		&ConvQuant{InputScale: 0.1, InputZeroPoint: 1, FilterScales: randScales(r, 8), OutputScale: 0.2, ActBits: 8})
	f := randI8(r, 8*27)
	cp.PrecomputeInt8(f, nil)
	in, out, s8 := randI8(r, 243), make([]int8, 200), make([]int8, cp.ScratchInt8)
	dp, _ := PrepareDepthwiseConv2D(ConvOptions{Padding: PaddingSame}, []int{1, 9, 9, 3}, []int{1, 3, 3, 6}, []int{1, 9, 9, 6},
		&ConvQuant{InputScale: 0.1, FilterScales: randScales(r, 6), OutputScale: 0.2, ActBits: 8})
	df := randI8(r, 54)
	dp.PrecomputeDepthwiseInt8(df, nil)
	dout, s32 := make([]int8, 486), make([]int32, dp.ScratchInt32)
	bp, _ := PrepareBinary(OpSub, ActNone, []int{2, 3, 4}, []int{4}, []int{2, 3, 4}, &BinaryQuant{In1Scale: 0.1, In2Scale: 0.2, OutScale: 0.3, ActBits: 16})
	a16, b16, o16 := randI16(r, 24), randI16(r, 4), make([]int16, 24)
	pp, _ := PreparePad([]int{2, 3}, []int{1, 1, 0, 2}, nil)
	po := make([]int16, pp.N)
	sp, _ := PrepareSoftmax(1, []int{4, 6}, 16, 0.001)
	so := make([]int16, 24)
	ss, _ := PrepareStridedSlice([]int{2, 3, 4}, StridedSliceOptions{Begin: []int{0, 1, 0}, End: []int{2, 3, 4}, Strides: []int{1, 1, 2}}, nil)
	sso := make([]int16, ss.N)
	mp, _ := PrepareMean([]int{2, 3, 4}, []int{1}, []int{2, 4}, 0.1, 0, 0.1, 0)
	mo, ms := make([]int16, 8), make([]int32, 8)
	n := testing.AllocsPerRun(20, func() {
		Conv2DInt8(cp, in, f, nil, out, s8)
		DepthwiseConv2DInt8(dp, in, df, nil, dout, s32)
		BinaryInt16(bp, a16, b16, o16)
		Pad(pp, a16[:6], po, 0)
		SoftmaxInt16(sp, a16, so)
		StridedSlice(ss, a16, sso)
		MeanInt16(mp, a16, mo, ms)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
