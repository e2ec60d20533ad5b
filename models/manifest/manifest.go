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
	// value column is scored on its own).
	Features int `json:"features"`
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
	case m.Window < 2 || m.Features != 1:
		return fmt.Errorf("%w: window %d features %d", ErrInvalid, m.Window, m.Features)
	case m.Normalisation != NormWindowZ || !(m.StdFloor > 0):
		return fmt.Errorf("%w: normalisation %q std floor %g", ErrInvalid, m.Normalisation, m.StdFloor)
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
