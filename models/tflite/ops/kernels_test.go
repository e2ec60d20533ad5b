package ops

import (
	"math"
	"math/rand"
	"testing"
)

func randI8(r *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(r.Intn(256) - 128)
	}
	return s
}

func randI16(r *rand.Rand, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(r.Intn(65536) - 32768)
	}
	return s
}

func randF32(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// refPad is TF's SAME/VALID geometry from its definition.
func refGeom(pad Padding, in, k, stride, dil int) (out, before int) {
	eff := (k-1)*dil + 1
	if pad == PaddingSame {
		out = (in + stride - 1) / stride
	} else {
		out = (in-eff)/stride + 1
	}
	total := (out-1)*stride + eff - in
	if total < 0 {
		total = 0
	}
	return out, total / 2
}

type convCase struct {
	n, h, w, ic, oc, kh, kw, sh, sw, dh, dw int
	pad                                     Padding
}

func randConvCase(r *rand.Rand) convCase {
	c := convCase{
		n: 1 + r.Intn(2), h: 1 + r.Intn(9), w: 1 + r.Intn(9), ic: 1 + r.Intn(6), oc: 1 + r.Intn(9),
		kh: 1 + r.Intn(3), kw: 1 + r.Intn(3), sh: 1 + r.Intn(2), sw: 1 + r.Intn(2), dh: 1, dw: 1,
		pad: Padding(r.Intn(2)),
	}
	if r.Intn(4) == 0 {
		c.dh, c.dw = 1+r.Intn(2), 1+r.Intn(2)
	}
	if r.Intn(3) == 0 {
		c.kh, c.kw, c.sh, c.sw, c.dh, c.dw = 1, 1, 1, 1, 1, 1
	}
	if c.pad == PaddingValid && ((c.kh-1)*c.dh+1 > c.h || (c.kw-1)*c.dw+1 > c.w) {
		c.pad = PaddingSame
	}
	return c
}

func randScales(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(0.001 + r.Float64()*0.02)
	}
	return s
}

// slowConvQ is the conv from the definition: sum over in-image taps of
// filter*(input - zp) (+bias), requantized per channel.
func slowConvQ(c convCase, in []int32, filter []int8, bias []int64, inZP int32, mult []int32, shift []int, outZP, lo, hi int32, wide bool) []int32 {
	oh, ph := refGeom(c.pad, c.h, c.kh, c.sh, c.dh)
	ow, pw := refGeom(c.pad, c.w, c.kw, c.sw, c.dw)
	out := make([]int32, c.n*oh*ow*c.oc)
	for b := 0; b < c.n; b++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for o := 0; o < c.oc; o++ {
					var acc int64
					for ky := 0; ky < c.kh; ky++ {
						for kx := 0; kx < c.kw; kx++ {
							iy, ix := oy*c.sh-ph+ky*c.dh, ox*c.sw-pw+kx*c.dw
							if iy < 0 || ix < 0 || iy >= c.h || ix >= c.w {
								continue
							}
							for i := 0; i < c.ic; i++ {
								acc += int64(filter[((o*c.kh+ky)*c.kw+kx)*c.ic+i]) * int64(in[((b*c.h+iy)*c.w+ix)*c.ic+i]-inZP)
							}
						}
					}
					if bias != nil {
						acc += bias[o]
					}
					var v int32
					if wide {
						v = MultiplyByQuantizedMultiplier64(acc, mult[o], shift[o])
					} else {
						v = MultiplyByQuantizedMultiplier(int32(acc), mult[o], shift[o]) + outZP
					}
					out[((b*oh+oy)*ow+ox)*c.oc+o] = clamp32(v, lo, hi)
				}
			}
		}
	}
	return out
}

