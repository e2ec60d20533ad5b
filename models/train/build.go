package train

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/nab"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// Spec says what model Build makes. Zero fields take the defaults.
type Spec struct {
	// Name and Version name the model. Defaults "model", 1.
	Name    string
	Version int
	// Role is manifest.RoleEdgeInt8 (default) or manifest.RoleCloudFloat.
	Role string
	// Kind is manifest.KindForecast (default) or manifest.KindAutoencoder.
	Kind string
	// Window is the number of readings the model reads. Default 32.
	Window int
	// Hidden are the hidden layers' sizes. Default [32, 16] (an
	// autoencoder's list is its encoder and bottleneck; the decoder
	// mirrors it).
	Hidden []int
	// StdFloor is the normalisation's floor factor. Default 1e-6.
	StdFloor float64
	// Train is the part of each probationary period trained on (default
	// the first 80%); HeldOut the part thresholds are calibrated on and
	// the int8 and float models compared on (default the last 20%).
	Train, HeldOut Range
	// Stride takes every Stride-th training window. Default 1.
	Stride int
	// Fit configures the training (epochs, batch, step size, seed).
	Fit Config
	// ScoreSpec: the score's parameters and threshold quantiles; default
	// warm-up 64.
	ScoreSpec
	// Command is recorded in the manifest.
	Command string
}

// ScoreSpec is what a trained model's manifest records of its score: the
// parameters of its residual scale (manifest.Manifest's Scale, Warmup,
// ScaleAlpha and ScaleClamp; defaults manifest.ScaleMax, the model's
// warm-up, 0.002 and 4) and the quantiles of the held-out scores that
// become its thresholds (defaults 0.995 and 0.9995).
type ScoreSpec struct {
	Scale                     string
	Warmup                    int
	ScaleAlpha                float64
	ScaleClamp                float64
	LowQuantile, HighQuantile float64
}

func (s ScoreSpec) withDefaults(warmup int) ScoreSpec {
	if s.Scale == "" {
		s.Scale = manifest.ScaleMax
	}
	if s.Warmup == 0 {
		s.Warmup = warmup
	}
	if s.ScaleAlpha == 0 {
		s.ScaleAlpha = 0.002
	}
	if s.ScaleClamp == 0 {
		s.ScaleClamp = 4
	}
	if s.LowQuantile == 0 {
		s.LowQuantile = 0.995
	}
	if s.HighQuantile == 0 {
		s.HighQuantile = 0.9995
	}
	return s
}

// WithDefaults returns s with zero fields set to their defaults.
func (s Spec) WithDefaults() Spec {
	s.ScoreSpec = s.ScoreSpec.withDefaults(64)
	if s.Name == "" {
		s.Name = "model"
	}
	if s.Version == 0 {
		s.Version = 1
	}
	if s.Role == "" {
		s.Role = manifest.RoleEdgeInt8
	}
	if s.Kind == "" {
		s.Kind = manifest.KindForecast
	}
	if s.Window == 0 {
		s.Window = 32
	}
	if s.Hidden == nil {
		s.Hidden = []int{32, 16}
	}
	if s.StdFloor == 0 {
		s.StdFloor = 1e-6
	}
	if s.Train == (Range{}) {
		s.Train = Range{0, 0.8}
	}
	if s.HeldOut == (Range{}) {
		s.HeldOut = Range{0.8, 1}
	}
	if s.Stride == 0 {
		s.Stride = 1
	}
	return s
}

// Sizes returns the network's layer sizes.
func (s Spec) Sizes() []int {
	sizes := []int{s.Window}
	sizes = append(sizes, s.Hidden...)
	if s.Kind == manifest.KindAutoencoder {
		for i := len(s.Hidden) - 2; i >= 0; i-- {
			sizes = append(sizes, s.Hidden[i])
		}
		return append(sizes, s.Window)
	}
	return append(sizes, 1)
}

// Result is a built model.
type Result struct {
	// Manifest describes Model; Model is the shipped .tflite (int8 for the
	// edge role, float32 for the cloud role); Float is the float32 export
	// of the same network.
	Manifest *manifest.Manifest
	Model    []byte
	Float    []byte
	// Net is the trained network; Quant its int8 export (edge role).
	Net   *MLP
	Quant *Quantized
	// Loss is the last epoch's training loss.
	Loss float64
	// HeldOutScores are the shipped model's scores on held-out readings.
	HeldOutScores []float64
}

