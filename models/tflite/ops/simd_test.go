package ops

import (
	"math"
	"math/rand"
	"runtime"
	"testing"
)

// The SIMD kernels are checked against the Go kernels (gemmPacked,
// requantRow, dw3x3) on random shapes, values and requantization
// parameters, including the extremes. Without SIMD in the build (other
// architectures, purego) the tests skip.

func skipNoSIMD(t *testing.T) {
	t.Helper()
	if !useSIMD {
		t.Skip("no SIMD kernels in this build or on this CPU")
	}
}

// extremeI8 returns n int8 values mixing -128, 127, 0 and random values.
func extremeI8(r *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		switch r.Intn(4) {
		case 0:
			v[i] = -128
		case 1:
			v[i] = 127
		default:
			v[i] = int8(r.Intn(256) - 128)
		}
	}
	return v
}

var cornerI32 = []int32{math.MinInt32, math.MinInt32 + 1, -1 << 30, -65536, -3, -2, -1, 0, 1, 2, 3, 65535, 1 << 30, math.MaxInt32 - 1, math.MaxInt32}

// randQuant returns random per-channel multipliers and shifts: mostly
// realistic (multiplier in [2^30, 2^31), shift in [-20, 0]), sometimes
// extreme (multiplier 0, 1, INT32_MAX; left shifts; right shift 31).
func randQuant(r *rand.Rand, n int) ([]int32, []int) {
	mult := make([]int32, n)
	shift := make([]int, n)
	for i := range mult {
		switch r.Intn(6) {
		case 0:
			mult[i] = []int32{0, 1, 2, math.MaxInt32, 1 << 30, math.MaxInt32 - 1}[r.Intn(6)]
			shift[i] = []int{-31, -30, -1, 0, 1, 5, 31}[r.Intn(7)]
		case 1:
			mult[i] = int32(r.Int63n(1 << 31))
			shift[i] = r.Intn(63) - 31
		default:
			mult[i] = 1<<30 + int32(r.Int63n(1<<30))
			shift[i] = -r.Intn(21)
		}
	}
	return mult, shift
}

func randFolded(r *rand.Rand, n int) []int32 {
	f := make([]int32, n)
	for i := range f {
		if r.Intn(4) == 0 {
			f[i] = cornerI32[r.Intn(len(cornerI32))]
		} else {
			f[i] = int32(r.Intn(1<<20) - 1<<19)
		}
	}
	return f
}

// forModes runs f once per SIMD kernel set this CPU has (amd64: AVX2, and
// AVX-512 with VNNI; arm64: NEON, and NEON with SDOT).
func forModes(t *testing.T, f func(t *testing.T)) {
	old := useDot
	defer func() { useDot = old }()
	for _, v := range []bool{false, true} {
		if v && !haveDot {
			continue
		}
		useDot = v
		t.Run(map[bool]string{false: "base", true: "dot"}[v], f)
	}
}

func TestSimdGemmMatchesGo(t *testing.T) { forModes(t, testSimdGemm) }

func testSimdGemm(t *testing.T) {
	skipNoSIMD(t)
	r := rand.New(rand.NewSource(7))
	for iter := 0; iter < 400; iter++ {
		n := 1 + r.Intn(70)
		k := 1 + r.Intn(300)
		if iter%10 == 0 {
			k = 1 + r.Intn(simdGemmMaxK)
		}
		rows := 1 + r.Intn(11)
		w := extremeI8(r, n*k)
		a := extremeI8(r, rows*k)
		mult, shift := randQuant(r, n)
		if iter%3 == 0 { // one table for all channels, as the usual per-tensor case
			for i := range mult {
				mult[i], shift[i] = mult[0], shift[0]
			}
		}
		folded := randFolded(r, n)
		qs := makeChanQ(mult, shift)
		off := int32(r.Intn(256) - 128)
		lo, hi := int32(-128), int32(127)
		if r.Intn(2) == 0 {
			lo = int32(r.Intn(128) - 128)
			hi = lo + int32(r.Intn(int(128-lo)))
		}
		g := newSimdGemm(w, n, k, folded, qs)
		if g == nil {
			t.Fatalf("n=%d k=%d: no SIMD GEMM", n, k)
		}
		want := make([]int8, rows*n+1)
		got := make([]int8, rows*n+1)
		want[rows*n], got[rows*n] = 55, 55 // guard byte
		gemmPacked(a, rows, k, packTriples(w, n, k), n, folded, qs, off, lo, hi, want[:rows*n])
		g.run(a, rows, off, lo, hi, got[:rows*n])
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("iter %d rows=%d n=%d k=%d: out[%d] (row %d ch %d) = %d, want %d",
					iter, rows, n, k, i, i/n, i%n, got[i], want[i])
			}
		}
	}
}

