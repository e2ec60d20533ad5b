package scorer

import (
	"math"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestByModelVideo: WithVideo sends ae-video events with features to the
// stock video model (Result.Model names it; the crowd bucket of a
// generated street scene confirmed, a normal bucket rejected), video
// events without features and every other model's events to the base
// scorer, and a video event with features of the wrong width falls back to
// the edge's kind with the reason.
func TestByModelVideo(t *testing.T) {
	base, err := NewRegistry().New(RobustZName, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := WithVideo(base)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != RobustZName {
		t.Errorf("name %q, want the base scorer's", s.Name())
	}
	if VideoCloudName != "ae-video-cloud@1" {
		t.Errorf("video model %q", VideoCloudName)
	}
	spec := train.VideoSpec{}.WithDefaults()
	a := train.Anomaly{Kind: train.AnomalyCrowd, At: 300, Duration: 10, Size: 15}
	feats := spec.SceneFeatures(train.Scene{Seed: train.HeldOutSceneSeed(7, 2001), Anomaly: &a}, 400)
	flat := func(from, to int) (out []float64, missing []int) {
		for _, v := range feats[from:to] {
			for _, x := range v {
				if math.IsNaN(x) {
					missing = append(missing, len(out))
					x = 0
				}
				out = append(out, x)
			}
		}
		return out, missing
	}
	ev := func(model string, end int) wire.Event {
		f, miss := flat(end-8, end)
		return wire.Event{Model: model, Kind: wire.KindUncertain, Score: 1.2, Window: []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 50}, Features: f, FeaturesMissing: miss}
	}
	at := int(a.At / spec.Bucket)
	var crowd Result
	for end := at + 1; end <= at+3; end++ {
		if r := s.Score(ev("ae-video@1", end)); r.Score > crowd.Score {
			crowd = r
		}
	}
	if crowd.Decision != wire.Confirmed || crowd.Model != VideoCloudName || crowd.Reason != "" {
		t.Errorf("crowd: %+v", crowd)
	}
	rejected := 0
	for end := 100; end < 200; end++ {
		r := s.Score(ev("ae-video@2", end))
		if r.Model != VideoCloudName || r.Reason != "" {
			t.Fatalf("normal bucket %d: %+v", end, r)
		}
		if r.Decision == wire.Rejected {
			rejected++
		}
	}
	if rejected < 98 {
		t.Errorf("%d of 100 normal buckets rejected", rejected)
	}
	// No features, or another model: the base scorer (robust z of the
	// window's last value: 50 among ones is confirmed), no Model.
	noFeat := ev("ae-video@1", 200)
	noFeat.Features, noFeat.FeaturesMissing = nil, nil
	for _, e := range []wire.Event{noFeat, ev("ae-edge@1", 200), ev("ae-videox@1", 200)} {
		if r := s.Score(e); r.Model != "" || r.Decision != wire.Confirmed || r.Score != MaxScore {
			t.Errorf("%s with %d features: %+v, want the base scorer's", e.Model, len(e.Features), r)
		}
	}
	bad := ev("ae-video@1", 200)
	bad.Features = bad.Features[1:]
	if r := s.Score(bad); r.Decision != wire.Rejected || r.Model != VideoCloudName || !strings.Contains(r.Reason, "fallback edge-kind") || !strings.Contains(r.Reason, "not rows of 10") {
		t.Errorf("features of the wrong width: %+v", r)
	}
}
