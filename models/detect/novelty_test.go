package detect

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// TestNoveltyHand: 4 bins over the range 0..8, contexts of 2 readings.
// Readings 0, 8, 0, 8, 0 fall in bins 0, 3, 0, 3, 0: the contexts (0,3),
// (3,0), (0,3), (3,0) were seen 0, 0, 1, 1 times before, so the raw
// novelty scores are 1, 1, 1/2, 1/2. With a likelihood of Average 1,
// Window 2 and Learn 2 the third is judged against the history {1, 1}
// (mean 1, deviation floored at 0.01): z = -50, score about 0; the fourth
// against {1, 1/2} (mean 0.75, deviation 0.25): z = -1, p = 0.8413,
// score -log10(0.8413)/10 = 0.0075.
func TestNoveltyHand(t *testing.T) {
	n, err := newNovelty(NoveltyConfig{Bins: 4, Length: 2}, LikelihoodConfig{Window: 2, Average: 1, Learn: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.counts) != 16 {
		t.Fatalf("%d counts, want 16", len(n.counts))
	}
	var scores []float64
	var oks []bool
	for _, v := range []float64{0, 8, 0, 8, 0} {
		s, ok := n.step(v, 0, 8)
		scores, oks = append(scores, s), append(oks, ok)
	}
	if !reflect.DeepEqual(oks, []bool{false, false, false, true, true}) {
		t.Fatalf("ok %v", oks)
	}
	if scores[3] > 1e-6 || math.Abs(scores[4]-(-math.Log10(0.841344746)/10)) > 1e-6 {
		t.Fatalf("scores %v", scores)
	}
	if n.counts[0*4+3] != 2 || n.counts[3*4+0] != 2 || n.counts[0] != 0 {
		t.Fatalf("counts %v", n.counts)
	}
	// A reading on the top edge of the range falls in the top bin, one
	// below the bottom (not possible from a Detector, which widens the
	// range first) in the bottom one.
	if s, _ := n.step(8.0, 0, 8); s < 0 || n.last[0] != 3 {
		t.Fatalf("top edge: bin %d", n.last[0])
	}
	n.step(-1, 0, 8)
	if n.last[0] != 0 {
		t.Fatalf("below the range: bin %d", n.last[0])
	}
}

// TestNoveltyDetector: on a repeating pattern the novelty channel learns
// the contexts and stays quiet; a course never taken (within the range, so
// the range rule says nothing) raises it to the detector's anomaly.
func TestNoveltyDetector(t *testing.T) {
	cfg := Config{Window: 40, Low: 0.9, High: 1, CooldownReadings: 20, Warmup: 10,
		Likelihood: LikelihoodConfig{Window: 400, Average: 10}, Novelty: NoveltyConfig{Bins: 10, Length: 3}}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Config().Novelty; c.Length != 3 || c.High != 1 {
		t.Fatalf("novelty defaults %+v", c)
	}
	rng := rand.New(rand.NewSource(3))
	t0 := time.Unix(1700000000, 0)
	saw := false
	for i := range 3000 {
		// A saw tooth from 0 to 9, period 10, with a little noise; at
		// 2500 it runs backwards for 30 readings.
		v := float64(i%10) + rng.Float64()*0.2
		if i >= 2500 && i < 2530 {
			v = float64(9-i%10) + rng.Float64()*0.2
		}
		j := d.Judge(t0.Add(time.Duration(i)*time.Second), v)
		if j.Emit && j.Level == Anomaly {
			if i < 2500 || i > 2530 || j.OutOfRange {
				t.Fatalf("reading %d: anomaly %+v", i, j)
			}
			saw = true
			if j.Novelty < 1 || j.Source != FromNovelty {
				t.Fatalf("reading %d: anomaly with novelty %v from %v", i, j.Novelty, j.Source)
			}
		}
	}
	if !saw {
		t.Fatal("the reversed saw tooth raised no anomaly")
	}
}

func TestNoveltyConfig(t *testing.T) {
	for _, c := range []NoveltyConfig{{Bins: 1}, {Bins: 256}, {Bins: 10, Length: 9}, {Bins: 10, High: -1}, {Bins: 64, Length: 3}} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := New(Config{Window: 10, Low: 1, High: 2, Novelty: NoveltyConfig{Bins: 8}}); err == nil {
		t.Error("novelty without the likelihood stage accepted")
	}
}

// TestNoveltyState: the channel's state (recent bins, contexts seen, its
// likelihood) is checkpointed: a restored detector continues exactly as
// the original; a state with another number of bins is refused; a
// detector without the channel skips it.
func TestNoveltyState(t *testing.T) {
	cfg := Config{Window: 20, Low: 0.9, High: 1, CooldownReadings: 20, Warmup: 10, RangeMargin: 0.01,
		Likelihood: LikelihoodConfig{Window: 200, Average: 5}, Novelty: NoveltyConfig{Bins: 8, Length: 3}}
	d1, _ := New(cfg)
	rng := rand.New(rand.NewSource(8))
	t0 := time.Unix(1700000000, 0)
	val := func(i int) float64 { return math.Sin(float64(i)/5) + rng.NormFloat64()*0.1 }
	for i := range 700 {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), val(i))
	}
	b, err := d1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := New(cfg)
	if err := d2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d1.nov.counts, d2.nov.counts) || !reflect.DeepEqual(d1.nov.last, d2.nov.last) {
		t.Fatal("novelty counts or context not restored")
	}
	for i := 700; i < 1200; i++ {
		v := val(i)
		if i > 1000 && i < 1010 {
			v = -v
		}
		ts := t0.Add(time.Duration(i) * time.Second)
		if j1, j2 := d1.Judge(ts, v), d2.Judge(ts, v); !reflect.DeepEqual(j1, j2) {
			t.Fatalf("reading %d: original %+v, restored %+v", i, j1, j2)
		}
	}
	other := cfg
	other.Novelty.Bins = 9
	d3, _ := New(other)
	if err := d3.UnmarshalBinary(b); !errors.Is(err, ErrState) {
		t.Fatalf("other bins: %v", err)
	}
	plain := cfg
	plain.Novelty = NoveltyConfig{}
	d4, _ := New(plain)
	if err := d4.UnmarshalBinary(b); err != nil {
		t.Fatalf("into a detector without the channel: %v", err)
	}
}

