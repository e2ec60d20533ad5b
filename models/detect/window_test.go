package detect

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// TestWindowModes: a count window holds the last Window readings; a span
// window the readings of the last Span of reading time, capped at Window;
// the score is made of exactly what the window holds.
func TestWindowModes(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		n       int     // readings 0..n-1, value i at i seconds
		wantLen int     // window length after them
		next    float64 // a reading at n seconds...
		score   float64 // ...scores this
	}{
		// Count 5 after 20 readings: 15..19, mean 17, std sqrt(2).
		{"count", Config{Window: 5}, 20, 5, 27, 10 / math.Sqrt(2)},
		// Span 10s: at 20s the window holds the readings after 10s: 11..19,
		// mean 15, variance 60/9.
		{"span", Config{Window: 1000, Span: 10 * time.Second}, 20, 10, 25, 10 / math.Sqrt(60.0/9)},
		// Span 1h capped at 4: 16..19.
		{"span capped", Config{Window: 4, Span: time.Hour}, 20, 4, 17.5 + 5*math.Sqrt(1.25), 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Low, c.cfg.High, c.cfg.Warmup, c.cfg.Clamp = 100, 200, 2, 1000
			d := newDet(t, c.cfg)
			for i := 0; i < c.n; i++ {
				d.Judge(at(float64(i)), float64(i))
			}
			if d.Len() != c.wantLen {
				t.Fatalf("window holds %d, want %d", d.Len(), c.wantLen)
			}
			if j := d.Judge(at(float64(c.n)), c.next); math.Abs(j.Score-c.score) > 1e-9 {
				t.Fatalf("score %v, want %v", j.Score, c.score)
			}
		})
	}
}

// stream is n readings, one a second, a sine with noise and a few spikes.
func stream(n int, seed int64) []struct {
	ts time.Time
	v  float64
} {
	rng := rand.New(rand.NewSource(seed))
	out := make([]struct {
		ts time.Time
		v  float64
	}, n)
	for i := range out {
		v := smooth(i, rng)
		if i%97 == 50 {
			v += 30
		}
		out[i].ts, out[i].v = at(float64(i)), v
	}
	return out
}

// TestReorderShuffledSameAsSorted: readings shuffled within the reordering
// delay are judged exactly as the same readings in order, and as a detector
// without reordering judges them in order.
func TestReorderShuffledSameAsSorted(t *testing.T) {
	cfg := Config{Window: 50, Low: 4, High: 6, CooldownReadings: 5, Warmup: 50, Reorder: 5 * time.Second}
	rs := stream(1000, 3)
	shuffled := append(rs[:0:0], rs...)
	rng := rand.New(rand.NewSource(4))
	for b := 0; b+5 <= len(shuffled); b += 5 { // blocks of 5 readings: at most 4s apart
		blk := shuffled[b : b+5]
		rng.Shuffle(len(blk), func(i, j int) { blk[i], blk[j] = blk[j], blk[i] })
	}
	run := func(cfg Config, in []struct {
		ts time.Time
		v  float64
	}) []Judgement {
		d := newDet(t, cfg)
		var out []Judgement
		for _, r := range in {
			var f Fate
			out, f = d.Offer(out, r.ts, r.v)
			if f == Late || f == Duplicate {
				t.Fatalf("reading at %v: %v", r.ts, f)
			}
		}
		return out
	}
	sorted, mixed := run(cfg, rs), run(cfg, shuffled)
	plain := cfg
	plain.Reorder = 0
	direct := run(plain, rs)
	if len(sorted) != len(rs)-5 || len(mixed) != len(sorted) {
		t.Fatalf("judged %d in order, %d shuffled, want %d (5 held)", len(sorted), len(mixed), len(rs)-5)
	}
	emits := 0
	for i := range sorted {
		if !reflect.DeepEqual(sorted[i], mixed[i]) || !reflect.DeepEqual(sorted[i], direct[i]) {
			t.Fatalf("judgement %d: sorted %+v, shuffled %+v, no reordering %+v", i, sorted[i], mixed[i], direct[i])
		}
		if !sorted[i].TS.Equal(rs[i].ts) {
			t.Fatalf("judgement %d is of %v, want %v", i, sorted[i].TS, rs[i].ts)
		}
		if sorted[i].Emit {
			emits++
		}
	}
	if emits < 5 {
		t.Fatalf("only %d events: the test shows nothing", emits)
	}
}

