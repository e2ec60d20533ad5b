package detect

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

// rawScorer scores a reading by its distance from the mean of the last n
// raw readings (missing samples skipped), as a model scorer keeps raw
// readings: a fresh one that folds the same samples is in the same state.
type rawScorer struct {
	n    int
	vals []float64
}

func (s *rawScorer) Model() string { return "raw@1" }

func (s *rawScorer) Step(v float64) (float64, bool) {
	var sum float64
	k := 0
	for _, x := range s.vals {
		if x == x {
			sum += x
			k++
		}
	}
	s.Fold(v)
	if k < 2 {
		return 0, false
	}
	return math.Abs(v - sum/float64(k)), true
}

func (s *rawScorer) Fold(v float64) {
	if s.vals = append(s.vals, v); len(s.vals) > s.n {
		s.vals = s.vals[1:]
	}
}

func (s *rawScorer) Evict()                               {}
func (s *rawScorer) Reset()                               { s.vals = nil }
func (s *rawScorer) AppendState(b []byte) ([]byte, error) { return b, nil }
func (s *rawScorer) RestoreState(b []byte, _ int) (Scorer, []byte, error) {
	return &rawScorer{n: s.n}, b, nil
}

// TestSwapScorerKeepsWindow: a detector whose scorer is swapped for a fresh
// one mid-stream (with a gap marked missing in its window) judges every
// following reading exactly as a detector never swapped does, with the new
// thresholds: the window was folded into the new scorer, nothing judged
// twice or skipped. A bad swap leaves the detector unchanged.
func TestSwapScorerKeepsWindow(t *testing.T) {
	cfg := Config{Window: 60, Low: 4, High: 6, CooldownReadings: 5, GapFill: GapMissing, Interval: time.Second}
	newRaw := func() *Detector {
		d, err := NewWithScorer(cfg, &rawScorer{n: 40})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := newRaw(), newRaw()
	rng := rand.New(rand.NewSource(3))
	t0 := time.Unix(1700000000, 0)
	ts := func(i int) time.Time {
		if i >= 100 {
			i += 3 // a gap of three missing samples
		}
		return t0.Add(time.Duration(i) * time.Second)
	}
	for i := 0; i < 120; i++ {
		v := smooth(i, rng)
		a.Judge(ts(i), v)
		b.Judge(ts(i), v)
	}
	if err := a.SwapScorer(&rawScorer{n: 40}, 6, 4); err == nil {
		t.Fatal("swap with high < low accepted")
	}
	if err := a.SwapScorer(&rawScorer{n: 40}, 3, 5); err != nil {
		t.Fatal(err)
	}
	if c := a.Config(); c.Low != 3 || c.High != 5 {
		t.Fatalf("thresholds after swap %g %g", c.Low, c.High)
	}
	levels := 0
	for i := 120; i < 400; i++ {
		v := smooth(i, rng)
		if i%97 == 0 {
			v += 8
		}
		ja, jb := a.Judge(ts(i), v), b.Judge(ts(i), v)
		if math.Abs(ja.Score-jb.Score) > 1e-9*math.Max(1, jb.Score) || ja.Warm != jb.Warm {
			t.Fatalf("reading %d: swapped score %v (warm %v), unswapped %v (warm %v)", i, ja.Score, ja.Warm, jb.Score, jb.Warm)
		}
		want := Normal
		switch {
		case jb.Score >= 5:
			want = Anomaly
		case jb.Score >= 3:
			want = Uncertain
		}
		if ja.Level != want {
			t.Fatalf("reading %d: score %v level %v, want %v with the new thresholds", i, ja.Score, ja.Level, want)
		}
		if want != Normal {
			levels++
		}
	}
	if levels == 0 {
		t.Fatal("no reading above the thresholds: the comparison saw no incident")
	}
}
