package ops

import (
	"math/rand"
	"testing"
)

// person_detect's layers (MobileNet v1 0.25, 96x96x1 int8): a 3x3/2 depthwise
// with depth multiplier 8,
// then 13 depthwise 3x3 + pointwise 1x1 pairs, average pool and a 1x1 conv.
type pdLayer struct {
	dw           bool
	h, w, ic, oc int
	k, stride    int
}

var personDetectLayers = func() []pdLayer {
	ls := []pdLayer{{true, 96, 96, 1, 8, 3, 2}} // depthwise, depth multiplier 8
	h, c := 48, 8
	for _, b := range []struct{ s, oc int }{
		{1, 16}, {2, 32}, {1, 32}, {2, 64}, {1, 64}, {2, 128},
		{1, 128}, {1, 128}, {1, 128}, {1, 128}, {1, 128}, {2, 256}, {1, 256},
	} {
		ls = append(ls, pdLayer{true, h, h, c, c, 3, b.s})
		h = (h + b.s - 1) / b.s
		ls = append(ls, pdLayer{false, h, h, c, b.oc, 1, 1})
		c = b.oc
	}
	return ls
}()

type benchLayer struct {
	p      *ConvParams
	dw     bool
	in     []int8
	filter []int8
	bias   []int32
	out    []int8
}

func setupPersonDetect(b *testing.B) ([]benchLayer, []int8, []int32) {
	r := rand.New(rand.NewSource(1))
	var layers []benchLayer
	maxS8, maxS32 := 0, 0
	for _, l := range personDetectLayers {
		oh := (l.h + l.stride - 1) / l.stride
		q := &ConvQuant{InputScale: 0.02, InputZeroPoint: -1, FilterScales: randScales(r, l.oc), OutputScale: 0.05, OutputZeroPoint: -128, ActBits: 8}
		opts := ConvOptions{Padding: PaddingSame, StrideH: l.stride, StrideW: l.stride, Activation: ActRelu6}
		var p *ConvParams
		var err error
		bl := benchLayer{dw: l.dw, in: randI8(r, l.h*l.w*l.ic), out: make([]int8, oh*oh*l.oc), bias: make([]int32, l.oc)}
		if l.dw {
			bl.filter = randI8(r, l.k*l.k*l.oc)
			p, err = PrepareDepthwiseConv2D(opts, []int{1, l.h, l.w, l.ic}, []int{1, l.k, l.k, l.oc}, []int{1, oh, oh, l.oc}, q)
			if err == nil {
				p.PrecomputeDepthwiseInt8(bl.filter, bl.bias)
			}
		} else {
			bl.filter = randI8(r, l.k*l.k*l.ic*l.oc)
			p, err = PrepareConv2D(opts, []int{1, l.h, l.w, l.ic}, []int{l.oc, l.k, l.k, l.ic}, []int{1, oh, oh, l.oc}, q)
			if err == nil {
				p.PrecomputeInt8(bl.filter, bl.bias)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		bl.p = p
		maxS8 = max(maxS8, p.ScratchInt8)
		maxS32 = max(maxS32, p.ScratchInt32)
		layers = append(layers, bl)
	}
	return layers, make([]int8, maxS8), make([]int32, maxS32)
}

// BenchmarkPersonDetectConvStack runs all of person_detect's conv and
// depthwise layers once per iteration (the bulk of an Invoke).
func BenchmarkPersonDetectConvStack(b *testing.B) {
	layers, s8, s32 := setupPersonDetect(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range layers {
			if l.dw {
				DepthwiseConv2DInt8(l.p, l.in, l.filter, l.bias, l.out, s32)
			} else {
				Conv2DInt8(l.p, l.in, l.filter, l.bias, l.out, s8)
			}
		}
	}
}

// BenchmarkPersonDetectDepthwise and BenchmarkPersonDetectPointwise split
// the stack by kind.
func BenchmarkPersonDetectDepthwise(b *testing.B) { benchKind(b, true) }

func BenchmarkPersonDetectPointwise(b *testing.B) { benchKind(b, false) }

func benchKind(b *testing.B, dw bool) {
	layers, s8, s32 := setupPersonDetect(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range layers {
			if l.dw && dw {
				DepthwiseConv2DInt8(l.p, l.in, l.filter, l.bias, l.out, s32)
			} else if !l.dw && !dw {
				Conv2DInt8(l.p, l.in, l.filter, l.bias, l.out, s8)
			}
		}
	}
}

// BenchmarkPersonDetectConvStackParallel is the stack with one helper
// goroutine (SetWorkers(1)).
func BenchmarkPersonDetectConvStackParallel(b *testing.B) {
	SetWorkers(1)
	defer SetWorkers(0)
	BenchmarkPersonDetectConvStack(b)
}

// BenchmarkPersonDetectConvStackGo is the stack with the Go kernels only
// (weights packed with the SIMD kernels off), for the speed-up of the
// assembly kernels in the same run.
func BenchmarkPersonDetectConvStackGo(b *testing.B) {
	old := useSIMD
	useSIMD = false
	defer func() { useSIMD = old }()
	BenchmarkPersonDetectConvStack(b)
}

// BenchmarkPersonDetectConvStackBaseSIMD is the stack with the base SIMD
// kernels only (amd64: AVX2 without the AVX-512 ones; arm64: NEON without
// SDOT).
func BenchmarkPersonDetectConvStackBaseSIMD(b *testing.B) {
	old := useDot
	useDot = false
	defer func() { useDot = old }()
	BenchmarkPersonDetectConvStack(b)
}