// TestSimdRequantCorners feeds every corner value through the SIMD
// requantization (input zero, so the sum is the folded bias) and compares
// with the scalar path and, for multipliers the reference allows, with
// MultiplyByQuantizedMultiplier itself.
func TestSimdRequantCorners(t *testing.T) { forModes(t, testSimdRequantCorners) }

func testSimdRequantCorners(t *testing.T) {
	skipNoSIMD(t)
	mults := []int32{0, 1, 2, 3, 1 << 30, 1<<30 + 1, math.MaxInt32 - 1, math.MaxInt32, 1518500250}
	shifts := []int{-31, -30, -17, -2, -1, 0, 1, 2, 7, 30, 31}
	var folded []int32
	for _, v := range cornerI32 {
		for d := int32(-2); d <= 2; d++ {
			folded = append(folded, v+d)
		}
	}
	n := len(folded)
	k := 3
	a := make([]int8, k) // one row of zeros
	w := extremeI8(rand.New(rand.NewSource(1)), n*k)
	for _, m := range mults {
		for _, s := range shifts {
			mult := make([]int32, n)
			shift := make([]int, n)
			for i := range mult {
				mult[i], shift[i] = m, s
			}
			qs := makeChanQ(mult, shift)
			for _, off := range []int32{-128, 0, 127} {
				g := newSimdGemm(w, n, k, folded, qs)
				ref := simdRQTable(folded, qs, n, 16)
				got := make([]int8, n)
				g.run(a, 1, off, -128, 127, got)
				for c := range got {
					want := requantRef(0, ref, c, off, -128, 127)
					if got[c] != want {
						t.Fatalf("mult %d shift %d off %d acc %d: got %d, want %d", m, s, off, folded[c], got[c], want)
					}
					// The reference arithmetic (saturating, with left
					// shifts in int32 as TFLite's).
					if ref := int8(clamp32(MultiplyByQuantizedMultiplier(folded[c], m, s)+off, -128, 127)); s <= 0 && got[c] != ref {
						t.Fatalf("mult %d shift %d off %d acc %d: got %d, reference %d", m, s, off, folded[c], got[c], ref)
					}
				}
			}
		}
	}
	// INT32_MIN as a multiplier (only a negative scale gives it) is refused.
	qs := makeChanQ([]int32{math.MinInt32}, []int{0})
	if newSimdGemm([]int8{1}, 1, 1, []int32{math.MinInt32}, qs) != nil {
		t.Fatal("SIMD GEMM accepted multiplier INT32_MIN")
	}
}

func TestSimdDepthwiseMatchesGo(t *testing.T) { forModes(t, testSimdDepthwise) }

