package detect

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

// seasonalConfig is a detector with the likelihood of a z-score scorer and
// the seasonal channel, with the settings `make eval` runs (likelihood of
// 1000 averages, floor 0.03; the channel averaging 50 differences,
// counting at High).
func seasonalConfig() Config {
	return Config{Window: 40, Low: 0.9, High: 1, CooldownReadings: 20, Warmup: 10,
		Likelihood: LikelihoodConfig{Window: 1000, Average: 10, Floor: 0.03},
		Seasonal:   SeasonalConfig{Average: 50}}
}

// daily is a reading every 5 minutes of a day-shaped pattern: low at
// night, a plateau of 8 hours by day, with noise; skip says the plateau
// of day skip does not come.
func daily(i int, rng *rand.Rand, skip int) float64 {
	h := i % 288
	v := 20.0
	if h >= 96 && h < 192 && i/288 != skip {
		v = 80
	}
	return v + rng.NormFloat64()*3
}

// TestSeasonalFires: a daily pattern whose plateau does not come on day 12
// (within the stream's range, each step an ordinary one) raises an anomaly
// from the seasonal channel; the 11 normal days before raise none.
func TestSeasonalFires(t *testing.T) {
	d, err := New(seasonalConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Config().Seasonal; c.Average != 50 || c.High != 1 || c.Period != 24*time.Hour {
		t.Fatalf("seasonal config %+v", c)
	}
	rng := rand.New(rand.NewSource(21))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	fired := -1
	for i := range 13 * 288 {
		j := d.Judge(t0.Add(time.Duration(i)*5*time.Minute), daily(i, rng, 12))
		if j.Emit && j.Level == Anomaly {
			if i < 12*288 {
				t.Fatalf("reading %d (day %d): anomaly on the normal days %+v", i, i/288, j)
			}
			if j.OutOfRange || j.Seasonal < 1 || j.Source != FromSeasonal {
				t.Fatalf("reading %d: anomaly not from the seasonal channel %+v", i, j)
			}
			if fired < 0 {
				fired = i
			}
		}
	}
	if d.sea.n != 288 {
		t.Fatalf("season of %d readings, want 288", d.sea.n)
	}
	if fired < 12*288+96 || fired > 12*288+192 {
		t.Fatalf("first anomaly at %d, want within the missing plateau (%d to %d)", fired, 12*288+96, 12*288+192)
	}
}

// TestSeasonalQuiet: stationary noise, and the daily pattern without a
// missing day, keep the seasonal channel below High over 20 days.
func TestSeasonalQuiet(t *testing.T) {
	for _, pattern := range []bool{false, true} {
		d, err := New(seasonalConfig())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(22))
		t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		maxSea := 0.0
		for i := range 20 * 288 {
			v := 5 + rng.NormFloat64()
			if pattern {
				v = daily(i, rng, -1)
			}
			j := d.Judge(t0.Add(time.Duration(i)*5*time.Minute), v)
			maxSea = math.Max(maxSea, j.Seasonal)
		}
		if maxSea >= 1 {
			t.Fatalf("pattern %v: seasonal score reached %.3f", pattern, maxSea)
		}
	}
}

// TestSeasonalLength: the season's length comes from the median spacing
// (repeated timestamps and an odd gap do not move it); a stream sampled
// faster than a reading a minute has no seasonal channel.
func TestSeasonalLength(t *testing.T) {
	s, _ := newSeasonal(SeasonalConfig{Average: 5}, LikelihoodConfig{Window: 10})
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	tt := t0
	for i := range 30 {
		switch i {
		case 5: // repeated
		case 9:
			tt += int64(3 * time.Hour)
		default:
			tt += int64(30 * time.Minute)
		}
		s.step(tt, float64(i))
	}
	if s.n != 48 {
		t.Fatalf("season of %d readings at 30 min, want 48", s.n)
	}
	f, _ := newSeasonal(SeasonalConfig{Average: 5}, LikelihoodConfig{Window: 10})
	for i := range 30 {
		f.step(t0+int64(i)*int64(time.Second), 1)
	}
	if f.n != -1 || f.ring != nil {
		t.Fatalf("1 s sampling: season %d", f.n)
	}
	for _, c := range []SeasonalConfig{{Average: -1}, {Average: 10, High: -1}, {Average: 10, Period: -time.Hour}} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := New(Config{Window: 10, Low: 1, High: 2, Seasonal: SeasonalConfig{Average: 10}}); err == nil {
		t.Error("seasonal channel without the likelihood stage accepted")
	}
}

