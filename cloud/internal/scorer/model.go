package scorer

import (
	"fmt"
	"sync"

	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/shared/wire"
)

// FallbackEdgeKind names the rule applied when a model cannot score a
// window: the edge kind decides (anomaly confirmed, uncertain rejected).
// It is the evaluation's hybrid rule (anomaly-or-confirmed) for a window
// the model cannot score, so the cloud decides as the evaluation measured.
const FallbackEdgeKind = "edge-kind"

// Model is a second-stage scorer running a float TFLite model with the
// decision code of models/detect/secondstage, the code the evaluation's
// hybrid mode measures: the window's last value is scored against the
// values before it (stock.Scorer.ScoreWindow) and confirmed at or above
// the threshold (Options.Threshold, default secondstage.DefaultConfirmAt
// times the model's low threshold).
//
// A window shorter than the model needs (secondstage.MinWindow), no window,
// or a runtime error is decided by FallbackEdgeKind, and the verdict's
// Reason says so and why.
//
// Each concurrent Score uses an interpreter of its own from a pool.
type Model struct {
	m         *manifest.Manifest
	model     *tflite.Model
	threshold float64
	min       int
	pool      sync.Pool
}

// NewModel returns the scorer of model, which m describes. Options.MinWindow
// must be 0: the model's input decides it.
func NewModel(m *manifest.Manifest, model *tflite.Model, o Options) (*Model, error) {
	if m.Role != manifest.RoleCloudFloat {
		return nil, fmt.Errorf("scorer %s: role %q: the second stage runs %s models", m.ID(), m.Role, manifest.RoleCloudFloat)
	}
	if o.MinWindow != 0 {
		return nil, fmt.Errorf("scorer %s: the window a model needs is set by its input (%d values), not by options", m.ID(), secondstage.MinWindow(m))
	}
	if o.Threshold == 0 {
		o.Threshold = secondstage.Threshold(m, 0)
	}
	// Build one confirmer now: it checks the model against the manifest.
	c, err := secondstage.New(m, model, o.Threshold)
	if err != nil {
		return nil, fmt.Errorf("scorer %s: %w", m.ID(), err)
	}
	s := &Model{m: m, model: model, threshold: c.Threshold, min: c.MinWindow()}
	s.pool.Put(c)
	return s, nil
}

// NewModelFiles returns the scorer of a model file and its manifest JSON,
// checking the file against the manifest's sha256.
func NewModelFiles(modelBytes, manifestJSON []byte, o Options) (*Model, error) {
	m, err := manifest.Parse(manifestJSON)
	if err != nil {
		return nil, fmt.Errorf("scorer: %w", err)
	}
	if err := m.Check(modelBytes); err != nil {
		return nil, fmt.Errorf("scorer: %w", err)
	}
	model, err := tflite.Load(modelBytes)
	if err != nil {
		return nil, fmt.Errorf("scorer %s: %w", m.ID(), err)
	}
	return NewModel(m, model, o)
}

// stockConstructor returns the constructor of an embedded stock model.
func stockConstructor(name string) Constructor {
	return func(o Options) (Scorer, error) {
		m, model, err := stock.Load(name)
		if err != nil {
			return nil, fmt.Errorf("scorer: %w", err)
		}
		return NewModel(m, model, o)
	}
}

// Name implements Scorer: the model's "name@version".
func (s *Model) Name() string { return s.m.ID() }

// Threshold is the confirm threshold.
func (s *Model) Threshold() float64 { return s.threshold }

// MinWindow is the fewest window values the model scores.
func (s *Model) MinWindow() int { return s.min }

func (s *Model) confirmer() (*secondstage.Confirmer, error) {
	if c, ok := s.pool.Get().(*secondstage.Confirmer); ok {
		return c, nil
	}
	return secondstage.New(s.m, s.model, s.threshold)
}

// Score implements Scorer.
func (s *Model) Score(ev wire.Event) Result {
	if len(ev.Window) == 0 {
		return byEdgeKind(ev, "no window: fallback "+FallbackEdgeKind+" decides (anomaly confirmed, uncertain rejected)")
	}
	if len(ev.Window) < s.min {
		return byEdgeKind(ev, fmt.Sprintf("window of %d values is shorter than %s needs (%d): fallback %s decides (anomaly confirmed, uncertain rejected)",
			len(ev.Window), s.m.ID(), s.min, FallbackEdgeKind))
	}
	c, err := s.confirmer()
	if err != nil {
		return byEdgeKind(ev, fmt.Sprintf("%s: %v: fallback %s decides", s.m.ID(), err, FallbackEdgeKind))
	}
	sc, ok, err := c.Decide(ev.Window)
	s.pool.Put(c)
	if err != nil {
		return unscored(ev, s.m.ID(), "window", "window too short", err)
	}
	return decided(sc, ok)
}