// Build trains, quantises (edge role), calibrates the thresholds and
// exports a model from the corpus's probationary periods, logging progress
// to log (may be nil).
func Build(c *nab.Corpus, spec Spec, log io.Writer) (*Result, error) {
	s := spec.WithDefaults()
	if log == nil {
		log = io.Discard
	}
	if s.Role != manifest.RoleEdgeInt8 && s.Role != manifest.RoleCloudFloat {
		return nil, fmt.Errorf("train: role %q", s.Role)
	}
	set, err := Windows(c, s.Kind, s.Window, s.StdFloor, s.Train, s.Stride)
	if err != nil {
		return nil, err
	}
	sizes := s.Sizes()
	fit := s.Fit
	userLog := fit.Log
	fit.Log = func(ep int, loss float64) {
		fmt.Fprintf(log, "epoch %d: loss %.5f\n", ep, loss)
		if userLog != nil {
			userLog(ep, loss)
		}
	}
	fmt.Fprintf(log, "training %s %v on %d windows (%d MACs)\n", s.Kind, sizes, set.Len(), macs(sizes))
	net, loss, err := Fit(sizes, set.X, set.Y, fit)
	if err != nil {
		return nil, err
	}
	res := &Result{Net: net, Loss: loss}
	name := fmt.Sprintf("%s@%d", s.Name, s.Version)
	if res.Float, err = ExportFloat(net, name); err != nil {
		return nil, err
	}
	m := &manifest.Manifest{
		Name: s.Name, Version: s.Version, Role: s.Role, Kind: s.Kind, File: s.Name + ".tflite",
		Window: s.Window, Features: 1, Normalisation: manifest.NormWindowZ, StdFloor: s.StdFloor,
		Scale: s.Scale, Warmup: s.Warmup, ScaleAlpha: s.ScaleAlpha, ScaleClamp: s.ScaleClamp,
		LowQuantile: s.LowQuantile, HighQuantile: s.HighQuantile,
		IO: "float32 in, float32 out",
		Training: manifest.Training{Corpus: c.Dir, Windows: set.Len(), Seed: s.Fit.Seed, Epochs: fit.withDefaults().Epochs,
			Layers: sizes, Command: s.Command,
			Data: fmt.Sprintf("each value column of every series, readings in [%g, %g) of its probationary period (NAB's first 15%%), stride %d; no labels", s.Train.From, s.Train.To, s.Stride)},
	}
	switch s.Kind {
	case manifest.KindForecast:
		m.Output = fmt.Sprintf("[1,1]: the reading after the %d input readings, in the window's normalised units", s.Window)
		m.Score = "|reading - (mean + std·output)| / scale"
	default:
		m.Output = fmt.Sprintf("[1,%d]: the %d input readings (ending with the scored one) reconstructed, normalised units", s.Window, s.Window)
		m.Score = "std · RMS(input - output) / scale"
	}
	if s.Scale == manifest.ScaleMax {
		m.Score += "; scale: the largest |residual| of the first warmup residuals, then decaying by (1 - scale_alpha) per reading and raised to |residual| (at most scale_clamp·scale) when one exceeds it"
	} else {
		m.Score += "; scale: mean |residual| over the first warmup residuals, then an exponential mean (scale_alpha) of |residual| clamped at scale_clamp·scale"
	}
	m.Score += "; floored at std_floor·max(1,|window mean|); no score during the warm-up"
	res.Model = res.Float
	if s.Role == manifest.RoleEdgeInt8 {
		calib := set.X
		if len(calib) > 20000 { // every k-th window: ranges as the converter's representative dataset gives them
			step := len(calib) / 20000
			var sub [][]float64
			for i := 0; i < len(calib); i += step {
				sub = append(sub, calib[i])
			}
			calib = sub
		}
		if res.Quant, err = ExportInt8(net, name, Calibrate(net, calib)); err != nil {
			return nil, err
		}
		res.Model = res.Quant.Model
		m.IO = "float32 in, float32 out; int8 inside (QUANTIZE first, DEQUANTIZE last)"
	}
	m.SHA256 = manifest.Sum(res.Model)
	// Thresholds: quantiles of the shipped model's held-out scores. The
	// thresholds are placeholders until then (Validate wants them).
	m.Low, m.High = 1, 2
	shipped, err := tflite.Load(res.Model)
	if err != nil {
		return nil, fmt.Errorf("train: the exported model does not load: %w", err)
	}
	floatM, err := tflite.Load(res.Float)
	if err != nil {
		return nil, fmt.Errorf("train: the float export does not load: %w", err)
	}
	pairs, err := heldOut(c, m, shipped, floatM, s.HeldOut)
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("train: no held-out readings were scored (probationary periods too short for window %d + warm-up %d?)", s.Window, s.Warmup)
	}
	scores := make([]float64, len(pairs))
	for i, p := range pairs {
		scores[i] = p.score
	}
	res.HeldOutScores = scores
	m.Low, m.High = Quantile(scores, s.LowQuantile), Quantile(scores, s.HighQuantile)
	fmt.Fprintf(log, "held-out score quantiles: 0.5 %.3f, 0.9 %.3f, 0.99 %.3f, 0.995 %.3f, 0.999 %.3f, 0.9995 %.3f, max %.3f\n",
		Quantile(scores, 0.5), Quantile(scores, 0.9), Quantile(scores, 0.99), Quantile(scores, 0.995), Quantile(scores, 0.999), Quantile(scores, 0.9995), Quantile(scores, 1))
	if !(m.High > m.Low) {
		m.High = m.Low * 1.5
	}
	fmt.Fprintf(log, "held out: %d readings; thresholds low %.3f (q%g) high %.3f (q%g)\n", len(scores), m.Low, s.LowQuantile, m.High, s.HighQuantile)
	if s.Role == manifest.RoleEdgeInt8 {
		a := agreement(m, pairs)
		m.Training.Agreement = &a
		fmt.Fprintf(log, "int8 vs float on %d held-out readings: mean |Δscore| %.4f, mean |Δoutput| %.4f, same decision %.4f%%\n",
			a.Readings, a.MeanAbsDeltaScore, a.MeanAbsDeltaOutput, 100*a.SameDecision)
	}
	res.Manifest = m
	return res, m.Validate()
}

