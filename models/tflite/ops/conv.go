package ops

import "fmt"

// ConvOptions are the CONV_2D / DEPTHWISE_CONV_2D / pooling options as read
// from the model. Zero strides or dilations are treated as 1.
type ConvOptions struct {
	Padding          Padding
	StrideH, StrideW int
	DilationH        int
	DilationW        int
	Activation       Activation
	DepthMultiplier  int // DEPTHWISE_CONV_2D only; 0 means derive from shapes
	FilterH, FilterW int // pooling only (conv filters carry their own size)
}

// ConvQuant holds the quantization of a quantized convolution's tensors.
// Scales are the model's float32 values; FilterScales has one entry
// (per-tensor) or one per output channel (per-channel). ActBits is the
// activation width: 8 for int8 models, 16 for 16x8 models.
type ConvQuant struct {
	InputScale      float32
	InputZeroPoint  int
	FilterScales    []float32
	OutputScale     float32
	OutputZeroPoint int
	ActBits         int
}

// ConvParams is what TFLM's conv Prepare computes, plus our precomputed
// data for the fast paths. Build it with PrepareConv2D (or
// PrepareDepthwiseConv2D / PrepareTransposeConv); read-only afterwards.
type ConvParams struct {
	Batches, InH, InW, InC int
	OutH, OutW, OutC       int
	KH, KW                 int // filter height and width
	FilterInC              int // filter's input depth (InC / groups)
	DepthMultiplier        int // depthwise only
	StrideH, StrideW       int
	DilationH, DilationW   int
	PadH, PadW             int // padding before the first row / column

	// Quantized only.
	InputOffset  int32   // -input zero point
	OutputOffset int32   // output zero point
	OutMult      []int32 // per output channel Q0.31 multiplier
	OutShift     []int   // per output channel shift (negative: right)
	ActMin       int32   // quantized activation clamp
	ActMax       int32

	// Float only.
	FActMin, FActMax float32

	// ScratchInt8 is the number of int8 scratch elements Conv2DInt8 needs
	// (im2col); 0 if none. ScratchInt64 is the number of int64 scratch
	// elements TransposeConvInt16 needs. ScratchFloat32 the float32 scratch
	// elements TransposeConvFloat needs; ScratchInt32 the int32 scratch
	// elements TransposeConvInt8 needs.
	ScratchInt8    int
	ScratchInt32   int
	ScratchInt64   int
	ScratchFloat32 int

	folded  []int32   // bias + InputOffset*sum(filter) per output channel
	packed  []int64   // filter packed by packTriples
	qs      []chanQ   // per-channel requantization
	im2col  bool      // int8 fast path needs an im2col pass
	tapOffF []int32   // depthwise: InputOffset*filter per tap and channel
	dwT     []int8    // depthwise 3x3: filter transposed to [channel][tap]
	sg      *simdGemm // SIMD GEMM weights (nil: use the Go kernel)
	sdw     *simdDW   // SIMD 3x3 depthwise weights (nil: use the Go kernel)
}

func (o *ConvOptions) norm() (sh, sw, dh, dw int) {
	sh, sw, dh, dw = o.StrideH, o.StrideW, o.DilationH, o.DilationW
	if sh <= 0 {
		sh = 1
	}
	if sw <= 0 {
		sw = 1
	}
	if dh <= 0 {
		dh = 1
	}
	if dw <= 0 {
		dw = 1
	}
	return
}