func TestConv2DInt8(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	for it := 0; it < 300; it++ {
		c := randConvCase(r)
		oh, _ := refGeom(c.pad, c.h, c.kh, c.sh, c.dh)
		ow, _ := refGeom(c.pad, c.w, c.kw, c.sw, c.dw)
		inZP := r.Intn(256) - 128
		q := &ConvQuant{InputScale: 0.05, InputZeroPoint: inZP, FilterScales: randScales(r, c.oc), OutputScale: 0.1 + r.Float32(), OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
		act := []Activation{ActNone, ActRelu, ActRelu6}[r.Intn(3)]
		p, err := PrepareConv2D(ConvOptions{Padding: c.pad, StrideH: c.sh, StrideW: c.sw, DilationH: c.dh, DilationW: c.dw, Activation: act},
			[]int{c.n, c.h, c.w, c.ic}, []int{c.oc, c.kh, c.kw, c.ic}, []int{c.n, oh, ow, c.oc}, q)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		in := randI8(r, c.n*c.h*c.w*c.ic)
		filter := randI8(r, c.oc*c.kh*c.kw*c.ic)
		var bias []int32
		var bias64 []int64
		if r.Intn(4) != 0 {
			bias = make([]int32, c.oc)
			bias64 = make([]int64, c.oc)
			for i := range bias {
				bias[i] = int32(r.Intn(20001) - 10000)
				bias64[i] = int64(bias[i])
			}
		}
		in32 := make([]int32, len(in))
		for i, v := range in {
			in32[i] = int32(v)
		}
		want := slowConvQ(c, in32, filter, bias64, int32(inZP), p.OutMult, p.OutShift, p.OutputOffset, p.ActMin, p.ActMax, false)
		// Reference path, then fast path.
		for pass := 0; pass < 2; pass++ {
			if pass == 1 {
				p.PrecomputeInt8(filter, bias)
			}
			got := make([]int8, len(want))
			Conv2DInt8(p, in, filter, bias, got, make([]int8, p.ScratchInt8))
			for i := range want {
				if int32(got[i]) != want[i] {
					t.Fatalf("case %+v pass %d: element %d = %d, want %d", c, pass, i, got[i], want[i])
				}
			}
		}
	}
}

func TestConv2DInt16(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for it := 0; it < 150; it++ {
		c := randConvCase(r)
		oh, _ := refGeom(c.pad, c.h, c.kh, c.sh, c.dh)
		ow, _ := refGeom(c.pad, c.w, c.kw, c.sw, c.dw)
		q := &ConvQuant{InputScale: 0.0009, FilterScales: randScales(r, c.oc), OutputScale: 0.002 + r.Float32()*0.01, ActBits: 16}
		p, err := PrepareConv2D(ConvOptions{Padding: c.pad, StrideH: c.sh, StrideW: c.sw, DilationH: c.dh, DilationW: c.dw},
			[]int{c.n, c.h, c.w, c.ic}, []int{c.oc, c.kh, c.kw, c.ic}, []int{c.n, oh, ow, c.oc}, q)
		if err != nil {
			t.Fatal(err)
		}
		in := randI16(r, c.n*c.h*c.w*c.ic)
		filter := randI8(r, c.oc*c.kh*c.kw*c.ic)
		bias := make([]int64, c.oc)
		for i := range bias {
			bias[i] = r.Int63n(1<<30) - 1<<29
		}
		in32 := make([]int32, len(in))
		for i, v := range in {
			in32[i] = int32(v)
		}
		want := slowConvQ(c, in32, filter, bias, 0, p.OutMult, p.OutShift, 0, math.MinInt16, math.MaxInt16, true)
		got := make([]int16, len(want))
		Conv2DInt16(p, in, filter, bias, got)
		for i := range want {
			if int32(got[i]) != want[i] {
				t.Fatalf("case %+v: element %d = %d, want %d", c, i, got[i], want[i])
			}
		}
	}
}

func TestConv2DFloat(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	for it := 0; it < 100; it++ {
		c := randConvCase(r)
		oh, ph := refGeom(c.pad, c.h, c.kh, c.sh, c.dh)
		ow, pw := refGeom(c.pad, c.w, c.kw, c.sw, c.dw)
		p, err := PrepareConv2D(ConvOptions{Padding: c.pad, StrideH: c.sh, StrideW: c.sw, DilationH: c.dh, DilationW: c.dw, Activation: ActRelu6},
			[]int{c.n, c.h, c.w, c.ic}, []int{c.oc, c.kh, c.kw, c.ic}, []int{c.n, oh, ow, c.oc}, nil)
		if err != nil {
			t.Fatal(err)
		}
		in, filter, bias := randF32(r, c.n*c.h*c.w*c.ic), randF32(r, c.oc*c.kh*c.kw*c.ic), randF32(r, c.oc)
		got := make([]float32, c.n*oh*ow*c.oc)
		Conv2DFloat(p, in, filter, bias, got)
		for b := 0; b < c.n; b++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for o := 0; o < c.oc; o++ {
						acc := float64(bias[o])
						for ky := 0; ky < c.kh; ky++ {
							for kx := 0; kx < c.kw; kx++ {
								iy, ix := oy*c.sh-ph+ky*c.dh, ox*c.sw-pw+kx*c.dw
								if iy < 0 || ix < 0 || iy >= c.h || ix >= c.w {
									continue
								}
								for i := 0; i < c.ic; i++ {
									acc += float64(filter[((o*c.kh+ky)*c.kw+kx)*c.ic+i]) * float64(in[((b*c.h+iy)*c.w+ix)*c.ic+i])
								}
							}
						}
						want := math.Min(math.Max(acc, 0), 6)
						if g := got[((b*oh+oy)*ow+ox)*c.oc+o]; math.Abs(float64(g)-want) > 1e-4 {
							t.Fatalf("case %+v: got %g want %g", c, g, want)
						}
					}
				}
			}
		}
	}
}

