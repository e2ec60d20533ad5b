package ops

import (
	"math"
	"unsafe"
)

// SIMD fast paths (amd64 AVX2, arm64 NEON; see simd_*.go and *.s). The
// assembly kernels compute the same int32 sums as the Go kernels (integer
// sums are exact in any order) and the same requantization, so their
// results are identical; the Go kernels remain the fallback (other
// architectures, the purego build tag, CPUs without the features, shapes
// the kernels do not take) and the test oracle.
//
// Weights are packed once at Precompute time in the layout the kernel wants
// (simdPackGemm, simdPackDW); the per-channel requantization is packed
// beside them as a table of simdRQ int32 per block of 8 channels.

// simdRQ is the number of int32 per 8-channel block of a requantization
// table: folded bias, multiplier, left shift, right shift, the rounding
// mask (1<<right)-1, mask>>1, and the odd channels' multipliers moved to the even lanes
// (for the 64-bit multiplies of the odd channels), 8 of each.
const simdRQ = 7 * 8

// simdGemmMaxK bounds the accumulation depth of the SIMD GEMM (its rows
// are widened to int16 in a stack buffer); deeper GEMMs use the Go kernel.
const simdGemmMaxK = 2048

// simdGemm is a GEMM's weights and requantization in the SIMD kernel's
// layout: blocks of output channels; in each, for each step of k, the
// block's int16 weights (see the architecture's newSimdGemm).
type simdGemm struct {
	n, k  int     // output channels, accumulation depth
	kp    int     // the kernel's k loop count (k pairs on amd64, k octets on arm64)
	kpad  int     // k rounded up to the kernel's k step
	w     []int16 // packed weights
	rows8 bool    // int8-row kernel (amd64 AVX-512 VNNI, arm64 SDOT): weights in w8
	w8    []int8  // packed weights for the int8-row kernel
	rq    []int32 // requantization table, simdRQ per 8 channels
}

// simdDW is a 3x3 depthwise convolution's weights (depth multiplier 1,
// channels a multiple of 8) in the SIMD kernel's layout: per block of 8
// channels, 9 taps of 8 weights (int32 on amd64, int16 on arm64), and the
// requantization table.
type simdDW struct {
	c   int
	w   unsafe.Pointer // &w32[0] or &w16[0]
	w32 []int32
	w16 []int16
	rq  []int32
	// wide: the amd64 512-bit kernel's layout (16-channel blocks).
	wide bool
}

// gemmArgs is the SIMD GEMM kernel's argument block (the assembly reads
// it at fixed offsets: every field is 8 bytes).
type gemmArgs struct {
	a    unsafe.Pointer // 0: 4 rows of input (int16, or 8-bit for rows8), lda bytes apart
	lda  int            // 8
	rows int            // 16: valid rows, 1..4
	kp   int            // 24: k loop count
	w    unsafe.Pointer // 32: packed weights
	n    int            // 40: output channels
	rq   *int32         // 48: requantization table
	_    [4]int         // 56..80: unused
	out  *int8          // 88: row 0's outputs
	ldo  int            // 96: bytes between output rows
	off  int64          // 104
	lo   int64          // 112
	hi   int64          // 120
}

// dwArgs is the SIMD 3x3 depthwise kernel's argument block.
type dwArgs struct {
	in     *int8          // 0: first tap of the first pixel
	rowLen int            // 8: bytes between input rows
	c      int            // 16: channels (a multiple of 8)
	step   int            // 24: bytes between consecutive pixels' first taps
	npix   int            // 32: pixels (>= 1)
	w      unsafe.Pointer // 40: weights
	rq     *int32         // 48: requantization table
	out    *int8          // 56: outputs, c per pixel
	off    int64          // 64
	lo     int64          // 72
	hi     int64          // 80
}

// simdSmallBuf is the size of the small tier of the stack buffers (Go
// zeroes a stack array at every call, so shallow GEMMs use a small one).
const simdSmallBuf = 1024

// run computes out[r][c] = requant(folded[c] + dot(a[r], w[c])) for rows
// rows of a (rows x k, row-major): four rows at a time are widened to
// int16 (or, for the int8-row kernels, prepared by prepRow8) and handed to
// the kernel.
func (g *simdGemm) run(a []int8, rows int, off, lo, hi int32, out []int8) {
	small := 4*g.kpad <= simdSmallBuf
	switch {
	case g.rows8 && small:
		var buf [simdSmallBuf]uint8
		g.runInt8(buf[:], a, rows, off, lo, hi, out)
	case g.rows8:
		var buf [4 * simdGemmMaxK]uint8
		g.runInt8(buf[:], a, rows, off, lo, hi, out)
	case small:
		var buf [simdSmallBuf]int16
		g.runInt16(buf[:], a, rows, off, lo, hi, out)
	default:
		var buf [4 * simdGemmMaxK]int16
		g.runInt16(buf[:], a, rows, off, lo, hi, out)
	}
}

