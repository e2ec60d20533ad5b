package ops

import (
	"math"
	"math/big"
	"math/rand"
	"testing"
)

// srdhmDef is SaturatingRoundingDoublingHighMul from its definition:
// a*b / 2^31 rounded to nearest with ties toward +infinity (gemmlowp's
// nudge-and-truncate does exactly this: 0.5 -> 1, -0.5 -> 0, -1.5 -> -1),
// saturated to int32.
func srdhmDef(a, b int32) int32 {
	num := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(b)))
	num.Add(num, big.NewInt(1<<30))
	r := new(big.Int).Div(num, big.NewInt(1<<31)) // Euclidean: floor for a positive divisor
	if r.Cmp(big.NewInt(math.MaxInt32)) > 0 {
		return math.MaxInt32
	}
	return int32(r.Int64())
}

func roundRatHalfAway(r *big.Rat) *big.Int {
	neg := r.Sign() < 0
	a := new(big.Rat).Abs(r)
	a.Add(a, big.NewRat(1, 2))
	q := new(big.Int).Quo(a.Num(), a.Denom()) // floor for positives
	if neg {
		q.Neg(q)
	}
	return q
}

func randInt32(r *rand.Rand) int32 {
	switch r.Intn(4) {
	case 0:
		return int32(r.Intn(2001) - 1000)
	case 1:
		return []int32{math.MinInt32, math.MaxInt32, 0, 1, -1, 1 << 30, -(1 << 30)}[r.Intn(7)]
	}
	return int32(r.Uint32())
}

func TestSRDHMDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		a, b := randInt32(r), randInt32(r)
		if got, want := SaturatingRoundingDoublingHighMul(a, b), srdhmDef(a, b); got != want {
			t.Fatalf("SRDHM(%d, %d) = %d, want %d", a, b, got, want)
		}
	}
	if got := SaturatingRoundingDoublingHighMul(math.MinInt32, math.MinInt32); got != math.MaxInt32 {
		t.Fatalf("SRDHM(min,min) = %d", got)
	}
	// Hand-computed: 3 * 2^30 / 2^31 = 1.5 -> 2; -1.5 -> -2; 2^30*2^30/2^31 = 2^29.
	cases := [][3]int32{{3, 1 << 30, 2}, {-3, 1 << 30, -1}, {1 << 30, 1 << 30, 1 << 29}, {1, 1 << 30, 1}, {-1, 1 << 30, 0}, {1, 1<<30 - 1, 0}, {-5, 1 << 30, -2}}
	for _, c := range cases {
		if got := SaturatingRoundingDoublingHighMul(c[0], c[1]); got != c[2] {
			t.Errorf("SRDHM(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestRoundingDivideByPOTDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 200000; i++ {
		x := randInt32(r)
		e := r.Intn(32)
		want := int32(math.Round(float64(x) / math.Ldexp(1, e))) // exact in float64, ties away
		if got := RoundingDivideByPOT(x, e); got != want {
			t.Fatalf("RDBPOT(%d, %d) = %d, want %d", x, e, got, want)
		}
		x64 := int64(r.Uint64()) >> uint(r.Intn(40))
		want64 := roundRatHalfAway(new(big.Rat).SetFrac(big.NewInt(x64), new(big.Int).Lsh(big.NewInt(1), uint(e))))
		if got := RoundingDivideByPOT64(x64, e); got != want64.Int64() {
			t.Fatalf("RDBPOT64(%d, %d) = %d, want %d", x64, e, got, want64)
		}
	}
	cases := [][3]int32{{5, 1, 3}, {-5, 1, -3}, {4, 1, 2}, {7, 2, 2}, {-6, 2, -2}, {-7, 2, -2}, {6, 2, 2}, {-1, 1, -1}, {1, 1, 1}}
	for _, c := range cases {
		if got := RoundingDivideByPOT(c[0], int(c[1])); got != c[2] {
			t.Errorf("RDBPOT(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestQuantizeMultiplier(t *testing.T) {
	cases := []struct {
		m     float64
		q     int32
		shift int
	}{
		{0, 0, 0}, {0.5, 1 << 30, 0}, {1, 1 << 30, 1}, {0.25, 1 << 30, -1}, {0.75, 3 << 29, 0},
		{1e-12, 0, 0},               // shift < -31 flushes to zero
		{0.99999999999, 1 << 30, 1}, // rounds up to 2^31 and renormalises
	}
	for _, c := range cases {
		q, s := QuantizeMultiplier(c.m)
		if q != c.q || s != c.shift {
			t.Errorf("QuantizeMultiplier(%g) = %d, %d; want %d, %d", c.m, q, s, c.q, c.shift)
		}
	}
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 100000; i++ {
		m := math.Exp(r.Float64()*40 - 20)
		q, s := QuantizeMultiplier(m)
		if q < 1<<30 {
			t.Fatalf("QuantizeMultiplier(%g) = %d not normalised", m, q)
		}
		back := math.Ldexp(float64(q), s-31)
		if math.Abs(back-m) > m*math.Ldexp(1, -30) {
			t.Fatalf("QuantizeMultiplier(%g) = %d * 2^%d = %g", m, q, s-31, back)
		}
	}
}

func TestMultiplyByQuantizedMultiplier(t *testing.T) {
	// Hand-computed: 100 * 0.5 = 50; 3 * 0.5 = 1.5 -> 2; -3 * 0.5 = -1.5 ->
	// -1 (SRDHM ties go up); 7 * 0.25: SRDHM 3.5 -> 4, then 4/2 = 2;
	// -7 * 0.25: SRDHM -3.5 -> -3, then -3/2 -> -2 (RDBPOT ties go away).
	cases := []struct {
		x    int32
		m    float64
		want int32
	}{{100, 0.5, 50}, {3, 0.5, 2}, {-3, 0.5, -1}, {7, 0.25, 2}, {-7, 0.25, -2}, {5, 2, 10}, {-5, 2, -10}, {1000, 0.001, 1}}
	for _, c := range cases {
		q, s := QuantizeMultiplier(c.m)
		if got := MultiplyByQuantizedMultiplier(c.x, q, s); got != c.want {
			t.Errorf("MBQM(%d, %g) = %d, want %d", c.x, c.m, got, c.want)
		}
	}
	// Within one unit of the exact product, and the 64-bit version within 1
	// of the 32-bit one for the inputs both accept.
	r := rand.New(rand.NewSource(4))
	for i := 0; i < 100000; i++ {
		m := math.Exp(r.Float64()*14 - 16)
		q, s := QuantizeMultiplier(m)
		x := int32(r.Intn(1<<22) - 1<<21)
		exact := float64(x) * float64(q) * math.Ldexp(1, s-31)
		got := MultiplyByQuantizedMultiplier(x, q, s)
		if math.Abs(float64(got)-exact) > 1 {
			t.Fatalf("MBQM(%d, %d, %d) = %d, exact %g", x, q, s, got, exact)
		}
		got64 := MultiplyByQuantizedMultiplier64(int64(x), q, s)
		if math.Abs(float64(got64)-exact) > 1+math.Abs(exact)*math.Ldexp(1, -14) {
			t.Fatalf("MBQM64(%d, %d, %d) = %d, exact %g", x, q, s, got64, exact)
		}
	}
	// MBQM64 from its definition with big integers.
	for i := 0; i < 100000; i++ {
		q := int32(r.Int63n(1<<31-1<<30) + 1<<30)
		s := r.Intn(39) - 31
		x := r.Int63n(1<<47) - 1<<46
		red := int64(0x7FFF)
		if q < 0x7FFF0000 {
			red = (int64(q) + 1<<15) >> 16
		}
		v := new(big.Int).Mul(big.NewInt(x), big.NewInt(red))
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(14-s)))
		v.Rsh(v, uint(15-s)) // floor shift, as >> on int64
		if got := MultiplyByQuantizedMultiplier64(x, q, s); int64(got) != v.Int64() && v.IsInt64() && v.Int64() == int64(int32(v.Int64())) {
			t.Fatalf("MBQM64(%d, %d, %d) = %d, want %d", x, q, s, got, v)
		}
	}
}

func TestExpAndReciprocal(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for i := 0; i < 20000; i++ {
		// a in [-32, 0] as Q5.26.
		a := -int32(r.Int63n(32 << 26))
		got := float64(ExpOnNegativeValues(a, 5)) / (1 << 31)
		want := math.Exp(float64(a) / (1 << 26))
		if math.Abs(got-want) > 1e-6 {
			t.Fatalf("exp(%g) = %g, want %g", float64(a)/(1<<26), got, want)
		}
		x := int32(r.Int63n(1 << 31))
		g := float64(OneOverOnePlusXForXIn01(x)) / (1 << 31)
		w := 1 / (1 + float64(x)/(1<<31))
		if math.Abs(g-w) > 1e-6 {
			t.Fatalf("1/(1+%g) = %g, want %g", float64(x)/(1<<31), g, w)
		}
	}
	if got := ExpOnNegativeValues(0, 5); got != math.MaxInt32 {
		t.Errorf("exp(0) = %d", got)
	}
}

// TestChanQ checks the unrolled requantization against
// MultiplyByQuantizedMultiplier over the whole int32 range and all shifts.
func TestChanQ(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for i := 0; i < 300000; i++ {
		m := int32(r.Int63n(1<<31-1<<30) + 1<<30)
		if r.Intn(50) == 0 {
			m = []int32{0, 1 << 30, math.MaxInt32}[r.Intn(3)]
		}
		s := r.Intn(40) - 31
		x := randInt32(r)
		q := makeChanQ([]int32{m}, []int{s})[0]
		want := MultiplyByQuantizedMultiplier(x, m, s)
		if got := q.apply(x); got != want {
			t.Fatalf("apply(%d, %d, %d) = %d, want %d", x, m, s, got, want)
		}
		out := make([]int8, 1)
		requantRow([]int32{x}, []int32{0}, []chanQ{q}, 3, -128, 127, out)
		if w := int8(clamp32(want+3, -128, 127)); out[0] != w {
			t.Fatalf("requantRow(%d, %d, %d) = %d, want %d", x, m, s, out[0], w)
		}
	}
}
