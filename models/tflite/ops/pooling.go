package ops

import "fmt"

// PoolParams is what TFLM's pooling Prepare computes.
type PoolParams struct {
	Batches, InH, InW, C int
	OutH, OutW           int
	FilterH, FilterW     int
	StrideH, StrideW     int
	PadH, PadW           int
	ActMin, ActMax       int32   // quantized clamp
	FActMin, FActMax     float32 // float clamp
}

// PreparePool2D prepares AVERAGE_POOL_2D or MAX_POOL_2D. opts.FilterH/W,
// strides, padding and activation come from the Pool2DOptions; in and out
// are NHWC. For quantized tensors pass actBits (8 or 16) and the output's
// scale and zero point (input and output quantization are equal in valid
// models); actBits 0 means float32.
func PreparePool2D(opts ConvOptions, in, out Shape, actBits int, outScale float32, outZeroPoint int) (*PoolParams, error) {
	if err := checkShape("pool input", in, 4); err != nil {
		return nil, err
	}
	if err := checkShape("pool output", out, 4); err != nil {
		return nil, err
	}
	if opts.FilterH <= 0 || opts.FilterW <= 0 {
		return nil, fmt.Errorf("pool: bad filter size %dx%d", opts.FilterH, opts.FilterW)
	}
	cp := &ConvParams{InH: in[1], InW: in[2], KH: opts.FilterH, KW: opts.FilterW}
	cp.StrideH, cp.StrideW, _, _ = opts.norm()
	cp.DilationH, cp.DilationW = 1, 1
	if err := cp.spatial(opts.Padding, out); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	if out[0] != in[0] || out[3] != in[3] {
		return nil, fmt.Errorf("pool: output %v does not match input %v", out, in)
	}
	p := &PoolParams{
		Batches: in[0], InH: in[1], InW: in[2], C: in[3], OutH: cp.OutH, OutW: cp.OutW,
		FilterH: opts.FilterH, FilterW: opts.FilterW, StrideH: cp.StrideH, StrideW: cp.StrideW,
		PadH: cp.PadH, PadW: cp.PadW,
	}
	var err error
	if actBits == 0 {
		p.FActMin, p.FActMax, err = ActivationRangeFloat(opts.Activation)
	} else {
		p.ActMin, p.ActMax, err = ActivationRangeQuantized(opts.Activation, actBits, outScale, outZeroPoint)
	}
	return p, err
}

// window returns the clamped filter window of an output position.
func (p *PoolParams) window(oy, ox int) (iy0, ix0, fy0, fy1, fx0, fx1 int) {
	iy0 = oy*p.StrideH - p.PadH
	ix0 = ox*p.StrideW - p.PadW
	fy0 = maxInt(0, -iy0)
	fy1 = minInt(p.FilterH, p.InH-iy0)
	fx0 = maxInt(0, -ix0)
	fx1 = minInt(p.FilterW, p.InW-ix0)
	return
}

// AveragePoolInt8 is AVERAGE_POOL_2D for int8, as TFLM's
// reference_integer_ops::AveragePool: the window sum over the in-image taps,
// divided by their count rounding half away from zero, then clamped.
// acc is scratch of p.C int32 elements.
func AveragePoolInt8(p *PoolParams, in, out []int8, acc []int32) {
	avgPool(p, in, out, acc)
}

// AveragePoolInt16 is AVERAGE_POOL_2D for int16 (see AveragePoolInt8).
func AveragePoolInt16(p *PoolParams, in, out []int16, acc []int32) {
	avgPool(p, in, out, acc)
}

func avgPool[T int8 | int16](p *PoolParams, in, out []T, acc []int32) {
	c := p.C
	acc = acc[:c]
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				iy0, ix0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				for i := range acc {
					acc[i] = 0
				}
				count := int32(0)
				for fy := fy0; fy < fy1; fy++ {
					for fx := fx0; fx < fx1; fx++ {
						x := in[((b*p.InH+iy0+fy)*p.InW+ix0+fx)*c:]
						x = x[:len(acc)]
						for i, v := range x {
							acc[i] += int32(v)
						}
						count++
					}
				}
				o := out[((b*p.OutH+oy)*p.OutW+ox)*c:]
				o = o[:len(acc)]
				if count == 0 {
					// TFLM returns an error here; it cannot happen for valid shapes.
					for i := range o {
						o[i] = 0
					}
					continue
				}
				for i, a := range acc {
					if a > 0 {
						a = (a + count/2) / count
					} else {
						a = (a - count/2) / count
					}
					o[i] = T(clamp32(a, p.ActMin, p.ActMax))
				}
			}
		}
	}
}

// MaxPoolInt8 is MAX_POOL_2D for int8.
func MaxPoolInt8(p *PoolParams, in, out []int8) { maxPool(p, in, out) }

// MaxPoolInt16 is MAX_POOL_2D for int16.
func MaxPoolInt16(p *PoolParams, in, out []int16) { maxPool(p, in, out) }

func maxPool[T int8 | int16](p *PoolParams, in, out []T) {
	c := p.C
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				iy0, ix0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				o := out[((b*p.OutH+oy)*p.OutW+ox)*c:]
				o = o[:c]
				for ch := range o {
					m := int32(-1 << 31)
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							v := int32(in[((b*p.InH+iy0+fy)*p.InW+ix0+fx)*c+ch])
							if v > m {
								m = v
							}
						}
					}
					o[ch] = T(clamp32(m, p.ActMin, p.ActMax))
				}
			}
		}
	}
}

// AveragePoolFloat is AVERAGE_POOL_2D for float32: sum / count, clamped.
func AveragePoolFloat(p *PoolParams, in, out []float32) {
	c := p.C
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				iy0, ix0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				o := out[((b*p.OutH+oy)*p.OutW+ox)*c:]
				o = o[:c]
				for ch := range o {
					var total float32
					count := 0
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							total += in[((b*p.InH+iy0+fy)*p.InW+ix0+fx)*c+ch]
							count++
						}
					}
					o[ch] = clampF(total/float32(count), p.FActMin, p.FActMax)
				}
			}
		}
	}
}

// MaxPoolFloat is MAX_POOL_2D for float32.
func MaxPoolFloat(p *PoolParams, in, out []float32) {
	c := p.C
	for b := 0; b < p.Batches; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				iy0, ix0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				o := out[((b*p.OutH+oy)*p.OutW+ox)*c:]
				o = o[:c]
				for ch := range o {
					m := float32(-3.4028234663852886e38)
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							v := in[((b*p.InH+iy0+fy)*p.InW+ix0+fx)*c+ch]
							if v > m {
								m = v
							}
						}
					}
					o[ch] = clampF(m, p.FActMin, p.FActMax)
				}
			}
		}
	}
}
