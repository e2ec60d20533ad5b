package train

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
)

// VideoSpec says what video model BuildVideo makes: an int8 dense
// autoencoder of a camera's last Window per-bucket feature vectors
// (VideoFeatureNames), trained on generated scenes (SynthVideo). Zero
// fields take the defaults.
type VideoSpec struct {
	// Name and Version name the model. Defaults "ae-video", 1.
	Name    string
	Version int
	// Window is the number of buckets (feature vectors) the model reads.
	// Default 8.
	Window int
	// Hidden are the encoder's hidden sizes; the decoder mirrors them.
	// Default [24, 8].
	Hidden []int
	// Bucket is the bucket length in seconds; FPS the generated frame rate.
	// Defaults 1 and 25.
	Bucket, FPS float64
	// TrainScenes and HeldOutScenes are the numbers of generated scenes
	// (cameras) trained on and calibrated on; Seconds each one's length.
	// Defaults 32, 8 and 1200.
	TrainScenes, HeldOutScenes int
	Seconds                    float64
	// BaselineAlpha is the weight of a bucket in each camera's per-feature
	// baseline (manifest.NormFeatureZ). Default 0.02 (a time constant of
	// 50 buckets); negative means 0 (fixed statistics).
	BaselineAlpha float64
	// VarAlpha is the weight of a bucket in each camera's per-feature
	// running variance. Default 0.01; negative means 0.
	VarAlpha float64
	// StdFloor is the fraction of a feature's pooled std a camera's
	// running std may not fall below. Default 0.25.
	StdFloor float64
	// CountClip bounds the normalised counts, OtherClip the other
	// features (manifest.FeatureClip). Defaults 6 and 3; negative means
	// none.
	CountClip, OtherClip float64
	// ResidualLast is manifest.ResidualLast. Default 1 (the newest
	// bucket's reconstruction error; the window is its context); negative
	// means 0 (the whole window).
	ResidualLast int
	// Fit configures the training; Fit.Seed also draws the scenes.
	Fit Config
	// ScoreSpec: the score's parameters and threshold quantiles; default
	// warm-up 60.
	ScoreSpec
	// Command is recorded in the manifest.
	Command string
}

// WithDefaults returns s with zero fields set to their defaults.
func (s VideoSpec) WithDefaults() VideoSpec {
	s.ScoreSpec = s.ScoreSpec.withDefaults(60)
	if s.Name == "" {
		s.Name = "ae-video"
	}
	if s.Version == 0 {
		s.Version = 1
	}
	if s.Window == 0 {
		s.Window = 8
	}
	if s.Hidden == nil {
		s.Hidden = []int{24, 8}
	}
	if s.Bucket == 0 {
		s.Bucket = 1
	}
	if s.FPS == 0 {
		s.FPS = 25
	}
	if s.TrainScenes == 0 {
		s.TrainScenes = 32
	}
	if s.HeldOutScenes == 0 {
		s.HeldOutScenes = 8
	}
	if s.Seconds == 0 {
		s.Seconds = 1200
	}
	if s.BaselineAlpha == 0 {
		s.BaselineAlpha = 0.02
	}
	if s.BaselineAlpha < 0 {
		s.BaselineAlpha = 0
	}
	if s.VarAlpha == 0 {
		s.VarAlpha = 0.01
	}
	if s.VarAlpha < 0 {
		s.VarAlpha = 0
	}
	if s.StdFloor == 0 {
		s.StdFloor = 0.25
	}
	if s.ResidualLast == 0 {
		s.ResidualLast = 1
	}
	if s.ResidualLast < 0 {
		s.ResidualLast = 0
	}
	if s.CountClip == 0 {
		s.CountClip = 6
	}
	if s.OtherClip == 0 {
		s.OtherClip = 3
	}
	return s
}

// TrainSceneSeed is the seed of training scene i of a build seeded seed.
func TrainSceneSeed(seed uint64, i int) uint64 { return seed*1_000_003 + uint64(i) }

// HeldOutSceneSeed is the seed of held-out scene i of a build seeded seed;
// it is never a training scene's seed (i < 500,000).
func HeldOutSceneSeed(seed uint64, i int) uint64 { return seed*1_000_003 + 500_000 + uint64(i) }

// SceneFeatures generates a scene at s's frame rate and returns its
// per-bucket features (zero fields of s take their defaults).
func (s VideoSpec) SceneFeatures(sc Scene, seconds float64) [][]float64 {
	s = s.WithDefaults()
	sc.FPS = s.FPS
	per := int(math.Round(s.Bucket * s.FPS))
	return VideoFeatures(SynthVideo(sc, seconds), per, 1920, 1080)
}

