package eval

import (
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

var t0 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// judgeAll feeds vals to d and returns the judgements.
func judgeAll(d Detector, vals []float64) []Judgement {
	out := make([]Judgement, len(vals))
	for i, v := range vals {
		out[i] = d.Judge(t0.Add(time.Duration(i)*time.Minute), []float64{v})
	}
	return out
}

func emits(js []Judgement) (rows []int, levels []Level) {
	for i, j := range js {
		if j.Emit {
			rows = append(rows, i)
			levels = append(levels, j.Level)
		}
	}
	return rows, levels
}

// alternating returns n values 9, 11, 9, 11, ... (mean 10, std 1).
func alternating(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = 9 + 2*float64(i%2)
	}
	return out
}

func TestZScoreDecisions(t *testing.T) {
	cfg := ZScoreConfig{Window: 20, Low: 4, High: 6, Cooldown: 3, Warmup: 20}.WithDefaults()
	z, err := NewZScore(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	vals := alternating(60)
	// Mean 10, std 1 over the window: 15 scores 5 (uncertain), 17 scores 7
	// (anomaly), 30 far out.
	vals[25] = 15 // uncertain: emits
	vals[26] = 20 // escalates to anomaly (mean 10.1, std 1.18 with the clamped 15 held): emits
	vals[28] = 30 // same incident (only one normal reading since): no emit
	// rows 29..32 normal: the incident ends after more than 3 of them.
	vals[50] = 17 // new incident (the window holds only rows 30..49 again): emits
	vals[2] = 100 // during warm-up: never scored (folded clamped; out of the window by row 25)
	js := judgeAll(z, vals)
	rows, levels := emits(js)
	if want := []int{25, 26, 50}; !reflect.DeepEqual(rows, want) {
		t.Fatalf("emits at %v, want %v", rows, want)
	}
	if want := []Level{Uncertain, Anomaly, Anomaly}; !reflect.DeepEqual(levels, want) {
		t.Errorf("levels %v, want %v", levels, want)
	}
	if js[28].Level != Anomaly || js[2].Score != 0 || js[2].Level != Normal {
		t.Errorf("row 28 %+v, row 2 %+v", js[28], js[2])
	}
	if !near(js[25].Score, 5, 1e-12) || !near(js[50].Score, 7, 1e-12) {
		t.Errorf("scores %g at row 25, %g at row 50; want 5 and 7", js[25].Score, js[50].Score)
	}
	// The window holds the last Window raw values, ending with the reading.
	w := js[26].Window
	if len(w) != 20 || w[19] != 20 || w[18] != 15 {
		t.Errorf("window %v", w)
	}
	if js[25].Window == nil || js[27].Window != nil {
		t.Error("window set on a reading that does not emit, or missing on one that does")
	}
}

func TestZScoreScoreAndClamp(t *testing.T) {
	cfg := ZScoreConfig{Window: 4, Warmup: -1}.WithDefaults()
	z, _ := NewZScore(cfg, 1)
	// 9, 11, 9, 11: mean 10, population std 1.
	for _, v := range []float64{9, 11, 9, 11} {
		z.Judge(t0, []float64{v})
	}
	j := z.Judge(t0, []float64{14}) // |14-10|/1 = 4: uncertain
	if !near(j.Score, 4, 1e-12) || j.Level != Uncertain {
		t.Fatalf("score %g level %v, want 4 uncertain", j.Score, j.Level)
	}
	// 14 was folded clamped to 10+3·1 = 13: held 11, 9, 11, 13.
	// So 11 now scores 0 (unclamped, the mean would be 11.25), and after it
	// (held 9, 11, 13, 11) 11+4·sqrt 2 scores 4.
	if j := z.Judge(t0, []float64{11}); !near(j.Score, 0, 1e-12) {
		t.Errorf("after clamp: 11 scores %g, want 0", j.Score)
	}
	if j := z.Judge(t0, []float64{11 + 4*math.Sqrt(2)}); !near(j.Score, 4, 1e-9) {
		t.Errorf("after clamp: 11+4·sqrt 2 scores %g, want 4", j.Score)
	}
	// A constant stream: any change scores very high and is folded as is.
	c, _ := NewZScore(ZScoreConfig{Window: 3, Warmup: -1}.WithDefaults(), 1)
	judgeAll(c, []float64{5, 5, 5})
	if j := c.Judge(t0, []float64{6}); j.Level != Anomaly || j.Score < 1e8 {
		t.Errorf("change in a constant stream: %+v", j)
	}
	// Held 5, 5, 6 (folded as is): mean 16/3, population std sqrt(2)/3, so
	// 6 scores sqrt 2.
	if j := c.Judge(t0, []float64{6}); !near(j.Score, math.Sqrt(2), 1e-9) {
		t.Errorf("after a change in a constant stream, 6 scores %g, want sqrt 2", j.Score)
	}
}

func TestZScoreColumns(t *testing.T) {
	z, err := NewZScore(ZScoreConfig{Window: 10, Warmup: 10}.WithDefaults(), 2)
	if err != nil {
		t.Fatal(err)
	}
	a := alternating(10)
	for i := range a {
		z.Judge(t0, []float64{a[i], 100 + a[i]})
	}
	j := z.Judge(t0, []float64{10, 130}) // column 2 scores 20
	if j.Level != Anomaly || !j.Emit || j.Window[len(j.Window)-1] != 130 {
		t.Errorf("second column's anomaly: %+v", j)
	}
	if _, err := NewZScore(ZScoreConfig{Window: 10, Low: 6, High: 4, Clamp: 3}, 1); err == nil {
		t.Error("high < low accepted")
	}
	if _, err := NewZScore(ZScoreConfig{Window: 10, Low: 4, High: 6, Clamp: 3}, 0); err == nil {
		t.Error("no columns accepted")
	}
}

func TestRobustScoreHand(t *testing.T) {
	// ref 1,2,3,4,100: median 3; deviations 2,1,0,1,97 -> MAD 1; scale 1.4826.
	ref := []float64{100, 2, 4, 1, 3}
	if got, want := RobustScore(10, ref), 7/1.4826; !near(got, want, 1e-12) {
		t.Errorf("RobustScore = %g, want %g", got, want)
	}
	if !reflect.DeepEqual(ref, []float64{100, 2, 4, 1, 3}) {
		t.Error("ref modified")
	}
	// Even count: 1,2,3,4 -> median 2.5, deviations 1.5,.5,.5,1.5 -> MAD 1.
	if got, want := RobustScore(5.5, []float64{4, 1, 3, 2}), 3/1.4826; !near(got, want, 1e-12) {
		t.Errorf("even: %g, want %g", got, want)
	}
	// More than half equal: MAD 0; 1.2533 × mean |x - 5| = 1.2533 × 8/5.
	if got, want := RobustScore(7, []float64{5, 5, 5, 1, 9}), 2/(1.2533*1.6); !near(got, want, 1e-12) {
		t.Errorf("MAD 0: %g, want %g", got, want)
	}
	if RobustScore(3, []float64{1}) != 0 {
		t.Error("one reference value scored")
	}
}

func TestMADAgainstSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 2; n < 60; n++ {
		s := make([]float64, n)
		for i := range s {
			s[i] = math.Round(rng.NormFloat64() * 3) // ties on purpose
		}
		sort.Float64s(s)
		med := medianSorted(s)
		dev := make([]float64, n)
		for i, x := range s {
			dev[i] = math.Abs(x - med)
		}
		sort.Float64s(dev)
		if got, want := madSorted(s, med), medianSorted(dev); got != want {
			t.Fatalf("n %d: madSorted %g, want %g (%v)", n, got, want, s)
		}
	}
}

