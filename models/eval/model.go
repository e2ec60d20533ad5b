package eval

import (
	"fmt"
	"time"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// Detectors replaces the default detectors (ZScore at the edge, Robust in
// the cloud) of a Config. Nil functions keep the default.
type Detectors struct {
	// Edge makes the edge detector of a series with the given number of
	// value columns.
	Edge func(columns int) (Detector, error) `json:"-"`
	// Cloud makes the cloud's streaming detector (cloud-only mode).
	Cloud func(columns int) (Detector, error) `json:"-"`
	// Confirmer makes the cloud's second stage (hybrid mode), once per
	// series.
	Confirmer func() (Confirmer, error) `json:"-"`
	// EdgeLow and EdgeHigh are the edge thresholds its events carry.
	EdgeLow  float64 `json:"edge_low,omitempty"`
	EdgeHigh float64 `json:"edge_high,omitempty"`
	// Describe is the configuration sentence of the markdown report.
	Describe string `json:"describe"`
}

// ModelConfig configures a ModelDetector. Zero fields take the defaults.
type ModelConfig struct {
	// Cooldown is how many consecutive normal readings end an incident.
	// Default 20; negative means 0.
	Cooldown int `json:"cooldown"`
	// Forward is the number of raw values an uncertain event carries (its
	// window), enough for the cloud's model to re-score it. Default 96.
	Forward int `json:"forward"`
	// AnomalyForward is the number of raw values an anomaly event carries:
	// it stands without the cloud (hybrid rule anomaly-or-confirmed), so
	// it carries the window the edge model judged it with. Default: the
	// model's window; negative means Forward.
	AnomalyForward int `json:"anomaly_forward"`
	// AnomalyOnly maps the uncertain level to normal (a streaming cloud
	// detector has no uncertain level).
	AnomalyOnly bool `json:"anomaly_only,omitempty"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ModelConfig) WithDefaults() ModelConfig {
	c.Cooldown = defaultCount(c.Cooldown, 20)
	if c.Forward == 0 {
		c.Forward = 96
	}
	return c
}

// ModelDetector is a Detector that runs a model (a manifest and its
// .tflite) through the runtime: per value column a stock.Scorer, the level
// by the manifest's thresholds (the highest column counts), and the same
// incident and cool-down logic as ZScore.
type ModelDetector struct {
	m       *manifest.Manifest
	cfg     ModelConfig
	scorers []*stock.Scorer
	raw     []*ring
	inc     incident
	err     error
}

// NewModelDetector returns a detector for series with the given number of
// value columns.
func NewModelDetector(m *manifest.Manifest, model *tflite.Model, cfg ModelConfig, columns int) (*ModelDetector, error) {
	cfg = cfg.WithDefaults()
	if columns < 1 {
		return nil, fmt.Errorf("model detector: %d value columns", columns)
	}
	if cfg.AnomalyForward == 0 {
		cfg.AnomalyForward = m.Window
	}
	d := &ModelDetector{m: m, cfg: cfg, inc: incident{cooldown: cfg.Cooldown}}
	for i := 0; i < columns; i++ {
		s, err := stock.NewScorer(m, model)
		if err != nil {
			return nil, err
		}
		d.scorers = append(d.scorers, s)
		d.raw = append(d.raw, newRing(cfg.Forward))
	}
	return d, nil
}

// Model implements Detector.
func (d *ModelDetector) Model() string { return d.m.ID() }

// Err returns the first error the runtime reported (a reading it failed on
// scores 0).
func (d *ModelDetector) Err() error { return d.err }

// Judge implements Detector.
func (d *ModelDetector) Judge(_ time.Time, values []float64) Judgement {
	var j Judgement
	col := 0
	for c, s := range d.scorers {
		sc, ok, err := s.Step(values[c])
		if err != nil && d.err == nil {
			d.err = err
		}
		if ok && sc > j.Score {
			j.Score, col = sc, c
		}
		d.raw[c].push(values[c])
	}
	switch stock.Level(d.m, j.Score) {
	case 2:
		j.Level = Anomaly
	case 1:
		if !d.cfg.AnomalyOnly {
			j.Level = Uncertain
		}
	}
	if j.Emit = d.inc.step(j.Level); j.Emit {
		j.Window = d.raw[col].values()
		if n := d.cfg.AnomalyForward; j.Level == Anomaly && n > 0 && n < len(j.Window) {
			j.Window = j.Window[len(j.Window)-n:]
		}
	}
	return j
}

// ModelConfirmer is the cloud's second stage with a model: it scores the
// last value of a forwarded window with stock.Scorer.ScoreWindow and
// confirms at or above Threshold.
type ModelConfirmer struct {
	s         *stock.Scorer
	Threshold float64
}

// NewModelConfirmer returns a confirmer running model, confirming scores at
// or above threshold.
func NewModelConfirmer(m *manifest.Manifest, model *tflite.Model, threshold float64) (*ModelConfirmer, error) {
	s, err := stock.NewScorer(m, model)
	if err != nil {
		return nil, err
	}
	return &ModelConfirmer{s: s, Threshold: threshold}, nil
}

// Confirm implements Confirmer. A window too short for the model is not
// confirmed.
func (c *ModelConfirmer) Confirm(window []float64) (float64, bool) {
	sc, err := c.s.ScoreWindow(window)
	if err != nil {
		return 0, false
	}
	return sc, sc >= c.Threshold
}

// StockOptions selects and configures the stock detectors.
type StockOptions struct {
	// Edge and Cloud say which detectors run: "stock" or "" for the
	// stock models, "zscore" (edge) or "robust" (cloud) for the defaults.
	Edge, Cloud string
	// Dir, when set, loads the models from this folder (NAME.json and its
	// file) instead of the embedded ones.
	Dir string
	// EdgeModel and CloudModel name the models. Defaults stock.Edge
	// (ae-edge) and stock.Cloud (forecast-cloud).
	EdgeModel, CloudModel string
	// Edge detector and cloud streaming detector settings.
	EdgeConfig, CloudConfig ModelConfig
	// EdgeLow, EdgeHigh, CloudHigh override the manifests' thresholds when
	// set (for sweeps; the shipped thresholds are the manifests').
	EdgeLow, EdgeHigh, CloudHigh float64
	// ConfirmAt is the cloud score that confirms a forwarded window, as a
	// multiple of the cloud model's Low threshold. Default 3.
	ConfirmAt float64
}

// StockDetectors returns the Detectors for o, or nil when both are the
// defaults.
func StockDetectors(o StockOptions) (*Detectors, error) {
	load := func(name string) (*manifest.Manifest, *tflite.Model, error) {
		if o.Dir != "" {
			return stock.LoadDir(o.Dir, name)
		}
		return stock.Load(name)
	}
	if o.EdgeModel == "" {
		o.EdgeModel = stock.Edge
	}
	if o.CloudModel == "" {
		o.CloudModel = stock.Cloud
	}
	if o.ConfirmAt == 0 {
		o.ConfirmAt = 3
	}
	d := &Detectors{}
	var edesc, cdesc string
	switch o.Edge {
	case "zscore":
		edesc = "edge `" + ZScoreModel + "` (defaults)"
	case "", "stock":
		m, model, err := load(o.EdgeModel)
		if err != nil {
			return nil, err
		}
		m = override(m, o.EdgeLow, o.EdgeHigh)
		cfg := o.EdgeConfig.WithDefaults()
		d.Edge = func(columns int) (Detector, error) { return NewModelDetector(m, model, cfg, columns) }
		d.EdgeLow, d.EdgeHigh = m.Low, m.High
		fwdA := cfg.AnomalyForward
		if fwdA == 0 {
			fwdA = m.Window
		}
		if fwdA < 0 {
			fwdA = cfg.Forward
		}
		edesc = fmt.Sprintf("edge `%s` (%s %s, window %d, low %.4g, high %.4g), cool-down %d, uncertain events carry %d values, anomaly events %d", m.ID(), m.Role, m.Kind, m.Window, m.Low, m.High, cfg.Cooldown, cfg.Forward, fwdA)
	default:
		return nil, fmt.Errorf("edge detector %q: want stock or zscore", o.Edge)
	}
	switch o.Cloud {
	case "robust":
		cdesc = "cloud `" + RobustModel + "` (defaults)"
	case "", "stock":
		m, model, err := load(o.CloudModel)
		if err != nil {
			return nil, err
		}
		m = override(m, 0, o.CloudHigh)
		cfg := o.CloudConfig
		cfg.AnomalyOnly = true
		cfg = cfg.WithDefaults()
		d.Cloud = func(columns int) (Detector, error) { return NewModelDetector(m, model, cfg, columns) }
		at := o.ConfirmAt * m.Low
		d.Confirmer = func() (Confirmer, error) { return NewModelConfirmer(m, model, at) }
		cdesc = fmt.Sprintf("cloud `%s` (%s %s, window %d; streaming: anomaly from %.3g, cool-down %d; second stage: confirms a forwarded window scoring %.3g or more)", m.ID(), m.Role, m.Kind, m.Window, m.High, cfg.Cooldown, at)
	default:
		return nil, fmt.Errorf("cloud detector %q: want stock or robust", o.Cloud)
	}
	if d.Edge == nil && d.Cloud == nil {
		return nil, nil
	}
	d.Describe = edesc + "; " + cdesc
	return d, nil
}

// override returns a copy of m with the thresholds that are set replaced.
func override(m *manifest.Manifest, low, high float64) *manifest.Manifest {
	c := *m
	if low > 0 {
		c.Low = low
	}
	if high > 0 {
		c.High = high
	}
	return &c
}