// PrepareConv2D prepares a CONV_2D. in is NHWC, filter OHWI, out NHWC. q is
// nil for float32, otherwise the tensors' quantization (int8 or 16x8).
func PrepareConv2D(opts ConvOptions, in, filter, out Shape, q *ConvQuant) (*ConvParams, error) {
	if err := checkShape("conv input", in, 4); err != nil {
		return nil, err
	}
	if err := checkShape("conv filter", filter, 4); err != nil {
		return nil, err
	}
	if err := checkShape("conv output", out, 4); err != nil {
		return nil, err
	}
	p := &ConvParams{
		Batches: in[0], InH: in[1], InW: in[2], InC: in[3],
		OutC: filter[0], KH: filter[1], KW: filter[2], FilterInC: filter[3],
	}
	p.StrideH, p.StrideW, p.DilationH, p.DilationW = opts.norm()
	if p.InC%p.FilterInC != 0 || p.OutC%(p.InC/p.FilterInC) != 0 {
		return nil, fmt.Errorf("conv: input depth %d incompatible with filter %v", p.InC, filter)
	}
	if err := p.spatial(opts.Padding, out); err != nil {
		return nil, err
	}
	if out[3] != p.OutC || out[0] != p.Batches {
		return nil, fmt.Errorf("conv: output shape %v does not match input %v and filter %v", out, in, filter)
	}
	if err := p.quant(opts.Activation, q); err != nil {
		return nil, err
	}
	if q != nil && q.ActBits == 8 && p.FilterInC == p.InC {
		p.im2col = !(p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0)
		if p.im2col {
			p.ScratchInt8 = p.OutH * p.OutW * p.KH * p.KW * p.InC
		}
	}
	return p, nil
}

// spatial computes output size and padding and checks them against out.
func (p *ConvParams) spatial(pad Padding, out Shape) error {
	if pad != PaddingSame && pad != PaddingValid {
		return fmt.Errorf("unknown padding %d", pad)
	}
	oh := ComputeOutSize(pad, p.InH, p.KH, p.StrideH, p.DilationH)
	ow := ComputeOutSize(pad, p.InW, p.KW, p.StrideW, p.DilationW)
	if oh != out[1] || ow != out[2] {
		return fmt.Errorf("output shape %v, but input %dx%d with filter %dx%d, strides %d,%d computes %dx%d",
			out, p.InH, p.InW, p.KH, p.KW, p.StrideH, p.StrideW, oh, ow)
	}
	p.OutH, p.OutW = oh, ow
	p.PadH, _ = ComputePadding(p.StrideH, p.DilationH, p.InH, p.KH, oh)
	p.PadW, _ = ComputePadding(p.StrideW, p.DilationW, p.InW, p.KW, ow)
	return nil
}

func (p *ConvParams) quant(act Activation, q *ConvQuant) error {
	var err error
	if q == nil {
		p.FActMin, p.FActMax, err = ActivationRangeFloat(act)
		return err
	}
	if q.ActBits != 8 && q.ActBits != 16 {
		return fmt.Errorf("unsupported activation width %d", q.ActBits)
	}
	if q.ActBits == 16 && (q.InputZeroPoint != 0 || q.OutputZeroPoint != 0) {
		return fmt.Errorf("16x8 quantization needs zero points 0, got input %d output %d", q.InputZeroPoint, q.OutputZeroPoint)
	}
	p.InputOffset = int32(-q.InputZeroPoint)
	p.OutputOffset = int32(q.OutputZeroPoint)
	p.OutMult, p.OutShift, err = perChannelMultipliers(q.InputScale, q.FilterScales, q.OutputScale, p.OutC)
	if err != nil {
		return err
	}
	p.ActMin, p.ActMax, err = ActivationRangeQuantized(act, q.ActBits, q.OutputScale, q.OutputZeroPoint)
	return err
}

// PrecomputeInt8 folds the input zero point into the bias for the int8 fast
// paths: folded[oc] = bias[oc] + InputOffset * sum(filter[oc]). Call it
// once at load time with the constant filter and bias (bias may be nil);
// the same filter must then be passed to Conv2DInt8. Without it Conv2DInt8
// runs the (slower) reference loop.
func (p *ConvParams) PrecomputeInt8(filter []int8, bias []int32) {
	k := p.KH * p.KW * p.FilterInC
	if p.FilterInC != p.InC || len(filter) < p.OutC*k {
		return
	}
	p.folded = make([]int32, p.OutC)
	for oc := range p.folded {
		var s int32
		for _, w := range filter[oc*k : oc*k+k] {
			s += int32(w)
		}
		p.folded[oc] = p.InputOffset * s
		if bias != nil {
			p.folded[oc] += bias[oc]
		}
	}
	p.packed = packTriples(filter, p.OutC, k)
	p.qs = makeChanQ(p.OutMult, p.OutShift)
	if int8Range(p.ActMin, p.ActMax) {
		p.sg = newSimdGemm(filter[:p.OutC*k], p.OutC, k, p.folded, p.qs)
	}
}

