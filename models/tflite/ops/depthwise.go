package ops

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// PrepareDepthwiseConv2D prepares a DEPTHWISE_CONV_2D. in is NHWC, filter
// [1, KH, KW, InC*DepthMultiplier], out NHWC. q is nil for float32.
func PrepareDepthwiseConv2D(opts ConvOptions, in, filter, out Shape, q *ConvQuant) (*ConvParams, error) {
	if err := checkShape("depthwise input", in, 4); err != nil {
		return nil, err
	}
	if err := checkShape("depthwise filter", filter, 4); err != nil {
		return nil, err
	}
	if err := checkShape("depthwise output", out, 4); err != nil {
		return nil, err
	}
	p := &ConvParams{
		Batches: in[0], InH: in[1], InW: in[2], InC: in[3],
		KH: filter[1], KW: filter[2], OutC: filter[3], FilterInC: 1,
	}
	p.StrideH, p.StrideW, p.DilationH, p.DilationW = opts.norm()
	if filter[0] != 1 || p.OutC%p.InC != 0 {
		return nil, fmt.Errorf("depthwise: filter %v incompatible with input depth %d", filter, p.InC)
	}
	p.DepthMultiplier = p.OutC / p.InC
	if opts.DepthMultiplier > 0 && opts.DepthMultiplier != p.DepthMultiplier {
		return nil, fmt.Errorf("depthwise: depth_multiplier %d but filter %v and input depth %d", opts.DepthMultiplier, filter, p.InC)
	}
	if err := p.spatial(opts.Padding, out); err != nil {
		return nil, err
	}
	if out[3] != p.OutC || out[0] != p.Batches {
		return nil, fmt.Errorf("depthwise: output shape %v does not match input %v and filter %v", out, in, filter)
	}
	if err := p.quant(opts.Activation, q); err != nil {
		return nil, err
	}
	if q != nil && q.ActBits == 8 {
		p.ScratchInt32 = p.OutC
	}
	return p, nil
}

// PrecomputeDepthwiseInt8 prepares the int8 depthwise fast path with the
// constant filter and bias (bias may be nil): it folds InputOffset*sum(filter)
// into the bias and keeps InputOffset*filter per tap for the border pixels.
func (p *ConvParams) PrecomputeDepthwiseInt8(filter []int8, bias []int32) {
	n := p.KH * p.KW * p.OutC
	if len(filter) < n {
		return
	}
	p.folded = make([]int32, p.OutC)
	p.tapOffF = make([]int32, n)
	for t := 0; t < p.KH*p.KW; t++ {
		for oc := 0; oc < p.OutC; oc++ {
			v := p.InputOffset * int32(filter[t*p.OutC+oc])
			p.tapOffF[t*p.OutC+oc] = v
			p.folded[oc] += v
		}
	}
	if bias != nil {
		for oc := range p.folded {
			p.folded[oc] += bias[oc]
		}
	}
	p.qs = makeChanQ(p.OutMult, p.OutShift)
	taps := p.KH * p.KW
	if p.InC == 1 && taps <= maxPatch {
		// One input channel: a convolution with OutC filters of taps
		// weights each; run it as a GEMM over gathered patches.
		ft := make([]int8, p.OutC*taps)
		for t := 0; t < taps; t++ {
			for oc := 0; oc < p.OutC; oc++ {
				ft[oc*taps+t] = filter[t*p.OutC+oc]
			}
		}
		p.packed = packTriples(ft, p.OutC, taps)
		if int8Range(p.ActMin, p.ActMax) {
			p.sg = newSimdGemmWide(ft, p.OutC, taps, p.folded, p.qs)
		}
	}
	if p.KH == 3 && p.KW == 3 && p.DilationH == 1 && p.DilationW == 1 {
		p.dwT = make([]int8, 9*p.OutC)
		for t := 0; t < 9; t++ {
			for oc := 0; oc < p.OutC; oc++ {
				p.dwT[oc*9+t] = filter[t*p.OutC+oc]
			}
		}
		// Depth multiplier 1, or one input channel (run as depth multiplier
		// 1 over the input repeated OutC times, see depthwisePaddedRows).
		if (p.DepthMultiplier == 1 || p.InC == 1) && int8Range(p.ActMin, p.ActMax) {
			p.sdw = newSimdDW(filter[:9*p.OutC], p.OutC, p.folded, p.qs)
		}
	}
}

