package train

import (
	"fmt"

	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// VideoCloudScore describes the score of a cloud video model (a manifest's
// score field).
const VideoCloudScore = "the event's last window buckets alone (its features), normalised in order against a fresh baseline started at the first of them (feature-z), reconstructed; residual = RMS(input - output) over the newest residual_last buckets, normalised units, not scaled; confirmed at or above low (secondstage.VectorConfirmer)"

// BuildVideoCloud returns the manifest of res.Float, the float32 export of
// the video autoencoder BuildVideo trained with spec, as a cloud-float
// model named name: the edge manifest's input description with the
// thresholds recalibrated for the cloud's second stage
// (secondstage.VectorConfirmer): low and high are the spec's quantiles of
// the residual of every window of Window buckets of the held-out scenes,
// each scored from its own buckets alone as the cloud scores an event's
// features.
func BuildVideoCloud(res *VideoResult, spec VideoSpec, name string) (*manifest.Manifest, error) {
	s := spec.WithDefaults()
	if res == nil || res.Manifest == nil || len(res.Float) == 0 {
		return nil, fmt.Errorf("train: no float video model to describe")
	}
	m := *res.Manifest
	m.Name, m.Role, m.File = name, manifest.RoleCloudFloat, name+".tflite"
	m.IO = "float32 in, float32 out, float32 inside"
	m.SHA256 = manifest.Sum(res.Float)
	m.Score = VideoCloudScore
	m.Training.Agreement = nil
	m.Training.Command = s.Command
	m.Low, m.High = 1, 2 // placeholders until calibrated
	model, err := tflite.Load(res.Float)
	if err != nil {
		return nil, fmt.Errorf("train: the float export does not load: %w", err)
	}
	c, err := secondstage.NewVector(&m, model, 0)
	if err != nil {
		return nil, err
	}
	F := m.Features
	var rs []float64
	for i := 0; i < s.HeldOutScenes; i++ {
		feats := s.SceneFeatures(Scene{Seed: HeldOutSceneSeed(s.Fit.Seed, i)}, s.Seconds)
		flat := make([]float64, 0, len(feats)*F)
		for _, v := range feats {
			flat = append(flat, v...)
		}
		for t := s.Window; t <= len(feats); t++ {
			r, err := c.Score(flat[(t-s.Window)*F:t*F], nil)
			if err != nil {
				return nil, err
			}
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("train: no held-out window of %d buckets", s.Window)
	}
	m.Low, m.High = Quantile(rs, s.LowQuantile), Quantile(rs, s.HighQuantile)
	if !(m.High > m.Low) {
		m.High = m.Low * 1.5
	}
	m.Training.Data += fmt.Sprintf("; cloud thresholds: residual quantiles q%g and q%g over %d held-out windows, each scored from its own buckets", s.LowQuantile, s.HighQuantile, len(rs))
	return &m, m.Validate()
}