func TestDepthwiseConv2DInt8(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	for it := 0; it < 300; it++ {
		c := randConvCase(r)
		m := 1
		if r.Intn(3) == 0 {
			m = 1 + r.Intn(4)
		}
		c.oc = c.ic * m
		oh, ph := refGeom(c.pad, c.h, c.kh, c.sh, c.dh)
		ow, pw := refGeom(c.pad, c.w, c.kw, c.sw, c.dw)
		inZP := r.Intn(256) - 128
		q := &ConvQuant{InputScale: 0.05, InputZeroPoint: inZP, FilterScales: randScales(r, c.oc), OutputScale: 0.05 + r.Float32()*0.2, OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
		p, err := PrepareDepthwiseConv2D(ConvOptions{Padding: c.pad, StrideH: c.sh, StrideW: c.sw, DilationH: c.dh, DilationW: c.dw, DepthMultiplier: m},
			[]int{c.n, c.h, c.w, c.ic}, []int{1, c.kh, c.kw, c.oc}, []int{c.n, oh, ow, c.oc}, q)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		in := randI8(r, c.n*c.h*c.w*c.ic)
		filter := randI8(r, c.kh*c.kw*c.oc)
		var bias []int32
		if r.Intn(4) != 0 {
			bias = make([]int32, c.oc)
			for i := range bias {
				bias[i] = int32(r.Intn(20001) - 10000)
			}
		}
		want := make([]int8, c.n*oh*ow*c.oc)
		for b := 0; b < c.n; b++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for o := 0; o < c.oc; o++ {
						var acc int32
						for ky := 0; ky < c.kh; ky++ {
							for kx := 0; kx < c.kw; kx++ {
								iy, ix := oy*c.sh-ph+ky*c.dh, ox*c.sw-pw+kx*c.dw
								if iy < 0 || ix < 0 || iy >= c.h || ix >= c.w {
									continue
								}
								acc += int32(filter[(ky*c.kw+kx)*c.oc+o]) * (int32(in[((b*c.h+iy)*c.w+ix)*c.ic+o/m]) - int32(inZP))
							}
						}
						if bias != nil {
							acc += bias[o]
						}
						v := MultiplyByQuantizedMultiplier(acc, p.OutMult[o], p.OutShift[o]) + int32(q.OutputZeroPoint)
						want[((b*oh+oy)*ow+ox)*c.oc+o] = int8(clamp32(v, -128, 127))
					}
				}
			}
		}
		for pass := 0; pass < 2; pass++ {
			if pass == 1 {
				p.PrecomputeDepthwiseInt8(filter, bias)
			}
			got := make([]int8, len(want))
			DepthwiseConv2DInt8(p, in, filter, bias, got, make([]int32, p.ScratchInt32))
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("case %+v m=%d pass %d: element %d = %d, want %d", c, m, pass, i, got[i], want[i])
				}
			}
		}
	}
}