// VideoResult is a built video model.
type VideoResult struct {
	Manifest *manifest.Manifest
	// Model is the int8 .tflite, Float the float32 export of the same
	// network.
	Model, Float []byte
	Net          *MLP
	Quant        *Quantized
	Loss         float64
	// HeldOutScores are the int8 model's scores on the held-out scenes.
	HeldOutScores []float64
}

// BuildVideo generates the training scenes, fits the feature statistics and
// the autoencoder, quantises it to int8 (calibrated on the training
// windows), calibrates the thresholds on the held-out scenes and compares
// the int8 model with the float one there, logging to log (may be nil).
func BuildVideo(spec VideoSpec, log io.Writer) (*VideoResult, error) {
	s := spec.WithDefaults()
	if log == nil {
		log = io.Discard
	}
	F := len(VideoFeatureNames)
	var scenes [][][]float64
	for i := 0; i < s.TrainScenes; i++ {
		scenes = append(scenes, s.SceneFeatures(Scene{Seed: TrainSceneSeed(s.Fit.Seed, i)}, s.Seconds))
	}
	m := &manifest.Manifest{
		Name: s.Name, Version: s.Version, Role: manifest.RoleEdgeInt8, Kind: manifest.KindAutoencoder, File: s.Name + ".tflite",
		Window: s.Window, Features: F, Normalisation: manifest.NormFeatureZ,
		FeatureNames: append([]string(nil), VideoFeatureNames...),
		Scale:        s.Scale, Warmup: s.Warmup, ScaleAlpha: s.ScaleAlpha, ScaleClamp: s.ScaleClamp,
		LowQuantile: s.LowQuantile, HighQuantile: s.HighQuantile,
		IO: "float32 in, float32 out; int8 inside (QUANTIZE first, DEQUANTIZE last)",
	}
	m.BaselineAlpha, m.VarAlpha, m.StdFloor, m.ResidualLast = s.BaselineAlpha, s.VarAlpha, s.StdFloor, s.ResidualLast
	for f := range VideoFeatureNames {
		c := s.OtherClip
		if f <= len(VideoClasses) {
			c = s.CountClip
		}
		m.FeatureClip = append(m.FeatureClip, max(c, 0))
	}
	m.FeatureMean, m.FeatureStd = featureStats(scenes, s.BaselineAlpha)
	var xs [][]float64
	norm := make([]float32, F)
	for _, sc := range scenes {
		flat := make([]float64, 0, len(sc)*F)
		var base manifest.Baseline
		for _, v := range sc {
			m.NormaliseVector(norm, v, &base)
			for _, x := range norm {
				flat = append(flat, float64(x))
			}
		}
		for t := s.Window; t <= len(sc); t++ {
			xs = append(xs, flat[(t-s.Window)*F:t*F])
		}
	}
	if len(xs) == 0 {
		return nil, fmt.Errorf("train: no video windows of %d buckets", s.Window)
	}
	sizes := []int{s.Window * F}
	sizes = append(sizes, s.Hidden...)
	for i := len(s.Hidden) - 2; i >= 0; i-- {
		sizes = append(sizes, s.Hidden[i])
	}
	sizes = append(sizes, s.Window*F)
	fit := s.Fit
	userLog := fit.Log
	fit.Log = func(ep int, loss float64) {
		fmt.Fprintf(log, "epoch %d: loss %.5f\n", ep, loss)
		if userLog != nil {
			userLog(ep, loss)
		}
	}
	fmt.Fprintf(log, "training video autoencoder %v on %d windows of %d scenes (%d MACs)\n", sizes, len(xs), len(scenes), macs(sizes))
	net, loss, err := Fit(sizes, xs, xs, fit)
	if err != nil {
		return nil, err
	}
	res := &VideoResult{Net: net, Loss: loss}
	id := m.ID()
	if res.Float, err = ExportFloat(net, id); err != nil {
		return nil, err
	}
	calib := xs
	if len(calib) > 20000 {
		step := len(calib) / 20000
		var sub [][]float64
		for i := 0; i < len(calib); i += step {
			sub = append(sub, calib[i])
		}
		calib = sub
	}
	if res.Quant, err = ExportInt8(net, id, Calibrate(net, calib)); err != nil {
		return nil, err
	}
	res.Model = res.Quant.Model
	m.SHA256 = manifest.Sum(res.Model)
	m.Output = fmt.Sprintf("[1,%d]: the %d input vectors (the last %d buckets, oldest first, %d features each, feature fastest) reconstructed, normalised units", s.Window*F, s.Window, s.Window, F)
	m.Score = fmt.Sprintf("RMS(input - output) over the newest %d of the window's vectors (residual_last; 0: all), normalised units, / scale;", s.ResidualLast) + " scale: the largest residual of the first warmup residuals, then decaying by (1 - scale_alpha) per bucket and raised to the residual (at most scale_clamp·scale) when one exceeds it; floored at 1e-6; no score while the window fills and during the warm-up"
	m.Training = manifest.Training{
		Corpus: "generated: models/train SynthVideo (no recorded video data is used or shipped)",
		Data: fmt.Sprintf("per-bucket features (%gs buckets, %g fps, 1920x1080) of %d generated street scenes of %gs each (pedestrians, cars, bicycles, buses; detector noise; drifting rates), every window, stride 1; thresholds and agreement on %d further generated scenes",
			s.Bucket, s.FPS, s.TrainScenes, s.Seconds, s.HeldOutScenes),
		Windows: len(xs), Seed: s.Fit.Seed, Epochs: fit.withDefaults().Epochs, Layers: sizes, Command: s.Command,
	}
	m.Low, m.High = 1, 2 // placeholders until calibrated
	shipped, err := tflite.Load(res.Model)
	if err != nil {
		return nil, fmt.Errorf("train: the exported model does not load: %w", err)
	}
	floatM, err := tflite.Load(res.Float)
	if err != nil {
		return nil, fmt.Errorf("train: the float export does not load: %w", err)
	}
	var pairs []pair
	for i := 0; i < s.HeldOutScenes; i++ {
		p, err := videoPairs(m, shipped, floatM, s.SceneFeatures(Scene{Seed: HeldOutSceneSeed(s.Fit.Seed, i)}, s.Seconds))
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, p...)
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("train: no held-out bucket was scored (scenes too short for window %d + warm-up %d?)", s.Window, s.Warmup)
	}
	scores := make([]float64, len(pairs))
	for i, p := range pairs {
		scores[i] = p.score
	}
	res.HeldOutScores = scores
	m.Low, m.High = Quantile(scores, s.LowQuantile), Quantile(scores, s.HighQuantile)
	if !(m.High > m.Low) {
		m.High = m.Low * 1.5
	}
	fmt.Fprintf(log, "held-out score quantiles: 0.5 %.3f, 0.9 %.3f, 0.99 %.3f, 0.995 %.3f, 0.999 %.3f, max %.3f\n",
		Quantile(scores, 0.5), Quantile(scores, 0.9), Quantile(scores, 0.99), Quantile(scores, 0.995), Quantile(scores, 0.999), Quantile(scores, 1))
	fmt.Fprintf(log, "held out: %d buckets; thresholds low %.3f (q%g) high %.3f (q%g)\n", len(scores), m.Low, s.LowQuantile, m.High, s.HighQuantile)
	a := agreement(m, pairs)
	m.Training.Agreement = &a
	fmt.Fprintf(log, "int8 vs float on %d held-out buckets: mean |Δscore| %.4f, mean |Δoutput| %.4f, same decision %.4f%%\n",
		a.Readings, a.MeanAbsDeltaScore, a.MeanAbsDeltaOutput, 100*a.SameDecision)
	res.Manifest = m
	return res, m.Validate()
}

