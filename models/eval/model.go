package eval

import (
	"fmt"
	"time"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/detect/secondstage"
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
	// AnomalyOnly drops uncertain events and reports the uncertain level
	// as normal (a streaming cloud detector has no uncertain level).
	AnomalyOnly bool `json:"anomaly_only,omitempty"`
	// Residual scores |residual| (reading units) instead of |residual| /
	// scale (modelscore.NewResidual), for the likelihood stage.
	Residual bool `json:"residual,omitempty"`
	// Likelihood and RangeMargin are detect.Config's: the anomaly
	// likelihood stage and the out-of-range rule (zero: off).
	Likelihood  detect.LikelihoodConfig `json:"likelihood"`
	RangeMargin float64                 `json:"range_margin,omitempty"`
	// StuckRun is detect.Config's stuck-value rule (zero: off; negative:
	// off, overriding a tuned value).
	StuckRun int `json:"stuck_run,omitempty"`
	// Novelty is detect.Config's novelty channel (zero: off).
	Novelty detect.NoveltyConfig `json:"novelty"`
	// Volatility is detect.Config's volatility channel (zero: off).
	Volatility detect.VolatilityConfig `json:"volatility"`
	// Seasonal is detect.Config's seasonal channel (zero: off).
	Seasonal detect.SeasonalConfig `json:"seasonal"`
	// ScoreHigh is detect.Config's: the model's own (likelihood) score
	// that counts as High (zero: High; negative: High, overriding a tuned
	// value).
	ScoreHigh float64 `json:"score_high,omitempty"`
	// Low and High, when set, replace the manifest's thresholds (with the
	// likelihood stage they are likelihood scores).
	Low  float64 `json:"low,omitempty"`
	High float64 `json:"high,omitempty"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ModelConfig) WithDefaults() ModelConfig {
	c.Cooldown = defaultCount(c.Cooldown, 20)
	if c.Forward == 0 {
		c.Forward = 96
	}
	return c
}

// thresholds returns the thresholds a detector with c runs with.
func (c ModelConfig) thresholds(m *manifest.Manifest) (low, high float64) {
	low, high = m.Low, m.High
	if c.Low > 0 {
		low = c.Low
	}
	if c.High > 0 {
		high = c.High
	}
	return low, high
}

// ModelDetector is a Detector that runs a model (a manifest and its
// .tflite) through the edge agent's own decision code: per value column a
// detect.Detector scoring with modelscore (as outpost-edge builds it for a
// stream with scorer "model"), window Forward. A reading emits when any
// column's detector emits; its level and score are those of the highest
// column, and its window that column's.
type ModelDetector struct {
	m    *manifest.Manifest
	cfg  ModelConfig
	dets []*detect.Detector
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
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		return nil, err
	}
	low, high := cfg.thresholds(m)
	d := &ModelDetector{m: m, cfg: cfg}
	for i := 0; i < columns; i++ {
		s := modelscore.New(r)
		if cfg.Residual {
			s = modelscore.NewResidual(r)
		}
		det, err := detect.NewWithScorer(detect.Config{Window: max(cfg.Forward, 2), Low: low, High: high,
			CooldownReadings: cfg.Cooldown, Likelihood: cfg.Likelihood, ScoreHigh: max(cfg.ScoreHigh, 0), RangeMargin: cfg.RangeMargin, StuckRun: cfg.StuckRun, Novelty: cfg.Novelty, Volatility: cfg.Volatility, Seasonal: cfg.Seasonal}, s)
		if err != nil {
			return nil, fmt.Errorf("model detector: %w", err)
		}
		d.dets = append(d.dets, det)
	}
	return d, nil
}

// Model implements Detector.
func (d *ModelDetector) Model() string { return d.m.ID() }

// Err returns the first error the runtime reported; the runtime does not
// fail on a model that loaded (a failed inference scores 0), so it is nil.
func (d *ModelDetector) Err() error { return nil }

// Judge implements Detector.
func (d *ModelDetector) Judge(ts time.Time, values []float64) Judgement {
	var j Judgement
	var emitLevel detect.Level
	for c, det := range d.dets {
		dj := det.Judge(ts, values[c])
		if d.cfg.AnomalyOnly && dj.Level == Uncertain {
			dj.Level, dj.Emit = Normal, false
		}
		if c == 0 || dj.Score > j.Score {
			j.Score, j.Level = dj.Score, dj.Level
		}
		if dj.Emit && (!j.Emit || dj.Level > emitLevel) {
			j.Emit, emitLevel, j.Window, j.Source = true, dj.Level, dj.Window, dj.Source
		}
	}
	if j.Emit {
		if n := d.cfg.AnomalyForward; emitLevel == Anomaly && n > 0 && n < len(j.Window) {
			j.Window = j.Window[len(j.Window)-n:]
		}
	}
	return j
}

// ModelConfirmer is the cloud's second stage with a model: the decision
// code outpost-cloud runs too (models/detect/secondstage). It scores the
// last value of a forwarded window with stock.Scorer.ScoreWindow and
// confirms at or above Threshold; a window too short for the model is not
// confirmed.
type ModelConfirmer = secondstage.Confirmer

// NewModelConfirmer returns a confirmer running model, confirming scores at
// or above threshold.
func NewModelConfirmer(m *manifest.Manifest, model *tflite.Model, threshold float64) (*ModelConfirmer, error) {
	return secondstage.New(m, model, threshold)
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
	// Plain runs the models as before the likelihood stage: scores
	// |residual| / scale judged by the manifests' thresholds. Otherwise
	// the zero fields of EdgeConfig and CloudConfig take TunedEdge's and
	// TunedCloud's, and EdgeLow, EdgeHigh and CloudHigh override their
	// (likelihood) thresholds.
	Plain bool
}

// TunedEdge and TunedCloud are the detector settings `make eval` runs the
// stock models with (StockOptions.Plain false): the model's own score,
// |residual| / scale (the running scale of its manifest: the largest
// recent |residual|, decaying), as the raw score, judged by the anomaly
// likelihood of its 10-reading average against the last 1000 averages
// (deviation floored at 5% of their mean, or 0.0025 if more; the plain
// |residual|, Residual, scored 1 point less on NAB: its likelihood raised
// 17 false anomaly events there and no first detection in a window); the novelty channel (12 bins,
// contexts of 3 readings) with the same likelihood, silent for the 150
// readings after an anomalous one (its echoes: an anomaly that widens the
// range moves every bin); the volatility channel (|step| between readings,
// its 100-reading average judged by the same likelihood, counting as high
// from a likelihood score of 0.5, silent during the same hold-off); the
// seasonal channel (|difference| from the reading one day earlier, its
// 50-reading average judged by the same likelihood, counting at 1, silent
// during the hold-off); a
// reading out of the stream's range (widened by 0.5% of its width each
// side) an anomaly; so is a reading that repeats the one before it for
// the longest run the stream has had, at least 50 repeats (the stuck-value
// rule). A
// likelihood score of 1 is a tail probability of 1e-10 or less: the
// model's and the novelty channel's scores must reach it (High 1); an
// incident is over after 30 readings below Low. The edge's uncertain band is narrow (Low 0.99: the second
// stage confirms almost nothing yet, and uncertain events carry 96 values)
// and its anomaly events carry their last 16 values, so that it uplinks
// less than 1% of the raw bytes.
var (
	TunedEdge = ModelConfig{Cooldown: 30, Likelihood: detect.LikelihoodConfig{Window: 1000, Average: 10, Floor: 0.05},
		RangeMargin: 0.005, Novelty: detect.NoveltyConfig{Bins: 12, Length: 3, High: 1, Holdoff: 150}, Volatility: detect.VolatilityConfig{Average: 100, High: 0.5},
		Seasonal: detect.SeasonalConfig{Average: 50}, StuckRun: 50, Low: 0.99, High: 1, AnomalyForward: 16}
	TunedCloud = ModelConfig{Cooldown: 30, Likelihood: detect.LikelihoodConfig{Window: 1000, Average: 10, Floor: 0.05},
		RangeMargin: 0.005, Novelty: detect.NoveltyConfig{Bins: 12, Length: 3, High: 1, Holdoff: 150}, Volatility: detect.VolatilityConfig{Average: 100, High: 0.5},
		Seasonal: detect.SeasonalConfig{Average: 50}, StuckRun: 50, Low: 0.9, High: 1}
)

// tuned returns c with its zero fields taken from t.
func (c ModelConfig) tuned(t ModelConfig) ModelConfig {
	if c.Cooldown == 0 {
		c.Cooldown = t.Cooldown
	}
	c.Residual = c.Residual || t.Residual
	l, tl := &c.Likelihood, t.Likelihood
	l.Window, l.Average, l.Learn = firstSetInt(l.Window, tl.Window), firstSetInt(l.Average, tl.Average), firstSetInt(l.Learn, tl.Learn)
	l.Floor, l.Cap, l.Clamp = firstSet(l.Floor, tl.Floor), firstSet(l.Cap, tl.Cap), firstSet(l.Clamp, tl.Clamp)
	switch {
	case c.RangeMargin == 0:
		c.RangeMargin = t.RangeMargin
	case c.RangeMargin < 0: // off
		c.RangeMargin = 0
	}
	switch {
	case c.StuckRun == 0:
		c.StuckRun = t.StuckRun
	case c.StuckRun < 0: // off
		c.StuckRun = 0
	}
	n, tn := &c.Novelty, t.Novelty
	n.Bins, n.Length, n.High = firstSetInt(n.Bins, tn.Bins), firstSetInt(n.Length, tn.Length), firstSet(n.High, tn.High)
	switch {
	case n.Holdoff == 0:
		n.Holdoff = tn.Holdoff
	case n.Holdoff < 0: // none
		n.Holdoff = 0
	}
	if n.Bins < 0 { // off
		*n = detect.NoveltyConfig{}
	}
	v, tv := &c.Volatility, t.Volatility
	v.Average, v.High = firstSetInt(v.Average, tv.Average), firstSet(v.High, tv.High)
	if v.Average < 0 { // off
		*v = detect.VolatilityConfig{}
	}
	se, tse := &c.Seasonal, t.Seasonal
	se.Average, se.High = firstSetInt(se.Average, tse.Average), firstSet(se.High, tse.High)
	if se.Period == 0 {
		se.Period = tse.Period
	}
	if se.Average < 0 { // off
		*se = detect.SeasonalConfig{}
	}
	if c.ScoreHigh == 0 {
		c.ScoreHigh = t.ScoreHigh
	}
	if c.Low == 0 {
		c.Low = t.Low
	}
	if c.High == 0 {
		c.High = t.High
	}
	if c.AnomalyForward == 0 {
		c.AnomalyForward = t.AnomalyForward
	}
	return c
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
		o.ConfirmAt = secondstage.DefaultConfirmAt
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
		cfg := o.EdgeConfig
		if o.Plain {
			m = override(m, o.EdgeLow, o.EdgeHigh)
		} else {
			cfg = cfg.tuned(TunedEdge)
			cfg.Low, cfg.High = firstSet(o.EdgeLow, cfg.Low), firstSet(o.EdgeHigh, cfg.High)
		}
		cfg = cfg.WithDefaults()
		d.Edge = func(columns int) (Detector, error) { return NewModelDetector(m, model, cfg, columns) }
		d.EdgeLow, d.EdgeHigh = cfg.thresholds(m)
		fwdA := cfg.AnomalyForward
		if fwdA == 0 {
			fwdA = m.Window
		}
		if fwdA < 0 {
			fwdA = cfg.Forward
		}
		edesc = fmt.Sprintf("edge `%s` (%s %s, window %d, %s), cool-down %d, uncertain events carry %d values, anomaly events %d", m.ID(), m.Role, m.Kind, m.Window, cfg.describe(m), cfg.Cooldown, cfg.Forward, fwdA)
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
		cfg := o.CloudConfig
		if o.Plain {
			m = override(m, 0, o.CloudHigh)
		} else {
			cfg = cfg.tuned(TunedCloud)
			cfg.High = firstSet(o.CloudHigh, cfg.High)
		}
		cfg.AnomalyOnly = true
		cfg = cfg.WithDefaults()
		d.Cloud = func(columns int) (Detector, error) { return NewModelDetector(m, model, cfg, columns) }
		at := secondstage.Threshold(m, o.ConfirmAt)
		d.Confirmer = func() (Confirmer, error) { return NewModelConfirmer(m, model, at) }
		cdesc = fmt.Sprintf("cloud `%s` (%s %s, window %d; streaming: %s, cool-down %d; second stage: confirms a forwarded window scoring %.3g or more)", m.ID(), m.Role, m.Kind, m.Window, cfg.describe(m), cfg.Cooldown, at)
	default:
		return nil, fmt.Errorf("cloud detector %q: want stock or robust", o.Cloud)
	}
	if d.Edge == nil && d.Cloud == nil {
		return nil, nil
	}
	d.Describe = edesc + "; " + cdesc
	return d, nil
}

// describe says how a detector with c scores and decides.
func (c ModelConfig) describe(m *manifest.Manifest) string {
	low, high := c.thresholds(m)
	if c.Likelihood.Window == 0 {
		s := fmt.Sprintf("score |residual|/scale, low %.4g, high %.4g", low, high)
		if c.Residual {
			s = fmt.Sprintf("score |residual|, low %.4g, high %.4g", low, high)
		}
		if c.RangeMargin > 0 {
			s += fmt.Sprintf(", out of range by %.3g: anomaly", c.RangeMargin)
		}
		return s
	}
	raw := "|residual|/scale"
	if c.Residual {
		raw = "|residual|"
	}
	l := c.Likelihood
	s := fmt.Sprintf("anomaly likelihood of the %d-reading mean of %s against the last %d means, low %.4g, high %.4g", max(l.Average, 1), raw, l.Window, low, high)
	if l.Average == 0 {
		s = fmt.Sprintf("anomaly likelihood of the %d-reading mean of %s against the last %d means, low %.4g, high %.4g", detect.DefaultLikelihoodAverage, raw, l.Window, low, high)
	}
	if c.ScoreHigh > 0 {
		s += fmt.Sprintf(", its likelihood score %.3g counting as high", c.ScoreHigh)
	}
	if c.Novelty.Bins > 0 {
		s += fmt.Sprintf("; novelty channel: contexts of %d readings in %d bins of the stream's range, its likelihood score %.3g counting as high", max(c.Novelty.Length, detect.DefaultNoveltyLength), c.Novelty.Bins, firstSet(c.Novelty.High, high))
		if c.Novelty.Holdoff > 0 {
			s += fmt.Sprintf(", silent for %d readings after an anomalous one", c.Novelty.Holdoff)
		}
	}
	if c.Volatility.Average > 0 {
		s += fmt.Sprintf("; volatility channel: the %d-reading mean of |step| between readings, its likelihood score %.3g counting as high", c.Volatility.Average, firstSet(c.Volatility.High, high))
	}
	if c.Seasonal.Average > 0 {
		p := c.Seasonal.Period
		if p == 0 {
			p = detect.DefaultSeasonalPeriod
		}
		s += fmt.Sprintf("; seasonal channel: the %d-reading mean of |difference| from the reading %s earlier, its likelihood score %.3g counting as high", c.Seasonal.Average, p, firstSet(c.Seasonal.High, high))
	}
	if c.RangeMargin > 0 {
		s += fmt.Sprintf("; a reading out of the stream's range (widened by %.3g of its width each side) is an anomaly", c.RangeMargin)
	}
	if c.StuckRun > 0 {
		s += fmt.Sprintf("; a reading that repeats the one before it for the longest run so far, at least %d repeats, is an anomaly", c.StuckRun)
	}
	return s
}

// firstSetInt returns a if it is set (not 0), else b.
func firstSetInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// firstSet returns a if it is set (> 0), else b.
func firstSet(a, b float64) float64 {
	if a > 0 {
		return a
	}
	return b
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
