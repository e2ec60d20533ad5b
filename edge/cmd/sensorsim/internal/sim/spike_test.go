package sim

import (
	"math"
	"testing"
	"time"
)

func TestParseSpikeEvery(t *testing.T) {
	for in, want := range map[string]SpikeEvery{
		"":     {},
		"0":    {},
		"50":   {N: 50},
		"30s":  {Interval: 30 * time.Second},
		"1m5s": {Interval: 65 * time.Second},
	} {
		got, err := ParseSpikeEvery(in)
		if err != nil || got != want {
			t.Errorf("ParseSpikeEvery(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "-3", "-1s", "10q"} {
		if _, err := ParseSpikeEvery(in); err == nil {
			t.Errorf("ParseSpikeEvery(%q): no error", in)
		}
	}
}

func TestSpikerEveryN(t *testing.T) {
	s := newSpiker(SpikeEvery{N: 4}, 10, 3, 1)
	var at []int
	for i := 1; i <= 12; i++ {
		if s.due(0) {
			at = append(at, i)
			v, mean, std := s.spike(0)
			// history: the 3 readings before i, values i-3..i-1
			wm := float64(i - 2)
			ws := math.Sqrt(2.0 / 3)
			if math.Abs(mean-wm) > 1e-9 || math.Abs(std-ws) > 1e-9 || math.Abs(v-(wm+10*ws)) > 1e-9 {
				t.Fatalf("reading %d: spike %v mean %v std %v; want mean %v std %v", i, v, mean, std, wm, ws)
			}
		}
		s.observe([]float64{float64(i)})
	}
	if want := []int{4, 8, 12}; len(at) != 3 || at[0] != want[0] || at[1] != want[1] || at[2] != want[2] {
		t.Fatalf("spikes at %v, want %v", at, want)
	}
}

func TestSpikerInterval(t *testing.T) {
	s := newSpiker(SpikeEvery{Interval: 10 * time.Second}, 5, 10, 1)
	var at []time.Duration
	// A reading every 3 s; the first spike is owed at 10 s, the next at 20 s.
	for now := time.Duration(0); now <= 30*time.Second; now += 3 * time.Second {
		if s.due(now) {
			at = append(at, now)
		}
		s.observe([]float64{7})
	}
	want := []time.Duration{12 * time.Second, 21 * time.Second, 30 * time.Second}
	if len(at) != len(want) || at[0] != want[0] || at[1] != want[1] || at[2] != want[2] {
		t.Fatalf("spikes at %v, want %v", at, want)
	}
	// Flat history: the deviation stand-in keeps the spike visible.
	if v, _, std := s.spike(0); std != 0 || v != 7+5*1 {
		t.Fatalf("flat spike = %v (std %v), want 12", v, std)
	}
}

func TestSpikerWaitsForHistory(t *testing.T) {
	s := newSpiker(SpikeEvery{N: 1}, 3, 5, 1)
	var at []int
	for i := 1; i <= 4; i++ {
		if s.due(0) {
			at = append(at, i)
		}
		s.observe([]float64{float64(i)})
	}
	if len(at) != 2 || at[0] != 3 || at[1] != 4 {
		t.Fatalf("spikes at %v, want [3 4]", at)
	}
}

// TestSpikeStagger: with stagger, each device spikes once per period at
// its own reading, and the devices' phases differ.
func TestSpikeStagger(t *testing.T) {
	const every, devices = 200, 100
	first := map[int]bool{}
	for d := 0; d < devices; d++ {
		s := newSpiker(SpikeEvery{N: every}, DefaultSpikeSigma, DefaultSpikeWindow, 1)
		s.stagger(d)
		var at []int
		for i := 1; i <= 3*every; i++ {
			if s.due(0) {
				at = append(at, i)
			}
			s.observe([]float64{float64(i % 7)})
		}
		// (The first may wait for minHistory readings.)
		if len(at) != 3 || at[2]-at[1] != every {
			t.Fatalf("device %d spikes at readings %v, want one every %d", d, at, every)
		}
		first[at[0]] = true
	}
	if len(first) < devices/2 {
		t.Fatalf("%d distinct phases over %d devices", len(first), devices)
	}
}
