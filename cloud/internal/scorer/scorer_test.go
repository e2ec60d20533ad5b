package scorer

import (
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/outpost-iot/outpost/shared/wire"
)

func TestRobustZ(t *testing.T) {
	sc, err := NewRegistry().New(RobustZName, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name() != "robust-zscore@1" {
		t.Errorf("name = %q", sc.Name())
	}
	// rest = 1..9: median 5, |x-5| = 4,3,2,1,0,1,2,3,4 -> MAD 2, sigma 2.9652.
	rest := []float64{3, 1, 4, 9, 5, 2, 6, 8, 7}
	win := func(last float64) []float64 { return append(append([]float64{}, rest...), last) }
	cases := []struct {
		name    string
		ev      wire.Event
		want    wire.Decision
		score   float64
		reason  string
		epsilon float64
	}{
		{"spike", wire.Event{Kind: wire.KindUncertain, Window: win(5 + 4*2.9652)}, wire.Confirmed, 4, "", 1e-3},
		{"explained", wire.Event{Kind: wire.KindAnomaly, Window: win(8)}, wire.Rejected, 3 / 2.9652, "", 1e-3},
		{"at threshold", wire.Event{Kind: wire.KindUncertain, Window: win(5 - 3.5*2.9652)}, wire.Confirmed, 3.5, "", 1e-3},
		{"flat window, same", wire.Event{Kind: wire.KindAnomaly, Window: []float64{2, 2, 2, 2, 2, 2, 2, 2, 2}}, wire.Rejected, 0, "", 0},
		{"flat window, different", wire.Event{Kind: wire.KindUncertain, Window: []float64{2, 2, 2, 2, 2, 2, 2, 2, 3}}, wire.Confirmed, MaxScore, "", 0},
		{"no window, anomaly", wire.Event{Kind: wire.KindAnomaly, Score: 0.95}, wire.Confirmed, 0.95, ReasonNoWindow, 0},
		{"no window, uncertain", wire.Event{Kind: wire.KindUncertain, Score: 0.6}, wire.Rejected, 0.6, ReasonNoWindow, 0},
		{"short window", wire.Event{Kind: wire.KindUncertain, Score: 0.6, Window: []float64{1, 2, 100}}, wire.Rejected, 0.6, ReasonShortWindow, 0},
	}
	for _, c := range cases {
		r := sc.Score(c.ev)
		if r.Decision != c.want || math.Abs(r.Score-c.score) > c.epsilon || r.Reason != c.reason {
			t.Errorf("%s: got %+v, want %s score %v reason %q", c.name, r, c.want, c.score, c.reason)
		}
	}
	// The window is not modified.
	w := win(100)
	sc.Score(wire.Event{Window: w})
	if w[0] != 3 || w[9] != 100 {
		t.Errorf("window modified: %v", w)
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if _, err := r.New("nope@1", Options{}); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown: err = %v", err)
	}
	if err := r.Register(RobustZName, NewRobustZ); err == nil {
		t.Error("registering a name twice succeeded")
	}
	strict, err := r.New(RobustZName, Options{Threshold: 10})
	if err != nil {
		t.Fatal(err)
	}
	ev := wire.Event{Window: []float64{3, 1, 4, 9, 5, 2, 6, 8, 7, 5 + 4*2.9652}}
	if d := strict.Score(ev).Decision; d != wire.Rejected {
		t.Errorf("threshold 10: %s", d)
	}
	if _, err := r.New(RobustZName, Options{Threshold: -1}); err == nil {
		t.Error("negative threshold accepted")
	}
	if got := r.Names(); len(got) != 2 || got[0] != "forecast-cloud@1" || got[1] != RobustZName {
		t.Errorf("names = %v", got)
	}
	for name, want := range map[string]string{"robust-zscore": RobustZName, "forecast-cloud": "forecast-cloud@1", "forecast-cloud@1": "forecast-cloud@1"} {
		if got, ok := r.Resolve(name); !ok || got != want {
			t.Errorf("Resolve(%q) = %q %v, want %q", name, got, ok, want)
		}
	}
	if _, err := r.New("forecast-cloud@2", Options{}); !errors.Is(err, ErrUnknown) {
		t.Errorf("unregistered version: err = %v", err)
	}
	if DefaultName != "forecast-cloud@1" {
		t.Errorf("default = %q", DefaultName)
	}
}

func BenchmarkScore(b *testing.B) {
	r := NewRegistry()
	for _, name := range r.Names() {
		sc, _ := r.New(name, Options{})
		// 32 values: what an anomaly event of the stock edge model carries
		// (too short for forecast-cloud: the fallback); 96: an uncertain
		// event's window in the generic-sensor-model profile.
		for _, n := range []int{32, 96, 128} {
			w := make([]float64, n)
			for i := range w {
				w[i] = math.Sin(float64(i)) + 0.1*math.Sin(float64(i*i))
			}
			ev := wire.Event{Kind: wire.KindUncertain, Window: w}
			b.Run(name+"/window="+strconv.Itoa(n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					sc.Score(ev)
				}
				// One goroutine: the figure is verdicts/s per core.
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "scores/s")
			})
		}
	}
}

// BenchmarkScoreParallel scores 96-value windows from GOMAXPROCS goroutines
// at once (the second stage scores different agents concurrently): the
// scorers' total throughput on this machine.
func BenchmarkScoreParallel(b *testing.B) {
	r := NewRegistry()
	for _, name := range r.Names() {
		sc, _ := r.New(name, Options{})
		w := make([]float64, 96)
		for i := range w {
			w[i] = math.Sin(float64(i)) + 0.1*math.Sin(float64(i*i))
		}
		ev := wire.Event{Kind: wire.KindUncertain, Window: w}
		b.Run(name+"/window=96", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					sc.Score(ev)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "scores/s")
		})
	}
}