// requant8 is the int8 output stage of conv/depthwise/FC.
// int8Range reports whether an activation clamp lies in int8's range (the
// SIMD kernels' packing saturates to it; int8 ops always satisfy this).
func int8Range(lo, hi int32) bool { return lo >= -128 && hi <= 127 && lo <= hi }

func requant8(acc, mult int32, shift int, off, lo, hi int32) int8 {
	acc = MultiplyByQuantizedMultiplier(acc, mult, shift) + off
	if acc < lo {
		acc = lo
	} else if acc > hi {
		acc = hi
	}
	return int8(acc)
}

// Conv2DInt8 is CONV_2D with int8 input/filter/output, int32 bias (may be
// nil) and per-channel requantization, bit-exact with TFLM's
// reference_integer_ops::ConvPerChannel. scratch needs p.ScratchInt8
// elements when the fast path is on (after PrecomputeInt8). On the fast
// path the filter argument is not read: the packed copy made by
// PrecomputeInt8 is used.
func Conv2DInt8(p *ConvParams, in, filter []int8, bias []int32, out []int8, scratch []int8) {
	if p.folded == nil {
		conv2DInt8Ref(p, in, filter, bias, out)
		return
	}
	k := p.KH * p.KW * p.InC
	rows := p.OutH * p.OutW
	inSize := p.InH * p.InW * p.InC
	outSize := rows * p.OutC
	for b := 0; b < p.Batches; b++ {
		src := in[b*inSize : (b+1)*inSize]
		if p.im2col {
			buf := scratch[:rows*k]
			im2colInt8(p, src, buf)
			src = buf
		}
		runSplit(task{kind: taskGemm, a: src, k: k, n: p.OutC, pk: p.packed, sg: p.sg, folded: p.folded, qs: p.qs,
			off: p.OutputOffset, lo: p.ActMin, hi: p.ActMax, out: out[b*outSize : (b+1)*outSize]},
			rows, rows*k*p.OutC, 2, nil)
	}
}

// im2colInt8 lays out, for each output position, the KH*KW*InC input
// patch; positions outside the image hold the input zero point, which
// contributes nothing once the zero-point term is folded into the bias.
func im2colInt8(p *ConvParams, in []int8, buf []int8) {
	c := p.InC
	zp := int8(-p.InputOffset)
	rowLen := p.KW * c
	i := 0
	for oy := 0; oy < p.OutH; oy++ {
		iy0 := oy*p.StrideH - p.PadH
		for ox := 0; ox < p.OutW; ox++ {
			ix0 := ox*p.StrideW - p.PadW
			for ky := 0; ky < p.KH; ky++ {
				iy := iy0 + ky*p.DilationH
				dst := buf[i : i+rowLen]
				i += rowLen
				if iy < 0 || iy >= p.InH {
					for j := range dst {
						dst[j] = zp
					}
					continue
				}
				row := in[iy*p.InW*c : (iy+1)*p.InW*c]
				if p.DilationW == 1 && ix0 >= 0 && ix0+p.KW <= p.InW {
					copy(dst, row[ix0*c:(ix0+p.KW)*c])
					continue
				}
				for kx := 0; kx < p.KW; kx++ {
					ix := ix0 + kx*p.DilationW
					d := dst[kx*c : kx*c+c]
					if ix < 0 || ix >= p.InW {
						for j := range d {
							d[j] = zp
						}
					} else {
						copy(d, row[ix*c:ix*c+c])
					}
				}
			}
		}
	}
}

