// Package manifest describes a shipped model: what it is (name, version,
// role), what it reads (window, features, normalisation), what its output
// means, the thresholds calibrated for it, and the sha256 of its .tflite
// file. The edge and the cloud load a model only with its manifest; the
// cloud adds a signature when it signs a model for rollout.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
)

// Roles.
const (
	// RoleEdgeInt8 is a model quantised to int8 for the edge.
	RoleEdgeInt8 = "edge-int8"
	// RoleCloudFloat is a float32 model for the cloud's second stage.
	RoleCloudFloat = "cloud-float"
)

// Kinds of model output.
const (
	// KindForecast: the model reads Window values before a reading,
	// normalised, and predicts the reading, normalised the same way
	// (output shape [1, 1]).
	KindForecast = "forecast"
	// KindAutoencoder: the model reads the Window values ending with the
	// reading, normalised, and reconstructs them (output shape [1, Window]).
	KindAutoencoder = "autoencoder"
)

// Score scales.
const (
	// ScaleMean: the scale is an exponential mean of |residual| (weight
	// ScaleAlpha), each folded clamped at ScaleClamp·scale.
	ScaleMean = "mean"
	// ScaleMax: the scale is a decaying maximum of |residual|: each
	// reading it decays by (1 - ScaleAlpha), and a residual raises it to
	// at most ScaleClamp·scale.
	ScaleMax = "max"
)

// Normalisations.
const (
	// NormWindowZ: x' = (x - mean) / max(std, floor), with mean and
	// population std over the model's input window and floor =
	// StdFloor · max(1, |mean|).
	NormWindowZ = "window-z"
	// NormFeatureZ: for a model of several features per reading (a
	// vector), each feature f is normalised against the stream's own
	// baseline (Baseline): x'[f] = (x[f] - mean[f]) / max(sqrt(var[f]),
	// StdFloor·FeatureStd[f]), clipped to ±FeatureClip[f] (when > 0: one odd
	// bucket must not outweigh a sustained change). mean[f] starts at the
	// stream's first value of f (FeatureMean[f] if it is missing) and
	// var[f] at FeatureStd[f]²; after each reading, with d = x[f] -
	// mean[f], mean[f] += BaselineAlpha·d and var[f] += VarAlpha·(d² -
	// var[f]): a camera is judged against its own level and variability.
	// BaselineAlpha and VarAlpha 0: mean[f] = FeatureMean[f] and var[f] =
	// FeatureStd[f]² always. A missing feature (NaN) normalises to 0 and
	// leaves the baseline alone. The model's input is the Window normalised
	// vectors, oldest first, flattened ([1, Window·Features], feature
	// fastest).
	NormFeatureZ = "feature-z"
)

// Manifest describes one model file.
type Manifest struct {
	// Name and Version identify the model ("name@version" in events).
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Role is RoleEdgeInt8 or RoleCloudFloat.
	Role string `json:"role"`
	// Kind is KindForecast or KindAutoencoder.
	Kind string `json:"kind"`
	// File is the .tflite file's name, next to the manifest.
	File string `json:"file"`
	// SHA256 is the hex sha256 of the .tflite file.
	SHA256 string `json:"sha256"`
	// Window is the number of values the model reads.
	Window int `json:"window"`
	// Features is the number of values per reading the model reads (1: each
	// value column is scored on its own; more: a reading is a vector of
	// the features FeatureNames names, normalised by NormFeatureZ).
	Features int `json:"features"`
	// FeatureNames, FeatureMean and FeatureStd (Features > 1 only) name
	// each feature of a reading vector, in the model's order, and give the
	// statistics NormFeatureZ starts from; BaselineAlpha and VarAlpha are
	// the weights of a reading in the stream's running mean and variance.
	FeatureNames  []string  `json:"feature_names,omitempty"`
	FeatureMean   []float64 `json:"feature_mean,omitempty"`
	FeatureStd    []float64 `json:"feature_std,omitempty"`
	BaselineAlpha float64   `json:"baseline_alpha,omitempty"`
	VarAlpha      float64   `json:"var_alpha,omitempty"`
	// FeatureClip bounds each normalised feature (NormFeatureZ); 0: no
	// bound.
	FeatureClip []float64 `json:"feature_clip,omitempty"`
	// ResidualLast (Features > 1): the residual is the RMS reconstruction
	// error of the newest ResidualLast vectors of the window; 0: of all.
	ResidualLast int `json:"residual_last,omitempty"`
	// (For NormFeatureZ, StdFloor is the fraction of FeatureStd a running
	// std may not fall below.)
	// IO says the model's input and output tensor types, e.g. "float32 in,
	// float32 out (QUANTIZE/DEQUANTIZE inside)".
	IO string `json:"io"`
	// Normalisation names how a window is normalised (NormWindowZ), with
	// StdFloor its floor factor.
	Normalisation string  `json:"normalisation"`
	StdFloor      float64 `json:"std_floor"`
	// Output says what the output means and how the score is made of it.
	Output string `json:"output"`
	// Score describes the streaming score; ScaleAlpha, ScaleClamp and
	// Warmup are its parameters: score = |residual| / scale, scale an
	// exponential mean of |residual| (weight ScaleAlpha per reading, each
	// residual folded clamped at ScaleClamp · scale), after Warmup readings.
	Score string `json:"score"`
	// Scale is ScaleMean or ScaleMax.
	Scale      string  `json:"scale"`
	ScaleAlpha float64 `json:"scale_alpha"`
	ScaleClamp float64 `json:"scale_clamp"`
	Warmup     int     `json:"warmup"`
	// Low and High are the calibrated thresholds on the score: below Low
	// normal, from Low uncertain, from High anomaly; LowQuantile and
	// HighQuantile are the quantiles of held-out normal scores they are.
	Low          float64 `json:"low"`
	High         float64 `json:"high"`
	LowQuantile  float64 `json:"low_quantile"`
	HighQuantile float64 `json:"high_quantile"`
	// Training records how the model was made (data, seed, command).
	Training Training `json:"training"`
	// Signature is set by the cloud when it signs the model for rollout;
	// empty for the stock files.
	Signature string `json:"signature,omitempty"`
}

