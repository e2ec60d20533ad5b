//go:build (!amd64 && !arm64) || purego

package ops

// useSIMD is false: this build has no assembly kernels, and the
// constructors below return nil so that the Go kernels run.
var useSIMD = false

// haveDot and useDot: no int8-row kernels in this build.
var haveDot, useDot = false, false

func newSimdGemm(w []int8, n, k int, folded []int32, qs []chanQ) *simdGemm { return nil }

func newSimdGemmWide(w []int8, n, k int, folded []int32, qs []chanQ) *simdGemm { return nil }

func newSimdDW(filter []int8, c int, folded []int32, qs []chanQ) *simdDW { return nil }

func simdGemmKernel(args *gemmArgs) { panic("ops: no SIMD GEMM in this build") }

func simdDWKernel(args *dwArgs) { panic("ops: no SIMD depthwise in this build") }

func widen(dst []int16, src []int8) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = int16(v)
	}
}

// simdGemmKernelInt8 is never called in this build (no int8-row layout).
func simdGemmKernelInt8(args *gemmArgs) { panic("ops: no int8-row kernel in this build") }

// simdDWKernelWide is never called in this build (no wide layout).
func simdDWKernelWide(args *dwArgs) { panic("ops: no wide depthwise kernel in this build") }

// prepRow8 is never called in this build (no int8-row layout).
func prepRow8(dst []uint8, src []int8) { panic("ops: no int8-row kernel in this build") }
