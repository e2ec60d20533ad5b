package secondstage

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/outpost-iot/outpost/models/stock"
)

// window returns n values of a noisy cycle.
func window(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := make([]float64, n)
	for i := range w {
		w[i] = 20 + 5*math.Sin(2*math.Pi*float64(i)/48) + 0.3*rng.NormFloat64()
	}
	return w
}

// TestConfirmStockCloud: the stock cloud model confirms a clear spike at
// the end of a window, rejects the same window without it, and refuses a
// window too short for it.
func TestConfirmStockCloud(t *testing.T) {
	m, model, err := stock.Load(stock.Cloud)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(m, model, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfirmAt * m.Low; c.Threshold != want {
		t.Errorf("threshold %v, want %v", c.Threshold, want)
	}
	if c.MinWindow() != m.Window+2 {
		t.Errorf("min window %d", c.MinWindow())
	}
	for seed := uint64(1); seed <= 5; seed++ {
		normal := window(96, seed)
		if s, ok := c.Confirm(normal); ok {
			t.Errorf("seed %d: normal window confirmed (score %g)", seed, s)
		}
		spike := append([]float64{}, normal...)
		spike[len(spike)-1] += 30
		if s, ok := c.Confirm(spike); !ok {
			t.Errorf("seed %d: spike not confirmed (score %g, threshold %g)", seed, s, c.Threshold)
		}
	}
	// Scoring is a pure function of the window: the same window scores the
	// same after others.
	w := window(96, 9)
	a, err := c.Score(w)
	if err != nil {
		t.Fatal(err)
	}
	c.Score(window(80, 3))
	if b, _ := c.Score(w); a != b {
		t.Errorf("score %g then %g", a, b)
	}
	if _, err := c.Score(window(m.Window+1, 1)); !errors.Is(err, ErrShortWindow) {
		t.Errorf("short window: err = %v", err)
	}
	if s, ok := c.Confirm(window(32, 1)); ok || s != 0 {
		t.Errorf("short window confirmed: %g %v", s, ok)
	}
	if _, err := c.Score(window(m.Window+2, 1)); err != nil {
		t.Errorf("window of MinWindow values: %v", err)
	}
	if _, err := New(m, model, -1); err == nil {
		t.Error("negative threshold accepted")
	}
}
