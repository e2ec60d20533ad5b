//go:build amd64 && !purego

package ops

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useSIMD enables the AVX2 kernels; it is read when weights are packed
// (Precompute), so tests may clear it to build Go-only params.
var useSIMD = cpu.X86.HasAVX2

// useDot selects the AVX-512 kernels: the VNNI GEMM (VPDPBUSD on 512-bit
// vectors) for CONV_2D and FULLY_CONNECTED and the 512-bit 3x3 depthwise
// kernel; x/sys/cpu reports these features only when the OS saves the
// AVX-512 state.
var (
	haveDot = cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL
	useDot  = haveDot
)

//go:noescape
func flipAVX2(dst *uint8, src *int8, n int)

//go:noescape
func simdGemmKernel(args *gemmArgs)

//go:noescape
func simdGemmKernel512(args *gemmArgs)

//go:noescape
func simdDWKernel512(args *dwArgs)

//go:noescape
func simdDWKernel(args *dwArgs)

//go:noescape
func widenAVX2(dst *int16, src *int8, n int)

// newSimdGemm packs an n x k int8 weight matrix for the AVX2 GEMM: blocks
// of 16 output channels; in each, per pair of k, 16 channels x 2 int16.
// With AVX-512 VNNI (useDot), per quad of k, 16 channels x 4 int8 instead; the
// kernel multiplies them by the inputs plus 128 as uint8, so the folded
// bias drops 128*sum(w) (int32 arithmetic wraps exactly as the sums do).
func newSimdGemm(w []int8, n, k int, folded []int32, qs []chanQ) *simdGemm {
	return newSimdGemmMode(w, n, k, folded, qs, useDot)
}

// newSimdGemmWide is newSimdGemm for callers that feed int16 rows
// (runWide): never the VNNI layout.
func newSimdGemmWide(w []int8, n, k int, folded []int32, qs []chanQ) *simdGemm {
	return newSimdGemmMode(w, n, k, folded, qs, false)
}

func newSimdGemmMode(w []int8, n, k int, folded []int32, qs []chanQ, vnni bool) *simdGemm {
	if !useSIMD || k < 1 || k > simdGemmMaxK || n < 1 {
		return nil
	}
	nb := (n + 15) / 16
	if vnni {
		f := make([]int32, n)
		for c := range f {
			var s int32
			for _, v := range w[c*k : c*k+k] {
				s += int32(v)
			}
			f[c] = folded[c] - 128*s
		}
		rq := simdRQTable(f, qs, n, 16)
		if rq == nil {
			return nil
		}
		rq = regroup16(rq)
		kq := (k + 3) / 4
		pk := make([]int8, nb*kq*64)
		for c := 0; c < n; c++ {
			b, cc := c/16, c%16
			for i := 0; i < k; i++ {
				pk[((b*kq+i/4)*16+cc)*4+i%4] = w[c*k+i]
			}
		}
		return &simdGemm{n: n, k: k, kp: kq, kpad: 4 * kq, w8: pk, rq: rq, rows8: true}
	}
	rq := simdRQTable(folded, qs, n, 16)
	if rq == nil {
		return nil
	}
	kp := (k + 1) / 2
	pk := make([]int16, nb*kp*32)
	for c := 0; c < n; c++ {
		b, cc := c/16, c%16
		for i := 0; i < k; i++ {
			pk[((b*kp+i/2)*16+cc)*2+i%2] = int16(w[c*k+i])
		}
	}
	return &simdGemm{n: n, k: k, kp: kp, kpad: 2 * kp, w: pk, rq: rq}
}

// regroup16 turns a requantization table of 8-channel blocks (an even
// number of them) into 16-channel blocks: each of its 7 rows of 8 becomes
// a row of 16, for the 512-bit kernel.
func regroup16(t []int32) []int32 {
	out := make([]int32, len(t))
	for b := 0; b < len(t)/(2*simdRQ); b++ {
		for row := 0; row < simdRQ/8; row++ {
			for h := 0; h < 2; h++ {
				copy(out[b*2*simdRQ+row*16+h*8:][:8], t[(2*b+h)*simdRQ+row*8:][:8])
			}
		}
	}
	return out
}

// simdGemmKernelInt8 is the kernel for int8-row (VNNI) GEMMs.
func simdGemmKernelInt8(args *gemmArgs) { simdGemmKernel512(args) }

// prepRow8 prepares an input row for the VNNI kernel: x+128 as uint8.
func prepRow8(dst []uint8, src []int8) { flip(dst, src) }

// flip writes src+128 as uint8 (src^0x80) into dst (same length).
func flip(dst []uint8, src []int8) {
	dst = dst[:len(src)]
	n := len(src) &^ 31
	if n > 0 {
		flipAVX2(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = uint8(src[i]) ^ 0x80
	}
}

// widen sign-extends src into dst (same length).
func widen(dst []int16, src []int8) {
	dst = dst[:len(src)]
	n := len(src) &^ 15
	if n > 0 {
		widenAVX2(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = int16(src[i])
	}
}

// newSimdDW packs a 3x3 depthwise filter ([9][c], depth multiplier 1) for
// the AVX2 kernel: per block of 8 channels, 9 taps of 8 int32; or, with
// AVX-512 (useDot) and c a multiple of 16, for the 512-bit kernel: per
// block of 16 channels, 9 taps of 16 int32 and the 16-channel table.
func newSimdDW(filter []int8, c int, folded []int32, qs []chanQ) *simdDW {
	if !useSIMD || c%8 != 0 || c == 0 || c > dwPatchMaxC {
		return nil
	}
	rq := simdRQTable(folded, qs, c, 8)
	if rq == nil {
		return nil
	}
	bw := 8
	wide := useDot && c%16 == 0
	if wide {
		bw = 16
		rq = regroup16(rq)
	}
	w := make([]int32, 9*c)
	for t := 0; t < 9; t++ {
		for ch := 0; ch < c; ch++ {
			w[(ch/bw*9+t)*bw+ch%bw] = int32(filter[t*c+ch])
		}
	}
	return &simdDW{c: c, w: unsafe.Pointer(&w[0]), w32: w, rq: rq, wide: wide}
}

// simdDWKernelWide is the 512-bit depthwise kernel.
func simdDWKernelWide(args *dwArgs) { simdDWKernel512(args) }
