package ops

// Fast int8 paths: per-channel requantization with precomputed shifts, and a
// GEMM over weights packed two output channels per int64.

// chanQ is one output channel's requantization, MultiplyByQuantizedMultiplier
// unrolled: x<<left, SaturatingRoundingDoublingHighMul by mult, then the
// rounding right shift by right. With a multiplier >= 0 the high multiply
// never saturates and equals (x*mult + 2^30) >> 31 (floor); gemmlowp's
// RoundingDivideByPOT (ties away from zero) equals
// (h + nudge - [h < 0]) >> right with nudge = 2^(right-1) (both 0 when
// right is 0), computed in 64 bits so that it cannot overflow.
type chanQ struct {
	mult   int32
	left   uint8
	right  uint8
	simple bool // every channel of this table has left 0 and right >= 1
	nudge  int32
	negAdj int32 // -1, or 0 when right is 0
}

func makeChanQ(mult []int32, shift []int) []chanQ {
	qs := make([]chanQ, len(mult))
	for i := range qs {
		q := chanQ{mult: mult[i]}
		if shift[i] > 0 {
			q.left = uint8(shift[i])
		} else {
			q.right = uint8(-shift[i])
		}
		if q.right > 0 {
			q.nudge = 1 << (q.right - 1)
			q.negAdj = -1
		}
		qs[i] = q
	}
	simple := true
	for _, q := range qs {
		simple = simple && q.left == 0 && q.right >= 1
	}
	for i := range qs {
		qs[i].simple = simple
	}
	return qs
}

// requantRow writes out[i] = clamp(MBQM(acc[i]+folded[i]) + off, lo, hi).
func requantRow(acc, folded []int32, qs []chanQ, off, lo, hi int32, out []int8) {
	folded = folded[:len(acc)]
	qs = qs[:len(acc)]
	out = out[:len(acc)]
	if len(qs) > 0 && qs[0].simple {
		// No left shifts and every right shift >= 1 (multipliers below 1/2,
		// the usual case): [h < 0] is -(h>>63).
		for i, a := range acc {
			q := &qs[i]
			h := (int64(a+folded[i])*int64(q.mult) + 1<<30) >> 31
			r := int32((h + int64(q.nudge) + h>>63) >> (q.right & 63))
			out[i] = int8(min(max(r+off, lo), hi))
		}
		return
	}
	for i, a := range acc {
		q := &qs[i]
		x := int64((a + folded[i]) << (q.left & 31))
		h := (x*int64(q.mult) + 1<<30) >> 31
		r := int32((h + int64(q.nudge) + (h>>63)&int64(q.negAdj)) >> (q.right & 63))
		out[i] = int8(min(max(r+off, lo), hi)) // branch-free (CMOV): outputs clamp often
	}
}

// The GEMM packs three output channels' int8 weights into one int64, in
// 21-bit lanes: pk[j*k+i] = w[3j][i] + w[3j+1][i]<<21 + w[3j+2][i]<<42
// (missing channels are 0). One 64-bit multiply by an int8 input then
// accumulates three products at once. Each lane's running sum stays below
// 2^20 in magnitude for up to laneRun products of at most 2^14, so the lanes
// are separated exactly every laneRun steps and added into int32 sums;
// those wrap exactly as TFLite's int32 accumulators do.

const (
	laneBits = 21
	laneRun  = 63 // 63 * 128 * 128 < 2^20
)

// packTriples packs an n x k int8 weight matrix three rows per int64.
func packTriples(w []int8, n, k int) []int64 {
	groups := (n + 2) / 3
	pk := make([]int64, groups*k)
	for j := 0; j < groups; j++ {
		for i := 0; i < k; i++ {
			var v int64
			for l := 0; l < 3; l++ {
				if c := 3*j + l; c < n {
					v += int64(w[c*k+i]) << (laneBits * l)
				}
			}
			pk[j*k+i] = v
		}
	}
	return pk
}

// lanes splits a packed sum into its three lane values.
func lanes(s int64) (int32, int32, int32) {
	l0 := s << (64 - laneBits) >> (64 - laneBits)
	s = (s - l0) >> laneBits
	l1 := s << (64 - laneBits) >> (64 - laneBits)
	return int32(l0), int32(l1), int32((s - l1) >> laneBits)
}

// gemmChunk is the output channels per accumulator chunk (a multiple of 3).
const gemmChunk = 255

// gemmPacked computes out[r][c] = requant(folded[c] + dot(a[r], w[c])) for
// a (rows x k int8) and w packed by packTriples (n channels).
func gemmPacked(a []int8, rows, k int, pk []int64, n int, folded []int32, qs []chanQ, off, lo, hi int32, out []int8) {
	var acc0, acc1 [gemmChunk + 3]int32
	for r := 0; r < rows; r += 2 {
		two := r+1 < rows
		a0 := a[r*k : r*k+k]
		a1 := a0
		if two {
			a1 = a[(r+1)*k : (r+1)*k+k]
		}
		for c0 := 0; c0 < n; c0 += gemmChunk {
			c1 := minInt(n, c0+gemmChunk)
			gend := (c1 + 2) / 3
			j := c0 / 3
			for ; j+2 <= gend; j += 2 {
				c := 3*j - c0
				p0, p1 := pk[j*k:j*k+k], pk[(j+1)*k:(j+1)*k+k]
				if two {
					dot3x2x2(a0, a1, p0, p1, acc0[c:c+6], acc1[c:c+6])
				} else {
					dot3x1x2(a0, p0, p1, acc0[c:c+6])
				}
			}
			if j < gend {
				c := 3*j - c0
				dot3x2x1(a0, a1, pk[j*k:j*k+k], acc0[c:c+3], acc1[c:c+3])
			}
			m := c1 - c0
			requantRow(acc0[:m], folded[c0:c1], qs[c0:c1], off, lo, hi, out[r*n+c0:r*n+c1])
			if two {
				requantRow(acc1[:m], folded[c0:c1], qs[c0:c1], off, lo, hi, out[(r+1)*n+c0:(r+1)*n+c1])
			}
		}
	}
}

