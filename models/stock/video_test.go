package stock

import (
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"testing"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// TestShippedVideoFiles: the embedded ae-video is the file on disk, an
// int8 vector autoencoder whose manifest names its features and their
// normalisation, records its int8 agreement, and that a VectorScorer runs
// (and a single-value Scorer refuses).
func TestShippedVideoFiles(t *testing.T) {
	m, model, err := Load(Video)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, _ := Files(Video)
	if disk, err := os.ReadFile(m.File); err != nil || string(disk) != string(raw) {
		t.Errorf("embedded model differs from %s on disk (%v)", m.File, err)
	}
	if m.Role != manifest.RoleEdgeInt8 || m.Kind != manifest.KindAutoencoder || m.Normalisation != manifest.NormFeatureZ {
		t.Errorf("role %s kind %s normalisation %s", m.Role, m.Kind, m.Normalisation)
	}
	if m.Features != 10 || len(m.FeatureNames) != 10 || m.FeatureNames[0] != "count_person" || m.FeatureNames[9] != "motion_mean" {
		t.Errorf("features %d %v", m.Features, m.FeatureNames)
	}
	if a := m.Training.Agreement; a == nil || a.Readings < 1000 || a.SameDecision < 0.99 || a.MeanAbsDeltaOutput > 0.1 {
		t.Errorf("agreement %+v", a)
	}
	hasInt8 := false
	for _, ti := range model.Tensors() {
		if ti.Type == tflite.Int8 {
			hasInt8 = true
		}
	}
	if !hasInt8 {
		t.Error("no int8 tensor")
	}
	if _, err := NewVectorScorer(m, model); err != nil {
		t.Fatal(err)
	}
	if _, err := NewScorer(m, model); err == nil {
		t.Error("a single-value Scorer accepted the vector model")
	}
	em, emodel, _ := Load(Edge)
	if _, err := NewVectorScorer(em, emodel); err == nil {
		t.Error("a VectorScorer accepted a single-value model")
	}
}

// cameraVectors is n buckets of a steady camera: about 4 persons and a car
// now and then per frame, with noise; NaN motion now and then (a bucket
// without a previous box).
func cameraVectors(n int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([][]float64, n)
	for i := range out {
		v := make([]float64, 10)
		v[0] = math.Max(0, 4+0.8*rng.NormFloat64())
		v[1] = math.Max(0, 0.3+0.3*rng.NormFloat64())
		v[7] = 0.8 + 0.03*rng.NormFloat64()
		v[8] = 0.006 + 0.001*rng.NormFloat64()
		v[9] = 0.01 + 0.002*rng.NormFloat64()
		if rng.IntN(50) == 0 {
			v[9] = math.NaN()
		}
		out[i] = v
	}
	return out
}

// TestVectorScorer runs ae-video over a steady camera with a crowd (person
// count x4 for 10 buckets) and a vanishing (no person for 20 buckets): the
// crowd scores above High and above every normal bucket; the vanishing
// (the weaker signal: only one feature moves, and the others go missing)
// reaches Low (uncertain: forwarded for the cloud to judge) and scores above
// 99% of the normal buckets; at most 2% of normal buckets reach Low. Also: a wrong vector length is an error, Reset starts over, and the
// same stream gives the same scores.
func TestVectorScorer(t *testing.T) {
	m, model, err := Load(Video)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewVectorScorer(m, model)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Step(make([]float64, 3)); err == nil {
		t.Error("a 3-feature vector was scored")
	}
	vs := cameraVectors(900, 1)
	for i := 400; i < 410; i++ {
		vs[i][0] *= 4
	}
	for i := 700; i < 720; i++ {
		vs[i][0] = 0
	}
	run := func() []float64 {
		s.Reset()
		scores := make([]float64, len(vs))
		for i, v := range vs {
			sc, ok, err := s.Step(v)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				sc = math.NaN()
			}
			scores[i] = sc
		}
		return scores
	}
	scores := run()
	if !math.IsNaN(scores[m.Window+m.Warmup-2]) || math.IsNaN(scores[m.Window+m.Warmup]) {
		t.Errorf("warm-up: scores %v", scores[m.Window+m.Warmup-2:m.Window+m.Warmup+1])
	}
	peak := func(from, to int) float64 {
		p := 0.0
		for _, x := range scores[from:to] {
			if !math.IsNaN(x) {
				p = math.Max(p, x)
			}
		}
		return p
	}
	var normalMax float64
	var normal, low int
	var normals []float64
	for i, x := range scores {
		if math.IsNaN(x) || (i >= 400 && i < 410+m.Window) || (i >= 700 && i < 720+m.Window) {
			continue
		}
		normal++
		normals = append(normals, x)
		normalMax = math.Max(normalMax, x)
		if x >= m.Low {
			low++
		}
	}
	crowd, vanish := peak(400, 410+m.Window), peak(700, 720+m.Window)
	t.Logf("crowd %.2f vanish %.2f normal max %.2f; %d of %d normal buckets >= low %.2f (high %.2f)", crowd, vanish, normalMax, low, normal, m.Low, m.High)
	sort.Float64s(normals)
	q99 := normals[len(normals)*99/100]
	if crowd < m.High || crowd <= normalMax || vanish < m.Low || vanish <= q99 {
		t.Errorf("crowd %.2f vanish %.2f, normal max %.2f q0.99 %.2f, low %.2f high %.2f", crowd, vanish, normalMax, q99, m.Low, m.High)
	}
	if float64(low) > 0.02*float64(normal) {
		t.Errorf("%d of %d normal buckets at or above low", low, normal)
	}
	again := run()
	for i := range scores {
		if scores[i] != again[i] && !(math.IsNaN(scores[i]) && math.IsNaN(again[i])) {
			t.Fatalf("bucket %d: %g then %g after Reset", i, scores[i], again[i])
		}
	}
}

