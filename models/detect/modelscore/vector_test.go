package modelscore

import (
	"math"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/train"
)

// videoFeats is 10 generated minutes of one camera's features with a crowd
// of 20 at minute 6.
func videoFeats(seed uint64) [][]float64 { return crowdFeats(seed, 20) }

// crowdFeats is 10 generated minutes of one camera's features with a crowd
// of size at minute 6.
func crowdFeats(seed uint64, size float64) [][]float64 {
	a := train.Anomaly{Kind: train.AnomalyCrowd, At: 360, Duration: 10, Size: size}
	return train.VideoSpec{}.SceneFeatures(train.Scene{Seed: seed, Anomaly: &a}, 600)
}

// TestVectorMatchesStock: two cameras interleaved on one runner score what
// stock.VectorScorer scores, bucket for bucket; a vector model is refused
// by NewRunner and a single-value model by NewVectorRunner.
func TestVectorMatchesStock(t *testing.T) {
	m, model, err := Load(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(m, model); err == nil {
		t.Error("NewRunner accepted a vector model")
	}
	em, emodel, _ := Load(stock.Edge)
	if _, err := NewVectorRunner(em, emodel); err == nil {
		t.Error("NewVectorRunner accepted a single-value model")
	}
	r, err := NewVectorRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsVector() {
		t.Error("not a vector runner")
	}
	cams := [][][]float64{videoFeats(11), videoFeats(12)}
	ours := []*VectorScorer{NewVector(r), NewVector(r)}
	var refs []*stock.VectorScorer
	for range cams {
		s, err := stock.NewVectorScorer(m, model)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, s)
	}
	scored := 0
	for i := range cams[0] {
		for c := range cams {
			got, gok := ours[c].StepVector(cams[c][i])
			want, wok, err := refs[c].Step(cams[c][i])
			if err != nil {
				t.Fatal(err)
			}
			if got != want || gok != wok {
				t.Fatalf("camera %d bucket %d: %g %v, stock %g %v", c, i, got, gok, want, wok)
			}
			if gok {
				scored++
			}
		}
	}
	if scored < 2*(len(cams[0])-m.Window-m.Warmup) {
		t.Errorf("%d buckets scored", scored)
	}
	if _, ok := ours[0].StepVector([]float64{1, 2}); ok {
		t.Error("a short vector was scored")
	}
	v := cams[0][100]
	if n := testing.AllocsPerRun(100, func() { ours[0].StepVector(v) }); n != 0 {
		t.Errorf("StepVector allocates %v times", n)
	}
}