func TestRobustStreamAndConfirm(t *testing.T) {
	r, err := NewRobust(RobustConfig{Window: 50, Threshold: 6, Cooldown: 3, Warmup: 10}.WithDefaults(), 1)
	if err != nil {
		t.Fatal(err)
	}
	vals := alternating(80)
	vals[30] = 30 // |30 - 10| / (1.4826 · 1) = 13.5: anomaly
	vals[31] = 30 // median 11, MAD 2: 19 / 2.9652 = 6.4, same incident
	vals[50] = 14 // median 11, MAD 2: 1.0, normal
	vals[60] = 40 // 29 / 2.9652 = 9.8: anomaly, new incident
	js := judgeAll(r, vals)
	rows, _ := emits(js)
	if want := []int{30, 60}; !reflect.DeepEqual(rows, want) {
		t.Errorf("emits at %v, want %v", rows, want)
	}
	if !near(js[30].Score, 20/1.4826, 1e-12) || !near(js[31].Score, 19/(2*1.4826), 1e-12) || !near(js[50].Score, 3/(2*1.4826), 1e-12) {
		t.Errorf("scores %g %g %g", js[30].Score, js[31].Score, js[50].Score)
	}
	// The streaming score is RobustScore over the previous Window readings.
	if got, want := js[60].Score, RobustScore(vals[60], vals[10:60]); !near(got, want, 1e-12) {
		t.Errorf("row 60 score %g, want %g", got, want)
	}
	// Confirm scores the last value against the rest of the window.
	w := append(alternating(20), 20)
	if s, ok := r.Confirm(w); !ok || !near(s, 10/1.4826, 1e-12) {
		t.Errorf("Confirm = %g %v", s, ok)
	}
	if _, ok := r.Confirm(append(alternating(20), 12)); ok {
		t.Error("a normal reading confirmed")
	}
	if _, ok := r.Confirm([]float64{1, 100}); ok {
		t.Error("a two-value window confirmed")
	}
}

func TestSortedRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sr := newSortedRing(7)
	for i := 0; i < 200; i++ {
		sr.push(math.Round(rng.Float64() * 10))
		want := sr.ring.values()
		sort.Float64s(want)
		if !reflect.DeepEqual(sr.sorted, want) {
			t.Fatalf("step %d: sorted %v, want %v", i, sr.sorted, want)
		}
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