// apply is MultiplyByQuantizedMultiplier(x, q.mult, shift) for a multiplier
// >= 0, small enough to be inlined.
func (q *chanQ) apply(x int32) int32 {
	h := (int64(x<<(q.left&31))*int64(q.mult) + 1<<30) >> 31
	return int32((h + int64(q.nudge) + (h>>63)&int64(q.negAdj)) >> (q.right & 63))
}

func oneChanQ(mult int32, shift int) chanQ {
	return makeChanQ([]int32{mult}, []int{shift})[0]
}

// dot3x2x2 sets o0[0:6] and o1[0:6] to the dot products of rows a0, a1
// with the six channels packed in p0, p1. It is a leaf function so that its
// accumulators stay in registers.
//
//go:noinline
func dot3x2x2(a0, a1 []int8, p0, p1 []int64, o0, o1 []int32) {
	a1 = a1[:len(a0)]
	p0 = p0[:len(a0)]
	p1 = p1[:len(a0)]
	o0 = o0[:6]
	o1 = o1[:6]
	var t [12]int32
	for base := 0; base < len(a0); base += laneRun {
		end := minInt(base+laneRun, len(a0))
		b0 := a0[base:end]
		b1, q0, q1 := a1[base:end], p0[base:end], p1[base:end]
		b1, q0, q1 = b1[:len(b0)], q0[:len(b0)], q1[:len(b0)]
		var s00, s01, s10, s11 int64
		for i, x := range b0 {
			x0 := int64(x)
			x1 := int64(b1[i])
			u, v := q0[i], q1[i]
			s00 += x0 * u
			s01 += x0 * v
			s10 += x1 * u
			s11 += x1 * v
		}
		l0, l1, l2 := lanes(s00)
		t[0], t[1], t[2] = t[0]+l0, t[1]+l1, t[2]+l2
		l0, l1, l2 = lanes(s01)
		t[3], t[4], t[5] = t[3]+l0, t[4]+l1, t[5]+l2
		l0, l1, l2 = lanes(s10)
		t[6], t[7], t[8] = t[6]+l0, t[7]+l1, t[8]+l2
		l0, l1, l2 = lanes(s11)
		t[9], t[10], t[11] = t[9]+l0, t[10]+l1, t[11]+l2
	}
	copy(o0, t[:6])
	copy(o1, t[6:])
}

// dot3x1x2 is dot3x2x2 for a single row.
//
//go:noinline
func dot3x1x2(a0 []int8, p0, p1 []int64, o0 []int32) {
	p0 = p0[:len(a0)]
	p1 = p1[:len(a0)]
	o0 = o0[:6]
	var t [6]int32
	for base := 0; base < len(a0); base += laneRun {
		end := minInt(base+laneRun, len(a0))
		b0 := a0[base:end]
		q0, q1 := p0[base:end], p1[base:end]
		q0, q1 = q0[:len(b0)], q1[:len(b0)]
		var s0, s1 int64
		for i, x := range b0 {
			v := int64(x)
			s0 += v * q0[i]
			s1 += v * q1[i]
		}
		l0, l1, l2 := lanes(s0)
		t[0], t[1], t[2] = t[0]+l0, t[1]+l1, t[2]+l2
		l0, l1, l2 = lanes(s1)
		t[3], t[4], t[5] = t[3]+l0, t[4]+l1, t[5]+l2
	}
	copy(o0, t[:])
}

// dot3x2x1 is dot3x2x2 for a single packed column of three channels.
//
//go:noinline
func dot3x2x1(a0, a1 []int8, p0 []int64, o0, o1 []int32) {
	a1 = a1[:len(a0)]
	p0 = p0[:len(a0)]
	o0 = o0[:3]
	o1 = o1[:3]
	var t [6]int32
	for base := 0; base < len(a0); base += laneRun {
		end := minInt(base+laneRun, len(a0))
		b0 := a0[base:end]
		b1, q0 := a1[base:end], p0[base:end]
		b1, q0 = b1[:len(b0)], q0[:len(b0)]
		var s0, s1 int64
		for i, x := range b0 {
			u := q0[i]
			s0 += int64(x) * u
			s1 += int64(b1[i]) * u
		}
		l0, l1, l2 := lanes(s0)
		t[0], t[1], t[2] = t[0]+l0, t[1]+l1, t[2]+l2
		l0, l1, l2 = lanes(s1)
		t[3], t[4], t[5] = t[3]+l0, t[4]+l1, t[5]+l2
	}
	copy(o0, t[:3])
	copy(o1, t[3:])
}