// TestVectorState: a scorer restored from its state scores the rest of the
// stream exactly as the original; broken states are refused.
func TestVectorState(t *testing.T) {
	m, model, err := Load(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewVectorRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	feats := videoFeats(21)
	for _, cut := range []int{0, 3, 100, 400} {
		a := NewVector(r)
		for _, v := range feats[:cut] {
			a.StepVector(v)
		}
		st := a.AppendState([]byte{0xee})
		b, rest, err := a.RestoreState(st[1:])
		if err != nil || len(rest) != 0 {
			t.Fatalf("cut %d: restore: %v, %d bytes left", cut, err, len(rest))
		}
		for i, v := range feats[cut:] {
			x, xok := a.StepVector(v)
			y, yok := b.StepVector(v)
			if x != y || xok != yok {
				t.Fatalf("cut %d bucket %d: %g %v, restored %g %v", cut, cut+i, x, xok, y, yok)
			}
		}
		for _, bad := range [][]byte{nil, {9}, st[1 : len(st)-3], append([]byte{1, 3}, st[3:]...)} {
			if _, _, err := a.RestoreState(bad); err == nil {
				t.Errorf("cut %d: a broken state (%d bytes) was restored", cut, len(bad))
			}
		}
	}
}

// TestAssembler groups the decoder's readings of two cameras into vectors:
// the model's features in its order, "frames" left to the caller, missing
// features NaN, a later bucket completing the earlier one, Flush completing
// the rest in arrival order, a late reading dropped.
func TestAssembler(t *testing.T) {
	m, _, err := Load(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAssembler(m)
	type got struct {
		prefix string
		ts     time.Time
		v      []float64
	}
	var out []got
	emit := func(p string, ts time.Time, v []float64) { out = append(out, got{p, ts, append([]float64(nil), v...)}) }
	t0 := time.Unix(1000, 0)
	t1 := t0.Add(time.Second)
	if a.Add("cameras/cam-1/frames", t0, 25, emit) {
		t.Error("frames taken as a model feature")
	}
	if a.Add("nocamera", t0, 1, emit) {
		t.Error("a stream without a prefix taken")
	}
	a.Add("cameras/cam-1/count_person", t0, 3, emit)
	a.Add("cameras/cam-2/count_person", t0, 7, emit)
	a.Add("cameras/cam-1/motion_mean", t0, 0.01, emit)
	if len(out) != 0 {
		t.Fatalf("emitted early: %v", out)
	}
	a.Add("cameras/cam-1/count_person", t1, 4, emit) // completes cam-1 @ t0
	if len(out) != 1 || out[0].prefix != "cameras/cam-1" || !out[0].ts.Equal(t0) || out[0].v[0] != 3 || out[0].v[9] != 0.01 || !math.IsNaN(out[0].v[7]) {
		t.Fatalf("after a later bucket: %+v", out)
	}
	a.Add("cameras/cam-1/count_car", t0, 9, emit) // late: dropped
	a.Flush(emit)
	if len(out) != 3 || out[1].prefix != "cameras/cam-2" || out[1].v[0] != 7 || out[2].prefix != "cameras/cam-1" || !out[2].ts.Equal(t1) || out[2].v[0] != 4 || !math.IsNaN(out[2].v[1]) {
		t.Fatalf("after flush: %+v", out)
	}
	a.Flush(emit)
	if len(out) != 3 {
		t.Errorf("a second flush emitted %d", len(out)-3)
	}
}

// TestVectorDetector wires a camera as the agent would: the decoder's
// per-feature readings through an Assembler into a VectorScorer, its scores
// offered to a detect.Detector with a Passthrough scorer and the manifest's
// thresholds, over 10 generated scenes with a crowd of 40 at minute 6.
// Measured: 7 of 10 crowds raise an event within 30 s, and the 60 minutes
// before them raise one anomaly event; the test holds at least 6 and at
// most 2.
func TestVectorDetector(t *testing.T) {
	caught, falseAnomalies := 0, 0
	for seed := uint64(1); seed <= 10; seed++ {
		during, before := vectorDetector(t, seed)
		if during > 0 {
			caught++
		}
		falseAnomalies += before
	}
	if caught < 6 || falseAnomalies > 2 {
		t.Errorf("%d of 10 crowds raised an event; %d anomaly events before the crowds", caught, falseAnomalies)
	}
}

// vectorDetector runs one scene and returns the events raised in the 30 s
// from the crowd's start and the anomaly events before it.
func vectorDetector(t *testing.T, seed uint64) (during, before int) {
	m, model, err := Load(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewVectorRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detect.NewWithScorer(detect.Config{Window: 16, Low: m.Low, High: m.High, CooldownReadings: 30}, NewPassthrough(r.Model()))
	if err != nil {
		t.Fatal(err)
	}
	if d.Model() != "ae-video@1" {
		t.Errorf("model %q", d.Model())
	}
	asm := NewAssembler(m)
	scorers := map[string]*VectorScorer{}
	var judged []detect.Judgement
	type event struct {
		ts    time.Time
		level detect.Level
	}
	var events []event
	onVector := func(prefix string, ts time.Time, v []float64) {
		s := scorers[prefix]
		if s == nil {
			s = NewVector(r)
			scorers[prefix] = s
		}
		score, ok := s.StepVector(v)
		if !ok {
			return
		}
		judged, _ = d.Offer(judged[:0], ts, score)
		for _, j := range judged {
			if j.Emit {
				events = append(events, event{j.TS, j.Level})
			}
		}
	}
	feats := crowdFeats(seed, 40)
	t0 := time.Unix(1_800_000_000, 0)
	for i, v := range feats { // one decoded message per bucket: its readings, then Flush
		ts := t0.Add(time.Duration(i) * time.Second)
		asm.Add("cameras/cam-9/frames", ts, 25, onVector)
		for f, x := range v {
			if x == x { // the decoder omits what is missing
				asm.Add("cameras/cam-9/"+m.FeatureNames[f], ts, x, onVector)
			}
		}
		asm.Flush(onVector)
	}
	crowdAt := t0.Add(360 * time.Second)
	for _, e := range events {
		switch {
		case e.ts.Before(crowdAt) && e.level == detect.Anomaly:
			before++
		case !e.ts.Before(crowdAt) && e.ts.Before(crowdAt.Add(30*time.Second)):
			during++
		}
	}
	t.Logf("seed %d: %d events during the crowd, %d anomaly events before it", seed, during, before)
	return during, before
}