func TestFullyConnectedInt8(t *testing.T) {
	r := rand.New(rand.NewSource(14))
	for it := 0; it < 200; it++ {
		batches, depth, units := 1+r.Intn(4), 1+r.Intn(40), 1+r.Intn(12)
		inZP := r.Intn(256) - 128
		q := &FCQuant{InputScale: 0.02, InputZeroPoint: inZP, FilterScales: randScales(r, 1), OutputScale: 0.05 + r.Float32(), OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
		p, err := PrepareFullyConnected(ActRelu, []int{batches, depth}, []int{units, depth}, []int{batches, units}, q)
		if err != nil {
			t.Fatal(err)
		}
		in, filter := randI8(r, batches*depth), randI8(r, units*depth)
		bias := make([]int32, units)
		for i := range bias {
			bias[i] = int32(r.Intn(2001) - 1000)
		}
		m, s := QuantizeMultiplier(float64(q.InputScale) * float64(q.FilterScales[0]) / float64(q.OutputScale))
		lo := max(-128, int32(q.OutputZeroPoint))
		for pass := 0; pass < 2; pass++ {
			if pass == 1 {
				p.PrecomputeInt8(filter, bias)
			}
			got := make([]int8, batches*units)
			FullyConnectedInt8(p, in, filter, bias, got)
			for b := 0; b < batches; b++ {
				for u := 0; u < units; u++ {
					acc := bias[u]
					for d := 0; d < depth; d++ {
						acc += int32(filter[u*depth+d]) * (int32(in[b*depth+d]) - int32(inZP))
					}
					want := int8(clamp32(MultiplyByQuantizedMultiplier(acc, m, s)+int32(q.OutputZeroPoint), lo, 127))
					if got[b*units+u] != want {
						t.Fatalf("pass %d: [%d,%d] = %d, want %d", pass, b, u, got[b*units+u], want)
					}
				}
			}
		}
	}
}

// TestFullyConnectedHand checks a case computed by hand: input zp -1,
// x = [1, 3] -> x-zp = [2, 4]; w = [[1, 2], [-1, 1]]; bias [1, 0];
// acc = [2+8+1, -2+4+0] = [11, 2]; multiplier 0.5 -> [6 (5.5 rounds up), 1];
// output zp 3 -> [9, 4].
func TestFullyConnectedHand(t *testing.T) {
	p, err := PrepareFullyConnected(ActNone, []int{1, 2}, []int{2, 2}, []int{1, 2},
		&FCQuant{InputScale: 0.5, InputZeroPoint: -1, FilterScales: []float32{0.25}, OutputScale: 0.25, OutputZeroPoint: 3, ActBits: 8})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int8, 2)
	FullyConnectedInt8(p, []int8{1, 3}, []int8{1, 2, -1, 1}, []int32{1, 0}, got)
	if got[0] != 9 || got[1] != 4 {
		t.Fatalf("got %v, want [9 4]", got)
	}
}