// Training records how a model was made.
type Training struct {
	Corpus    string     `json:"corpus"`
	Data      string     `json:"data"`
	Windows   int        `json:"windows"`
	Seed      uint64     `json:"seed"`
	Epochs    int        `json:"epochs"`
	Layers    []int      `json:"layers"`
	Command   string     `json:"command,omitempty"`
	Agreement *Agreement `json:"agreement,omitempty"`
}

// Agreement compares an int8 model with the float model it was quantised
// from on held-out data.
type Agreement struct {
	// Readings is the number of scored held-out readings.
	Readings int `json:"readings"`
	// MeanAbsDeltaScore is the mean |score_int8 - score_float|;
	// MeanAbsDeltaOutput the mean |output_int8 - output_float| (normalised
	// units).
	MeanAbsDeltaScore  float64 `json:"mean_abs_delta_score"`
	MeanAbsDeltaOutput float64 `json:"mean_abs_delta_output"`
	// SameDecision is the fraction of readings both put at the same level
	// (normal / uncertain / anomaly).
	SameDecision float64 `json:"same_decision"`
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("manifest: invalid")

// Validate reports a manifest a detector cannot use.
func (m *Manifest) Validate() error {
	switch {
	case m.Name == "" || m.Version < 1:
		return fmt.Errorf("%w: name %q version %d", ErrInvalid, m.Name, m.Version)
	case m.Role != RoleEdgeInt8 && m.Role != RoleCloudFloat:
		return fmt.Errorf("%w: role %q", ErrInvalid, m.Role)
	case m.Kind != KindForecast && m.Kind != KindAutoencoder:
		return fmt.Errorf("%w: kind %q", ErrInvalid, m.Kind)
	case m.Window < 2 || m.Features < 1:
		return fmt.Errorf("%w: window %d features %d", ErrInvalid, m.Window, m.Features)
	case m.Features == 1 && (m.Normalisation != NormWindowZ || !(m.StdFloor > 0)):
		return fmt.Errorf("%w: normalisation %q std floor %g", ErrInvalid, m.Normalisation, m.StdFloor)
	case m.Features > 1:
		if err := m.validateFeatures(); err != nil {
			return err
		}
	case !(m.Low > 0) || !(m.High > m.Low):
		return fmt.Errorf("%w: thresholds low %g high %g", ErrInvalid, m.Low, m.High)
	case m.Scale != ScaleMean && m.Scale != ScaleMax:
		return fmt.Errorf("%w: scale %q", ErrInvalid, m.Scale)
	case !(m.ScaleAlpha > 0 && m.ScaleAlpha <= 1) || !(m.ScaleClamp > 0) || m.Warmup < 0:
		return fmt.Errorf("%w: scale alpha %g clamp %g warmup %d", ErrInvalid, m.ScaleAlpha, m.ScaleClamp, m.Warmup)
	case len(m.SHA256) != 64:
		return fmt.Errorf("%w: sha256 %q", ErrInvalid, m.SHA256)
	}
	return nil
}

// validateFeatures checks a vector model's features (Features > 1): feature-z
// normalisation, an autoencoder, one name, mean and std (> 0) per feature,
// names unique, BaselineAlpha in [0, 1].
func (m *Manifest) validateFeatures() error {
	n := m.Features
	if m.Normalisation != NormFeatureZ || m.Kind != KindAutoencoder {
		return fmt.Errorf("%w: %d features need normalisation %q and kind %q, got %q and %q", ErrInvalid, n, NormFeatureZ, KindAutoencoder, m.Normalisation, m.Kind)
	}
	if len(m.FeatureNames) != n || len(m.FeatureMean) != n || len(m.FeatureStd) != n {
		return fmt.Errorf("%w: %d features but %d names, %d means, %d stds", ErrInvalid, n, len(m.FeatureNames), len(m.FeatureMean), len(m.FeatureStd))
	}
	if !(m.BaselineAlpha >= 0 && m.BaselineAlpha <= 1) || !(m.VarAlpha >= 0 && m.VarAlpha <= 1) || !(m.StdFloor > 0) || m.ResidualLast < 0 || m.ResidualLast > m.Window {
		return fmt.Errorf("%w: baseline alpha %g var alpha %g std floor %g residual last %d", ErrInvalid, m.BaselineAlpha, m.VarAlpha, m.StdFloor, m.ResidualLast)
	}
	if len(m.FeatureClip) != 0 && len(m.FeatureClip) != n {
		return fmt.Errorf("%w: %d features but %d clips", ErrInvalid, n, len(m.FeatureClip))
	}
	for _, c := range m.FeatureClip {
		if !(c >= 0) || math.IsInf(c, 0) {
			return fmt.Errorf("%w: feature clip %g", ErrInvalid, c)
		}
	}
	seen := map[string]bool{}
	for i, name := range m.FeatureNames {
		if name == "" || seen[name] {
			return fmt.Errorf("%w: feature %d name %q (empty or repeated)", ErrInvalid, i, name)
		}
		seen[name] = true
		if !(m.FeatureStd[i] > 0) || math.IsInf(m.FeatureStd[i], 0) || math.IsNaN(m.FeatureMean[i]) || math.IsInf(m.FeatureMean[i], 0) {
			return fmt.Errorf("%w: feature %q mean %g std %g", ErrInvalid, name, m.FeatureMean[i], m.FeatureStd[i])
		}
	}
	return nil
}

// InputSize is the number of values of the model's input: Window ·
// Features.
func (m *Manifest) InputSize() int { return m.Window * m.Features }

func (m *Manifest) clip(f int) float64 {
	if len(m.FeatureClip) == 0 {
		return 0
	}
	return m.FeatureClip[f]
}

// Baseline is one stream's NormFeatureZ state: its running mean and
// variance per feature. The zero value is a stream that has seen nothing.
type Baseline struct {
	Mean, Var []float64
	Started   bool
}

// NormaliseVector writes the NormFeatureZ normalisation of the reading
// vector v (len Features; NaN or ±Inf marks a missing feature) into dst
// (len Features) against the stream's baseline b, and then folds v into b.
func (m *Manifest) NormaliseVector(dst []float32, v []float64, b *Baseline) {
	a := m.BaselineAlpha
	if !b.Started {
		b.Mean = append(b.Mean[:0], m.FeatureMean...)
		b.Var = b.Var[:0]
		for f, s := range m.FeatureStd {
			b.Var = append(b.Var, s*s)
			if x := v[f]; a > 0 && !math.IsNaN(x) && !math.IsInf(x, 0) {
				b.Mean[f] = x
			}
		}
		b.Started = true
	}
	for f, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			dst[f] = 0
			continue
		}
		d := x - b.Mean[f]
		z := d / math.Max(math.Sqrt(b.Var[f]), m.StdFloor*m.FeatureStd[f])
		if c := m.clip(f); c > 0 {
			z = math.Max(-c, math.Min(c, z))
		}
		dst[f] = float32(z)
		b.Mean[f] += a * d
		b.Var[f] += m.VarAlpha * (d*d - b.Var[f])
	}
}

