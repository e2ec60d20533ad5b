package modelscore_test

import (
	"errors"
	"math"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/eval"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/nab"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// repoCorpus holds the NAB files shipped in the repository.
const repoCorpus = "../../../datasets/nab/data/realKnownCause"

func loadEdge(t testing.TB) (*manifest.Manifest, *tflite.Model) {
	t.Helper()
	m, model, err := modelscore.Load(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	return m, model
}

// newDetector returns a detector scoring with the model as the agent
// builds it: thresholds from the manifest, no warm-up of its own (the
// model's), cool-down 20 readings like eval.ModelConfig's default.
func newDetector(t testing.TB, r *modelscore.Runner, window int) *detect.Detector {
	t.Helper()
	m := r.Manifest()
	d, err := detect.NewWithScorer(detect.Config{Window: window, Low: m.Low, High: m.High, CooldownReadings: 20}, modelscore.New(r))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestMatchesModelDetector: on NAB series the agent's detector with the
// model scorer judges every reading as the evaluation's ModelDetector
// (stock.Scorer under the hood) does: same score bit for bit, same level,
// same events with the same windows. So the evaluation measures what the
// agent runs.
func TestMatchesModelDetector(t *testing.T) {
	m, model := loadEdge(t)
	for _, file := range []string{"ambient_temperature_system_failure.csv", "ec2_request_latency_system_failure.csv"} {
		t.Run(file, func(t *testing.T) {
			s, err := nab.ReadSeries(filepath.Join(repoCorpus, file))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := eval.NewModelDetector(m, model, eval.ModelConfig{}, 1)
			if err != nil {
				t.Fatal(err)
			}
			r, err := modelscore.NewRunner(m, model)
			if err != nil {
				t.Fatal(err)
			}
			// The detector's window is what an uncertain event carries: the
			// evaluation's default Forward.
			d := newDetector(t, r, eval.ModelConfig{}.WithDefaults().Forward)
			var scored, emits, anomalies int
			for i, ts := range s.Times {
				v := s.Values[i][0]
				want := ref.Judge(ts, []float64{v})
				got := d.Judge(ts, v)
				if got.Score != want.Score || int(got.Level) != int(want.Level) || got.Emit != want.Emit {
					t.Fatalf("reading %d (%v): agent score %v level %v emit %v, eval score %v level %v emit %v",
						i, v, got.Score, got.Level, got.Emit, want.Score, want.Level, want.Emit)
				}
				if got.Warm {
					scored++
				}
				if got.Emit {
					emits++
					if got.Level == detect.Anomaly {
						anomalies++
					}
					// The evaluation forwards the last AnomalyForward (the
					// model's window) values of an anomaly; the agent its
					// whole window, which ends with them.
					if len(got.Window) < len(want.Window) {
						t.Fatalf("reading %d: window of %d, eval %d", i, len(got.Window), len(want.Window))
					}
					tail := got.Window[len(got.Window)-len(want.Window):]
					for k := range tail {
						if tail[k] != want.Window[k] {
							t.Fatalf("reading %d: window[%d] %v, eval %v", i, k, tail[k], want.Window[k])
						}
					}
				}
			}
			if ref.Err() != nil {
				t.Fatal(ref.Err())
			}
			if first := m.Window - 1 + m.Warmup; scored != len(s.Times)-first {
				t.Fatalf("%d readings scored of %d, want all but the first %d", scored, len(s.Times), first)
			}
			if emits == 0 || anomalies == 0 {
				t.Fatalf("%d events, %d anomalies: the comparison saw no incident", emits, anomalies)
			}
			t.Logf("%d readings, %d events (%d anomalies), equal", len(s.Times), emits, anomalies)
		})
	}
}

// smooth returns a sine with a little noise.
func smooth(n int, seed int64) []float64 {
	rng := rand.New(rand.NewSource(seed))
	out := make([]float64, n)
	for i := range out {
		out[i] = 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + rng.NormFloat64()*0.05
	}
	return out
}

// TestSpikeOneEvent: after smooth readings a spike is an anomaly, raised
// once, and the model names it.
func TestSpikeOneEvent(t *testing.T) {
	m, model := loadEdge(t)
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	d := newDetector(t, r, 120)
	vs := smooth(400, 1)
	vs[300] += 15
	t0 := time.Unix(0, 0).UTC()
	var events []int
	for i, v := range vs {
		j := d.Judge(t0.Add(time.Duration(i)*time.Second), v)
		if j.Emit {
			events = append(events, i)
			if j.Level != detect.Anomaly || i != 300 {
				t.Fatalf("event at %d level %v score %v", i, j.Level, j.Score)
			}
		}
	}
	if len(events) != 1 {
		t.Fatalf("events at %v, want one at 300", events)
	}
	if d.Model() != m.ID() || m.ID() != "ae-edge@1" {
		t.Fatalf("model %q", d.Model())
	}
}

// TestCheckpoint: a detector restored from a checkpoint taken mid-stream
// (after the model's warm-up) judges the rest exactly as the original; the
// state carries the model's window and residual scale.
func TestCheckpoint(t *testing.T) {
	m, model := loadEdge(t)
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	vs := smooth(600, 2)
	vs[450] += 10
	t0 := time.Unix(0, 0).UTC()
	d1 := newDetector(t, r, 64)
	for i, v := range vs[:200] {
		d1.Judge(t0.Add(time.Duration(i)*time.Second), v)
	}
	b, err := d1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d2 := newDetector(t, r, 64)
	if err := d2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	fresh := newDetector(t, r, 64)
	differs := false
	for i := 200; i < len(vs); i++ {
		ts := t0.Add(time.Duration(i) * time.Second)
		j1, j2, j3 := d1.Judge(ts, vs[i]), d2.Judge(ts, vs[i]), fresh.Judge(ts, vs[i])
		if j1.Score != j2.Score || j1.Level != j2.Level || j1.Emit != j2.Emit || j1.Warm != j2.Warm {
			t.Fatalf("reading %d: original %+v, restored %+v", i, j1, j2)
		}
		if !j2.Warm {
			t.Fatalf("reading %d: the restored detector is warming up again", i)
		}
		differs = differs || j3.Score != j1.Score
	}
	if !differs {
		t.Fatal("a fresh detector scores like the restored one: the state test proves nothing")
	}

	// A z-score state, a version 2 state, and a truncated one are refused
	// with ErrState and leave the detector as it was.
	z, _ := detect.New(detect.Config{Window: 64, Low: 4, High: 6, Warmup: 2})
	zb, _ := z.MarshalBinary()
	d3 := newDetector(t, r, 64)
	for name, bad := range map[string][]byte{"zscore": zb, "truncated": b[:len(b)-3], "version 2": append([]byte{2}, b[1:]...)} {
		if err := d3.UnmarshalBinary(bad); !errors.Is(err, detect.ErrState) {
			t.Fatalf("%s state: %v", name, err)
		}
	}
	if j := d3.Judge(t0, 1); j.Warm {
		t.Fatal("a refused state changed the detector")
	}
}

// TestStepNoAlloc: judging a reading with the model allocates nothing in
// steady state.
func TestStepNoAlloc(t *testing.T) {
	m, model := loadEdge(t)
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	d := newDetector(t, r, 120)
	vs := smooth(1000, 3)
	t0 := time.Unix(0, 0).UTC()
	i := 0
	for ; i < 300; i++ {
		d.Judge(t0.Add(time.Duration(i)*time.Second), vs[i])
	}
	scored := 0
	allocs := testing.AllocsPerRun(500, func() {
		j := d.Judge(t0.Add(time.Duration(i)*time.Second), vs[i%len(vs)])
		if j.Warm {
			scored++
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reading", allocs)
	}
	if scored == 0 {
		t.Fatal("no reading was scored")
	}
}

// TestSharedRunner: streams sharing a runner (one interpreter per worker)
// score as streams with runners of their own.
func TestSharedRunner(t *testing.T) {
	m, model := loadEdge(t)
	shared, _ := modelscore.NewRunner(m, model)
	a, b := modelscore.New(shared), modelscore.New(shared)
	ra, _ := modelscore.NewRunner(m, model)
	rb, _ := modelscore.NewRunner(m, model)
	a1, b1 := modelscore.New(ra), modelscore.New(rb)
	va, vb := smooth(300, 4), smooth(300, 5)
	for i := range va {
		vb[i] *= 3
		s1, ok1 := a.Step(va[i])
		s2, ok2 := b.Step(vb[i])
		s3, ok3 := a1.Step(va[i])
		s4, ok4 := b1.Step(vb[i])
		if s1 != s3 || s2 != s4 || ok1 != ok3 || ok2 != ok4 {
			t.Fatalf("reading %d: shared %v %v, own %v %v", i, s1, s2, s3, s4)
		}
	}
}

// TestLoadPath loads a model by its manifest's path.
func TestLoadPath(t *testing.T) {
	m, _, err := modelscore.Load("../../stock/ae-edge.json")
	if err != nil || m.Name != "ae-edge" {
		t.Fatalf("%v %v", m, err)
	}
	if _, _, err := modelscore.Load("nope.json"); err == nil {
		t.Fatal("a missing manifest loaded")
	}
	if _, _, err := modelscore.Load("no-such-model"); err == nil {
		t.Fatal("an unknown stock model loaded")
	}
}

// BenchmarkJudge is the cost of judging one reading with the int8 model
// (the model runs on every reading).
func BenchmarkJudge(b *testing.B) {
	m, model := loadEdge(b)
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		b.Fatal(err)
	}
	d := newDetector(b, r, 120)
	vs := smooth(4096, 6)
	t0 := time.Unix(0, 0).UTC()
	for i := 0; i < 300; i++ {
		d.Judge(t0.Add(time.Duration(i)*time.Second), vs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Judge(t0.Add(time.Duration(300+i)*time.Second), vs[i&4095])
	}
}
