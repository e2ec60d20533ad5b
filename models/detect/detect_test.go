package detect

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

func smooth(i int, rng *rand.Rand) float64 {
	return 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + rng.NormFloat64()*0.05
}

func newDet(t *testing.T, cfg Config) *Detector {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var stock = Config{Window: 120, Scorer: "zscore", Low: 4, High: 6, CooldownReadings: 20, Warmup: 120}

// TestSpikeIsOneEvent is the requirement: a few hundred smooth readings raise
// nothing; a 10-sigma spike raises exactly one anomaly.
func TestSpikeIsOneEvent(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	d := newDet(t, stock)
	t0 := time.Unix(1700000000, 0)
	var vals []float64
	events := 0
	for i := 0; i < 400; i++ {
		v := smooth(i, rng)
		vals = append(vals, v)
		if j := d.Judge(t0.Add(time.Duration(i)*time.Second), v); j.Emit || j.Level != Normal {
			t.Fatalf("smooth reading %d: %+v", i, j)
		}
	}
	// 10 standard deviations of the recent readings above the sine.
	_, std := meanStdOf(vals[len(vals)-120:])
	spike := smooth(400, rng) + 10*std
	j := d.Judge(t0.Add(400*time.Second), spike)
	if !j.Emit || j.Level != Anomaly {
		t.Fatalf("spike: %+v", j)
	}
	events++
	if len(j.Window) != 120 || j.Window[119] != spike {
		t.Fatalf("window: len %d, last %v, want spike %v last", len(j.Window), j.Window[len(j.Window)-1], spike)
	}
	for i := 401; i < 700; i++ {
		j := d.Judge(t0.Add(time.Duration(i)*time.Second), smooth(i, rng))
		if j.Emit {
			events++
			t.Errorf("reading %d after the spike emitted %+v", i, j)
		}
	}
	if events != 1 {
		t.Fatalf("%d events, want 1", events)
	}
}

// TestBurstIsOneIncident: a spike lasting several readings is one event;
// after the cool-down a new spike is a new event.
func TestBurstIsOneIncident(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	d := newDet(t, stock)
	t0 := time.Unix(0, 0)
	i := 0
	judge := func(v float64) Judgement {
		i++
		return d.Judge(t0.Add(time.Duration(i)*time.Second), v)
	}
	for ; i < 300; judge(smooth(i, rng)) {
	}
	emitted := 0
	for k := 0; k < 5; k++ {
		if judge(smooth(i, rng) + 30).Emit {
			emitted++
		}
	}
	// Bouncing between anomalous and normal within the cool-down stays one incident.
	for k := 0; k < 10; k++ {
		judge(smooth(i, rng))
	}
	if judge(smooth(i, rng) + 30).Emit {
		emitted++
	}
	if emitted != 1 {
		t.Fatalf("burst emitted %d events, want 1", emitted)
	}
	for k := 0; k < 25; k++ {
		if judge(smooth(i, rng)).Emit {
			t.Fatal("normal reading emitted")
		}
	}
	if !judge(smooth(i, rng) + 30).Emit {
		t.Fatal("spike after the cool-down did not emit")
	}
}

func TestUncertainThenEscalate(t *testing.T) {
	d := newDet(t, Config{Window: 10, Low: 2, High: 5, CooldownReadings: 3, Warmup: 10})
	t0 := time.Unix(0, 0)
	for i := 0; i < 10; i++ {
		d.Judge(t0, float64(i%2)) // mean 0.5, std 0.5
	}
	j := d.Judge(t0, 0.5+3*0.5)
	if !j.Emit || j.Level != Uncertain {
		t.Fatalf("3 sigma: %+v, want uncertain event", j)
	}
	if j := d.Judge(t0, 0.5+3*0.5); j.Emit {
		t.Fatalf("second uncertain reading emitted: %+v", j)
	}
	if j := d.Judge(t0, 100); !j.Emit || j.Level != Anomaly {
		t.Fatalf("escalation: %+v, want anomaly event", j)
	}
}

func TestCooldownDuration(t *testing.T) {
	d := newDet(t, Config{Window: 10, Low: 2, High: 5, CooldownDuration: time.Minute, Warmup: 10})
	t0 := time.Unix(0, 0)
	for i := 0; i < 10; i++ {
		d.Judge(t0, float64(i%2))
	}
	if !d.Judge(t0, 100).Emit {
		t.Fatal("spike did not emit")
	}
	d.Judge(t0.Add(time.Second), 0.5)
	if d.Judge(t0.Add(30*time.Second), 100).Emit {
		t.Fatal("spike within the cool-down emitted")
	}
	d.Judge(t0.Add(31*time.Second), 0.5)
	d.Judge(t0.Add(92*time.Second), 0.5)
	if !d.Judge(t0.Add(93*time.Second), 100).Emit {
		t.Fatal("spike after the cool-down did not emit")
	}
}

func TestWarmup(t *testing.T) {
	d := newDet(t, Config{Window: 10, Low: 2, High: 5, Warmup: 5})
	for i := 0; i < 5; i++ {
		if j := d.Judge(time.Time{}, float64(i*1000)); j.Warm || j.Emit {
			t.Fatalf("reading %d during warm-up: %+v", i, j)
		}
	}
	if _, err := New(Config{Window: 1, Low: 1, High: 2}); err == nil {
		t.Fatal("window 1 accepted")
	}
	if _, err := New(Config{Window: 5, Low: 3, High: 2}); err == nil {
		t.Fatal("high < low accepted")
	}
}

func meanStdOf(xs []float64) (float64, float64) {
	var s float64
	for _, x := range xs {
		s += x
	}
	m := s / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(xs)))
}