// ID is "name@version".
func (m *Manifest) ID() string { return fmt.Sprintf("%s@%d", m.Name, m.Version) }

// Sum returns the hex sha256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Check reports whether model is the file the manifest describes.
func (m *Manifest) Check(model []byte) error {
	if got := Sum(model); got != m.SHA256 {
		return fmt.Errorf("manifest %s: model sha256 %s, manifest says %s", m.ID(), got, m.SHA256)
	}
	return nil
}

// Parse decodes and validates a manifest.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes m as indented JSON with a final newline.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ReadFile reads and validates a manifest file.
func ReadFile(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Normalise writes the NormWindowZ normalisation of src into dst (same
// length) and returns the mean and the (floored) std it used.
func Normalise(dst []float32, src []float64, stdFloor float64) (mean, std float64) {
	mean, std = MeanStd(src, stdFloor)
	for i, v := range src {
		dst[i] = float32((v - mean) / std)
	}
	return mean, std
}

// MeanStd returns the mean and the population std of src, the std floored
// at stdFloor · max(1, |mean|).
func MeanStd(src []float64, stdFloor float64) (mean, std float64) {
	var sum float64
	for _, v := range src {
		sum += v
	}
	mean = sum / float64(len(src))
	var ss float64
	for _, v := range src {
		d := v - mean
		ss += d * d
	}
	std = math.Sqrt(ss / float64(len(src)))
	if f := stdFloor * math.Max(1, math.Abs(mean)); !(std >= f) {
		std = f
	}
	return mean, std
}
