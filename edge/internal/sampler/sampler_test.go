package sampler

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// setup starts nats-server with the samples stream (as outpost-cloud's
// streams.Ensure creates it) and returns a connection and the stream.
func setup(t *testing.T) (*nats.Conn, jetstream.Stream) {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: names.StreamSamples, Subjects: []string{names.SamplesAll}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return nc, st
}

// stored reads every sample in the stream and their bytes (payload and
// subject, as the budget counts them).
func stored(t *testing.T, st jetstream.Stream) ([]wire.Sample, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Sample
	bytes := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var s wire.Sample
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
		bytes += len(m.Data) + len(m.Subject)
	}
	return out, bytes
}

func window(id, n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = float64(id) + float64(i)/1000
	}
	return w
}

func TestBudgetHoldsAndSamplesArrive(t *testing.T) {
	nc, st := setup(t)
	clk := &clock{t: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	const budget = 6000 // bytes per hour
	s, err := New(nc, "gw-1", Config{Budget: budget, Interval: time.Hour, Windows: 4, Seed: 7, Now: clk.Now,
		ModelOf: func(string) string { return "ae-edge@1" }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := clk.Now()
	streams := []string{"sensors/a/temp", "sensors/b/temp", "sensors/c/temp"}
	offered := map[string]map[float64]time.Time{}
	id := 0
	ctx := context.Background()
	for step := 0; step < 8; step++ {
		for k, stream := range streams {
			if offered[stream] == nil {
				offered[stream] = map[float64]time.Time{}
			}
			for i := 0; i < 50; i++ {
				id++
				ts := clk.Now().Add(time.Duration(i) * time.Second)
				s.Offer(stream, ts, window(id*10+k, 32))
				offered[stream][float64(id*10+k)] = ts
			}
		}
		clk.Add(20 * time.Minute)
		if _, err := s.Upload(ctx); err != nil {
			t.Fatal(err)
		}
		got, bytes := stored(t, st)
		limit := budget * clk.Now().Sub(start).Hours()
		if float64(bytes) > limit {
			t.Fatalf("after %s: %d bytes uploaded, budget allows %.0f", clk.Now().Sub(start), bytes, limit)
		}
		if step == 7 {
			if float64(bytes) < limit/2 {
				t.Errorf("only %d of %.0f allowed bytes used", bytes, limit)
			}
			per := map[string]int{}
			for _, smp := range got {
				per[smp.Stream]++
				ts, ok := offered[smp.Stream][smp.Window[0]]
				if smp.Agent != "gw-1" || smp.Model != "ae-edge@1" || !ok || len(smp.Window) != 32 || !smp.TS.Equal(ts) || smp.Offered != 50 {
					t.Fatalf("sample %+v is not a window offered on its stream", smp)
				}
			}
			for _, stream := range streams { // round-robin: every stream gets its share
				if per[stream] < len(got)/len(streams)-1 {
					t.Errorf("stream %s got %d of %d samples", stream, per[stream], len(got))
				}
			}
			stats := s.Stats()
			if stats.Sent != uint64(len(got)) || stats.SentBytes != uint64(bytes) || stats.OverBudget == 0 || stats.Offered != 8*3*50 {
				t.Errorf("stats %+v; stream holds %d samples, %d bytes", stats, len(got), bytes)
			}
			t.Logf("%d samples, %d bytes in %s (budget %d B/h): %+v", len(got), bytes, clk.Now().Sub(start), budget, stats)
		}
	}
}

func TestReservoirIsUniform(t *testing.T) {
	nc, _ := setup(t)
	clk := &clock{t: time.Unix(0, 0)}
	s, err := New(nc, "gw-2", Config{Budget: 1 << 30, Interval: time.Hour, Windows: 8, Seed: 3, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The mean position of the kept windows among 1000 offered is 500 for
	// a uniform sample; over 100 rounds of 8 its standard error is ~10.
	sum, n := 0.0, 0
	for round := 0; round < 100; round++ {
		for i := 0; i < 1000; i++ {
			s.Offer("x", clk.Now(), []float64{float64(i)})
		}
		s.mu.Lock()
		for _, sl := range s.res["x"].slots {
			sum += sl.window[0]
			n++
		}
		s.res = map[string]*reservoir{}
		s.mu.Unlock()
	}
	if mean := sum / float64(n); n != 800 || math.Abs(mean-500) > 40 {
		t.Fatalf("kept %d windows with mean position %.1f, want 800 around 500", n, mean)
	}
}

func TestOffDoesNothing(t *testing.T) {
	nc, st := setup(t)
	s, err := New(nc, "gw-3", Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Offer("x", time.Now(), []float64{1, 2, 3})
	if n, err := s.Upload(context.Background()); n != 0 || err != nil {
		t.Fatalf("upload with budget 0: %d, %v", n, err)
	}
	s.Close()
	if got, _ := stored(t, st); len(got) != 0 || s.Stats().Offered != 0 {
		t.Fatalf("budget 0 sent %d samples, counted %+v", len(got), s.Stats())
	}
	var nilS *Sampler
	nilS.Offer("x", time.Now(), []float64{1}) // must not panic
	if _, err := New(nc, "gw 4", Config{Budget: 1}); err == nil {
		t.Fatal("an invalid agent id was accepted")
	}
}

func BenchmarkOffer(b *testing.B) {
	s := &Sampler{cfg: Config{Budget: 1, Windows: 8, MaxStreams: 10}, res: map[string]*reservoir{}}
	s.rng = newRand(1)
	w := window(1, 32)
	ts := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Offer("sensors/a/temp", ts, w)
	}
}

func BenchmarkOfferFunc(b *testing.B) {
	s := &Sampler{cfg: Config{Budget: 1, Windows: 8, MaxStreams: 10}, res: map[string]*reservoir{}}
	s.rng = newRand(1)
	ring := window(1, 32)
	fill := func(dst []float64) []float64 { return append(dst, ring...) }
	ts := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.OfferFunc("sensors/a/temp", ts, fill)
	}
}
