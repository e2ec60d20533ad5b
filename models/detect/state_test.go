package detect

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// TestCheckpointResumes: a detector restored from a checkpoint judges the
// following readings exactly as the original does, without a warm-up: a
// spike right after the restore is an anomaly.
func TestCheckpointResumes(t *testing.T) {
	cfg := Config{Window: 50, Low: 4, High: 6, CooldownReadings: 5, Warmup: 50}
	d1, _ := New(cfg)
	rng := rand.New(rand.NewSource(1))
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	val := func(i int) float64 { return 20 + math.Sin(float64(i)/5) + rng.NormFloat64()*0.05 }
	for i := 0; i < 200; i++ {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), val(i))
	}
	// Put it in an incident, cooling down, to cover the hysteresis.
	d1.Judge(t0.Add(200*time.Second), 40)
	d1.Judge(t0.Add(201*time.Second), val(201))
	b, err := d1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := New(cfg)
	if err := d2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := 202; i < 400; i++ {
		v := val(i)
		if i == 300 {
			v = 40
		}
		ts := t0.Add(time.Duration(i) * time.Second)
		j1, j2 := d1.Judge(ts, v), d2.Judge(ts, v)
		if !reflect.DeepEqual(j1, j2) {
			t.Fatalf("reading %d: original %+v, restored %+v", i, j1, j2)
		}
		if i == 300 && (!j2.Emit || j2.Level != Anomaly) {
			t.Fatalf("spike after restore: %+v", j2)
		}
	}

	// A fresh detector needs its warm-up: the same spike goes unseen.
	d3, _ := New(cfg)
	if j := d3.Judge(t0, 40); j.Emit || j.Warm {
		t.Fatalf("fresh detector: %+v", j)
	}
}

func TestCheckpointMismatch(t *testing.T) {
	d1, _ := New(Config{Window: 50, Low: 4, High: 6, Warmup: 2})
	for i := 0; i < 10; i++ {
		d1.Judge(time.Unix(int64(i), 0), float64(i))
	}
	b, _ := d1.MarshalBinary()
	d2, _ := New(Config{Window: 60, Low: 4, High: 6, Warmup: 2})
	if err := d2.UnmarshalBinary(b); !errors.Is(err, ErrState) {
		t.Fatalf("other window: %v", err)
	}
	for _, bad := range [][]byte{nil, {9}, b[:len(b)/2], b[:len(b)-1]} {
		d3, _ := New(Config{Window: 50, Low: 4, High: 6, Warmup: 2})
		if err := d3.UnmarshalBinary(bad); !errors.Is(err, ErrState) {
			t.Fatalf("bad state %d bytes: %v", len(bad), err)
		}
		if d3.seen != 0 || d3.scorer.(zscoreScorer).s.Count() != 0 {
			t.Fatal("detector changed by a bad state")
		}
	}
}

func FuzzUnmarshalState(f *testing.F) {
	d, _ := New(Config{Window: 8, Low: 4, High: 6, Warmup: 2})
	for i := 0; i < 12; i++ {
		d.Judge(time.Unix(int64(i), 0), float64(i%3))
	}
	b, _ := d.MarshalBinary()
	f.Add(b)
	full := Config{Window: 8, Low: 4, High: 6, Warmup: 2, Span: time.Minute, Reorder: 3 * time.Second, GapFill: GapLinear, Normalize: NormOnline}
	d2, _ := New(full)
	for i := 0; i < 30; i++ {
		if i%7 != 3 {
			d2.Offer(nil, time.Unix(int64(i), 0), float64(i%3))
		}
	}
	b2, _ := d2.MarshalBinary()
	f.Add(b2)
	likFull := Config{Window: 8, Low: 0.3, High: 0.5, Warmup: 2, RangeMargin: 0.01, RangeWarmup: 3,
		Likelihood: LikelihoodConfig{Window: 6, Average: 2, Learn: 2}, Novelty: NoveltyConfig{Bins: 4, Length: 2}}
	d3, _ := New(likFull)
	for i := 0; i < 40; i++ {
		d3.Judge(time.Unix(int64(i), 0), float64(i%5))
	}
	b3, _ := d3.MarshalBinary()
	f.Add(b3)
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, _ := New(likFull); d.UnmarshalBinary(b) == nil {
			d.Judge(time.Unix(100, 0), 1) // must not panic
			d.Judge(time.Unix(101, 0), 100)
		}
		d, _ := New(Config{Window: 8, Low: 4, High: 6, Warmup: 2})
		if err := d.UnmarshalBinary(b); err == nil {
			d.Judge(time.Unix(100, 0), 1) // must not panic
		}
		d, _ = New(full)
		if err := d.UnmarshalBinary(b); err == nil {
			d.Offer(nil, time.Unix(100, 0), 1) // must not panic
			d.Offer(nil, time.Unix(200, 0), 1)
			d.Features(make([]float32, 8))
		}
	})
}

// TestCheckpointV2: a version 2 state (the z-score scorer's state without
// the scorer's name, before pluggable scorers) still loads into a z-score
// detector and resumes as the original; a detector with another scorer
// refuses it.
func TestCheckpointV2(t *testing.T) {
	cfg := Config{Window: 40, Low: 4, High: 6, CooldownReadings: 5, Warmup: 40, GapFill: GapHold}
	d1, _ := New(cfg)
	rng := rand.New(rand.NewSource(2))
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	val := func(i int) float64 { return 10 + math.Sin(float64(i)/4) + rng.NormFloat64()*0.05 }
	for i := 0; i < 120; i++ {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), val(i))
	}
	b, err := d1.appendState(nil, stateV2)
	if err != nil {
		t.Fatal(err)
	}
	b3, _ := d1.appendState(nil, stateV3)
	if b[0] != stateV2 || b3[0] != stateV3 || len(b3) != len(b)+1+len(d1.Model()) {
		t.Fatalf("version 2 state of %d bytes, version 3 of %d", len(b), len(b3))
	}
	d2, _ := New(cfg)
	if err := d2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := 120; i < 250; i++ {
		v := val(i)
		if i == 200 {
			v = 30
		}
		ts := t0.Add(time.Duration(i) * time.Second)
		if j1, j2 := d1.Judge(ts, v), d2.Judge(ts, v); !reflect.DeepEqual(j1, j2) {
			t.Fatalf("reading %d: original %+v, restored %+v", i, j1, j2)
		}
	}
	other, _ := NewWithScorer(cfg, otherScorer{zscoreScorer: d1.scorer.(zscoreScorer)})
	for _, s := range [][]byte{b, b3} {
		if err := other.UnmarshalBinary(s); !errors.Is(err, ErrState) {
			t.Fatalf("version %d state into another scorer: %v", s[0], err)
		}
	}
}

// otherScorer is a z-score scorer under another name.
type otherScorer struct{ zscoreScorer }

func (otherScorer) Model() string { return "other@1" }

// restored checkpoints d in the current format (checked) and restores the
// state into a fresh detector for cfg; it returns the state and the copy.
func restored(t *testing.T, d *Detector, cfg Config) ([]byte, *Detector) {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != stateVersion {
		t.Fatalf("state version %d", b[0])
	}
	d2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return b, d2
}