func TestAveragePoolInt8(t *testing.T) {
	r := rand.New(rand.NewSource(15))
	for it := 0; it < 200; it++ {
		n, h, w, ch := 1+r.Intn(2), 1+r.Intn(8), 1+r.Intn(8), 1+r.Intn(5)
		fh, fw, sh, sw := 1+r.Intn(3), 1+r.Intn(3), 1+r.Intn(2), 1+r.Intn(2)
		pad := Padding(r.Intn(2))
		if pad == PaddingValid && (fh > h || fw > w) {
			pad = PaddingSame
		}
		oh, ph := refGeom(pad, h, fh, sh, 1)
		ow, pw := refGeom(pad, w, fw, sw, 1)
		p, err := PreparePool2D(ConvOptions{Padding: pad, StrideH: sh, StrideW: sw, FilterH: fh, FilterW: fw}, []int{n, h, w, ch}, []int{n, oh, ow, ch}, 8, 0.1, 0)
		if err != nil {
			t.Fatal(err)
		}
		in := randI8(r, n*h*w*ch)
		got := make([]int8, n*oh*ow*ch)
		AveragePoolInt8(p, in, got, make([]int32, ch))
		gotMax := make([]int8, len(got))
		MaxPoolInt8(p, in, gotMax)
		for b := 0; b < n; b++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for c := 0; c < ch; c++ {
						sum, cnt, mx := 0, 0, -1000
						for ky := 0; ky < fh; ky++ {
							for kx := 0; kx < fw; kx++ {
								iy, ix := oy*sh-ph+ky, ox*sw-pw+kx
								if iy < 0 || ix < 0 || iy >= h || ix >= w {
									continue
								}
								v := int(in[((b*h+iy)*w+ix)*ch+c])
								sum += v
								cnt++
								mx = max(mx, v)
							}
						}
						want := int8(math.Round(float64(sum) / float64(cnt))) // ties away from zero
						i := ((b*oh+oy)*ow+ox)*ch + c
						if got[i] != want || int(gotMax[i]) != mx {
							t.Fatalf("avg %d want %d; max %d want %d", got[i], want, gotMax[i], mx)
						}
					}
				}
			}
		}
	}
}

func TestSoftmaxInt8(t *testing.T) {
	// Equal inputs: each probability 1/4 -> 64/256 -> 64 - 128 = -64.
	p, err := PrepareSoftmax(1, []int{1, 4}, 8, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int8, 4)
	SoftmaxInt8(p, []int8{5, 5, 5, 5}, got)
	for _, g := range got {
		if g != -64 {
			t.Fatalf("uniform softmax = %v, want all -64", got)
		}
	}
	r := rand.New(rand.NewSource(16))
	for it := 0; it < 500; it++ {
		depth := 1 + r.Intn(20)
		scale := float32(0.01 + r.Float64()*0.2)
		p, err := PrepareSoftmax(1, []int{2, depth}, 8, scale)
		if err != nil {
			t.Fatal(err)
		}
		in := randI8(r, 2*depth)
		got := make([]int8, len(in))
		SoftmaxInt8(p, in, got)
		got16 := make([]int16, len(in))
		SoftmaxInt8Int16(p, in, got16)
		for row := 0; row < 2; row++ {
			x := in[row*depth : (row+1)*depth]
			mx := -1000.0
			for _, v := range x {
				mx = math.Max(mx, float64(v))
			}
			sum := 0.0
			for _, v := range x {
				sum += math.Exp(float64(scale) * (float64(v) - mx))
			}
			for i, v := range x {
				pr := math.Exp(float64(scale)*(float64(v)-mx)) / sum
				if d := math.Abs(float64(got[row*depth+i]) + 128 - pr*256); d > 1.01 {
					t.Fatalf("softmax int8 %v: element %d = %d, want about %g", x, i, got[row*depth+i], pr*256-128)
				}
				if d := math.Abs(float64(got16[row*depth+i]) + 32768 - pr*65536); d > 3 {
					t.Fatalf("softmax int16 out %v: element %d = %d, want about %g", x, i, got16[row*depth+i], pr*65536-32768)
				}
			}
		}
	}
}