// TestNoveltyHoldoff: with Holdoff the novelty channel is silent for that
// many readings after an anomalous one (here a spike out of range): a
// course never taken 200 readings after the spike raises no event (the
// channel's score is still reported), while without a hold-off it raises
// one; a new course after the hold-off raises an event either way. The
// hold-off survives a checkpoint (state version 5); a version 4 state
// loads without one.
func TestNoveltyHoldoff(t *testing.T) {
	cfg := Config{Window: 40, Low: 0.9, High: 1, CooldownReadings: 20, Warmup: 10, RangeMargin: 0.01,
		Likelihood: LikelihoodConfig{Window: 400, Average: 10}, Novelty: NoveltyConfig{Bins: 10, Length: 3}}
	held := cfg
	held.Novelty.Holdoff = 300
	t0 := time.Unix(1700000000, 0)
	val := func(i int, rng *rand.Rand) float64 {
		v := float64(i%10) + rng.Float64()*0.2 // a saw tooth
		switch {
		case i == 2400:
			v = 14 // out of range: an anomaly by the range rule
		case i >= 2600 && i < 2630:
			v = float64(9-i%10) + rng.Float64()*0.2 // backwards
		case i >= 3000 && i < 3030:
			v = float64(2*i%10) + rng.Float64()*0.2 // twice as fast
		}
		return v
	}
	type run struct {
		// echo: an anomaly event in the 300 readings after the spike; late:
		// a novelty anomaly event from reading 3000; heldScore: the channel
		// reached 1 after the spike.
		echo, late, heldScore bool
	}
	replay := func(c Config, restoreAt int) run {
		d, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(5))
		var r run
		for i := range 3200 {
			if i == restoreAt {
				_, d2 := restored(t, d, c)
				if stateVersion != 7 {
					t.Fatalf("state version %d", stateVersion)
				}
				if d2.sinceAnomaly != d.sinceAnomaly {
					t.Fatalf("restored %d readings since the anomaly, want %d", d2.sinceAnomaly, d.sinceAnomaly)
				}
				d = d2
			}
			j := d.Judge(t0.Add(time.Duration(i)*time.Second), val(i, rng))
			switch {
			case i == 2400:
				if !j.OutOfRange || j.Level != Anomaly {
					t.Fatalf("spike: %+v", j)
				}
			case i > 2400 && i <= 2700 && j.Emit && j.Level == Anomaly:
				r.echo = true
			case i >= 2600 && i <= 2700 && j.Novelty >= 1:
				r.heldScore = true
			case i >= 3000 && j.Emit && j.Level == Anomaly && !j.OutOfRange:
				r.late = true
			}
		}
		return r
	}
	if r := replay(cfg, -1); !r.echo || !r.late {
		t.Fatalf("without a hold-off: novelty after the spike %v, later novelty %v", r.echo, r.late)
	}
	for _, at := range []int{-1, 2500} {
		if r := replay(held, at); r.echo || !r.heldScore || !r.late {
			t.Fatalf("hold-off 300 (checkpoint at %d): novelty after the spike %v, its score reported %v, later novelty %v", at, r.echo, r.heldScore, r.late)
		}
	}
	// A version 4 state loads with no hold-off in progress.
	d, _ := New(held)
	rng := rand.New(rand.NewSource(5))
	for i := range 2450 {
		d.Judge(t0.Add(time.Duration(i)*time.Second), val(i, rng))
	}
	b4, err := d.appendState(nil, stateV4)
	if err != nil {
		t.Fatal(err)
	}
	d4, _ := New(held)
	if err := d4.UnmarshalBinary(b4); err != nil {
		t.Fatalf("version 4 state: %v", err)
	}
	if !d.novelHeld() || d4.novelHeld() || d4.sinceAnomaly != -1 {
		t.Fatalf("readings since the anomaly: %d, after a version 4 state %d", d.sinceAnomaly, d4.sinceAnomaly)
	}
	if err := (NoveltyConfig{Bins: 10, Holdoff: -1}).validate(); err == nil {
		t.Fatal("negative hold-off accepted")
	}
}