func macs(sizes []int) int {
	n := 0
	for i := 0; i+1 < len(sizes); i++ {
		n += sizes[i] * sizes[i+1]
	}
	return n
}

// pair is one held-out reading scored by the shipped and the float model.
type pair struct {
	score, floatScore float64
	dOut              float64
}

// heldOut streams every value column's probationary period through a
// scorer of the shipped model and one of the float model, and returns the
// scores of the readings in rng.
func heldOut(c *nab.Corpus, m *manifest.Manifest, shipped, float *tflite.Model, rng Range) ([]pair, error) {
	var out []pair
	for _, s := range c.Series {
		p := nab.Probation(s.Len())
		lo, hi := int(rng.From*float64(p)), int(rng.To*float64(p))
		for col := range s.Columns {
			a, err := stock.NewScorer(m, shipped)
			if err != nil {
				return nil, err
			}
			b, err := stock.NewScorer(m, float)
			if err != nil {
				return nil, err
			}
			for t := 0; t < hi; t++ {
				v := s.Values[t][col]
				sa, oka, err := a.Step(v)
				if err != nil {
					return nil, err
				}
				sb, okb, err := b.Step(v)
				if err != nil {
					return nil, err
				}
				if t >= lo && oka && okb {
					var d float64
					for i, o := range a.Last.Output {
						d += math.Abs(float64(o - b.Last.Output[i]))
					}
					out = append(out, pair{sa, sb, d / float64(len(a.Last.Output))})
				}
			}
		}
	}
	return out, nil
}

func agreement(m *manifest.Manifest, pairs []pair) manifest.Agreement {
	a := manifest.Agreement{Readings: len(pairs)}
	same := 0
	for _, p := range pairs {
		a.MeanAbsDeltaScore += math.Abs(p.score - p.floatScore)
		a.MeanAbsDeltaOutput += p.dOut
		if stock.Level(m, p.score) == stock.Level(m, p.floatScore) {
			same++
		}
	}
	n := float64(len(pairs))
	a.MeanAbsDeltaScore /= n
	a.MeanAbsDeltaOutput /= n
	a.SameDecision = float64(same) / n
	return a
}

// Quantile returns the q-quantile of xs (nearest rank on a sorted copy).
func Quantile(xs []float64, q float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