// DepthwiseConv2DInt8 is DEPTHWISE_CONV_2D with int8 input/filter/output,
// int32 bias (may be nil) and per-channel requantization, bit-exact with
// TFLM's reference_integer_ops::DepthwiseConvPerChannel. scratch needs
// p.ScratchInt32 elements on the fast path (after PrecomputeDepthwiseInt8).
func DepthwiseConv2DInt8(p *ConvParams, in, filter []int8, bias []int32, out []int8, scratch []int32) {
	if p.folded == nil {
		depthwiseInt8Ref(p, in, filter, bias, out)
		return
	}
	if p.packed != nil && (p.sdw == nil || ((p.OutW-1)*p.StrideW+3)*p.OutC > dwPadRowLimit) {
		// One input channel, unless the SIMD depthwise kernel takes it
		// (padded rows of the repeated input fit its buffer).
		depthwiseOneChannel(p, in, out)
		return
	}
	acc := scratch[:p.OutC]
	macs := p.OutH * p.OutW * p.OutC * p.KH * p.KW
	for b := 0; b < p.Batches; b++ {
		if p.OutC > depthwiseParallelMaxC {
			depthwiseRows(p, in, filter, out, acc, b, 0, p.OutH)
			continue
		}
		runSplit(task{kind: taskDepthwise, p: p, a: in, filter: filter, out: out, b: b}, p.OutH, macs, 1, acc)
	}
}

// depthwiseRows computes output rows [oy0, oy1) of batch b on the fast
// path; acc holds OutC int32s.
func depthwiseRows(p *ConvParams, in, filter, out []int8, acc []int32, b, oy0, oy1 int) {
	c := p.OutC
	off, lo, hi := p.OutputOffset, p.ActMin, p.ActMax
	rowLen := p.InW * p.InC
	inB := in[b*p.InH*rowLen : (b+1)*p.InH*rowLen]
	if p.sdw != nil {
		depthwiseRowsSIMD(p, inB, out, b, oy0, oy1)
		return
	}
	fast3 := p.dwT != nil && p.DepthMultiplier == 1
	var patch [3 * 3 * dwPatchMaxC]int8 // a border pixel's taps, zero-point padded
	for oy := oy0; oy < oy1; oy++ {
		iy0 := oy*p.StrideH - p.PadH
		for ox := 0; ox < p.OutW; ox++ {
			ix0 := ox*p.StrideW - p.PadW
			switch {
			case fast3 && iy0 >= 0 && iy0+3 <= p.InH && ix0 >= 0 && ix0+3 <= p.InW:
				s0 := iy0*rowLen + ix0*c
				dw3x3(inB[s0:s0+3*c], inB[s0+rowLen:s0+rowLen+3*c], inB[s0+2*rowLen:s0+2*rowLen+3*c], p.dwT, acc)
			case fast3 && c <= dwPatchMaxC:
				// Taps outside the image hold the input zero point, which
				// contributes nothing once folded: the reference skips them.
				pt := patch[:9*c]
				zp := int8(-p.InputOffset)
				for ky := 0; ky < 3; ky++ {
					iy := iy0 + ky
					for kx := 0; kx < 3; kx++ {
						ix := ix0 + kx
						d := pt[(ky*3+kx)*c : (ky*3+kx+1)*c]
						if iy < 0 || iy >= p.InH || ix < 0 || ix >= p.InW {
							for i := range d {
								d[i] = zp
							}
						} else {
							copy(d, inB[iy*rowLen+ix*c:iy*rowLen+ix*c+c])
						}
					}
				}
				dw3x3(pt[:3*c], pt[3*c:6*c], pt[6*c:9*c], p.dwT, acc)
			default:
				dwGeneric(p, inB, filter, iy0, ix0, acc)
			}
			o := ((b*p.OutH+oy)*p.OutW + ox) * c
			requantRow(acc, p.folded, p.qs, off, lo, hi, out[o:o+c])
		}
	}
}

