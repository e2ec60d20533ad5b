package detect

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// TestTailScore: hand-computed points of the likelihood scale.
func TestTailScore(t *testing.T) {
	for _, c := range []struct{ z, want float64 }{
		{0, math.Log10(2) / 10},                      // p = 1/2
		{4.264890793922825, 0.5},                     // p = 1e-5
		{1.2815515655446004, 0.1},                    // p = 0.1
		{-1.2815515655446004, -math.Log10(0.9) / 10}, // p = 0.9
		{7, 1}, // p = 1.3e-12, below 1e-10
		{math.Inf(1), 1},
		{math.NaN(), 0},
	} {
		if got := TailScore(c.z); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("TailScore(%v) = %v, want %v", c.z, got, c.want)
		}
	}
}

// TestLikelihoodHand: a history of 1, 2, 3, 4 (averages of one score) has
// mean 2.5 and deviation √1.25; a raw score of 5 lies z = 2.5/√1.25 =
// 2.2361 above it, p = 0.012674, score -log10(p)/10 = 0.18971. A constant
// history of 1 has its deviation floored at 0.01·1, so 1.05 is z = 5 above
// it: p = 2.8665e-7, score 0.65426.
func TestLikelihoodHand(t *testing.T) {
	l, err := NewLikelihood(LikelihoodConfig{Window: 4, Average: 1, Learn: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []float64{1, 2, 3, 4} {
		if s, ok := l.Step(r); ok || s != 0 {
			t.Fatalf("learning: score %v ok %v", s, ok)
		}
	}
	mean, std := l.Fit()
	if mean != 2.5 || math.Abs(std-math.Sqrt(1.25)) > 1e-12 {
		t.Fatalf("fit %v %v, want 2.5 and √1.25", mean, std)
	}
	s, ok := l.Step(5)
	if !ok || math.Abs(s-0.18971) > 1e-4 {
		t.Fatalf("score of 5: %v %v, want 0.18971", s, ok)
	}
	// The history slid: 2, 3, 4, 5.
	if mean, _ := l.Fit(); mean != 3.5 {
		t.Fatalf("mean after the slide %v, want 3.5", mean)
	}

	c, _ := NewLikelihood(LikelihoodConfig{Window: 4, Average: 1, Learn: 4})
	for range 4 {
		c.Step(1)
	}
	if s, _ := c.Step(1.05); math.Abs(s-0.65426) > 1e-4 {
		t.Fatalf("score of 1.05 after constant 1: %v, want 0.65426", s)
	}
	// Below the mean is not unlikely.
	if s, _ := c.Step(0); s > math.Log10(2)/10 {
		t.Fatalf("score of 0 after 1s: %v", s)
	}
}

// TestLikelihoodAverage: the judged value is the mean of the last Average
// raw scores: one high raw score among low ones is diluted, a run of them
// is not.
func TestLikelihoodAverage(t *testing.T) {
	l, _ := NewLikelihood(LikelihoodConfig{Window: 100, Average: 4})
	rng := rand.New(rand.NewSource(1))
	for range 200 {
		l.Step(1 + 0.1*rng.Float64())
	}
	// Mean of averages ≈ 1.05, deviation ≈ 0.0144 (0.1/√12/√4).
	one, _ := l.Step(1.3) // average ≈ 1.11: z ≈ 4
	if one < 0.3 || one > 0.6 {
		t.Fatalf("one raw score of 1.3 scores %v", one)
	}
	var run float64
	for range 3 {
		run, _ = l.Step(1.3)
	}
	if run != 1 {
		t.Fatalf("four raw scores of 1.3 score %v, want 1", run)
	}
	if _, std := l.Fit(); std <= 0 {
		t.Fatal("no deviation")
	}
}

func TestLikelihoodConfig(t *testing.T) {
	for _, c := range []LikelihoodConfig{{Window: 1}, {Window: 10, Learn: 11}, {Window: -1}, {Window: 10, Floor: -1}} {
		if _, err := NewLikelihood(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
		if _, err := New(Config{Window: 10, Low: 1, High: 2, Likelihood: c}); err == nil && c.Window != 0 {
			t.Errorf("detector with %+v accepted", c)
		}
	}
	l, _ := NewLikelihood(LikelihoodConfig{Window: 1000})
	if c := l.Config(); c.Average != DefaultLikelihoodAverage || c.Learn != 250 || c.Floor != DefaultLikelihoodFloor {
		t.Fatalf("defaults %+v", c)
	}
}

// TestLikelihoodRunningSums: after many updates the running fit equals
// the fit summed afresh.
func TestLikelihoodRunningSums(t *testing.T) {
	l, _ := NewLikelihood(LikelihoodConfig{Window: 300, Average: 3})
	rng := rand.New(rand.NewSource(5))
	for i := range 10000 {
		r := rng.ExpFloat64()
		if i%1000 == 0 {
			r = 1e6
		}
		l.Step(r)
		if i%97 == 0 {
			mean, std := l.Fit()
			c := *l
			c.resum()
			cm, cs := c.Fit()
			if math.Abs(mean-cm) > 1e-9*(1+cm) || math.Abs(std-cs) > 1e-9*(1+cs) {
				t.Fatalf("step %d: running fit %v %v, exact %v %v", i, mean, std, cm, cs)
			}
		}
	}
}

var likCfg = Config{Window: 60, Low: 0.4, High: 0.5, CooldownReadings: 30, Warmup: 60,
	Likelihood: LikelihoodConfig{Window: 500, Average: 5}}

// TestLikelihoodDetector: a z-score detector whose raw scores go through
// the likelihood stage stays quiet on a noisy sine, raises one anomaly for
// a burst of large readings, and reports the raw score beside the
// likelihood score.
func TestLikelihoodDetector(t *testing.T) {
	d, err := New(likCfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(9))
	t0 := time.Unix(1700000000, 0)
	events := 0
	warm := false
	for i := range 2000 {
		v := 10 + math.Sin(float64(i)/10) + rng.NormFloat64()*0.3
		if i >= 1500 && i < 1510 {
			v += 6
		}
		j := d.Judge(t0.Add(time.Duration(i)*time.Minute), v)
		warm = warm || j.Warm
		if j.Warm && (j.Score < 0 || j.Score > 1) {
			t.Fatalf("reading %d: likelihood score %v", i, j.Score)
		}
		if j.Emit && j.Level == Anomaly {
			events++
			if i < 1500 || i > 1510 {
				t.Fatalf("reading %d: anomaly outside the burst (score %v raw %v)", i, j.Score, j.Raw)
			}
			if j.Raw < 3 {
				t.Fatalf("reading %d: raw score %v", i, j.Raw)
			}
		}
	}
	if !warm || events != 1 {
		t.Fatalf("warm %v, %d anomalies; want 1", warm, events)
	}
}

// TestRange: with RangeMargin a reading beyond the range seen so far
// (widened by the margin) is an anomaly scored High, whatever the scorer
// says; readings inside it are left to the scorer.
func TestRange(t *testing.T) {
	cfg := Config{Window: 20, Low: 40, High: 50, Warmup: 20, RangeMargin: 0.1, RangeWarmup: 10}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	for i := range 100 {
		v := float64(i % 11) // 0 .. 10: range width 10, margin 1
		if j := d.Judge(t0.Add(time.Duration(i)*time.Second), v); j.Level != Normal || j.OutOfRange {
			t.Fatalf("reading %d (%v): %+v", i, v, j)
		}
	}
	// 0 .. 10, margin 1: 10.9 is inside and widens the range to 0 .. 10.9
	// (margin 1.09, so up to 11.99).
	if j := d.Judge(t0.Add(100*time.Second), 10.9); j.OutOfRange || j.Level != Normal {
		t.Fatalf("10.9 (inside the margin): %+v", j)
	}
	if j := d.Judge(t0.Add(101*time.Second), 11.95); j.OutOfRange {
		t.Fatalf("11.95 (inside the margin): %+v", j)
	}
	// 0 .. 11.95, margin 1.195: up to 13.145.
	j := d.Judge(t0.Add(102*time.Second), 13.2)
	if !j.OutOfRange || j.Level != Anomaly || !j.Emit || j.Score != 50 {
		t.Fatalf("13.2 (beyond the margin): %+v", j)
	}
	// 0 .. 13.2, margin 1.32: down to -1.32.
	if j := d.Judge(t0.Add(103*time.Second), -1.3); j.OutOfRange {
		t.Fatalf("-1.3 (inside): %+v", j)
	}
	if j := d.Judge(t0.Add(104*time.Second), -2.9); !j.OutOfRange {
		t.Fatalf("-2.9 (below): %+v", j)
	}
	// Before RangeWarmup readings nothing is out of range.
	e, _ := New(cfg)
	for i := range 9 {
		if j := e.Judge(t0.Add(time.Duration(i)*time.Second), float64(i*i)); j.OutOfRange {
			t.Fatalf("reading %d in the range warm-up: %+v", i, j)
		}
	}
	if _, err := New(Config{Window: 20, Low: 1, High: 2, RangeMargin: -1}); err == nil {
		t.Fatal("negative margin accepted")
	}
}

// TestCheckpointV4: a detector with the likelihood stage and the range
// resumes from its state exactly as the original continues; a version 3
// state (without them) loads, both starting afresh; a state with a
// likelihood stage of another size is refused.
func TestCheckpointV4(t *testing.T) {
	cfg := likCfg
	cfg.RangeMargin = 0.05
	d1, _ := New(cfg)
	rng := rand.New(rand.NewSource(4))
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	val := func(i int) float64 { return 10 + math.Sin(float64(i)/7) + rng.NormFloat64()*0.2 }
	for i := range 900 {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), val(i))
	}
	b, d2 := restored(t, d1, cfg)
	if stateVersion != 7 {
		t.Fatalf("state version %d", stateVersion)
	}
	for i := 900; i < 1400; i++ {
		v := val(i)
		if i == 1200 {
			v = 30
		}
		ts := t0.Add(time.Duration(i) * time.Second)
		if j1, j2 := d1.Judge(ts, v), d2.Judge(ts, v); !reflect.DeepEqual(j1, j2) {
			t.Fatalf("reading %d: original %+v, restored %+v", i, j1, j2)
		}
	}
	// Version 3: loads; the likelihood stage learns again (not warm at
	// once), the range is empty.
	b3, err := d1.appendState(nil, stateV3)
	if err != nil {
		t.Fatal(err)
	}
	d3, _ := New(cfg)
	if err := d3.UnmarshalBinary(b3); err != nil {
		t.Fatalf("version 3 state: %v", err)
	}
	if j := d3.Judge(t0.Add(2000*time.Second), 10); j.Warm || j.OutOfRange {
		t.Fatalf("after a version 3 state: %+v", j)
	}
	// Another likelihood size: refused. No likelihood stage: the state's is
	// skipped.
	other := cfg
	other.Likelihood.Window = 400
	d4, _ := New(other)
	if err := d4.UnmarshalBinary(b); !errors.Is(err, ErrState) {
		t.Fatalf("likelihood of another size: %v", err)
	}
	plain := cfg
	plain.Likelihood = LikelihoodConfig{}
	d5, _ := New(plain)
	if err := d5.UnmarshalBinary(b); err != nil {
		t.Fatalf("into a detector without the stage: %v", err)
	}
	for n := 1; n < len(b); n += 7 {
		d6, _ := New(cfg)
		if err := d6.UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("state truncated to %d of %d bytes loaded", n, len(b))
		}
	}
}

