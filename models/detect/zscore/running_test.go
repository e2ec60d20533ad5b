package zscore

import (
	"math"
	"math/rand"
	"testing"
)

// close reports whether the running statistics agree with the exact
// two-pass ones within float rounding.
func closeStats(t *testing.T, step int, s *Scorer) {
	t.Helper()
	mean, std := s.Stats()
	em, es, en := s.meanStd()
	if en != s.present() {
		t.Fatalf("step %d: %d present, exact count %d", step, s.present(), en)
	}
	scale := 1 + math.Abs(em)
	if math.Abs(mean-em) > 1e-9*scale || math.Abs(std-es) > 1e-9*(scale+es) {
		t.Fatalf("step %d: running mean %v std %v, exact %v %v", step, mean, std, em, es)
	}
	if es == 0 && std != 0 {
		t.Fatalf("step %d: exact deviation 0, running %v", step, std)
	}
}

// TestRunningMatchesExact: on streams made to hurt running sums (spikes of
// 1e9 entering and leaving the window, long constant stretches after
// varied ones, level shifts, a large offset with a tiny deviation,
// missing samples, evictions, resets) the O(1) statistics stay within
// 1e-9 of the exact two-pass ones at every step, and a constant window
// has a deviation of exactly 0.
func TestRunningMatchesExact(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, w := range []int{2, 5, 64, 300} {
		s := New(w, 1e12) // a clamp this wide lets the spikes in
		for i := 0; i < 20000; i++ {
			var v float64
			switch phase := (i / 1000) % 6; phase {
			case 0:
				v = rng.NormFloat64()
			case 1:
				v = 5 // constant
			case 2:
				v = rng.NormFloat64()
				if rng.Intn(50) == 0 {
					v = 1e9 * (1 + rng.Float64()) // a spike
				}
			case 3:
				v = 1e6 + 1e-3*rng.NormFloat64() // large offset, tiny spread
			case 4:
				v = float64((i / 37) % 3 * 100) // level shifts
			case 5:
				v = rng.NormFloat64()
				if rng.Intn(7) == 0 {
					v = math.NaN() // missing
				}
			}
			s.Fold(v)
			if rng.Intn(97) == 0 {
				s.Evict()
			}
			if rng.Intn(5000) == 0 {
				s.Reset()
			}
			closeStats(t, i, s)
		}
		if w >= 64 && s.resums > 20000/10 {
			t.Fatalf("window %d: %d exact sums in 20000 steps; the running sums do not carry the load", w, s.resums)
		}
		t.Logf("window %d: %d exact sums in 20000 steps", w, s.resums)
	}
}

// TestConstantAfterVaried: a window that ends up holding one value has a
// deviation of exactly 0, however varied it was before (the clamp does not
// hold it at the old level).
func TestConstantAfterVaried(t *testing.T) {
	s := New(10, 0)
	for i := 0; i < 10; i++ {
		s.Fold(float64(i * i))
	}
	for i := 0; i < 10; i++ {
		s.Fold(1.1)
	}
	if mean, std := s.Stats(); mean != 1.1 || std != 0 {
		t.Fatalf("constant window: mean %v std %v, want 1.1 and 0", mean, std)
	}
}

// TestStateKeepsRunningSums: a restored scorer continues bit for bit as
// the original; a version 1 state (values only) loads, summed afresh.
func TestStateKeepsRunningSums(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	a := New(50, 0)
	for i := 0; i < 777; i++ {
		a.Fold(100 + rng.NormFloat64()*(1+float64(i%50)))
	}
	b, _ := a.MarshalBinary()
	c := New(50, 0)
	if err := c.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		v := 100 + rng.NormFloat64()*3
		if za, zc := a.Score(v), c.Score(v); za != zc {
			t.Fatalf("reading %d: original scores %v, restored %v", i, za, zc)
		}
		a.Fold(v)
		c.Fold(v)
	}
	// Version 1: the header and values only.
	b, _ = a.MarshalBinary()
	head := 1 + uvarintLen(uint64(len(a.vals))) + uvarintLen(uint64(a.next)) + uvarintLen(uint64(a.count))
	old := append([]byte{stateV1}, b[1:head+8*len(a.vals)]...)
	d := New(50, 0)
	if err := d.UnmarshalBinary(old); err != nil {
		t.Fatalf("version 1 state: %v", err)
	}
	closeStats(t, 0, d)
	am, as := a.Stats()
	dm, ds := d.Stats()
	if math.Abs(am-dm) > 1e-9*(1+math.Abs(am)) || math.Abs(as-ds) > 1e-9*(1+as) {
		t.Fatalf("version 1 state: stats %v %v, original %v %v", dm, ds, am, as)
	}
	if err := d.UnmarshalBinary(b[:len(b)-3]); err == nil {
		t.Fatal("a truncated version 2 state loaded")
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