// depthwiseRowsSIMD is depthwiseRows for a 3x3 depth-multiplier-1
// convolution with SIMD weights. For each output row it lays out the three
// input rows it reads, padded with the input zero point on every side the
// image lacks (exact with the folded bias: the zero point contributes
// nothing, as the reference skips those taps), and runs the kernel over the
// whole row at once. Rows too wide for the stack buffer go pixel by pixel.
func depthwiseRowsSIMD(p *ConvParams, inB, out []int8, b, oy0, oy1 int) {
	c := p.OutC
	if p.OutW <= 0 {
		return
	}
	wp := (p.OutW-1)*p.StrideW + 3 // padded row width, in pixels
	if wp*c > dwPadRowLimit {
		depthwisePixelsSIMD(p, inB, out, b, oy0, oy1)
		return
	}
	if 3*wp*c <= simdSmallBuf*4 {
		var rows [simdSmallBuf * 4]int8
		depthwisePaddedRows(p, rows[:3*wp*c], inB, out, b, oy0, oy1)
		return
	}
	var rows [3 * dwPadRowMax]int8
	depthwisePaddedRows(p, rows[:3*wp*c], inB, out, b, oy0, oy1)
}

// depthwisePaddedRows runs depthwiseRowsSIMD with pr (3 padded rows) as
// its buffer.
func depthwisePaddedRows(p *ConvParams, pr []int8, inB, out []int8, b, oy0, oy1 int) {
	c := p.OutC
	wp := len(pr) / (3 * c)
	d := p.sdw
	off, lo, hi := p.OutputOffset, p.ActMin, p.ActMax
	rowLen := p.InW * p.InC
	zp := int8(-p.InputOffset)
	if p.InC == 1 && c > 1 {
		depthwiseRepeatedRows(p, pr, inB, out, b, oy0, oy1)
		return
	}
	// Columns of the padded row: input columns -PadW .. wp-1-PadW.
	left := min(p.PadW, wp)              // zero-point columns on the left
	mid := max(0, min(p.InW, wp-p.PadW)) // image columns copied
	for oy := oy0; oy < oy1; oy++ {
		iy0 := oy*p.StrideH - p.PadH
		for ky := 0; ky < 3; ky++ {
			dst := pr[ky*wp*c : (ky+1)*wp*c]
			iy := iy0 + ky
			if iy < 0 || iy >= p.InH {
				fillI8(dst, zp)
				continue
			}
			fillI8(dst[:left*c], zp)
			copy(dst[left*c:(left+mid)*c], inB[iy*rowLen:iy*rowLen+mid*c])
			fillI8(dst[(left+mid)*c:], zp)
		}
		o := ((b*p.OutH + oy) * p.OutW) * c
		d.run(pr, wp*c, p.StrideW*c, p.OutW, off, lo, hi, out[o:o+p.OutW*c])
	}
}

// depthwiseRepeatedRows is depthwisePaddedRows for one input channel and
// OutC outputs: each padded row holds every input value repeated OutC
// times, so that output channel oc reads its input at channel oc, as a
// depth-multiplier-1 convolution does.
func depthwiseRepeatedRows(p *ConvParams, pr []int8, inB, out []int8, b, oy0, oy1 int) {
	c := p.OutC
	wp := len(pr) / (3 * c)
	d := p.sdw
	zp := int8(-p.InputOffset)
	bs := unsafe.Slice((*byte)(unsafe.Pointer(&pr[0])), len(pr))
	for oy := oy0; oy < oy1; oy++ {
		iy0 := oy*p.StrideH - p.PadH
		for ky := 0; ky < 3; ky++ {
			dst := pr[ky*wp*c : (ky+1)*wp*c]
			iy := iy0 + ky
			if iy < 0 || iy >= p.InH {
				fillI8(dst, zp)
				continue
			}
			row := inB[iy*p.InW : (iy+1)*p.InW]
			for x := 0; x < wp; x++ {
				v := zp
				if ix := x - p.PadW; ix >= 0 && ix < len(row) {
					v = row[ix]
				}
				if c == 8 {
					binary.LittleEndian.PutUint64(bs[(ky*wp+x)*8:], uint64(uint8(v))*0x0101010101010101)
				} else {
					fillI8(dst[x*c:(x+1)*c], v)
				}
			}
		}
		o := ((b*p.OutH + oy) * p.OutW) * c
		d.run(pr, wp*c, p.StrideW*c, p.OutW, p.OutputOffset, p.ActMin, p.ActMax, out[o:o+p.OutW*c])
	}
}