// conv2DInt8Ref is the reference loop (also handles grouped convolution).
func conv2DInt8Ref(p *ConvParams, in, filter []int8, bias []int32, out []int8) {
	groups := p.InC / p.FilterInC
	perGroup := p.OutC / groups
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				ix0 := ox*p.StrideW - p.PadW
				o := out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC:][:p.OutC]
				for oc := range o {
					g := oc / perGroup
					var acc int32
					for ky := 0; ky < p.KH; ky++ {
						iy := iy0 + p.DilationH*ky
						if iy < 0 || iy >= p.InH {
							continue
						}
						for kx := 0; kx < p.KW; kx++ {
							ix := ix0 + p.DilationW*kx
							if ix < 0 || ix >= p.InW {
								continue
							}
							x := in[((b*p.InH+iy)*p.InW+ix)*p.InC+g*p.FilterInC:][:p.FilterInC]
							f := filter[((oc*p.KH+ky)*p.KW+kx)*p.FilterInC:][:len(x)]
							for i, v := range x {
								acc += int32(f[i]) * (int32(v) + p.InputOffset)
							}
						}
					}
					if bias != nil {
						acc += bias[oc]
					}
					o[oc] = requant8(acc, p.OutMult[oc], p.OutShift[oc], p.OutputOffset, p.ActMin, p.ActMax)
				}
			}
		}
	}
}

// Conv2DInt16 is CONV_2D with 16x8 quantization: int16 input/output, int8
// filter, int64 bias (may be nil; convert an int32 bias to int64 at load
// time), int64 accumulation and the 64-bit MultiplyByQuantizedMultiplier,
// as TFLM's reference_integer_ops::ConvPerChannel for int16.
func Conv2DInt16(p *ConvParams, in []int16, filter []int8, bias []int64, out []int16) {
	groups := p.InC / p.FilterInC
	perGroup := p.OutC / groups
	rowK := p.KW * p.FilterInC
	// Whole filter rows as one dot product when the taps of a row are
	// contiguous in the input (no grouping, no horizontal dilation) and the
	// int32 partial sums cannot overflow (rowK products of at most 2^22).
	contiguous := groups == 1 && p.DilationW == 1 && rowK < 512
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				ix0 := ox*p.StrideW - p.PadW
				o := out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC:][:p.OutC]
				inside := contiguous && ix0 >= 0 && ix0+p.KW <= p.InW
				for oc := range o {
					var acc int64
					if inside {
						for ky := 0; ky < p.KH; ky++ {
							iy := iy0 + p.DilationH*ky
							if iy < 0 || iy >= p.InH {
								continue
							}
							x := in[((b*p.InH+iy)*p.InW+ix0)*p.InC:][:rowK]
							f := filter[(oc*p.KH+ky)*rowK:][:rowK]
							acc += int64(dotInt16x8(x, f))
						}
					} else {
						g := oc / perGroup
						for ky := 0; ky < p.KH; ky++ {
							iy := iy0 + p.DilationH*ky
							if iy < 0 || iy >= p.InH {
								continue
							}
							for kx := 0; kx < p.KW; kx++ {
								ix := ix0 + p.DilationW*kx
								if ix < 0 || ix >= p.InW {
									continue
								}
								x := in[((b*p.InH+iy)*p.InW+ix)*p.InC+g*p.FilterInC:][:p.FilterInC]
								f := filter[((oc*p.KH+ky)*p.KW+kx)*p.FilterInC:][:len(x)]
								for i, v := range x {
									acc += int64(f[i]) * int64(v)
								}
							}
						}
					}
					if bias != nil {
						acc += bias[oc]
					}
					r := clamp32(MultiplyByQuantizedMultiplier64(acc, p.OutMult[oc], p.OutShift[oc]), p.ActMin, p.ActMax)
					o[oc] = int16(r)
				}
			}
		}
	}
}

