package secondstage_test

import (
	"errors"
	"math"
	"testing"

	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/train"
)

// videoConfirmer returns a confirmer of the stock ae-video-cloud model.
func videoConfirmer(t *testing.T) *secondstage.VectorConfirmer {
	t.Helper()
	m, model, err := stock.Load(stock.VideoCloud)
	if err != nil {
		t.Fatal(err)
	}
	c, err := secondstage.NewVector(m, model, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Threshold != m.Low || !(c.Threshold > 0) {
		t.Fatalf("threshold %v, want the manifest's low %v", c.Threshold, m.Low)
	}
	return c
}

// flatten returns rows [from, to) of feats, flattened, as an event's
// Features.
func flatten(feats [][]float64, from, to int) []float64 {
	var out []float64
	for _, v := range feats[from:to] {
		out = append(out, v...)
	}
	return out
}

// TestVideoConfirmerStock: the stock ae-video-cloud model re-scoring an
// event's feature rows rejects the buckets of generated normal street
// scenes (scenes neither trained nor calibrated on; at most 2% confirmed,
// the threshold being the q0.995 of normal residuals) and confirms a crowd
// of 15 pedestrians walking into such a scene: one of the first three
// buckets of the crowd is confirmed in at least 8 of 10 scenes.
func TestVideoConfirmerStock(t *testing.T) {
	c := videoConfirmer(t)
	W := c.Rows()
	spec := train.VideoSpec{}.WithDefaults()
	const scenes = 10
	var normal, normalConfirmed, crowdConfirmed int
	for i := 0; i < scenes; i++ {
		seed := train.HeldOutSceneSeed(7, 2000+i)
		a := train.Anomaly{Kind: train.AnomalyCrowd, At: 300, Duration: 10, Size: 15}
		feats := spec.SceneFeatures(train.Scene{Seed: seed, Anomaly: &a}, 400)
		at := int(a.At / spec.Bucket)
		var peakNormal float64
		for end := W; end <= at; end++ {
			sc, ok, err := c.Decide(flatten(feats, end-W, end), nil)
			if err != nil {
				t.Fatal(err)
			}
			normal++
			if ok {
				normalConfirmed++
			}
			peakNormal = math.Max(peakNormal, sc)
		}
		// The first buckets of the crowd: any of them confirmed confirms
		// the event the edge raised there.
		var peak float64
		for end := at + 1; end <= at+3; end++ {
			sc, _, err := c.Decide(flatten(feats, end-W, end), nil)
			if err != nil {
				t.Fatal(err)
			}
			peak = math.Max(peak, sc)
		}
		t.Logf("scene %d: crowd residual %.3f, normal peak %.3f, threshold %.3f", i, peak, peakNormal, c.Threshold)
		if peak >= c.Threshold {
			crowdConfirmed++
		}
	}
	rate := float64(normalConfirmed) / float64(normal)
	t.Logf("normal buckets confirmed: %d of %d (%.2f%%); crowds confirmed: %d of %d", normalConfirmed, normal, 100*rate, crowdConfirmed, scenes)
	if rate > 0.02 {
		t.Errorf("%.2f%% of normal buckets confirmed, want at most 2%%", 100*rate)
	}
	if crowdConfirmed < scenes*8/10 {
		t.Errorf("crowd confirmed in %d of %d scenes, want at least 80%%", crowdConfirmed, scenes)
	}
}

// TestVideoConfirmerRows: fewer rows than the model's window give
// ErrShortWindow, rows of the wrong width an error; only the last window
// rows are read; a missing feature is read as missing whatever the value
// written for it.
func TestVideoConfirmerRows(t *testing.T) {
	c := videoConfirmer(t)
	m := c.Manifest()
	W, F := m.Window, m.Features
	spec := train.VideoSpec{}.WithDefaults()
	feats := spec.SceneFeatures(train.Scene{Seed: 99}, 60)
	for _, v := range feats {
		for f, x := range v {
			if math.IsNaN(x) {
				v[f] = 1 // no NaN: the test marks its own missing values
			}
		}
	}
	if _, err := c.Score(flatten(feats, 0, W-1), nil); !errors.Is(err, secondstage.ErrShortWindow) {
		t.Errorf("%d rows: err %v, want ErrShortWindow", W-1, err)
	}
	if _, err := c.Score(flatten(feats, 0, W)[1:], nil); err == nil {
		t.Error("rows of the wrong width: no error")
	}
	last, err := c.Score(flatten(feats, 20, 20+W), nil)
	if err != nil {
		t.Fatal(err)
	}
	longer, err := c.Score(flatten(feats, 10, 20+W), nil)
	if err != nil {
		t.Fatal(err)
	}
	if longer != last {
		t.Errorf("rows before the window changed the score: %v, %v", longer, last)
	}
	// The area of the last bucket, marked missing, with two different
	// values written: same score; and not the score of the real value.
	rows := flatten(feats, 20, 20+W)
	k := (W-1)*F + train.VideoArea
	rows[k] = 0
	a, err := c.Score(rows, []int{k})
	if err != nil {
		t.Fatal(err)
	}
	rows[k] = 1e6
	b, err := c.Score(rows, []int{k})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("a missing value changed the score: %v, %v", a, b)
	}
	big, err := c.Score(rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	if big == a {
		t.Errorf("an area of 1e6 scored as a missing area (%v)", big)
	}
}
