package decode

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/models/train"
)

// TestVideoMatchesTraining: the frames of a generated scene
// (models/train.SynthVideo, the data ae-video is trained on), sent as the
// JSON the cameras publish, decode to exactly the per-bucket features
// train.VideoFeatures computes for training, feature for feature, a
// missing feature (NaN there) being an omitted reading here: the edge
// feeds the model what it learnt from. (A test-only import: the
// outpost-edge binary does not link models/train, see its TestDeps.)
func TestVideoMatchesTraining(t *testing.T) {
	const fps, seconds = 25, 120
	crowd := train.Anomaly{Kind: train.AnomalyCrowd, At: 60, Duration: 10, Size: 20}
	frames := train.SynthVideo(train.Scene{Seed: 5, FPS: fps, Anomaly: &crowd}, seconds)
	want := train.VideoFeatures(frames, fps, 1920, 1080)
	if len(want) != seconds {
		t.Fatalf("%d training buckets", len(want))
	}
	v := mustVideo(t, "cameras/{camera}", VideoOptions{Classes: train.VideoClasses, FrameWidth: 1920, FrameHeight: 1080})
	got := map[time.Time]map[string]float64{}
	var b strings.Builder
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for i, fr := range frames {
		b.Reset()
		ts := vt0.Add(time.Duration(i) * time.Second / fps)
		b.WriteString(`{"camera":"cam-1","ts":"` + ts.Format(time.RFC3339Nano) + `","frame":` + strconv.Itoa(i) + `,"objects":[`)
		for k, o := range fr.Boxes {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"class":"` + o.Class + `","confidence":` + f(o.Confidence) +
				`,"bbox":[` + f(o.Left) + `,` + f(o.Top) + `,` + f(o.Width) + `,` + f(o.Height) + `]}`)
		}
		b.WriteString("]}")
		for _, r := range decodeOK(t, v, "cameras/cam-1/detections", []byte(b.String())) {
			m := got[r.TS]
			if m == nil {
				m = map[string]float64{}
				got[r.TS] = m
			}
			m[strings.TrimPrefix(r.Stream, "cameras/cam-1/")] = r.Value
		}
	}
	// The last bucket is emitted by the next frame, which never comes.
	if len(got) != seconds-1 {
		t.Fatalf("%d buckets decoded, want %d", len(got), seconds-1)
	}
	for i := 0; i < seconds-1; i++ {
		m := got[vt0.Add(time.Duration(i)*time.Second)]
		if m == nil {
			t.Fatalf("bucket %d not decoded", i)
		}
		if m["frames"] != fps {
			t.Errorf("bucket %d: %g frames", i, m["frames"])
		}
		for k, name := range train.VideoFeatureNames {
			x, ok := m[name]
			w := want[i][k]
			switch {
			case math.IsNaN(w) && ok:
				t.Errorf("bucket %d %s: decoded %g, training has it missing", i, name, x)
			case !math.IsNaN(w) && !ok:
				t.Errorf("bucket %d %s: not decoded, training has %g", i, name, w)
			case ok && math.Abs(x-w) > 1e-9*math.Max(1, math.Abs(w)):
				t.Errorf("bucket %d %s: decoded %.12g, training %.12g", i, name, x, w)
			}
		}
	}
}