// TestShippedVideoCloudFiles: the shipped ae-video-cloud is the float32
// network ae-video quantises: a cloud-float model without int8 tensors,
// reading the same window of the same features with the same
// normalisation, whose outputs on normalised camera windows agree with
// ae-video's within the int8 error the ae-video manifest records; its
// thresholds are positive and ordered.
func TestShippedVideoCloudFiles(t *testing.T) {
	m, model, err := Load(VideoCloud)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, _ := Files(VideoCloud)
	if disk, err := os.ReadFile(m.File); err != nil || string(disk) != string(raw) {
		t.Errorf("embedded model differs from %s on disk (%v)", m.File, err)
	}
	em, emodel, err := Load(Video)
	if err != nil {
		t.Fatal(err)
	}
	if m.Role != manifest.RoleCloudFloat || m.Name != VideoCloud || m.Kind != em.Kind || m.Normalisation != em.Normalisation ||
		m.Window != em.Window || m.Features != em.Features || m.ResidualLast != em.ResidualLast {
		t.Errorf("manifest %+v does not describe ae-video's input as a cloud-float model", m)
	}
	for f := range em.FeatureNames {
		if m.FeatureNames[f] != em.FeatureNames[f] || m.FeatureMean[f] != em.FeatureMean[f] || m.FeatureStd[f] != em.FeatureStd[f] {
			t.Errorf("feature %d: %s mean %g std %g, ae-video %s %g %g", f, m.FeatureNames[f], m.FeatureMean[f], m.FeatureStd[f],
				em.FeatureNames[f], em.FeatureMean[f], em.FeatureStd[f])
		}
	}
	if !(m.Low > 0) || !(m.High > m.Low) {
		t.Errorf("thresholds low %v high %v", m.Low, m.High)
	}
	for _, ti := range model.Tensors() {
		if ti.Type == tflite.Int8 {
			t.Fatalf("int8 tensor %s in the float model", ti.Name)
		}
	}
	f, err := NewVectorScorer(m, model)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewVectorScorer(em, emodel)
	if err != nil {
		t.Fatal(err)
	}
	cam := cameraVectors(200, 5)
	var b manifest.Baseline
	vecs := make([]float32, len(cam)*m.Features)
	for i, v := range cam {
		m.NormaliseVector(vecs[i*m.Features:(i+1)*m.Features], v, &b)
	}
	var sum float64
	var n int
	for t0 := 0; t0+m.InputSize() <= len(vecs); t0 += m.Features {
		w := vecs[t0 : t0+m.InputSize()]
		if _, err := f.Residual(w); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Residual(w); err != nil {
			t.Fatal(err)
		}
		for i, o := range f.Last.Output {
			sum += math.Abs(float64(o - q.Last.Output[i]))
			n++
		}
	}
	mean := sum / float64(n)
	t.Logf("mean |float - int8| output %.4f over %d values (ae-video's manifest: %.4f)", mean, n, em.Training.Agreement.MeanAbsDeltaOutput)
	if mean > 2*em.Training.Agreement.MeanAbsDeltaOutput+0.01 {
		t.Errorf("mean |float - int8| output %.4f: not the network ae-video quantises", mean)
	}
}