// TestReorderLateAndDuplicate: readings older than the watermark are
// dropped as late, readings at a time already taken as duplicates; both
// are counted and never judged.
func TestReorderLateAndDuplicate(t *testing.T) {
	d := newDet(t, Config{Window: 10, Low: 4, High: 6, Warmup: 2, Reorder: 5 * time.Second})
	steps := []struct {
		ts     float64
		fate   Fate
		judged []float64 // times judged by this offer
	}{
		{10, Held, nil},
		{20, Held, []float64{10}}, // watermark 15
		{14, Late, nil},
		{16, Held, nil},
		{20, Duplicate, nil}, // in the buffer
		{15, Judged, []float64{15}},
		{15, Duplicate, nil}, // just judged
		{10, Late, nil},
		{26, Held, []float64{16, 20}}, // watermark 21
		{21, Judged, []float64{21}},
	}
	for i, s := range steps {
		js, f := d.Offer(nil, at(s.ts), s.ts)
		var got []float64
		for _, j := range js {
			if j.Value != j.TS.Sub(t0).Seconds() {
				t.Fatalf("step %d: judgement of %v has value %v", i, j.TS, j.Value)
			}
			got = append(got, j.Value)
		}
		if f != s.fate || !reflect.DeepEqual(got, s.judged) {
			t.Fatalf("step %d (ts %v): %v judging %v, want %v judging %v", i, s.ts, f, got, s.fate, s.judged)
		}
	}
	if c := d.Counters(); c.Late != 2 || c.Duplicate != 2 {
		t.Fatalf("counters %+v, want 2 late, 2 duplicates", c)
	}
	if d.Pending() != 1 {
		t.Fatalf("%d held, want 1 (26s)", d.Pending())
	}
}

// TestGapFill: a gap of more than k intervals is filled per the mode; a gap
// longer than MaxFill resets the window and the warm-up.
func TestGapFill(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name     string
		cfg      Config
		gapTo    float64 // the reading after 0,1,2,3 (values = times) comes at this time, value = time
		want     []float64
		filled   int
		reset    bool
		interval time.Duration
	}{
		{"hold", Config{GapFill: GapHold}, 7, []float64{0, 1, 2, 3, 3, 3, 3, 7}, 3, false, time.Second},
		{"linear", Config{GapFill: GapLinear}, 7, []float64{0, 1, 2, 3, 4, 5, 6, 7}, 3, false, time.Second},
		{"missing", Config{GapFill: GapMissing}, 7, []float64{0, 1, 2, 3, nan, nan, nan, 7}, 3, false, time.Second},
		{"within k", Config{GapFill: GapHold}, 4.4, []float64{0, 1, 2, 3, 4.4}, 0, false, time.Second},
		{"learnt interval", Config{GapFill: GapLinear}, 6, []float64{0, 1, 2, 3, 4, 5, 6}, 2, false, 0},
		{"k 3", Config{GapFill: GapHold, GapIntervals: 3}, 6, []float64{0, 1, 2, 3, 6}, 0, false, time.Second},
		{"too long", Config{GapFill: GapHold, MaxFill: 2}, 7, []float64{7}, 0, true, time.Second},
		{"off", Config{}, 7, []float64{0, 1, 2, 3, 7}, 0, false, time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Window, c.cfg.Low, c.cfg.High, c.cfg.Warmup, c.cfg.Interval = 20, 4, 6, 2, c.interval
			d := newDet(t, c.cfg)
			for i := 0; i < 4; i++ {
				d.Judge(at(float64(i)), float64(i))
			}
			if c.interval == 0 { // learn from 8 readings 1s apart, then the gap
				d = newDet(t, c.cfg)
				for i := -4; i < 4; i++ {
					d.Judge(at(float64(i)), float64(i))
				}
				c.want = append([]float64{-4, -3, -2, -1}, c.want...)
			}
			j := d.Judge(at(c.gapTo), c.gapTo)
			if j.Filled != c.filled || j.Reset != c.reset {
				t.Fatalf("filled %d reset %v, want %d %v", j.Filled, j.Reset, c.filled, c.reset)
			}
			got := d.window()
			if len(got) != len(c.want) {
				t.Fatalf("window %v, want %v", got, c.want)
			}
			for i := range got {
				if !(got[i] == c.want[i] || math.IsNaN(got[i]) && math.IsNaN(c.want[i])) && math.Abs(got[i]-c.want[i]) > 1e-9 {
					t.Fatalf("window %v, want %v", got, c.want)
				}
			}
			cn := d.Counters()
			if cn.Filled != uint64(c.filled) || (cn.GapResets == 1) != c.reset {
				t.Fatalf("counters %+v", cn)
			}
			if c.reset && (d.seen != 1 || d.Judge(at(c.gapTo+1), 1e6).Warm) {
				t.Fatal("a reset window did not warm up again")
			}
		})
	}
}

