package zscore

import (
	"math"
	"testing"
)

func TestScoreBeforeFold(t *testing.T) {
	s := New(4, 0)
	for _, v := range []float64{1, 2, 3, 4} {
		s.Fold(v)
	}
	mean, std := s.Stats()
	if mean != 2.5 || math.Abs(std-math.Sqrt(1.25)) > 1e-12 {
		t.Fatalf("stats = %v, %v", mean, std)
	}
	if z := s.Score(2.5 + 2*std); math.Abs(z-2) > 1e-9 {
		t.Fatalf("score = %v, want 2", z)
	}
	// Window slides: after folding 5, the 1 is gone.
	s.Fold(5)
	if mean, _ := s.Stats(); mean != 3.5 {
		t.Fatalf("mean after slide = %v, want 3.5", mean)
	}
}

func TestClampKeepsSpikeFromInflating(t *testing.T) {
	s := New(100, 3)
	for i := 0; i < 100; i++ {
		s.Fold(float64(i%2)*2 - 1) // -1, 1: mean 0, std 1
	}
	s.Fold(1000)
	mean, std := s.Stats()
	if mean > 0.05 || std > 1.1 {
		t.Fatalf("one spike moved the stats to mean %v std %v", mean, std)
	}
}

func TestConstantStream(t *testing.T) {
	s := New(10, 0)
	for i := 0; i < 10; i++ {
		s.Fold(5)
	}
	if z := s.Score(5); z != 0 {
		t.Fatalf("same value scores %v", z)
	}
	if z := s.Score(5.1); z < 1e6 {
		t.Fatalf("change in a constant stream scores only %v", z)
	}
}

func TestConstantStreamAdaptsToNewLevel(t *testing.T) {
	s := New(20, 0)
	for i := 0; i < 20; i++ {
		s.Fold(10)
	}
	// The clamp slows the move (the first readings at the new level are
	// folded a few deviations from the old mean) but does not stop it.
	for i := 0; i < 60; i++ {
		s.Fold(2)
	}
	if mean, _ := s.Stats(); mean != 2 {
		t.Fatalf("after 60 readings at the new level the mean is %v, want 2", mean)
	}
	if z := s.Score(2); z != 0 {
		t.Fatalf("a reading at the new level scores %v, want 0", z)
	}
}

// TestMissingAndEvict: missing samples hold window slots but stay out of
// the statistics; evicting drops the oldest slot, wrapped or not.
func TestMissingAndEvict(t *testing.T) {
	s := New(4, 1000)
	for _, v := range []float64{1, math.NaN(), 3, math.Inf(1)} {
		s.Fold(v)
	}
	if mean, std := s.Stats(); s.Count() != 4 || mean != 2 || std != 1 {
		t.Fatalf("count %d, stats %v %v; want 4, 2, 1", s.Count(), mean, std)
	}
	s.Fold(5) // evicts the 1 by wrapping: _ 3 _ 5
	if mean, _ := s.Stats(); mean != 4 {
		t.Fatalf("mean %v, want 4", mean)
	}
	s.Evict() // drops the oldest (missing): 3 _ 5
	s.Evict() // 3 goes: _ 5
	if mean, _ := s.Stats(); s.Count() != 2 || mean != 5 {
		t.Fatalf("after evicting: count %d, mean %v", s.Count(), mean)
	}
	if z := s.Score(100); z != 0 {
		t.Fatalf("one reading held scores %v, want 0", z)
	}
	s.Reset()
	if s.Count() != 0 || s.Score(1) != 0 {
		t.Fatal("reset scorer holds readings")
	}
}