// TestSwapResetsLikelihood: a new scorer's raw scores are not judged
// against the old scorer's: the likelihood stage learns again after a swap.
func TestSwapResetsLikelihood(t *testing.T) {
	cfg := likCfg
	cfg.Likelihood.Learn = 20
	d, _ := New(cfg)
	t0 := time.Unix(1700000000, 0)
	rng := rand.New(rand.NewSource(2))
	var j Judgement
	for i := range 300 {
		j = d.Judge(t0.Add(time.Duration(i)*time.Second), 10+rng.NormFloat64())
	}
	if !j.Warm {
		t.Fatal("not warm before the swap")
	}
	if err := d.SwapScorer(zscoreScorer{d.scorer.(zscoreScorer).s}, cfg.Low, cfg.High); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if j := d.Judge(t0.Add(time.Duration(300+i)*time.Second), 10+rng.NormFloat64()); j.Warm {
			t.Fatalf("reading %d after the swap: warm (the likelihood kept the old history)", i)
		}
	}
	if j := d.Judge(t0.Add(320*time.Second), 10); !j.Warm {
		t.Fatal("not warm again after Learn readings")
	}
}

// TestLikelihoodNoAlloc: judging a reading with the likelihood stage and
// the range rule allocates nothing.
func TestLikelihoodNoAlloc(t *testing.T) {
	cfg := likCfg
	cfg.RangeMargin = 0.01
	d, _ := New(cfg)
	t0 := time.Unix(1700000000, 0)
	for i := range 1000 {
		d.Judge(t0.Add(time.Duration(i)*time.Second), 10+math.Sin(float64(i)))
	}
	i := 1000
	if n := testing.AllocsPerRun(500, func() {
		d.Judge(t0.Add(time.Duration(i)*time.Second), 10+math.Sin(float64(i)))
		i++
	}); n != 0 {
		t.Fatalf("%v allocations per reading", n)
	}
}