// CountStdFloor floors a count feature's std (objects per frame): a class
// that is rare in the training scenes (a bus now and then, a false
// positive of an unlisted class) would otherwise have a tiny std, and one
// such object would look like a many-sigma event.
const CountStdFloor = 0.5

// featureStats returns each feature's mean over every bucket of the scenes
// and the std of its deviation from the scene's baseline (an exponential
// mean with weight alpha, started at the scene's first value; alpha 0: the
// mean) pooled over the scenes, floored at CountStdFloor for the counts.
// NaN (a feature the decoder omits) is skipped.
func featureStats(scenes [][][]float64, alpha float64) (mean, std []float64) {
	F := len(VideoFeatureNames)
	mean, std = make([]float64, F), make([]float64, F)
	n := make([]float64, F)
	for _, sc := range scenes {
		for _, v := range sc {
			for f, x := range v {
				if !math.IsNaN(x) {
					mean[f] += x
					n[f]++
				}
			}
		}
	}
	for f := range mean {
		mean[f] /= math.Max(1, n[f])
	}
	for _, sc := range scenes {
		base := append([]float64(nil), mean...)
		if alpha > 0 {
			for f, x := range sc[0] {
				if !math.IsNaN(x) {
					base[f] = x
				}
			}
		}
		for _, v := range sc {
			for f, x := range v {
				if !math.IsNaN(x) {
					d := x - base[f]
					std[f] += d * d
					base[f] += alpha * d
				}
			}
		}
	}
	for f := range std {
		floor := 1e-6
		if f <= len(VideoClasses) {
			floor = CountStdFloor
		}
		std[f] = math.Max(math.Sqrt(std[f]/math.Max(1, n[f])), floor)
	}
	return mean, std
}

