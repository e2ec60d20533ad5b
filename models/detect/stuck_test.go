package detect

import (
	"math/rand"
	"testing"
	"time"
)

// stuckConfig is a z-score detector with the stuck-value rule at 20
// repeats and nothing else that could raise an anomaly on a flat stretch
// (the z-score of a constant reading against a noisy window is small).
func stuckConfig() Config {
	return Config{Window: 60, Low: 4, High: 6, CooldownReadings: 5, StuckRun: 20}
}

// TestStuckFires: a noisy stream whose longest run of equal readings is a
// planted 30 repeats (integer readings, so short runs happen by chance); a
// later run of 20 stays quiet (not a record), a run of 45 is one anomaly
// event, from the stuck rule, at its 31st repeat (the first longer than
// every run before), and not again while it lasts.
func TestStuckFires(t *testing.T) {
	d, err := New(stuckConfig())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	t0 := time.Unix(1700000000, 0)
	var vals []float64
	noise := func(n int) {
		for range n {
			vals = append(vals, float64(20+rng.Intn(7))) // never a planted value
		}
	}
	flat := func(n int, v float64) {
		for range n {
			vals = append(vals, v)
		}
	}
	noise(200)
	flat(31, 12) // 30 repeats
	noise(300)
	flat(21, 14) // 20 repeats: not longer than 30
	noise(300)
	start := len(vals)
	flat(46, 13) // 45 repeats: a record at the 31st
	noise(100)
	var events []int
	for i, v := range vals {
		j := d.Judge(t0.Add(time.Duration(i)*time.Second), v)
		if j.Stuck {
			if j.Level != Anomaly || j.Source != FromStuck {
				t.Fatalf("reading %d: stuck but %+v", i, j)
			}
			events = append(events, i)
		}
	}
	// The first planted run is a record too (nothing longer came before),
	// at its 20th repeat; then only the 45-repeat run, at its 31st.
	if len(events) != 2 || events[0] != 200+20 || events[1] != start+31 {
		t.Fatalf("stuck at %v, want [%d %d]", events, 200+20, start+31)
	}
}

// TestStuckState: the rule's runs are checkpointed (version 7): a detector
// restored in the middle of a run reports the record at the same reading
// as the original; a version 6 state loads with no run seen.
func TestStuckState(t *testing.T) {
	cfg := stuckConfig()
	t0 := time.Unix(1700000000, 0)
	vals := make([]float64, 0, 400)
	for i := range 100 {
		vals = append(vals, float64(i%7))
	}
	for range 25 {
		vals = append(vals, 3.5) // a record of 24 repeats, at reading 120
	}
	for i := range 100 {
		vals = append(vals, float64(i%5))
	}
	for range 40 {
		vals = append(vals, 2.5) // a record of 39 repeats: at its 25th, reading 249
	}
	d1, _ := New(cfg)
	const at = 240 // in the middle of the second run
	for i := range at {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), vals[i])
	}
	b, d2 := restored(t, d1, cfg)
	if stateVersion != 7 {
		t.Fatalf("state version %d", stateVersion)
	}
	b6, err := d1.appendState(nil, stateV6)
	if err != nil {
		t.Fatal(err)
	}
	d6, _ := New(cfg)
	if err := d6.UnmarshalBinary(b6); err != nil || d6.stuckRun != 0 || d6.stuckLongest != 0 || d6.stuckHas {
		t.Fatalf("version 6 state: %v (run %d, longest %d)", err, d6.stuckRun, d6.stuckLongest)
	}
	if err := d2.UnmarshalBinary(b[:len(b)-1]); err == nil {
		t.Fatal("truncated state accepted")
	}
	var got []int
	for i := at; i < len(vals); i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		j1, j2 := d1.Judge(ts, vals[i]), d2.Judge(ts, vals[i])
		if j1.Stuck != j2.Stuck || j1.Score != j2.Score || j1.Level != j2.Level || j1.Emit != j2.Emit {
			t.Fatalf("reading %d: restored %+v, original %+v", i, j2, j1)
		}
		if j1.Stuck {
			got = append(got, i)
		}
	}
	if len(got) != 1 || got[0] != 100+25+100+25 {
		t.Fatalf("stuck after the restore at %v, want [%d]", got, 250)
	}
	if _, err := New(Config{Window: 10, Low: 1, High: 2, StuckRun: -1}); err == nil {
		t.Fatal("a negative stuck run accepted")
	}
}