// dotInt16x8 is sum(x[i]*f[i]) in int32 (callers keep len < 512).
func dotInt16x8(x []int16, f []int8) int32 {
	f = f[:len(x)]
	var s0, s1 int32
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s0 += int32(x[i]) * int32(f[i])
		s1 += int32(x[i+1]) * int32(f[i+1])
	}
	if i < len(x) {
		s0 += int32(x[i]) * int32(f[i])
	}
	return s0 + s1
}

// Conv2DFloat is CONV_2D in float32 (bias may be nil), accumulating in the
// reference order (ky, kx, ic) then adding the bias.
func Conv2DFloat(p *ConvParams, in, filter, bias, out []float32) {
	groups := p.InC / p.FilterInC
	perGroup := p.OutC / groups
	fc := p.FilterInC
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				ix0 := ox*p.StrideW - p.PadW
				o := out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC:][:p.OutC]
				oc := 0
				if groups == 1 {
					// Four output channels at a time, each summed in the
					// reference order (ky, kx, ic): results are unchanged.
					for ; oc+4 <= p.OutC; oc += 4 {
						var a0, a1, a2, a3 float32
						for ky := 0; ky < p.KH; ky++ {
							iy := iy0 + p.DilationH*ky
							if iy < 0 || iy >= p.InH {
								continue
							}
							for kx := 0; kx < p.KW; kx++ {
								ix := ix0 + p.DilationW*kx
								if ix < 0 || ix >= p.InW {
									continue
								}
								x := in[((b*p.InH+iy)*p.InW+ix)*fc:][:fc]
								t := (ky*p.KW + kx) * fc
								step := p.KH * p.KW * fc
								f0 := filter[oc*step+t:][:fc]
								f1 := filter[(oc+1)*step+t:][:fc]
								f2 := filter[(oc+2)*step+t:][:fc]
								f3 := filter[(oc+3)*step+t:][:fc]
								a0, a1, a2, a3 = dot4f(x, f0, f1, f2, f3, a0, a1, a2, a3)
							}
						}
						if bias != nil {
							a0, a1, a2, a3 = a0+bias[oc], a1+bias[oc+1], a2+bias[oc+2], a3+bias[oc+3]
						}
						o[oc] = clampF(a0, p.FActMin, p.FActMax)
						o[oc+1] = clampF(a1, p.FActMin, p.FActMax)
						o[oc+2] = clampF(a2, p.FActMin, p.FActMax)
						o[oc+3] = clampF(a3, p.FActMin, p.FActMax)
					}
				}
				for ; oc < p.OutC; oc++ {
					g := oc / perGroup
					var acc float32
					for ky := 0; ky < p.KH; ky++ {
						iy := iy0 + p.DilationH*ky
						if iy < 0 || iy >= p.InH {
							continue
						}
						for kx := 0; kx < p.KW; kx++ {
							ix := ix0 + p.DilationW*kx
							if ix < 0 || ix >= p.InW {
								continue
							}
							x := in[((b*p.InH+iy)*p.InW+ix)*p.InC+g*fc:][:fc]
							f := filter[((oc*p.KH+ky)*p.KW+kx)*fc:][:len(x)]
							for i, v := range x {
								acc += v * f[i]
							}
						}
					}
					if bias != nil {
						acc += bias[oc]
					}
					o[oc] = clampF(acc, p.FActMin, p.FActMax)
				}
			}
		}
	}
}

// dot4f adds x·f0 .. x·f3 to a0 .. a3, each in index order.
func dot4f(x, f0, f1, f2, f3 []float32, a0, a1, a2, a3 float32) (float32, float32, float32, float32) {
	f0, f1, f2, f3 = f0[:len(x)], f1[:len(x)], f2[:len(x)], f3[:len(x)]
	for i, v := range x {
		a0 += v * f0[i]
		a1 += v * f1[i]
		a2 += v * f2[i]
		a3 += v * f3[i]
	}
	return a0, a1, a2, a3
}