func testSimdDepthwise(t *testing.T) {
	skipNoSIMD(t)
	r := rand.New(rand.NewSource(9))
	for iter := 0; iter < 300; iter++ {
		c := 8 * (1 + r.Intn(12))
		npix := 1 + r.Intn(9)
		stride := 1 + r.Intn(2)
		rowLen := (npix-1)*stride*c + 3*c + r.Intn(3)*c
		in := extremeI8(r, 3*rowLen)
		filter := extremeI8(r, 9*c)
		mult, shift := randQuant(r, c)
		folded := randFolded(r, c)
		qs := makeChanQ(mult, shift)
		off := int32(r.Intn(256) - 128)
		lo, hi := int32(-128), int32(127)
		d := newSimdDW(filter, c, folded, qs)
		if d == nil {
			t.Fatalf("c=%d: no SIMD depthwise", c)
		}
		if d.wide != (useDot && c%16 == 0 && runtime.GOARCH == "amd64") {
			t.Fatalf("c=%d: wide layout %v with useDot %v", c, d.wide, useDot)
		}
		ft := make([]int8, 9*c)
		for tp := 0; tp < 9; tp++ {
			for ch := 0; ch < c; ch++ {
				ft[ch*9+tp] = filter[tp*c+ch]
			}
		}
		want := make([]int8, npix*c)
		acc := make([]int32, c)
		for px := 0; px < npix; px++ {
			s := px * stride * c
			dw3x3(in[s:s+3*c], in[s+rowLen:s+rowLen+3*c], in[s+2*rowLen:s+2*rowLen+3*c], ft, acc)
			requantRow(acc, folded, qs, off, lo, hi, want[px*c:px*c+c])
		}
		got := make([]int8, npix*c+1)
		got[npix*c] = 99
		d.run(in, rowLen, stride*c, npix, off, lo, hi, got[:npix*c])
		if got[npix*c] != 99 {
			t.Fatal("wrote past the output")
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("iter %d c=%d npix=%d stride=%d: out[%d] = %d, want %d", iter, c, npix, stride, i, got[i], want[i])
			}
		}
	}
}

// withSIMD runs f with useSIMD set to on (Precompute reads it).
func withSIMD(on bool, f func()) {
	old := useSIMD
	useSIMD = on
	defer func() { useSIMD = old }()
	f()
}

// TestSimdLayersMatchGo runs whole CONV_2D, DEPTHWISE_CONV_2D and
// FULLY_CONNECTED layers with params packed for the SIMD kernels and for
// the Go kernels, on random shapes (strides, paddings, odd sizes, channel
// counts around the vector widths, zero points), with and without a
// helper goroutine, and requires identical outputs.
func TestSimdLayersMatchGo(t *testing.T) {
	forModes(t, testSimdLayers)
	// Depthwise rows too wide for the padded-row buffer go pixel by pixel.
	dwPadRowLimit = 0
	defer func() { dwPadRowLimit = dwPadRowMax }()
	t.Run("pixels", testSimdLayers)
}

