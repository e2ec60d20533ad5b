package manifest

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func valid() *Manifest {
	return &Manifest{Name: "m", Version: 2, Role: RoleEdgeInt8, Kind: KindForecast, File: "m.tflite", SHA256: Sum([]byte("model")),
		Window: 8, Features: 1, IO: "float32", Normalisation: NormWindowZ, StdFloor: 1e-6, Output: "o", Score: "s", Scale: ScaleMax,
		ScaleAlpha: 0.01, ScaleClamp: 4, Warmup: 10, Low: 1, High: 2, LowQuantile: 0.99, HighQuantile: 0.999,
		Training: Training{Corpus: "c", Seed: 3, Layers: []int{8, 4, 1}, Agreement: &Agreement{Readings: 5, SameDecision: 1}}}
}

func TestRoundTrip(t *testing.T) {
	m := valid()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if strings.Contains(string(b), "signature") {
		t.Error("an empty signature is written")
	}
	m.Signature = "sig"
	b, _ = m.Marshal()
	if got, _ := Parse(b); got.Signature != "sig" {
		t.Error("signature lost")
	}
	if m.ID() != "m@2" {
		t.Errorf("ID %q", m.ID())
	}
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*Manifest){
		"role":       func(m *Manifest) { m.Role = "gpu" },
		"kind":       func(m *Manifest) { m.Kind = "x" },
		"window":     func(m *Manifest) { m.Window = 1 },
		"thresholds": func(m *Manifest) { m.High = m.Low },
		"nan low":    func(m *Manifest) { m.Low = math.NaN() },
		"scale":      func(m *Manifest) { m.Scale = "median" },
		"alpha":      func(m *Manifest) { m.ScaleAlpha = 0 },
		"sha":        func(m *Manifest) { m.SHA256 = "abc" },
		"norm":       func(m *Manifest) { m.Normalisation = "minmax" },
		"version":    func(m *Manifest) { m.Version = 0 },
	} {
		m := valid()
		mut(m)
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := valid().Validate(); err != nil {
		t.Error(err)
	}
}

func TestCheck(t *testing.T) {
	m := valid()
	if err := m.Check([]byte("model")); err != nil {
		t.Error(err)
	}
	if err := m.Check([]byte("modem")); err == nil {
		t.Error("another file passed the sha256 check")
	}
}

func TestNormalise(t *testing.T) {
	dst := make([]float32, 4)
	mean, std := Normalise(dst, []float64{9, 11, 9, 11}, 1e-6)
	if mean != 10 || std != 1 || !reflect.DeepEqual(dst, []float32{-1, 1, -1, 1}) {
		t.Errorf("mean %g std %g %v", mean, std, dst)
	}
	// Constant window: the std is floored at 1e-6·|mean|.
	_, std = Normalise(dst, []float64{500, 500, 500, 500}, 1e-6)
	if std != 5e-4 || dst[0] != 0 {
		t.Errorf("flat: std %g %v", std, dst)
	}
}
