package ops

import "fmt"

// PrepareTransposeConv prepares TRANSPOSE_CONV. in is NHWC, filter
// [OutC, KH, KW, InC], out NHWC (its shape comes from the model's output
// tensor; the runtime output-shape input must agree with it). The padding
// is TFLM's: ComputePaddingHeightWidth applied to the output size. q is nil
// for float32; ActBits 8 or 16 otherwise (per-channel multipliers as conv).
func PrepareTransposeConv(opts ConvOptions, in, filter, out Shape, q *ConvQuant) (*ConvParams, error) {
	if err := checkShape("transpose_conv input", in, 4); err != nil {
		return nil, err
	}
	if err := checkShape("transpose_conv filter", filter, 4); err != nil {
		return nil, err
	}
	if err := checkShape("transpose_conv output", out, 4); err != nil {
		return nil, err
	}
	p := &ConvParams{
		Batches: in[0], InH: in[1], InW: in[2], InC: in[3],
		OutC: filter[0], KH: filter[1], KW: filter[2], FilterInC: filter[3],
		OutH: out[1], OutW: out[2],
	}
	p.StrideH, p.StrideW, _, _ = opts.norm()
	p.DilationH, p.DilationW = 1, 1
	if p.FilterInC != p.InC || out[3] != p.OutC || out[0] != p.Batches {
		return nil, fmt.Errorf("transpose_conv: input %v, filter %v and output %v disagree", in, filter, out)
	}
	if opts.Padding != PaddingSame && opts.Padding != PaddingValid {
		return nil, fmt.Errorf("transpose_conv: unknown padding %d", opts.Padding)
	}
	uh := ComputeOutSize(opts.Padding, p.OutH, p.KH, p.StrideH, 1)
	uw := ComputeOutSize(opts.Padding, p.OutW, p.KW, p.StrideW, 1)
	p.PadH, _ = ComputePadding(p.StrideH, 1, p.OutH, p.KH, uh)
	p.PadW, _ = ComputePadding(p.StrideW, 1, p.OutW, p.KW, uw)
	if err := p.quant(opts.Activation, q); err != nil {
		return nil, fmt.Errorf("transpose_conv: %w", err)
	}
	n := p.Batches * p.OutH * p.OutW * p.OutC
	switch {
	case q == nil:
		p.ScratchFloat32 = 0
	case q.ActBits == 8:
		p.ScratchInt32 = n
	default:
		p.ScratchInt64 = n
	}
	return p, nil
}

// transposeScatter accumulates in*filter into the output-shaped acc, as the
// reference: each input element scatters into the outputs it influences.
func transposeScatter[I int8 | int16, A int32 | int64](p *ConvParams, in []I, inOffset A, filter []int8, acc []A) {
	for i := range acc {
		acc[i] = 0
	}
	for b := 0; b < p.Batches; b++ {
		for iy := 0; iy < p.InH; iy++ {
			oy0 := iy*p.StrideH - p.PadH
			for ix := 0; ix < p.InW; ix++ {
				ox0 := ix*p.StrideW - p.PadW
				x := in[((b*p.InH+iy)*p.InW+ix)*p.InC:][:p.InC]
				for ky := 0; ky < p.KH; ky++ {
					oy := oy0 + ky
					if oy < 0 || oy >= p.OutH {
						continue
					}
					for kx := 0; kx < p.KW; kx++ {
						ox := ox0 + kx
						if ox < 0 || ox >= p.OutW {
							continue
						}
						o := acc[((b*p.OutH+oy)*p.OutW+ox)*p.OutC:][:p.OutC]
						for oc := range o {
							f := filter[((oc*p.KH+ky)*p.KW+kx)*p.InC:][:len(x)]
							var s A
							for ic, v := range x {
								s += (A(v) + inOffset) * A(f[ic])
							}
							o[oc] += s
						}
					}
				}
			}
		}
	}
}

// TransposeConvInt16 is TRANSPOSE_CONV with 16x8 quantization (int64 bias,
// may be nil), as TFLM's reference_integer_ops::TransposeConv for int16.
// scratch needs p.ScratchInt64 elements.
func TransposeConvInt16(p *ConvParams, in []int16, filter []int8, bias []int64, out []int16, scratch []int64) {
	acc := scratch[:p.Batches*p.OutH*p.OutW*p.OutC]
	transposeScatter(p, in, 0, filter, acc)
	for i, a := range acc {
		oc := i % p.OutC
		if bias != nil {
			a += bias[oc]
		}
		out[i] = int16(clamp32(MultiplyByQuantizedMultiplier64(a, p.OutMult[oc], p.OutShift[oc]), p.ActMin, p.ActMax))
	}
}

// TransposeConvInt8 is TRANSPOSE_CONV for int8 (int32 bias, may be nil), as
// TFLM's reference_integer_ops::TransposeConv. scratch needs p.ScratchInt32.
func TransposeConvInt8(p *ConvParams, in, filter []int8, bias []int32, out []int8, scratch []int32) {
	acc := scratch[:p.Batches*p.OutH*p.OutW*p.OutC]
	transposeScatter(p, in, p.InputOffset, filter, acc)
	for i, a := range acc {
		oc := i % p.OutC
		if bias != nil {
			a += bias[oc]
		}
		out[i] = requant8(a, p.OutMult[oc], p.OutShift[oc], p.OutputOffset, p.ActMin, p.ActMax)
	}
}

// TransposeConvFloat is TRANSPOSE_CONV in float32 (bias may be nil). It
// accumulates directly in out.
func TransposeConvFloat(p *ConvParams, in, filter, bias, out []float32) {
	n := p.Batches * p.OutH * p.OutW * p.OutC
	out = out[:n]
	for i := range out {
		out[i] = 0
	}
	for b := 0; b < p.Batches; b++ {
		for iy := 0; iy < p.InH; iy++ {
			for ix := 0; ix < p.InW; ix++ {
				for ic := 0; ic < p.InC; ic++ {
					v := in[((b*p.InH+iy)*p.InW+ix)*p.InC+ic]
					for ky := 0; ky < p.KH; ky++ {
						oy := iy*p.StrideH - p.PadH + ky
						if oy < 0 || oy >= p.OutH {
							continue
						}
						for kx := 0; kx < p.KW; kx++ {
							ox := ix*p.StrideW - p.PadW + kx
							if ox < 0 || ox >= p.OutW {
								continue
							}
							for oc := 0; oc < p.OutC; oc++ {
								out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC+oc] += v * filter[((oc*p.KH+ky)*p.KW+kx)*p.InC+ic]
							}
						}
					}
				}
			}
		}
	}
	for i := range out {
		v := out[i]
		if bias != nil {
			v += bias[i%p.OutC]
		}
		out[i] = clampF(v, p.FActMin, p.FActMax)
	}
}