// videoPairs streams one scene's features through a scorer of the shipped
// and one of the float model and returns the scored buckets.
func videoPairs(m *manifest.Manifest, shipped, float *tflite.Model, feats [][]float64) ([]pair, error) {
	a, err := stock.NewVectorScorer(m, shipped)
	if err != nil {
		return nil, err
	}
	b, err := stock.NewVectorScorer(m, float)
	if err != nil {
		return nil, err
	}
	var out []pair
	for _, v := range feats {
		sa, oka, err := a.Step(v)
		if err != nil {
			return nil, err
		}
		sb, okb, err := b.Step(v)
		if err != nil {
			return nil, err
		}
		if oka && okb {
			var d float64
			for i, o := range a.Last.Output {
				d += math.Abs(float64(o - b.Last.Output[i]))
			}
			out = append(out, pair{sa, sb, d / float64(len(a.Last.Output))})
		}
	}
	return out, nil
}

// VideoDetection is how a video model scores one injected anomaly.
type VideoDetection struct {
	Kind string
	Seed uint64
	// Peak is the highest score over the buckets from the anomaly's start
	// to Window buckets after its end; NormalPeak the highest score of the
	// same scene's buckets before the anomaly (after the warm-up).
	Peak, NormalPeak float64
	// Normal counts the scored buckets before the anomaly; NormalLow and
	// NormalHigh those of them at or above the manifest's Low and High
	// (false alarms).
	Normal, NormalLow, NormalHigh int
	// Level is stock.Level of Peak.
	Level int
}

// EvalVideo injects each anomaly into generated scenes (seeds), scores the
// scene's features with a VectorScorer of model and returns, per scene,
// the peak score around the anomaly and before it.
func EvalVideo(m *manifest.Manifest, model *tflite.Model, spec VideoSpec, seeds []uint64, anomalies []Anomaly, seconds float64) ([]VideoDetection, error) {
	s := spec.WithDefaults()
	var out []VideoDetection
	for _, a := range anomalies {
		for _, seed := range seeds {
			a := a
			feats := s.SceneFeatures(Scene{Seed: seed, Anomaly: &a}, seconds)
			d, err := scoreAround(m, model, feats, a, s.Bucket)
			if err != nil {
				return nil, err
			}
			d.Seed = seed
			out = append(out, d)
		}
	}
	return out, nil
}

// SummariseVideo prints per anomaly kind how many scenes reached anomaly
// (level 2) and uncertain-or-above (level ≥ 1), the median peak, the
// number of scenes whose anomaly peak beat every score before it, and the
// false alarms: the share of the normal buckets before the anomalies at or
// above low and high.
func SummariseVideo(w io.Writer, ds []VideoDetection) {
	kinds := []string{}
	by := map[string][]VideoDetection{}
	for _, d := range ds {
		if _, ok := by[d.Kind]; !ok {
			kinds = append(kinds, d.Kind)
		}
		by[d.Kind] = append(by[d.Kind], d)
	}
	for _, k := range kinds {
		var hi, unc, beat, normal, nLow, nHigh int
		var peaks []float64
		for _, d := range by[k] {
			if d.Level == 2 {
				hi++
			}
			if d.Level >= 1 {
				unc++
			}
			if d.Peak > d.NormalPeak {
				beat++
			}
			peaks = append(peaks, d.Peak)
			normal += d.Normal
			nLow += d.NormalLow
			nHigh += d.NormalHigh
		}
		sort.Float64s(peaks)
		n := len(by[k])
		fmt.Fprintf(w, "%-7s %d scenes: anomaly %d, uncertain or above %d, peak above every earlier score %d, median peak %.2f; normal buckets >= low %.2f%%, >= high %.2f%% (of %d)\n",
			k, n, hi, unc, beat, peaks[n/2], 100*float64(nLow)/math.Max(1, float64(normal)), 100*float64(nHigh)/math.Max(1, float64(normal)), normal)
	}
}