// fillI8 sets every element of dst to v (doubling copies when long).
func fillI8(dst []int8, v int8) {
	if len(dst) <= 64 {
		for i := range dst {
			dst[i] = v
		}
		return
	}
	dst[0] = v
	for n := 1; n < len(dst); n *= 2 {
		copy(dst[n:], dst[:n])
	}
}

// dwPadRowMax bounds the bytes of one padded input row of
// depthwiseRowsSIMD (three of them live on the stack).
const dwPadRowMax = 8192

// dwPadRowLimit is dwPadRowMax, lowered by tests to cover
// depthwisePixelsSIMD.
var dwPadRowLimit = dwPadRowMax

// depthwisePixelsSIMD is depthwiseRowsSIMD for wide rows: the runs of
// output pixels whose taps are all inside the image go to the kernel at
// once; border pixels go one by one through a zero-point-padded patch.
func depthwisePixelsSIMD(p *ConvParams, inB, out []int8, b, oy0, oy1 int) {
	c := p.OutC
	d := p.sdw
	off, lo, hi := p.OutputOffset, p.ActMin, p.ActMax
	rowLen := p.InW * c
	step := p.StrideW * c
	zp := int8(-p.InputOffset)
	// Interior columns: ox*StrideW-PadW >= 0 and ox*StrideW-PadW+3 <= InW.
	xl := (p.PadW + p.StrideW - 1) / p.StrideW
	xh := 0
	if p.InW-3+p.PadW >= 0 {
		xh = min((p.InW-3+p.PadW)/p.StrideW+1, p.OutW)
	}
	var patch [3 * 3 * dwPatchMaxC]int8
	for oy := oy0; oy < oy1; oy++ {
		iy0 := oy*p.StrideH - p.PadH
		rowIn := iy0 >= 0 && iy0+3 <= p.InH
		o := out[((b*p.OutH+oy)*p.OutW)*c : ((b*p.OutH+oy)*p.OutW+p.OutW)*c]
		for ox := 0; ox < p.OutW; ox++ {
			if rowIn && ox == xl && xh > xl {
				s := iy0*rowLen + (ox*p.StrideW-p.PadW)*c
				d.run(inB[s:], rowLen, step, xh-xl, off, lo, hi, o[ox*c:xh*c])
				ox = xh - 1
				continue
			}
			ix0 := ox*p.StrideW - p.PadW
			pt := patch[:9*c]
			for ky := 0; ky < 3; ky++ {
				iy := iy0 + ky
				for kx := 0; kx < 3; kx++ {
					ix := ix0 + kx
					dst := pt[(ky*3+kx)*c : (ky*3+kx+1)*c]
					if iy < 0 || iy >= p.InH || ix < 0 || ix >= p.InW {
						for i := range dst {
							dst[i] = zp
						}
					} else {
						copy(dst, inB[iy*rowLen+ix*c:iy*rowLen+ix*c+c])
					}
				}
			}
			d.run(pt, 3*c, 0, 1, off, lo, hi, o[ox*c:ox*c+c])
		}
	}
}

// dwPatchMaxC bounds the channels of the 3x3 border-pixel patch buffer.
const dwPatchMaxC = 512

// maxPatch bounds the filter taps of the one-input-channel path; its
// patches are gathered into a stack buffer of patchBuf bytes.
const (
	maxPatch = 1024
	patchBuf = 4096
)

// depthwiseOneChannel runs a depthwise convolution of a single input
// channel as a GEMM: the patches of a run of output pixels (taps outside
// the image hold the input zero point, exact with the folded bias) times
// the packed [OutC][taps] filter.
func depthwiseOneChannel(p *ConvParams, in, out []int8) {
	if p.sg != nil {
		depthwiseOneChannelSIMD(p, in, out)
		return
	}
	var buf [patchBuf]int8
	taps := p.KH * p.KW
	per := patchBuf / taps // pixels per GEMM call
	zp := int8(-p.InputOffset)
	c := p.OutC
	for b := 0; b < p.Batches; b++ {
		inB := in[b*p.InH*p.InW : (b+1)*p.InH*p.InW]
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox0 := 0; ox0 < p.OutW; ox0 += per {
				ox1 := minInt(p.OutW, ox0+per)
				t := 0
				for ox := ox0; ox < ox1; ox++ {
					ix0 := ox*p.StrideW - p.PadW
					for ky := 0; ky < p.KH; ky++ {
						iy := iy0 + p.DilationH*ky
						for kx := 0; kx < p.KW; kx++ {
							ix := ix0 + p.DilationW*kx
							if iy < 0 || iy >= p.InH || ix < 0 || ix >= p.InW {
								buf[t] = zp
							} else {
								buf[t] = inB[iy*p.InW+ix]
							}
							t++
						}
					}
				}
				o := ((b*p.OutH+oy)*p.OutW + ox0) * c
				gemmPacked(buf[:t], ox1-ox0, taps, p.packed, c, p.folded, p.qs, p.OutputOffset, p.ActMin, p.ActMax, out[o:o+(ox1-ox0)*c])
			}
		}
	}
}