// TestMissingSkippedByScorer: missing samples take window slots but not a
// part in the score.
func TestMissingSkippedByScorer(t *testing.T) {
	d := newDet(t, Config{Window: 6, Low: 100, High: 200, Warmup: 2, Clamp: 1000, GapFill: GapMissing, Interval: time.Second})
	d.Judge(at(0), 1)
	d.Judge(at(1), 3)
	d.Judge(at(4), 1) // fills 2, 3 as missing: window 1 3 _ _ 1
	d.Judge(at(5), 3) // window 1 3 _ _ 1 3: mean 2, std 1
	if d.Len() != 6 {
		t.Fatalf("window holds %d", d.Len())
	}
	if j := d.Judge(at(6), 7); j.Score != 5 {
		t.Fatalf("score %v, want 5", j.Score)
	}
}

// TestFeatures: the normalised feature vector for each normalisation.
func TestFeatures(t *testing.T) {
	vals := []float64{1, 2, 3, 4}
	std := math.Sqrt(1.25)
	// Online, half-life 1 reading (alpha 1/2): mean 3.125, variance 1.109375.
	om, os := 3.125, math.Sqrt(1.109375)
	cases := []struct {
		name string
		cfg  Config
		want []float64
	}{
		{"none", Config{}, vals},
		{"window", Config{Normalize: NormWindow}, []float64{-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std}},
		{"online", Config{Normalize: NormOnline, HalfLife: 1}, []float64{(1 - om) / os, (2 - om) / os, (3 - om) / os, (4 - om) / os}},
		{"manifest", Config{Normalize: NormManifest, NormMean: 2, NormScale: 0.5}, []float64{-2, 0, 2, 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Window, c.cfg.Low, c.cfg.High, c.cfg.Warmup = 4, 4, 6, 2
			d := newDet(t, c.cfg)
			for i, v := range vals {
				d.Judge(at(float64(i)), v)
			}
			dst := make([]float32, 6)
			n := d.Features(dst)
			if n != 4 {
				t.Fatalf("wrote %d", n)
			}
			for i := range c.want {
				if math.Abs(float64(dst[i])-c.want[i]) > 1e-6 {
					t.Fatalf("features %v, want %v", dst[:n], c.want)
				}
			}
			short := make([]float32, 2)
			if n := d.Features(short); n != 2 || math.Abs(float64(short[1])-c.want[3]) > 1e-6 || math.Abs(float64(short[0])-c.want[2]) > 1e-6 {
				t.Fatalf("short: %v, want the newest two of %v", short, c.want)
			}
			if a := testing.AllocsPerRun(100, func() { d.Features(dst) }); a != 0 {
				t.Fatalf("Features allocates %v", a)
			}
		})
	}
	if _, err := New(Config{Window: 4, Low: 4, High: 6, Normalize: NormManifest}); err == nil {
		t.Fatal("manifest normalisation without a scale accepted")
	}
}

// TestCheckpointWithNewState: a detector with a span window, reordering
// (readings held), gap filling and online normalisation resumes from its
// checkpoint exactly: same judgements, counters and features.
func TestCheckpointWithNewState(t *testing.T) {
	cfg := Config{Window: 100, Span: 40 * time.Second, Low: 4, High: 6, CooldownReadings: 5, Warmup: 20,
		Reorder: 3 * time.Second, GapFill: GapLinear, Normalize: NormOnline}
	d1 := newDet(t, cfg)
	rs := stream(400, 5)
	// Drop a stretch to make a gap, and send two readings late.
	feed := func(d *Detector, i int) []Judgement {
		if i >= 150 && i < 155 {
			return nil
		}
		js, _ := d.Offer(nil, rs[i].ts, rs[i].v)
		if i == 100 || i == 101 {
			js, _ = d.Offer(js, rs[i-20].ts, 0) // late
		}
		return js
	}
	for i := 0; i < 200; i++ {
		feed(d1, i)
	}
	if d1.Pending() == 0 || d1.Counters().Late != 2 || d1.Counters().Filled == 0 {
		t.Fatalf("state not exercised: pending %d, counters %+v", d1.Pending(), d1.Counters())
	}
	b, err := d1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d2 := newDet(t, cfg)
	if err := d2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if b2, _ := d2.MarshalBinary(); !reflect.DeepEqual(b, b2) {
		t.Fatal("restored state marshals differently")
	}
	f1, f2 := make([]float32, 64), make([]float32, 64)
	for i := 200; i < 400; i++ {
		j1, j2 := feed(d1, i), feed(d2, i)
		if !reflect.DeepEqual(j1, j2) {
			t.Fatalf("reading %d: original %+v, restored %+v", i, j1, j2)
		}
		if n1, n2 := d1.Features(f1), d2.Features(f2); n1 != n2 || !reflect.DeepEqual(f1, f2) {
			t.Fatalf("reading %d: features differ", i)
		}
	}
	if d1.Counters() != d2.Counters() {
		t.Fatalf("counters: %+v vs %+v", d1.Counters(), d2.Counters())
	}
	// Another window size refuses it.
	other := cfg
	other.Window = 99
	if err := newDet(t, other).UnmarshalBinary(b); !errors.Is(err, ErrState) {
		t.Fatalf("other window: %v", err)
	}
}

