//go:build arm64 && !purego

package ops

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The NEON instructions the Go assembler lacks are encoded by llvm-mc:
//
//go:generate sh -c "python3 gen_simd_arm64.py > simd_arm64.s"

// useSIMD enables the NEON kernels (Advanced SIMD is part of every arm64
// CPU; the kernels use no optional feature such as the dot product). It is
// read when weights are packed (Precompute), so tests may clear it to
// build Go-only params.
var useSIMD = true

// haveDot: the CPU has the ARMv8.2 dot product (SDOT), which the int8-row
// GEMM kernel uses; useDot selects it (tests clear it to cover the base
// NEON kernel). Many gateway cores (Cortex-A53, A72) lack it.
var (
	haveDot = cpu.ARM64.HasASIMDDP
	useDot  = haveDot
)

//go:noescape
func simdGemmKernelDot(args *gemmArgs)

//go:noescape
func simdGemmKernel(args *gemmArgs)

//go:noescape
func simdDWKernel(args *dwArgs)

//go:noescape
func widenNEON(dst *int16, src *int8, n int)

// newSimdGemm packs an n x k int8 weight matrix for the NEON GEMM: blocks
// of 8 output channels; in each, for every k (rounded up to a multiple of
// 8), the 8 channels' weights as int16. With the dot product (useDot), for
// the SDOT kernel instead: per block of 8 channels and quad of k (k rounded
// up to a multiple of 16), 8 x 4 int8.
func newSimdGemm(w []int8, n, k int, folded []int32, qs []chanQ) *simdGemm {
	return newSimdGemmMode(w, n, k, folded, qs, useDot)
}

func newSimdGemmMode(w []int8, n, k int, folded []int32, qs []chanQ, dot bool) *simdGemm {
	if !useSIMD || k < 1 || k > simdGemmMaxK || n < 1 {
		return nil
	}
	rq := simdRQTable(folded, qs, n, 8)
	if rq == nil {
		return nil
	}
	nb := (n + 7) / 8
	if dot {
		kpad := (k + 15) &^ 15
		pk := make([]int8, nb*kpad*8)
		for c := 0; c < n; c++ {
			b, cc := c/8, c%8
			for i := 0; i < k; i++ {
				pk[((b*(kpad/4)+i/4)*8+cc)*4+i%4] = w[c*k+i]
			}
		}
		return &simdGemm{n: n, k: k, kp: kpad / 16, kpad: kpad, w8: pk, rq: rq, rows8: true}
	}
	kpad := (k + 7) &^ 7
	pk := make([]int16, nb*kpad*8)
	for c := 0; c < n; c++ {
		b, cc := c/8, c%8
		for i := 0; i < k; i++ {
			pk[(b*kpad+i)*8+cc] = int16(w[c*k+i])
		}
	}
	return &simdGemm{n: n, k: k, kp: kpad / 8, kpad: kpad, w: pk, rq: rq}
}

// newSimdGemmWide is newSimdGemm for callers that feed int16 rows
// (runWide): never the SDOT layout.
func newSimdGemmWide(w []int8, n, k int, folded []int32, qs []chanQ) *simdGemm {
	return newSimdGemmMode(w, n, k, folded, qs, false)
}

// widen sign-extends src into dst (same length).
func widen(dst []int16, src []int8) {
	dst = dst[:len(src)]
	n := len(src) &^ 15
	if n > 0 {
		widenNEON(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = int16(src[i])
	}
}

// newSimdDW packs a 3x3 depthwise filter ([9][c], depth multiplier 1) for
// the NEON kernel: per block of 8 channels, 9 taps of 8 int16.
func newSimdDW(filter []int8, c int, folded []int32, qs []chanQ) *simdDW {
	if !useSIMD || c%8 != 0 || c == 0 || c > dwPatchMaxC {
		return nil
	}
	rq := simdRQTable(folded, qs, c, 8)
	if rq == nil {
		return nil
	}
	w := make([]int16, 9*c)
	for t := 0; t < 9; t++ {
		for ch := 0; ch < c; ch++ {
			w[(ch/8*9+t)*8+ch%8] = int16(filter[t*c+ch])
		}
	}
	return &simdDW{c: c, w: unsafe.Pointer(&w[0]), w16: w, rq: rq}
}

// simdGemmKernelInt8 is the kernel for int8-row (SDOT) GEMMs.
func simdGemmKernelInt8(args *gemmArgs) { simdGemmKernelDot(args) }

// prepRow8 prepares an input row for the SDOT kernel: a copy.
func prepRow8(dst []uint8, src []int8) {
	copy(dst[:len(src)], unsafe.Slice((*uint8)(unsafe.Pointer(unsafe.SliceData(src))), len(src)))
}

// simdDWKernelWide is never called in this build (no wide layout).
func simdDWKernelWide(args *dwArgs) { panic("ops: no wide depthwise kernel in this build") }