// depthwiseOneChannelSIMD is depthwiseOneChannel with the patches gathered
// straight into the SIMD GEMM's int16 rows (zero-padded to its k step).
func depthwiseOneChannelSIMD(p *ConvParams, in, out []int8) {
	var buf [patchBuf]int16
	g := p.sg
	kpad := g.kpad
	per := patchBuf / kpad &^ 3 // pixels per GEMM call, a multiple of 4
	zp := int16(-p.InputOffset)
	c := p.OutC
	for b := 0; b < p.Batches; b++ {
		inB := in[b*p.InH*p.InW : (b+1)*p.InH*p.InW]
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			rowIn := iy0 >= 0 && iy0+(p.KH-1)*p.DilationH < p.InH
			for ox0 := 0; ox0 < p.OutW; ox0 += per {
				ox1 := minInt(p.OutW, ox0+per)
				for ox := ox0; ox < ox1; ox++ {
					ix0 := ox*p.StrideW - p.PadW
					row := buf[(ox-ox0)*kpad : (ox-ox0+1)*kpad]
					if rowIn && p.KW == 3 && p.DilationW == 1 && ix0 >= 0 && ix0+3 <= p.InW {
						for ky := 0; ky < p.KH; ky++ {
							s := inB[(iy0+p.DilationH*ky)*p.InW+ix0:]
							s = s[:3]
							d := row[3*ky : 3*ky+3]
							d[0], d[1], d[2] = int16(s[0]), int16(s[1]), int16(s[2])
						}
						continue
					}
					t := 0
					for ky := 0; ky < p.KH; ky++ {
						iy := iy0 + p.DilationH*ky
						for kx := 0; kx < p.KW; kx++ {
							ix := ix0 + p.DilationW*kx
							if iy < 0 || iy >= p.InH || ix < 0 || ix >= p.InW {
								row[t] = zp
							} else {
								row[t] = int16(inB[iy*p.InW+ix])
							}
							t++
						}
					}
				}
				o := ((b*p.OutH+oy)*p.OutW + ox0) * c
				g.runWide(buf[:], ox1-ox0, p.OutputOffset, p.ActMin, p.ActMax, out[o:o+(ox1-ox0)*c])
			}
		}
	}
}

// dw3x3 computes the raw sums sum(x*f) of a 3x3 depthwise output pixel whose
// taps are all inside the image; r0..r2 are the three input rows' 3*c
// values starting at the first tap; ft is the filter transposed to [c][9].
//
//go:noinline
func dw3x3(r0, r1, r2 []int8, ft []int8, acc []int32) {
	c := len(acc)
	x0, x1, x2 := r0[:c], r0[c:2*c], r0[2*c:3*c]
	x3, x4, x5 := r1[:c], r1[c:2*c], r1[2*c:3*c]
	x6, x7, x8 := r2[:c], r2[c:2*c], r2[2*c:3*c]
	ft = ft[:9*c]
	for i := range acc {
		w := ft[9*i : 9*i+9]
		acc[i] = int32(x0[i])*int32(w[0]) + int32(x1[i])*int32(w[1]) + int32(x2[i])*int32(w[2]) +
			int32(x3[i])*int32(w[3]) + int32(x4[i])*int32(w[4]) + int32(x5[i])*int32(w[5]) +
			int32(x6[i])*int32(w[6]) + int32(x7[i])*int32(w[7]) + int32(x8[i])*int32(w[8])
	}
}

