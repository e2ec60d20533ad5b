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