// TestSeasonalState: the channel's state is checkpointed (version 6),
// mid-season and while the length is still learnt: a restored detector
// continues exactly as the original; a version 5 state loads with the
// channel starting afresh; a detector without it skips its state.
func TestSeasonalState(t *testing.T) {
	cfg := seasonalConfig()
	cfg.Volatility = VolatilityConfig{Average: 20}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, at := range []int{10, 5*288 + 77} {
		rng := rand.New(rand.NewSource(23))
		vals := make([]float64, 8*288)
		for i := range vals {
			vals[i] = daily(i, rng, 7)
		}
		d1, _ := New(cfg)
		for i := range at {
			d1.Judge(t0.Add(time.Duration(i)*5*time.Minute), vals[i])
		}
		b, err := d1.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		d2, _ := New(cfg)
		if err := d2.UnmarshalBinary(b); err != nil {
			t.Fatalf("at %d: %v", at, err)
		}
		plain := cfg
		plain.Seasonal, plain.Volatility = SeasonalConfig{}, VolatilityConfig{}
		dp, _ := New(plain)
		if err := dp.UnmarshalBinary(b); err != nil {
			t.Fatalf("at %d, a detector without the channels: %v", at, err)
		}
		b5, _ := d1.appendState(nil, stateV5)
		d5, _ := New(cfg)
		if err := d5.UnmarshalBinary(b5); err != nil || d5.sea.n != 0 || d5.sea.nsp != 0 {
			t.Fatalf("at %d, version 5 state: %v", at, err)
		}
		if err := d2.UnmarshalBinary(b[:len(b)-5]); err == nil {
			t.Fatalf("at %d: truncated state accepted", at)
		}
		saw := false
		for i := at; i < len(vals); i++ {
			ts := t0.Add(time.Duration(i) * 5 * time.Minute)
			j1, j2 := d1.Judge(ts, vals[i]), d2.Judge(ts, vals[i])
			if j1.Score != j2.Score || j1.Seasonal != j2.Seasonal || j1.Level != j2.Level || j1.Emit != j2.Emit {
				t.Fatalf("at %d, reading %d: restored %+v, original %+v", at, i, j2, j1)
			}
			saw = saw || j1.Seasonal >= 1
		}
		if !saw {
			t.Fatalf("at %d: the missing plateau of day 7 was not seen", at)
		}
	}
}

// TestChannelsZeroAllocs: with the likelihood stage, the novelty,
// volatility and seasonal channels and the range rule (the settings `make
// eval` runs), judging a reading in steady state allocates nothing (the
// seasonal channel allocates its ring once, when it learns the season's
// length).
func TestChannelsZeroAllocs(t *testing.T) {
	cfg := seasonalConfig()
	cfg.Volatility = VolatilityConfig{Average: 100, High: 0.5}
	cfg.Novelty = NoveltyConfig{Bins: 12, Length: 3, High: 1, Holdoff: 150}
	cfg.RangeMargin = 0.005
	cfg.StuckRun = 50
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(24))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	for ; i < 3*288; i++ {
		d.Judge(t0.Add(time.Duration(i)*5*time.Minute), daily(i, rng, -1))
	}
	if a := testing.AllocsPerRun(1000, func() {
		i++
		d.Judge(t0.Add(time.Duration(i)*5*time.Minute), daily(i, rng, -1))
	}); a != 0 {
		t.Fatalf("%v allocations per reading", a)
	}
}

// BenchmarkChannels: one reading (5-minute spacing, a daily pattern)
// through a z-score detector with the likelihood stage, the novelty channel
// and the range rule ("base"), and with the volatility and seasonal
// channels added ("channels"), as `make eval` runs them.
func BenchmarkChannels(b *testing.B) {
	base := seasonalConfig()
	base.Seasonal = SeasonalConfig{}
	base.Novelty = NoveltyConfig{Bins: 12, Length: 3, High: 1, Holdoff: 150}
	base.RangeMargin = 0.005
	all := base
	all.Volatility = VolatilityConfig{Average: 100, High: 0.5}
	all.Seasonal = SeasonalConfig{Average: 50}
	stuck := all
	stuck.StuckRun = 50
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"base", base}, {"channels", all}, {"stuck", stuck}} {
		b.Run(c.name, func(b *testing.B) {
			d, err := New(c.cfg)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewSource(25))
			vals := make([]float64, 4*288)
			for i := range vals {
				vals[i] = daily(i, rng, -1)
			}
			t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			for i := range 3 * 288 {
				d.Judge(t0.Add(time.Duration(i)*5*time.Minute), vals[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := 3*288 + i
				d.Judge(t0.Add(time.Duration(k)*5*time.Minute), vals[k%len(vals)])
			}
		})
	}
}