// marshalV1 writes d's state in the version 1 format (before this version).
func marshalV1(d *Detector) []byte {
	b := d.appendV1Head([]byte{stateV1})
	for _, v := range d.raw {
		b = appendFloat(b, v)
	}
	b, _ = d.scorer.AppendState(b)
	return b
}

// TestCheckpointV1: a version 1 state (written before windows by time)
// still loads into a count window and resumes as the original; a span
// window refuses it clearly.
func TestCheckpointV1(t *testing.T) {
	cfg := Config{Window: 50, Low: 4, High: 6, CooldownReadings: 5, Warmup: 50}
	d1 := newDet(t, cfg)
	rs := stream(300, 6)
	for _, r := range rs[:150] {
		d1.Judge(r.ts, r.v)
	}
	old := marshalV1(d1)
	d2 := newDet(t, cfg)
	if err := d2.UnmarshalBinary(old); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs[150:] {
		if j1, j2 := d1.Judge(r.ts, r.v), d2.Judge(r.ts, r.v); !reflect.DeepEqual(j1, j2) {
			t.Fatalf("at %v: original %+v, restored from v1 %+v", r.ts, j1, j2)
		}
	}
	span := cfg
	span.Span = time.Minute
	err := newDet(t, span).UnmarshalBinary(old)
	if !errors.Is(err, ErrState) {
		t.Fatalf("span window took a v1 state: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestZeroAllocsPerReading: judging a reading of a count window in steady
// state allocates nothing; nor does Offer with reordering once its buffer
// has grown.
func TestZeroAllocsPerReading(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	d := newDet(t, stock)
	i := 0
	for ; i < 500; i++ {
		d.Judge(at(float64(i)), smooth(i, rng))
	}
	if a := testing.AllocsPerRun(1000, func() { i++; d.Judge(at(float64(i)), smooth(i, rng)) }); a != 0 {
		t.Fatalf("Judge: %v allocations per reading", a)
	}
	cfg := stock
	cfg.Reorder = 5 * time.Second
	cfg.GapFill = GapHold
	cfg.Normalize = NormOnline
	d = newDet(t, cfg)
	var dst []Judgement
	for i = 0; i < 500; i++ {
		dst, _ = d.Offer(dst[:0], at(float64(i)), smooth(i, rng))
	}
	if a := testing.AllocsPerRun(1000, func() {
		i++
		dst, _ = d.Offer(dst[:0], at(float64(i)), smooth(i, rng))
	}); a != 0 {
		t.Fatalf("Offer: %v allocations per reading", a)
	}
}

// BenchmarkJudge: one reading through a count window of 120 (score,
// decide, fold). readings/s = 1e9 / ns/op.
func BenchmarkJudge(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = smooth(i, rng)
	}
	d, _ := New(stock)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Judge(at(float64(i)), vals[i&4095])
	}
}

// BenchmarkOffer: the same through the reorder stage (5s), gap check and
// online normalisation.
func BenchmarkOffer(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = smooth(i, rng)
	}
	cfg := stock
	cfg.Reorder, cfg.GapFill, cfg.Normalize = 5*time.Second, GapHold, NormOnline
	d, _ := New(cfg)
	var dst []Judgement
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst, _ = d.Offer(dst[:0], at(float64(i)), vals[i&4095])
	}
}