// runInt16 is run with buf (4*kpad or more) for the widened rows. The
// padding of each row (k to kpad) need not be zero: its weights are.
func (g *simdGemm) runInt16(buf []int16, a []int8, rows int, off, lo, hi int32, out []int8) {
	k, n, kpad := g.k, g.n, g.kpad
	buf = buf[:4*kpad]
	a = a[:rows*k]
	out = out[:rows*n]
	args := gemmArgs{a: unsafe.Pointer(&buf[0]), lda: 2 * kpad, kp: g.kp, w: unsafe.Pointer(&g.w[0]), n: n, rq: &g.rq[0],
		ldo: n, off: int64(off), lo: int64(lo), hi: int64(hi)}
	for r := 0; r < rows; r += 4 {
		nr := min(4, rows-r)
		for i := 0; i < nr; i++ {
			widen(buf[i*kpad:i*kpad+k], a[(r+i)*k:(r+i+1)*k])
		}
		args.rows = nr
		args.out = &out[r*n]
		simdGemmKernel(&args)
	}
}

// runInt8 is run for the int8-row kernels: rows go through prepRow8 into
// buf (4*kpad or more): on amd64 offset by 128 to uint8 (x^0x80), which the
// folded bias compensates (see newSimdGemm); on arm64 copied.
func (g *simdGemm) runInt8(buf []uint8, a []int8, rows int, off, lo, hi int32, out []int8) {
	k, n, kpad := g.k, g.n, g.kpad
	buf = buf[:4*kpad]
	a = a[:rows*k]
	out = out[:rows*n]
	args := gemmArgs{a: unsafe.Pointer(&buf[0]), lda: kpad, kp: g.kp, w: unsafe.Pointer(&g.w8[0]), n: n, rq: &g.rq[0],
		ldo: n, off: int64(off), lo: int64(lo), hi: int64(hi)}
	for r := 0; r < rows; r += 4 {
		nr := min(4, rows-r)
		for i := 0; i < nr; i++ {
			prepRow8(buf[i*kpad:i*kpad+k], a[(r+i)*k:(r+i+1)*k])
		}
		args.rows = nr
		args.out = &out[r*n]
		simdGemmKernelInt8(&args)
	}
}

// runWide is run for rows already widened to int16: row r is
// a[r*kpad : r*kpad+k], zero-padded to kpad, and a holds rows rounded up to
// a multiple of 4 rows (the kernel reads four rows at a time).
func (g *simdGemm) runWide(a []int16, rows int, off, lo, hi int32, out []int8) {
	if rows <= 0 {
		return
	}
	n, kpad := g.n, g.kpad
	_ = a[(rows+3)/4*4*kpad-1]
	out = out[:rows*n]
	if g.rows8 {
		panic("ops: runWide on an int8-row GEMM")
	}
	args := gemmArgs{lda: 2 * kpad, kp: g.kp, w: unsafe.Pointer(&g.w[0]), n: n, rq: &g.rq[0],
		ldo: n, off: int64(off), lo: int64(lo), hi: int64(hi)}
	for r := 0; r < rows; r += 4 {
		args.a = unsafe.Pointer(&a[r*kpad])
		args.rows = min(4, rows-r)
		args.out = &out[r*n]
		simdGemmKernel(&args)
	}
}

// run computes npix output pixels of a 3x3 depthwise convolution whose taps
// are all inside in: pixel i's taps start at in[i*step], rows rowLen apart.
func (d *simdDW) run(in []int8, rowLen, step, npix int, off, lo, hi int32, out []int8) {
	if npix <= 0 {
		return
	}
	c := d.c
	_ = in[(npix-1)*step+2*rowLen+3*c-1]
	_ = out[npix*c-1]
	args := dwArgs{in: &in[0], rowLen: rowLen, c: c, step: step, npix: npix, w: d.w, rq: &d.rq[0],
		out: &out[0], off: int64(off), lo: int64(lo), hi: int64(hi)}
	if d.wide {
		simdDWKernelWide(&args)
		return
	}
	simdDWKernel(&args)
}

// simdRQTable packs folded biases and multipliers into the kernels' table,
// padded with zeros to n rounded up to pad channels. It returns nil when a
// multiplier or shift is outside what the kernels handle (they then stay
// unused): the Go kernels' high multiply is exact only without the
// INT32_MIN*INT32_MIN saturation, and shifts are at most 31.
func simdRQTable(folded []int32, qs []chanQ, n, pad int) []int32 {
	np := (n + pad - 1) / pad * pad
	t := make([]int32, np/8*simdRQ)
	for c := 0; c < n; c++ {
		q := qs[c]
		if q.mult == math.MinInt32 || q.left > 31 || q.right > 31 {
			return nil
		}
		b := c / 8 * simdRQ
		i := c % 8
		t[b+i] = folded[c]
		t[b+8+i] = q.mult
		t[b+16+i] = int32(q.left)
		t[b+24+i] = int32(q.right)
		t[b+32+i] = int32(uint32(1)<<q.right - 1)
		t[b+40+i] = t[b+32+i] >> 1
		if i%2 == 1 {
			t[b+48+i-1] = q.mult // VPMULDQ reads the even lanes
		}
	}
	return t
}

// requantRef is the scalar requantization of one channel with the table's
// parameters, as requantRow computes it (used by tests).
func requantRef(acc int32, t []int32, c int, off, lo, hi int32) int8 {
	b, i := c/8*simdRQ, c%8
	q := chanQ{mult: t[b+8+i], left: uint8(t[b+16+i]), right: uint8(t[b+24+i])}
	if q.right > 0 {
		q.nudge = 1 << (q.right - 1)
		q.negAdj = -1
	}
	r := q.apply(acc+t[b+i]) + off
	return int8(min(max(r, lo), hi))
}
