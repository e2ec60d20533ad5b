package ops

import "fmt"

const maxSliceDims = 5

// StridedSliceOptions are STRIDED_SLICE's options (the schema's masks) and
// its begin/end/strides tensors' values.
type StridedSliceOptions struct {
	Begin, End, Strides []int
	BeginMask           int
	EndMask             int
	EllipsisMask        int
	NewAxisMask         int
	ShrinkAxisMask      int
	Offset              bool // end values are offsets from begin
}

// StridedSliceParams is the resolved slice: per axis of the input (padded
// to 5 dims at the front) a start, stop and stride.
type StridedSliceParams struct {
	inDims              [maxSliceDims]int
	start, stop, stride [maxSliceDims]int
	count               [maxSliceDims]int
	N                   int // output elements
	inStrides           [maxSliceDims]int
	innerContiguous     bool
	OutShape            []int // output shape after shrinking
}

// PrepareStridedSlice resolves a STRIDED_SLICE on a tensor of shape in (at
// most 5 dims), as TFLite's strided_slice logic: negative indices count
// from the end, begin/end masks select the full range, shrink-axis keeps
// one element and drops the axis, the ellipsis mask (one bit) expands to
// the full range of the dims it covers, missing trailing dims are taken
// whole. NewAxisMask is not supported. out, if not nil, must have the
// resulting number of elements.
func PrepareStridedSlice(in Shape, o StridedSliceOptions, out Shape) (*StridedSliceParams, error) {
	rank := len(in)
	if rank > maxSliceDims {
		return nil, fmt.Errorf("strided_slice: input rank %d > %d", rank, maxSliceDims)
	}
	if err := nonNegative("strided_slice", in, out); err != nil {
		return nil, err
	}
	n := len(o.Begin)
	if len(o.End) != n || len(o.Strides) != n {
		return nil, fmt.Errorf("strided_slice: begin/end/strides lengths %d/%d/%d differ", n, len(o.End), len(o.Strides))
	}
	if o.NewAxisMask != 0 {
		return nil, fmt.Errorf("strided_slice: new_axis_mask not supported")
	}
	type spec struct{ b, e, s, bm, em, sh int }
	var specs []spec
	for i := 0; i < n; i++ {
		bit := 1 << i
		if o.EllipsisMask&bit != 0 {
			if o.EllipsisMask&^(bit|(bit-1)) != 0 {
				return nil, fmt.Errorf("strided_slice: more than one ellipsis")
			}
			cover := rank - (n - 1)
			for j := 0; j < cover; j++ {
				specs = append(specs, spec{0, 0, 1, 1, 1, 0})
			}
			continue
		}
		sp := spec{o.Begin[i], o.End[i], o.Strides[i], o.BeginMask >> i & 1, o.EndMask >> i & 1, o.ShrinkAxisMask >> i & 1}
		if sp.s == 0 {
			return nil, fmt.Errorf("strided_slice: stride 0 on axis %d", i)
		}
		specs = append(specs, sp)
	}
	if len(specs) > rank {
		return nil, fmt.Errorf("strided_slice: %d indices for rank %d", len(specs), rank)
	}
	for len(specs) < rank {
		specs = append(specs, spec{0, 0, 1, 1, 1, 0})
	}
	p := &StridedSliceParams{innerContiguous: true}
	pad := maxSliceDims - rank
	for i := 0; i < pad; i++ {
		p.inDims[i], p.start[i], p.stop[i], p.stride[i], p.count[i] = 1, 0, 1, 1, 1
	}
	for i, sp := range specs {
		a := pad + i
		size := in[i]
		p.inDims[a] = size
		start := sp.b
		if start < 0 {
			start += size
		}
		if sp.s > 0 {
			start = clampInt(start, 0, size)
		} else {
			start = clampInt(start, -1, size-1)
		}
		if sp.bm != 0 {
			if sp.s > 0 {
				start = 0
			} else {
				start = size - 1
			}
		}
		var stop int
		if sp.sh != 0 {
			stop = start + 1
			if start >= size {
				stop = start
			}
		} else {
			stop = sp.e
			if o.Offset {
				stop += start
			}
			if stop < 0 {
				stop += size
			}
			if sp.s > 0 {
				stop = clampInt(stop, 0, size)
			} else {
				stop = clampInt(stop, -1, size-1)
			}
			if sp.em != 0 {
				if sp.s > 0 {
					stop = size
				} else {
					stop = -1
				}
			}
		}
		cnt := 0
		if sp.s > 0 && stop > start {
			cnt = (stop - start + sp.s - 1) / sp.s
		} else if sp.s < 0 && stop < start {
			cnt = (start - stop - sp.s - 1) / -sp.s
		}
		p.start[a], p.stop[a], p.stride[a], p.count[a] = start, stop, sp.s, cnt
		if sp.sh == 0 {
			p.OutShape = append(p.OutShape, cnt)
		}
	}
	p.N = 1
	for a := 0; a < maxSliceDims; a++ {
		p.N *= p.count[a]
	}
	st := 1
	for a := maxSliceDims - 1; a >= 0; a-- {
		p.inStrides[a] = st
		st *= p.inDims[a]
	}
	p.innerContiguous = p.stride[maxSliceDims-1] == 1
	if out != nil && FlatSize(out) != p.N {
		return nil, fmt.Errorf("strided_slice: output %v has %d elements, slice gives %v", out, FlatSize(out), p.OutShape)
	}
	return p, nil
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// StridedSlice copies the slice of in into out (any element type).
func StridedSlice[T any](p *StridedSliceParams, in, out []T) {
	if p.N == 0 {
		return
	}
	o := 0
	c4 := p.count[4]
	for i0 := 0; i0 < p.count[0]; i0++ {
		x0 := (p.start[0] + i0*p.stride[0]) * p.inStrides[0]
		for i1 := 0; i1 < p.count[1]; i1++ {
			x1 := x0 + (p.start[1]+i1*p.stride[1])*p.inStrides[1]
			for i2 := 0; i2 < p.count[2]; i2++ {
				x2 := x1 + (p.start[2]+i2*p.stride[2])*p.inStrides[2]
				for i3 := 0; i3 < p.count[3]; i3++ {
					x3 := x2 + (p.start[3]+i3*p.stride[3])*p.inStrides[3] + p.start[4]
					if p.innerContiguous {
						copy(out[o:o+c4], in[x3:x3+c4])
					} else {
						for i4 := 0; i4 < c4; i4++ {
							out[o+i4] = in[x3+i4*p.stride[4]]
						}
					}
					o += c4
				}
			}
		}
	}
}

// PadParams is a resolved PAD / PADV2 (up to 5 dims).
type PadParams struct {
	inDims, outDims [maxSliceDims]int
	before          [maxSliceDims]int
	N               int // output elements
}

// PreparePad prepares PAD/PADV2 from the input shape and the paddings
// tensor's values ([rank][2] flattened: before, after per dim).
func PreparePad(in Shape, paddings []int, out Shape) (*PadParams, error) {
	rank := len(in)
	if rank > maxSliceDims || len(paddings) != 2*rank {
		return nil, fmt.Errorf("pad: input %v with %d padding values", in, len(paddings))
	}
	if err := nonNegative("pad", in, out); err != nil {
		return nil, err
	}
	p := &PadParams{N: 1}
	off := maxSliceDims - rank
	for i := 0; i < maxSliceDims; i++ {
		p.inDims[i], p.outDims[i] = 1, 1
	}
	for i := 0; i < rank; i++ {
		b, a := paddings[2*i], paddings[2*i+1]
		if b < 0 || a < 0 {
			return nil, fmt.Errorf("pad: negative padding %d,%d on dim %d", b, a, i)
		}
		p.inDims[off+i] = in[i]
		p.before[off+i] = b
		p.outDims[off+i] = in[i] + b + a
		p.N *= p.outDims[off+i]
	}
	if out != nil {
		if len(out) != rank {
			return nil, fmt.Errorf("pad: output %v for input %v", out, in)
		}
		for i := range out {
			if out[i] != p.outDims[off+i] {
				return nil, fmt.Errorf("pad: output %v, paddings give dim %d = %d", out, i, p.outDims[off+i])
			}
		}
	}
	return p, nil
}

// Pad writes in padded with value into out. For quantized tensors TFLM pads
// with the constant_values tensor's value or, without one, the output zero
// point (0 for int16).
func Pad[T any](p *PadParams, in, out []T, value T) {
	d, od, bf := p.inDims, p.outDims, p.before
	o := 0
	fill := func(n int) {
		s := out[o : o+n]
		for i := range s {
			s[i] = value
		}
		o += n
	}
	inner := od[4]
	x := 0
	for i0 := 0; i0 < od[0]; i0++ {
		in0 := i0 >= bf[0] && i0 < bf[0]+d[0]
		for i1 := 0; i1 < od[1]; i1++ {
			in1 := in0 && i1 >= bf[1] && i1 < bf[1]+d[1]
			for i2 := 0; i2 < od[2]; i2++ {
				in2 := in1 && i2 >= bf[2] && i2 < bf[2]+d[2]
				for i3 := 0; i3 < od[3]; i3++ {
					if !(in2 && i3 >= bf[3] && i3 < bf[3]+d[3]) {
						fill(inner)
						continue
					}
					fill(bf[4])
					copy(out[o:o+d[4]], in[x:x+d[4]])
					o += d[4]
					x += d[4]
					fill(inner - bf[4] - d[4])
				}
			}
		}
	}
}