// BenchmarkLikelihoodStep is the cost of the likelihood stage per raw
// score (window 1000, average 10).
func BenchmarkLikelihoodStep(b *testing.B) {
	l, _ := NewLikelihood(LikelihoodConfig{Window: 1000, Average: 10})
	rng := rand.New(rand.NewSource(1))
	raws := make([]float64, 4096)
	for i := range raws {
		raws[i] = rng.ExpFloat64()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Step(raws[i&4095])
	}
}

// TestLikelihoodHugeRaw: an infinite or huge raw score saturates the score
// and leaves the fit finite, and the stage recovers once it has left the
// history.
func TestLikelihoodHugeRaw(t *testing.T) {
	l, _ := NewLikelihood(LikelihoodConfig{Window: 50, Average: 2, Learn: 10})
	for range 60 {
		l.Step(1)
	}
	if s, _ := l.Step(math.Inf(1)); s != 1 {
		t.Fatalf("infinite raw score scores %v", s)
	}
	l.Step(math.NaN())
	if m, s := l.Fit(); math.IsNaN(m) || math.IsInf(m, 0) || math.IsNaN(s) || math.IsInf(s, 0) {
		t.Fatalf("fit %v %v", m, s)
	}
	for range 60 {
		l.Step(1)
	}
	if m, _ := l.Fit(); m != 1 {
		t.Fatalf("mean %v after the huge score left", m)
	}
}