func testSimdLayers(t *testing.T) {
	skipNoSIMD(t)
	r := rand.New(rand.NewSource(21))
	old, oldSIMD := parallelMinMACs, parallelMinMACsSIMD
	defer func() { parallelMinMACs, parallelMinMACsSIMD = old, oldSIMD; SetWorkers(0) }()
	for _, workers := range []int{0, 1} {
		SetWorkers(workers)
		if workers > 0 { // split every layer
			parallelMinMACs, parallelMinMACsSIMD = 0, 0
		}
		for it := 0; it < 120; it++ {
			h, w := 1+r.Intn(20), 1+r.Intn(20)
			ic := []int{1, 3, 8, 16, 24, 40}[r.Intn(6)]
			oc := 1 + r.Intn(40)
			k := []int{1, 3, 3, 5}[r.Intn(4)]
			s := 1 + r.Intn(2)
			pad := Padding(r.Intn(2))
			if pad == PaddingValid && (h < k || w < k) {
				pad = PaddingSame
			}
			oh := ComputeOutSize(pad, h, k, s, 1)
			ow := ComputeOutSize(pad, w, k, s, 1)
			act := []Activation{ActNone, ActRelu, ActRelu6}[r.Intn(3)]
			opts := ConvOptions{Padding: pad, StrideH: s, StrideW: s, Activation: act}
			in := extremeI8(r, h*w*ic)
			bias := make([]int32, 64)
			for i := range bias {
				bias[i] = int32(r.Intn(40001) - 20000)
			}
			zp := r.Intn(256) - 128

			// CONV_2D.
			q := &ConvQuant{InputScale: 0.05, InputZeroPoint: zp, FilterScales: randScales(r, oc), OutputScale: 0.1 + r.Float32(), OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
			filter := extremeI8(r, oc*k*k*ic)
			var outs [2][]int8
			for i, on := range []bool{false, true} {
				p, err := PrepareConv2D(opts, []int{1, h, w, ic}, []int{oc, k, k, ic}, []int{1, oh, ow, oc}, q)
				if err != nil {
					t.Fatal(err)
				}
				withSIMD(on, func() { p.PrecomputeInt8(filter, bias[:oc]) })
				if on != (p.sg != nil) {
					t.Fatalf("conv: SIMD params %v, want %v", p.sg != nil, on)
				}
				outs[i] = make([]int8, oh*ow*oc)
				Conv2DInt8(p, in, filter, bias[:oc], outs[i], make([]int8, p.ScratchInt8))
			}
			compareI8(t, "conv", it, outs[0], outs[1])

			// DEPTHWISE_CONV_2D, depth multiplier 1 (3x3: the SIMD kernel)
			// or 8 from one channel (the GEMM).
			m := 1
			if ic == 1 {
				m = 8
			}
			dq := &ConvQuant{InputScale: 0.05, InputZeroPoint: zp, FilterScales: randScales(r, ic*m), OutputScale: 0.1 + r.Float32(), OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
			dfilter := extremeI8(r, k*k*ic*m)
			for i, on := range []bool{false, true} {
				p, err := PrepareDepthwiseConv2D(opts, []int{1, h, w, ic}, []int{1, k, k, ic * m}, []int{1, oh, ow, ic * m}, dq)
				if err != nil {
					t.Fatal(err)
				}
				withSIMD(on, func() { p.PrecomputeDepthwiseInt8(dfilter, bias[:ic*m]) })
				wantSIMD := on && (ic == 1 || (k == 3 && ic%8 == 0))
				wantDW := on && k == 3 && (ic%8 == 0 || ic == 1)
				if wantSIMD != (p.sg != nil || p.sdw != nil) || wantDW != (p.sdw != nil) {
					t.Fatalf("depthwise ic=%d k=%d: SIMD params %v, want %v", ic, k, p.sg != nil || p.sdw != nil, wantSIMD)
				}
				outs[i] = make([]int8, oh*ow*ic*m)
				DepthwiseConv2DInt8(p, in, dfilter, bias[:ic*m], outs[i], make([]int32, p.ScratchInt32))
			}
			compareI8(t, "depthwise", it, outs[0], outs[1])

			// FULLY_CONNECTED over the input as a batch of rows.
			fq := &FCQuant{InputScale: 0.05, InputZeroPoint: zp, FilterScales: randScales(r, 1), OutputScale: 0.1 + r.Float32(), OutputZeroPoint: r.Intn(256) - 128, ActBits: 8}
			ffilter := extremeI8(r, oc*w*ic)
			for i, on := range []bool{false, true} {
				p, err := PrepareFullyConnected(act, []int{h, w * ic}, []int{oc, w * ic}, []int{h, oc}, fq)
				if err != nil {
					t.Fatal(err)
				}
				withSIMD(on, func() { p.PrecomputeInt8(ffilter, bias[:oc]) })
				if on != (p.sg != nil) {
					t.Fatalf("fc: SIMD params %v, want %v", p.sg != nil, on)
				}
				outs[i] = make([]int8, h*oc)
				FullyConnectedInt8(p, in, ffilter, bias[:oc], outs[i])
			}
			compareI8(t, "fully_connected", it, outs[0], outs[1])
		}
	}
}

func compareI8(t *testing.T, what string, it int, want, got []int8) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s case %d: element %d = %d, Go kernel %d", what, it, i, got[i], want[i])
		}
	}
}