// dwGeneric computes the raw sums of one depthwise output pixel for any
// filter size and depth multiplier, removing the folded zero-point share of
// the taps outside the image, which the reference skips.
func dwGeneric(p *ConvParams, inB, filter []int8, iy0, ix0 int, acc []int32) {
	c := len(acc)
	m := p.DepthMultiplier
	for i := range acc {
		acc[i] = 0
	}
	for ky := 0; ky < p.KH; ky++ {
		iy := iy0 + p.DilationH*ky
		for kx := 0; kx < p.KW; kx++ {
			ix := ix0 + p.DilationW*kx
			t := (ky*p.KW + kx) * c
			if iy < 0 || iy >= p.InH || ix < 0 || ix >= p.InW {
				corr := p.tapOffF[t : t+c]
				corr = corr[:len(acc)]
				for i := range acc {
					acc[i] -= corr[i]
				}
				continue
			}
			f := filter[t : t+c]
			f = f[:len(acc)]
			if m == 1 {
				x := inB[(iy*p.InW+ix)*c : (iy*p.InW+ix)*c+c]
				x = x[:len(acc)]
				for i := range acc {
					acc[i] += int32(x[i]) * int32(f[i])
				}
				continue
			}
			x := inB[(iy*p.InW+ix)*p.InC : (iy*p.InW+ix+1)*p.InC]
			for ic, xv := range x {
				v := int32(xv)
				a := acc[ic*m : ic*m+m]
				fm := f[ic*m : ic*m+m]
				fm = fm[:len(a)]
				for j := range a {
					a[j] += v * int32(fm[j])
				}
			}
		}
	}
}

func depthwiseInt8Ref(p *ConvParams, in, filter []int8, bias []int32, out []int8) {
	m := p.DepthMultiplier
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				ix0 := ox*p.StrideW - p.PadW
				for ic := 0; ic < p.InC; ic++ {
					for dm := 0; dm < m; dm++ {
						oc := dm + ic*m
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
								x := int32(in[((b*p.InH+iy)*p.InW+ix)*p.InC+ic])
								f := int32(filter[(ky*p.KW+kx)*p.OutC+oc])
								acc += f * (x + p.InputOffset)
							}
						}
						if bias != nil {
							acc += bias[oc]
						}
						out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC+oc] = requant8(acc, p.OutMult[oc], p.OutShift[oc], p.OutputOffset, p.ActMin, p.ActMax)
					}
				}
			}
		}
	}
}

// DepthwiseConv2DInt16 is DEPTHWISE_CONV_2D with 16x8 quantization (int64
// bias, may be nil), as TFLM's reference_integer_ops::DepthwiseConvPerChannel
// for int16.
func DepthwiseConv2DInt16(p *ConvParams, in []int16, filter []int8, bias []int64, out []int16) {
	m := p.DepthMultiplier
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				ix0 := ox*p.StrideW - p.PadW
				for ic := 0; ic < p.InC; ic++ {
					for dm := 0; dm < m; dm++ {
						oc := dm + ic*m
						var acc int64
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
								x := int64(in[((b*p.InH+iy)*p.InW+ix)*p.InC+ic])
								f := int64(filter[(ky*p.KW+kx)*p.OutC+oc])
								acc += f * x
							}
						}
						if bias != nil {
							acc += bias[oc]
						}
						r := clamp32(MultiplyByQuantizedMultiplier64(acc, p.OutMult[oc], p.OutShift[oc]), p.ActMin, p.ActMax)
						out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC+oc] = int16(r)
					}
				}
			}
		}
	}
}

// DepthwiseConv2DFloat is DEPTHWISE_CONV_2D in float32 (bias may be nil).
func DepthwiseConv2DFloat(p *ConvParams, in, filter, bias, out []float32) {
	m := p.DepthMultiplier
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			iy0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				ix0 := ox*p.StrideW - p.PadW
				for ic := 0; ic < p.InC; ic++ {
					for dm := 0; dm < m; dm++ {
						oc := dm + ic*m
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
								acc += in[((b*p.InH+iy)*p.InW+ix)*p.InC+ic] * filter[(ky*p.KW+kx)*p.OutC+oc]
							}
						}
						if bias != nil {
							acc += bias[oc]
						}
						out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC+oc] = clampF(acc, p.FActMin, p.FActMax)
					}
				}
			}
		}
	}
}
