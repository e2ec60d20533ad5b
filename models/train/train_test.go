package train

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/nab"
	"github.com/outpost-iot/outpost/models/tflite"
)

// repoCorpus is the 7 realKnownCause NAB files shipped in the repository.
const repoCorpus = "../../datasets/nab"

// toyData: y = 0.5·x0 - x1 + relu(x2), x uniform in [-2, 2].
func toyData(n int, seed uint64) (xs, ys [][]float64) {
	rng := rand.New(rand.NewPCG(seed, 9))
	for i := 0; i < n; i++ {
		x := []float64{rng.Float64()*4 - 2, rng.Float64()*4 - 2, rng.Float64()*4 - 2, rng.Float64()*4 - 2}
		xs = append(xs, x)
		ys = append(ys, []float64{0.5*x[0] - x[1] + math.Max(x[2], 0)})
	}
	return xs, ys
}

func TestFitLearnsAndIsReproducible(t *testing.T) {
	xs, ys := toyData(2000, 1)
	cfg := Config{Epochs: 30, Seed: 7}
	var first float64
	cfg.Log = func(ep int, loss float64) {
		if ep == 1 {
			first = loss
		}
	}
	a, loss, err := Fit([]int{4, 16, 1}, xs, ys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !(loss < 0.03) || !(loss < first/20) {
		t.Errorf("loss %g after 30 epochs (first %g); the toy function is easy", loss, first)
	}
	b, _, _ := Fit([]int{4, 16, 1}, xs, ys, Config{Epochs: 30, Seed: 7})
	if !reflect.DeepEqual(a, b) {
		t.Error("same data and seed gave different networks")
	}
	c, _, _ := Fit([]int{4, 16, 1}, xs, ys, Config{Epochs: 30, Seed: 8})
	if reflect.DeepEqual(a.W, c.W) {
		t.Error("another seed gave the same network")
	}
	if _, _, err := Fit([]int{5, 1}, xs, ys, cfg); err == nil {
		t.Error("inputs of the wrong size accepted")
	}
}

// TestGradient checks the backpropagation against finite differences: one
// full-batch step of plain gradient descent (Adam's first step moves every
// parameter by lr·sign(gradient)) must lower the loss.
func TestGradient(t *testing.T) {
	xs, ys := toyData(64, 2)
	loss := func(m *MLP) float64 {
		var l float64
		for k := range xs {
			e := m.Predict(xs[k])[0] - ys[k][0]
			l += e * e
		}
		return l / float64(len(xs))
	}
	m0, _ := NewMLP([]int{4, 8, 1}, 3)
	m1, _, err := Fit([]int{4, 8, 1}, xs, ys, Config{Epochs: 1, Batch: 64, LR: 1e-3, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The step is lr·sign(g): check each sign against a finite difference.
	const h = 1e-6
	for l := range m0.W {
		for i := range m0.W[l] {
			w := m0.W[l][i]
			m0.W[l][i] = w + h
			up := loss(m0)
			m0.W[l][i] = w - h
			down := loss(m0)
			m0.W[l][i] = w
			g := (up - down) / (2 * h)
			step := m1.W[l][i] - w
			if math.Abs(g) > 1e-4 && step*g >= 0 {
				t.Fatalf("layer %d weight %d: numeric gradient %g, step %g (should be opposite)", l, i, g, step)
			}
		}
	}
	if !(loss(m1) < loss(m0)) {
		t.Error("one step did not lower the loss")
	}
}

func TestQuantisationBounds(t *testing.T) {
	xs, ys := toyData(3000, 4)
	net, _, err := Fit([]int{4, 16, 8, 1}, xs, ys, Config{Epochs: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := Calibrate(net, xs[:2000])
	q, err := ExportInt8(net, "toy", r)
	if err != nil {
		t.Fatal(err)
	}
	// Weights: symmetric per output channel, each within scale/2 of the
	// float value; biases within their scale/2 (scale input·weight).
	for l := range net.W {
		in := net.Sizes[l]
		for i, w := range net.W[l] {
			s := float64(q.Weights[l].Scales[i/in])
			if d := math.Abs(float64(q.QWeights[l][i])*s - w); d > s/2*1.0001 || q.QWeights[l][i] == -128 {
				t.Fatalf("layer %d weight %d: %g quantised to %d·%g (error %g)", l, i, w, q.QWeights[l][i], s, d)
			}
		}
		for o, b := range net.B[l] {
			s := float64(q.Bias[l].Scales[o])
			if want := float64(q.Acts[l].Scales[0]) * float64(q.Weights[l].Scales[o]); math.Abs(s-want) > 1e-6*want {
				t.Errorf("layer %d bias %d scale %g, want input·weight scale %g", l, o, s, want)
			}
			if d := math.Abs(float64(q.QBias[l][o])*s - b); d > s/2*1.0001 {
				t.Fatalf("layer %d bias %d: %g quantised with error %g > scale/2", l, o, b, d)
			}
		}
	}
	// Activations: asymmetric int8 over the calibrated range; every
	// calibrated value is within scale/2 of its quantised value.
	for l, aq := range q.Acts {
		s, zp := float64(aq.Scales[0]), float64(aq.ZeroPoints[0])
		for _, x := range xs[:200] {
			_, acts := net.Forward(x)
			for _, v := range acts[l] {
				qv := math.Max(-128, math.Min(127, math.Round(v/s)+zp))
				if d := math.Abs((qv-zp)*s - v); d > s/2*1.0001 {
					t.Fatalf("activation %d: %g is %g from its int8 value (scale %g)", l, v, d, s)
				}
			}
		}
	}
	// The int8 model against the float network on held-out inputs whose
	// activations stay in the calibrated ranges (outside them int8
	// saturates, as in TFLite): within 4 output steps, 1 on average (the
	// error accumulates over three layers).
	m, err := tflite.Load(q.Model)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	ys8 := float64(q.Acts[len(q.Acts)-1].Scales[0])
	var sum float64
	n := 0
held:
	for _, x := range xs[2000:] {
		_, acts := net.Forward(x)
		for l, a := range acts {
			for _, v := range a {
				if v < r.Lo[l] || v > r.Hi[l] {
					continue held
				}
			}
		}
		n++
		in := ip.Input(0).Float32s()
		for i, v := range x {
			in[i] = float32(v)
		}
		if err := ip.Invoke(); err != nil {
			t.Fatal(err)
		}
		got, want := float64(ip.Output(0).Float32s()[0]), net.Predict(x)[0]
		d := math.Abs(got - want)
		sum += d
		if d > 4*ys8 {
			t.Fatalf("int8 %g, float %g: off by %g > 4 output steps (%g)", got, want, d, ys8)
		}
	}
	if n < 900 {
		t.Errorf("only %d of 1000 held-out inputs stay in the calibrated ranges", n)
	}
	if mean := sum / float64(n); mean > ys8 {
		t.Errorf("mean |int8 - float| %g > one output step %g", mean, ys8)
	}
}

func TestExportFloatMatchesNetwork(t *testing.T) {
	xs, ys := toyData(500, 5)
	net, _, _ := Fit([]int{4, 8, 3, 1}, xs, ys, Config{Epochs: 3, Seed: 1})
	raw, err := ExportFloat(net, "toy")
	if err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	ip, _ := m.NewInterpreter()
	for _, x := range xs[:50] {
		for i, v := range x {
			ip.Input(0).Float32s()[i] = float32(v)
		}
		if err := ip.Invoke(); err != nil {
			t.Fatal(err)
		}
		if got, want := float64(ip.Output(0).Float32s()[0]), net.Predict(x)[0]; math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
			t.Fatalf("float export %g, network %g", got, want)
		}
	}
}

// TestWindowsUseOnlyProbation: the training windows depend on nothing after
// each file's probationary period.
func TestWindowsUseOnlyProbation(t *testing.T) {
	c, err := nab.LoadCorpus(repoCorpus)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Windows(c, manifest.KindForecast, 16, 1e-6, Range{0, 1}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Series {
		for i := nab.Probation(s.Len()); i < s.Len(); i++ {
			s.Values[i][0] = math.NaN()
		}
	}
	b, _ := Windows(c, manifest.KindForecast, 16, 1e-6, Range{0, 1}, 3)
	if a.Len() == 0 || !reflect.DeepEqual(a, b) {
		t.Errorf("windows change with the data after the probationary period (%d vs %d)", a.Len(), b.Len())
	}
	ae, _ := Windows(c, manifest.KindAutoencoder, 16, 1e-6, Range{0, 0.5}, 3)
	if len(ae.Y[0]) != 16 || !reflect.DeepEqual(ae.X[0], ae.Y[0]) {
		t.Error("autoencoder targets are not its inputs")
	}
}

// TestBuildSmall builds an edge model and a cloud model from the in-repo
// corpus, briefly trained: valid manifests with calibrated thresholds, the
// int8 model agreeing with its float model, and the same bytes twice.
func TestBuildSmall(t *testing.T) {
	c, err := nab.LoadCorpus(repoCorpus)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Window: 16, Hidden: []int{16, 8}, Stride: 2, Fit: Config{Epochs: 3, Seed: 5}, ScoreSpec: ScoreSpec{Warmup: 32}}
	var log bytes.Buffer
	a, err := Build(c, spec, &log)
	if err != nil {
		t.Fatal(err)
	}
	m := a.Manifest
	if m.SHA256 != manifest.Sum(a.Model) || m.Role != manifest.RoleEdgeInt8 || !(m.High > m.Low) {
		t.Errorf("manifest %+v", m)
	}
	if got := Quantile(a.HeldOutScores, m.LowQuantile); got != m.Low {
		t.Errorf("low %g is not the q%g of the held-out scores (%g)", m.Low, m.LowQuantile, got)
	}
	ag := m.Training.Agreement
	// Tolerance: the int8 forecaster's output within 0.05 normalised units
	// of the float one on average, and the same decision on 99% of
	// held-out readings.
	if ag == nil || ag.Readings < 100 || ag.MeanAbsDeltaOutput > 0.05 || ag.SameDecision < 0.99 {
		t.Errorf("agreement %+v\n%s", ag, log.String())
	}
	b, err := Build(c, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Model, b.Model) || !reflect.DeepEqual(a.Manifest, b.Manifest) {
		t.Error("two builds with the same spec differ")
	}
	spec.Role, spec.Name = manifest.RoleCloudFloat, "cloud"
	cl, err := Build(c, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cl.Model, cl.Float) || cl.Manifest.Training.Agreement != nil {
		t.Error("a cloud model is not its float export")
	}
	spec.Kind, spec.Name = manifest.KindAutoencoder, "ae"
	ae, err := Build(c, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ae.Net.Sizes; !reflect.DeepEqual(got, []int{16, 16, 8, 16, 16}) {
		t.Errorf("autoencoder sizes %v", got)
	}
}
