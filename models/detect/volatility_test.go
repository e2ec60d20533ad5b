package detect

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

// volatilityConfig is a detector with the likelihood of a z-score scorer
// and the volatility channel, with the settings `make eval` runs
// (likelihood of 1000 averages, floor 0.03; the channel averaging 100
// steps, counting from 0.5).
func volatilityConfig() Config {
	return Config{Window: 40, Low: 0.9, High: 1, CooldownReadings: 20, Warmup: 10,
		Likelihood: LikelihoodConfig{Window: 1000, Average: 10, Floor: 0.03},
		Volatility: VolatilityConfig{Average: 100, High: 0.5}}
}

// TestVolatilityFires: on a slow wave with a little noise, the stream
// starts to oscillate within its usual range at reading 5000 (a square
// wave of the same amplitude, period 4): the volatility channel raises an
// anomaly there; before it, the stationary stream raises none.
func TestVolatilityFires(t *testing.T) {
	d, err := New(volatilityConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Config().Volatility; c.Average != 100 || c.High != 0.5 {
		t.Fatalf("volatility config %+v", c)
	}
	rng := rand.New(rand.NewSource(11))
	t0 := time.Unix(1700000000, 0)
	fired := -1
	for i := range 5400 {
		v := math.Sin(float64(i)/50) + rng.NormFloat64()*0.02
		if i >= 5000 {
			v = 0.8 * float64(1-2*(i/2%2))
		}
		j := d.Judge(t0.Add(time.Duration(i)*time.Second), v)
		if j.Emit && j.Level == Anomaly {
			if i < 5000 {
				t.Fatalf("reading %d: anomaly on the stationary stream %+v", i, j)
			}
			if j.OutOfRange || j.Volatility < 0.5 || j.Source != FromVolatility {
				t.Fatalf("reading %d: anomaly not from the volatility channel %+v", i, j)
			}
			if fired < 0 {
				fired = i
			}
		}
	}
	if fired < 0 || fired > 5050 {
		t.Fatalf("the oscillation raised its first anomaly at %d, want 5000 to 5050", fired)
	}
}

// TestVolatilityQuiet: stationary noise (Gaussian, and heavy-tailed with
// the odd large step) raises no anomaly from the volatility channel over
// 20000 readings.
func TestVolatilityQuiet(t *testing.T) {
	for _, heavy := range []bool{false, true} {
		d, err := New(volatilityConfig())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(12))
		t0 := time.Unix(1700000000, 0)
		maxVol := 0.0
		for i := range 20000 {
			v := 5 + rng.NormFloat64()
			if heavy && rng.Intn(50) == 0 {
				v += 3 * rng.NormFloat64()
			}
			j := d.Judge(t0.Add(time.Duration(i)*time.Second), v)
			maxVol = math.Max(maxVol, j.Volatility)
		}
		if maxVol >= 0.5 {
			t.Fatalf("heavy %v: volatility score reached %.3f on stationary noise", heavy, maxVol)
		}
	}
}

// TestVolatilityState: the channel's state is checkpointed (version 6): a
// restored detector continues exactly as the original; a version 5 state
// loads with the channel starting afresh; a detector without the channel
// skips its state.
func TestVolatilityState(t *testing.T) {
	cfg := volatilityConfig()
	rng := rand.New(rand.NewSource(13))
	vals := make([]float64, 3000)
	for i := range vals {
		vals[i] = math.Sin(float64(i)/30) + rng.NormFloat64()*0.1
		if i >= 2500 {
			vals[i] += float64(i % 2)
		}
	}
	t0 := time.Unix(1700000000, 0)
	d1, _ := New(cfg)
	for i := range 2000 {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), vals[i])
	}
	b, d2 := restored(t, d1, cfg)
	b5, err := d1.appendState(nil, stateV5)
	if err != nil {
		t.Fatal(err)
	}
	d5, _ := New(cfg)
	if err := d5.UnmarshalBinary(b5); err != nil {
		t.Fatalf("version 5 state: %v", err)
	}
	if d5.vol.has || d5.vol.lik.hn != 0 {
		t.Fatal("a version 5 state left volatility state behind")
	}
	plain := cfg
	plain.Volatility = VolatilityConfig{}
	dp, _ := New(plain)
	if err := dp.UnmarshalBinary(b); err != nil {
		t.Fatalf("a detector without the channel: %v", err)
	}
	for i := 2000; i < len(vals); i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		j1, j2 := d1.Judge(ts, vals[i]), d2.Judge(ts, vals[i])
		if j1.Score != j2.Score || j1.Volatility != j2.Volatility || j1.Level != j2.Level || j1.Emit != j2.Emit {
			t.Fatalf("reading %d: restored %+v, original %+v", i, j2, j1)
		}
	}
	// A truncated volatility state is refused and leaves the detector as
	// it was.
	d3, _ := New(cfg)
	if err := d3.UnmarshalBinary(b[:len(b)-3]); err == nil {
		t.Fatal("truncated state accepted")
	}
	if d3.seen != 0 {
		t.Fatal("a refused state changed the detector")
	}
}

func TestVolatilityConfig(t *testing.T) {
	for _, c := range []VolatilityConfig{{Average: 1}, {Average: -1}, {Average: 10, High: -1}, {Average: 10, High: math.NaN()}} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := New(Config{Window: 10, Low: 1, High: 2, Volatility: VolatilityConfig{Average: 10}}); err == nil {
		t.Error("volatility without the likelihood stage accepted")
	}
}
