package scorer

import (
	"fmt"
	"strings"
	"sync"

	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/shared/wire"
)

// VideoCloudName is the name of the stock cloud video model's scorer.
var VideoCloudName = stockID(stock.VideoCloud)

// VideoModel is the second stage of vector-model events (the edge's
// ae-video on a camera's buckets): it re-scores the feature vectors the
// event carries (wire.Event.Features) with a float vector autoencoder
// (the stock ae-video-cloud, the float export of the network ae-video
// quantises) and the decision code of models/detect/secondstage
// (VectorConfirmer): the event's bucket is confirmed when its
// reconstruction error, computed from the event's rows alone, is at or
// above the threshold (Options.Threshold, default
// secondstage.VectorThreshold: the manifest's low threshold, a quantile of
// that residual on held-out normal buckets). The score is that residual.
//
// An event with fewer rows than the model reads, rows of another width, or
// a runtime error is decided by FallbackEdgeKind, and the verdict's Reason
// says so and why. Each concurrent Score uses an interpreter of its own
// from a pool.
type VideoModel struct {
	m         *manifest.Manifest
	model     *tflite.Model
	threshold float64
	pool      sync.Pool
}

// NewVideoModel returns the video scorer of model, which m describes (a
// cloud-float vector autoencoder). Options.MinWindow must be 0.
func NewVideoModel(m *manifest.Manifest, model *tflite.Model, o Options) (*VideoModel, error) {
	if m.Role != manifest.RoleCloudFloat {
		return nil, fmt.Errorf("scorer %s: role %q: the second stage runs %s models", m.ID(), m.Role, manifest.RoleCloudFloat)
	}
	if o.MinWindow != 0 {
		return nil, fmt.Errorf("scorer %s: the rows a model needs are set by its input (%d), not by options", m.ID(), m.Window)
	}
	if o.Threshold == 0 {
		o.Threshold = secondstage.VectorThreshold(m, 0)
	}
	c, err := secondstage.NewVector(m, model, o.Threshold)
	if err != nil {
		return nil, fmt.Errorf("scorer %s: %w", m.ID(), err)
	}
	s := &VideoModel{m: m, model: model, threshold: c.Threshold}
	s.pool.Put(c)
	return s, nil
}

// NewStockVideo returns the scorer of the stock ae-video-cloud model.
func NewStockVideo(o Options) (*VideoModel, error) {
	m, model, err := stock.Load(stock.VideoCloud)
	if err != nil {
		return nil, fmt.Errorf("scorer: %w", err)
	}
	return NewVideoModel(m, model, o)
}

// Name implements Scorer: the model's "name@version".
func (s *VideoModel) Name() string { return s.m.ID() }

// Threshold is the confirm threshold (a residual).
func (s *VideoModel) Threshold() float64 { return s.threshold }

func (s *VideoModel) confirmer() (*secondstage.VectorConfirmer, error) {
	if c, ok := s.pool.Get().(*secondstage.VectorConfirmer); ok {
		return c, nil
	}
	return secondstage.NewVector(s.m, s.model, s.threshold)
}

// Score implements Scorer.
func (s *VideoModel) Score(ev wire.Event) Result {
	if len(ev.Features) == 0 {
		return byEdgeKind(ev, "no features: fallback "+FallbackEdgeKind+" decides (anomaly confirmed, uncertain rejected)")
	}
	c, err := s.confirmer()
	if err != nil {
		return byEdgeKind(ev, fmt.Sprintf("%s: %v: fallback %s decides", s.m.ID(), err, FallbackEdgeKind))
	}
	sc, ok, err := c.Decide(ev.Features, ev.FeaturesMissing)
	s.pool.Put(c)
	if err != nil {
		return unscored(ev, s.m.ID(), "features", "too few feature rows", err)
	}
	return decided(sc, ok)
}

// ByModel is the service's second stage: events of the edge's video model
// that carry features (Event.Model "ae-video@N" and Event.Features set)
// go to a VideoModel, every other event (sensor events, and video events
// of agents that send no features) to the base scorer. Its Name is the
// base scorer's; a result of the video scorer names its model in
// Result.Model.
type ByModel struct {
	base  Scorer
	video Scorer
	// edge is the edge model name (without version) whose events go to
	// video.
	edge string
}

// WithVideo returns base with the stock video second stage (NewStockVideo
// with default options) for the events of the stock edge video model
// (stock.Video).
func WithVideo(base Scorer) (*ByModel, error) {
	v, err := NewStockVideo(Options{})
	if err != nil {
		return nil, err
	}
	return NewByModel(base, stock.Video, v), nil
}

// NewByModel returns a scorer sending the events of edge model edge
// ("name", any version) that carry features to video and the rest to base.
func NewByModel(base Scorer, edge string, video Scorer) *ByModel {
	return &ByModel{base: base, video: video, edge: edge}
}

// Name implements Scorer: the base scorer's name.
func (s *ByModel) Name() string { return s.base.Name() }

// Score implements Scorer.
func (s *ByModel) Score(ev wire.Event) Result {
	if len(ev.Features) > 0 {
		if name, _, _ := strings.Cut(ev.Model, "@"); name == s.edge {
			r := s.video.Score(ev)
			r.Model = s.video.Name()
			return r
		}
	}
	return s.base.Score(ev)
}
