package scorer

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/shared/wire"
)

// cycle returns n values of a noisy daily-like cycle.
func cycle(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 11))
	w := make([]float64, n)
	for i := range w {
		w[i] = 50 + 10*math.Sin(2*math.Pi*float64(i)/40) + 0.5*rng.NormFloat64()
	}
	return w
}

// TestForecastCloud: the stock float model confirms a clear spike,
// rejects a clear normal window (whatever the edge said), decides exactly
// as models/detect/secondstage (the evaluation's code), and falls back to
// the edge kind, saying so, for windows it cannot score.
func TestForecastCloud(t *testing.T) {
	sc, err := NewRegistry().New("forecast-cloud", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name() != "forecast-cloud@1" {
		t.Fatalf("name %q", sc.Name())
	}
	m, model, err := stock.Load(stock.Cloud)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := secondstage.New(m, model, 0)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 4; seed++ {
		normal := cycle(96, seed)
		r := sc.Score(wire.Event{Kind: wire.KindAnomaly, Score: 9, Window: normal})
		if r.Decision != wire.Rejected || r.Reason != "" {
			t.Errorf("seed %d: normal window: %+v", seed, r)
		}
		if s, ok := ref.Confirm(normal); s != r.Score || ok {
			t.Errorf("seed %d: secondstage says %g %v, scorer %g", seed, s, ok, r.Score)
		}
		spike := append([]float64{}, normal...)
		spike[len(spike)-1] += 40
		r = sc.Score(wire.Event{Kind: wire.KindUncertain, Score: 0.5, Window: spike})
		if r.Decision != wire.Confirmed || r.Reason != "" || r.Score < ref.Threshold {
			t.Errorf("seed %d: spike: %+v", seed, r)
		}
		if s, ok := ref.Confirm(spike); s != r.Score || !ok {
			t.Errorf("seed %d: secondstage says %g %v, scorer %g", seed, s, ok, r.Score)
		}
	}
	short := cycle(32, 1)
	short[31] += 40
	for _, c := range []struct {
		ev     wire.Event
		want   wire.Decision
		reason string
	}{
		{wire.Event{Kind: wire.KindAnomaly, Score: 2, Window: short}, wire.Confirmed, "window of 32 values is shorter than forecast-cloud@1 needs (66): fallback edge-kind"},
		{wire.Event{Kind: wire.KindUncertain, Score: 1.1, Window: short}, wire.Rejected, "window of 32 values is shorter than forecast-cloud@1 needs (66): fallback edge-kind"},
		{wire.Event{Kind: wire.KindUncertain, Score: 1.1}, wire.Rejected, "no window: fallback edge-kind"},
	} {
		r := sc.Score(c.ev)
		if r.Decision != c.want || r.Score != c.ev.Score || !strings.HasPrefix(r.Reason, c.reason) {
			t.Errorf("%s with %d values: %+v", c.ev.Kind, len(c.ev.Window), r)
		}
	}
	if _, err := NewRegistry().New("forecast-cloud", Options{MinWindow: 10}); err == nil {
		t.Error("min window accepted for a model")
	}
	strict, err := NewRegistry().New("forecast-cloud", Options{Threshold: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	spike := cycle(96, 1)
	spike[95] += 40
	if r := strict.Score(wire.Event{Kind: wire.KindUncertain, Window: spike}); r.Decision != wire.Rejected {
		t.Errorf("threshold 1e9: %+v", r)
	}
}

// TestModelConcurrent: concurrent scoring (one interpreter per goroutine
// from the pool) gives the single-threaded results.
func TestModelConcurrent(t *testing.T) {
	sc, err := NewRegistry().New(ForecastCloudName, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wins := make([][]float64, 16)
	want := make([]Result, len(wins))
	for i := range wins {
		wins[i] = cycle(96, uint64(i+1))
		if i%2 == 1 {
			wins[i][95] += 40
		}
		want[i] = sc.Score(wire.Event{Kind: wire.KindUncertain, Window: wins[i]})
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				i := (g + k) % len(wins)
				if r := sc.Score(wire.Event{Kind: wire.KindUncertain, Window: wins[i]}); r != want[i] {
					t.Errorf("window %d: %+v, want %+v", i, r, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestNewModelFiles: a model given as files (as the model store holds a
// pushed cloud model) scores as the stock one; an edge model or a file
// that does not match its manifest is refused.
func TestNewModelFiles(t *testing.T) {
	model, mj, err := stock.Files(stock.Cloud)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewModelFiles(model, mj, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := cycle(96, 3)
	w[95] -= 40
	if r := s.Score(wire.Event{Kind: wire.KindUncertain, Window: w}); r.Decision != wire.Confirmed {
		t.Errorf("spike down: %+v", r)
	}
	if _, err := NewModelFiles(append([]byte{}, model[:len(model)-1]...), mj, Options{}); err == nil {
		t.Error("truncated model accepted")
	}
	em, emj, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewModelFiles(em, emj, Options{}); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("edge model: err = %v", err)
	}
}