func TestSoftmaxInt16(t *testing.T) {
	r := rand.New(rand.NewSource(17))
	for it := 0; it < 200; it++ {
		depth := 1 + r.Intn(20)
		scale := float32(0.0001 + r.Float64()*0.0005)
		p, err := PrepareSoftmax(1, []int{depth}, 16, scale)
		if err != nil {
			t.Fatal(err)
		}
		in := randI16(r, depth)
		got := make([]int16, depth)
		SoftmaxInt16(p, in, got)
		mx := -1e9
		for _, v := range in {
			mx = math.Max(mx, float64(v))
		}
		sum := 0.0
		for _, v := range in {
			sum += math.Exp(float64(scale) * (float64(v) - mx))
		}
		for i, v := range in {
			pr := math.Exp(float64(scale)*(float64(v)-mx)) / sum
			if d := math.Abs(float64(got[i]) - pr*32768); d > 40 {
				t.Fatalf("softmax int16 %v: element %d = %d, want about %g", in, i, got[i], pr*32768)
			}
		}
	}
}

// TestGemmChunks covers the fast paths' edge shapes: more output channels
// than one accumulator chunk, odd channel and row counts, batch-1 FC.
func TestGemmChunks(t *testing.T) {
	r := rand.New(rand.NewSource(18))
	for _, s := range []struct{ rows, k, n int }{{1, 7, 300}, {3, 5, 257}, {5, 33, 513}, {1, 4000, 4}, {2, 1, 1}, {7, 16, 3}} {
		q := &FCQuant{InputScale: 0.02, InputZeroPoint: 5, FilterScales: randScales(r, s.n), OutputScale: 0.5, OutputZeroPoint: -3, ActBits: 8}
		p, err := PrepareFullyConnected(ActNone, []int{s.rows, s.k}, []int{s.n, s.k}, []int{s.rows, s.n}, q)
		if err != nil {
			t.Fatal(err)
		}
		in, filter := randI8(r, s.rows*s.k), randI8(r, s.n*s.k)
		bias := make([]int32, s.n)
		for i := range bias {
			bias[i] = int32(r.Intn(20001) - 10000)
		}
		want := make([]int8, s.rows*s.n)
		FullyConnectedInt8(p, in, filter, bias, want) // reference loop
		p.PrecomputeInt8(filter, bias)
		got := make([]int8, len(want))
		FullyConnectedInt8(p, in, filter, bias, got)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v: element %d = %d, want %d", s, i, got[i], want[i])
			}
		}
	}
}

// TestParallelSplit reruns the conv and depthwise checks with every
// convolution split across the helper goroutines.
func TestParallelSplit(t *testing.T) {
	old, oldSIMD := parallelMinMACs, parallelMinMACsSIMD
	parallelMinMACs, parallelMinMACsSIMD = 0, 0
	SetWorkers(3)
	defer func() { parallelMinMACs, parallelMinMACsSIMD = old, oldSIMD; SetWorkers(0) }()
	t.Run("conv", TestConv2DInt8)
	t.Run("depthwise", TestDepthwiseConv2DInt8)
	t.Run("person_detect", TestGoldenPersonDetect)
}

func TestFullyConnectedFloat(t *testing.T) {
	r := rand.New(rand.NewSource(19))
	for it := 0; it < 100; it++ {
		batches, depth, units := 1+r.Intn(3), 1+r.Intn(50), 1+r.Intn(11)
		p, err := PrepareFullyConnected(ActRelu, []int{batches, depth}, []int{units, depth}, []int{batches, units}, nil)
		if err != nil {
			t.Fatal(err)
		}
		in, filter, bias := randF32(r, batches*depth), randF32(r, units*depth), randF32(r, units)
		got := make([]float32, batches*units)
		FullyConnectedFloat(p, in, filter, bias, got)
		for b := 0; b < batches; b++ {
			for u := 0; u < units; u++ {
				acc := float64(bias[u])
				for d := 0; d < depth; d++ {
					acc += float64(in[b*depth+d]) * float64(filter[u*depth+d])
				}
				want := math.Max(acc, 0)
				if g := got[b*units+u]; math.Abs(float64(g)-want) > 1e-4 {
					t.Fatalf("[%d,%d] = %g, want %g", b, u, g, want)
				}
			}
		}
	}
}