// TestScoreHigh: Config.ScoreHigh scales the scorer's own score by
// High / ScoreHigh (a 10-sigma spike that is an anomaly at the default is
// uncertain with ScoreHigh twice High, and normal far above), while the
// range rule still makes a reading out of range an anomaly; a negative or
// NaN ScoreHigh is refused.
func TestScoreHigh(t *testing.T) {
	run := func(cfg Config) Judgement {
		rng := rand.New(rand.NewSource(7))
		d := newDet(t, cfg)
		t0 := time.Unix(1700000000, 0)
		var vals []float64
		for i := 0; i < 400; i++ {
			v := smooth(i, rng)
			vals = append(vals, v)
			d.Judge(t0.Add(time.Duration(i)*time.Second), v)
		}
		_, std := meanStdOf(vals[len(vals)-120:])
		return d.Judge(t0.Add(400*time.Second), smooth(400, rng)+10*std)
	}
	plain := run(stock)
	if plain.Level != Anomaly || !plain.Emit || plain.Source != FromScorer {
		t.Fatalf("spike at the default: %+v", plain)
	}
	half := stock
	half.ScoreHigh = 2 * stock.High
	j := run(half)
	if math.Abs(j.Score-plain.Score/2) > 1e-12 || j.Raw != plain.Raw {
		t.Fatalf("score %v raw %v with ScoreHigh %v, want %v and %v", j.Score, j.Raw, half.ScoreHigh, plain.Score/2, plain.Raw)
	}
	if want := Uncertain; j.Score < stock.Low || j.Score >= stock.High || j.Level != want || !j.Emit {
		t.Fatalf("spike with ScoreHigh %v: %+v, want an uncertain event", half.ScoreHigh, j)
	}
	off := stock
	off.ScoreHigh = 1e6
	if j := run(off); j.Level != Normal || j.Emit {
		t.Fatalf("spike with ScoreHigh %v: %+v, want normal", off.ScoreHigh, j)
	}
	off.RangeMargin = 0.1
	if j := run(off); j.Level != Anomaly || !j.OutOfRange || j.Score != off.High || j.Source != FromRange {
		t.Fatalf("out-of-range spike with ScoreHigh %v: %+v, want the range rule's anomaly", off.ScoreHigh, j)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		c := stock
		c.ScoreHigh = bad
		if _, err := New(c); err == nil {
			t.Fatalf("ScoreHigh %v accepted", bad)
		}
	}
}
