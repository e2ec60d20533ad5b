package learn

import (
	"errors"
	"fmt"
	"math"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/models/train"
)

// net runs one model on windows and gives its error in normalised units:
// for an autoencoder the RMS of (normalised input - reconstruction) over
// the Window values ending a window, for a forecaster |normalised last
// value - forecast| from the Window values before it (the residual the
// edge's score divides by its scale, before the scale).
type net struct {
	m       *manifest.Manifest
	ip      *tflite.Interpreter
	in, out []float32
}

func newNet(m *manifest.Manifest, model []byte) (*net, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	tm, err := tflite.Load(model)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", m.ID(), err)
	}
	ip, err := tm.NewInterpreter()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", m.ID(), err)
	}
	if len(ip.Inputs()) != 1 || len(ip.Outputs()) != 1 || ip.Input(0).Type() != tflite.Float32 || ip.Output(0).Type() != tflite.Float32 {
		return nil, fmt.Errorf("load %s: want one float32 input and output", m.ID())
	}
	n := &net{m: m, ip: ip, in: ip.Input(0).Float32s(), out: ip.Output(0).Float32s()}
	wantOut := 1
	if m.Kind == manifest.KindAutoencoder {
		wantOut = m.Window
	}
	if len(n.in) != m.Window || len(n.out) != wantOut {
		return nil, fmt.Errorf("load %s: input %d output %d values, the manifest wants %d and %d", m.ID(), len(n.in), len(n.out), m.Window, wantOut)
	}
	return n, nil
}

// need is the number of values a window must have to be judged.
func need(m *manifest.Manifest) int {
	if m.Kind == manifest.KindForecast {
		return m.Window + 1
	}
	return m.Window
}

// errOf is the model's error on the end of w; ok is false when w is too
// short.
func (n *net) errOf(w []float64) (float64, bool) {
	W := n.m.Window
	if len(w) < need(n.m) {
		return 0, false
	}
	switch n.m.Kind {
	case manifest.KindForecast:
		ctx := w[len(w)-W-1 : len(w)-1]
		mean, std := manifest.Normalise(n.in, ctx, n.m.StdFloor)
		if n.ip.Invoke() != nil {
			return 0, false
		}
		y := math.Max(-train.TargetClip, math.Min(train.TargetClip, (w[len(w)-1]-mean)/std))
		return math.Abs(y - float64(n.out[0])), true
	default:
		manifest.Normalise(n.in, w[len(w)-W:], n.m.StdFloor)
		if n.ip.Invoke() != nil {
			return 0, false
		}
		var ss float64
		for i, x := range n.in {
			d := float64(x - n.out[i])
			ss += d * d
		}
		return math.Sqrt(ss / float64(W)), true
	}
}

// examples turns windows into training examples for a model like m: every
// stretch of need(m) values in each window (so a window longer than the
// model's gives several), normalised as the edge does.
func examples(m *manifest.Manifest, wins [][]float64) (xs, ys [][]float64) {
	W, k := m.Window, need(m)
	norm := make([]float32, W)
	for _, w := range wins {
		for end := k; end <= len(w); end++ {
			seg := w[end-k : end]
			var ctx []float64
			if m.Kind == manifest.KindForecast {
				ctx = seg[:W]
			} else {
				ctx = seg
			}
			mean, std := manifest.Normalise(norm, ctx, m.StdFloor)
			x := make([]float64, W)
			for i, v := range norm {
				x[i] = float64(v)
			}
			y := x
			if m.Kind == manifest.KindForecast {
				y = []float64{math.Max(-train.TargetClip, math.Min(train.TargetClip, (seg[W]-mean)/std))}
			}
			xs, ys = append(xs, x), append(ys, y)
		}
	}
	return xs, ys
}

// thin returns at most n of xs, evenly spaced (xs itself when it has no
// more).
func thin(xs [][]float64, n int) [][]float64 {
	if len(xs) <= n {
		return xs
	}
	out := make([][]float64, n)
	for i := range out {
		out[i] = xs[i*len(xs)/n]
	}
	return out
}

// trained is a challenger: its manifest, int8 .tflite bytes and training
// figures.
type trained struct {
	m       *manifest.Manifest
	model   []byte
	windows int
	loss    float64
	epochs  int
}

// trainChallenger trains a network of the champion's architecture (the
// layer sizes its manifest records) on wins, quantises it to int8 post
// training (train.Calibrate on the training windows, train.ExportInt8) and
// describes it with a copy of the champion's manifest: same window,
// normalisation, score parameters and thresholds (the edge's score divides
// each residual by a scale learnt from the stream itself, so the
// champion's calibrated thresholds carry over), new version, file, sha256
// and training record.
func trainChallenger(champ *manifest.Manifest, version int, wins [][]float64, streams int, fit train.Config) (*trained, error) {
	sizes := champ.Training.Layers
	wantOut := 1
	if champ.Kind == manifest.KindAutoencoder {
		wantOut = champ.Window
	}
	if len(sizes) < 2 || sizes[0] != champ.Window || sizes[len(sizes)-1] != wantOut {
		return nil, fmt.Errorf("the champion %s records no usable layer sizes (%v) to train a challenger like it", champ.ID(), sizes)
	}
	xs, ys := examples(champ, wins)
	if len(xs) == 0 {
		return nil, errors.New("no training windows long enough for the model")
	}
	xs, ys = thin(xs, MaxTrainExamples), thin(ys, MaxTrainExamples)
	mlp, loss, err := train.Fit(sizes, xs, ys, fit)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s@%d", champ.Name, version)
	q, err := train.ExportInt8(mlp, id, train.Calibrate(mlp, xs))
	if err != nil {
		return nil, fmt.Errorf("quantise %s: %w", id, err)
	}
	m := *champ
	m.Version = version
	m.File = champ.Name + ".tflite"
	m.SHA256 = manifest.Sum(q.Model)
	m.Signature = ""
	m.IO = "float32 in, float32 out; int8 inside (QUANTIZE first, DEQUANTIZE last)"
	m.Training = manifest.Training{
		Corpus:  "outpost samples",
		Data:    fmt.Sprintf("%d sampled normal windows of %d streams the agents uploaded after drift or on schedule (%d examples); champion %s", len(wins), max(streams, 1), len(xs), champ.ID()),
		Windows: len(xs), Seed: fit.Seed, Epochs: fit.Epochs, Layers: append([]int(nil), sizes...),
		Command: "outpost-cloud learn",
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &trained{m: &m, model: q.Model, windows: len(xs), loss: loss, epochs: fit.Epochs}, nil
}