// StandardVideoAnomalies are the anomalies modeltool and the tests inject,
// each starting at second at: a crowd of 15 pedestrians walking in at
// once, every person vanishing from the detections for 30 s, and 20 s of
// pedestrians running in three times as often and three times as fast.
func StandardVideoAnomalies(at float64) []Anomaly {
	return []Anomaly{
		{Kind: AnomalyCrowd, At: at, Duration: 10, Size: 15},
		{Kind: AnomalyVanish, At: at, Duration: 30},
		{Kind: AnomalyRush, At: at, Duration: 20, Size: 3},
	}
}

// InjectFrames returns a copy of frames (at fps) with an anomaly injected
// at the frame level: AnomalyCrowd adds Size person boxes walking across a
// 1920x1080 frame for Duration seconds; AnomalyVanish drops every person
// box for Duration seconds. Other kinds are not supported.
func InjectFrames(frames []Frame, a Anomaly, fps float64) ([]Frame, error) {
	out := make([]Frame, len(frames))
	copy(out, frames)
	from, to := int(a.At*fps), min(len(frames), int((a.At+a.Duration)*fps))
	rng := rand.New(rand.NewPCG(uint64(from), 0x63726f7764))
	switch a.Kind {
	case AnomalyCrowd:
		type walker struct{ x, y, v float64 }
		ws := make([]walker, int(a.Size))
		for i := range ws {
			ws[i] = walker{x: 1920 * rng.Float64(), y: 400 + 500*rng.Float64(), v: (rng.Float64() - 0.5) * 8}
		}
		for i := from; i < to; i++ {
			boxes := append([]Box(nil), out[i].Boxes...)
			for k := range ws {
				w := &ws[k]
				w.x += w.v
				boxes = append(boxes, Box{Class: "person", Confidence: 0.6 + 0.35*rng.Float64(), Left: w.x - 40, Top: w.y - 110, Width: 80, Height: 220})
			}
			out[i].Boxes = boxes
		}
	case AnomalyVanish:
		for i := from; i < to; i++ {
			var boxes []Box
			for _, b := range out[i].Boxes {
				if b.Class != "person" {
					boxes = append(boxes, b)
				}
			}
			out[i].Boxes = boxes
		}
	default:
		return nil, fmt.Errorf("train: anomaly %q cannot be injected into recorded frames", a.Kind)
	}
	return out, nil
}

// EvalMOT loops recorded frames (a MOT det.txt, taken at spec's FPS) to 15
// minutes, injects a crowd and a vanishing at minute 10 (one run each) and
// scores them as EvalVideo does.
func EvalMOT(m *manifest.Manifest, model *tflite.Model, spec VideoSpec, frames []Frame) ([]VideoDetection, error) {
	s := spec.WithDefaults()
	if len(frames) == 0 {
		return nil, fmt.Errorf("train: no frames")
	}
	n := int(900 * s.FPS)
	looped := make([]Frame, n)
	for i := range looped {
		looped[i] = frames[i%len(frames)]
	}
	per := int(math.Round(s.Bucket * s.FPS))
	var out []VideoDetection
	for _, a := range StandardVideoAnomalies(600)[:2] {
		fr, err := InjectFrames(looped, a, s.FPS)
		if err != nil {
			return nil, err
		}
		d, err := scoreAround(m, model, VideoFeatures(fr, per, 1920, 1080), a, s.Bucket)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// scoreAround scores feats and returns the peak score around the anomaly
// and before it.
func scoreAround(m *manifest.Manifest, model *tflite.Model, feats [][]float64, a Anomaly, bucket float64) (VideoDetection, error) {
	sc, err := stock.NewVectorScorer(m, model)
	if err != nil {
		return VideoDetection{}, err
	}
	d := VideoDetection{Kind: a.Kind}
	from := int(a.At / bucket)
	to := int((a.At+a.Duration)/bucket) + m.Window
	for t, v := range feats {
		score, ok, err := sc.Step(v)
		if err != nil {
			return VideoDetection{}, err
		}
		if !ok {
			continue
		}
		switch {
		case t < from:
			d.NormalPeak = math.Max(d.NormalPeak, score)
			d.Normal++
			if score >= m.Low {
				d.NormalLow++
			}
			if score >= m.High {
				d.NormalHigh++
			}
		case t < to:
			d.Peak = math.Max(d.Peak, score)
		}
	}
	d.Level = stock.Level(m, d.Peak)
	return d, nil
}
