package manifest

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func validVector() *Manifest {
	m := valid()
	m.Kind, m.Features, m.Normalisation, m.StdFloor = KindAutoencoder, 2, NormFeatureZ, 0.5
	m.FeatureNames, m.FeatureMean, m.FeatureStd, m.FeatureClip = []string{"a", "b"}, []float64{10, 0}, []float64{2, 1}, []float64{3, 0}
	m.BaselineAlpha, m.VarAlpha, m.ResidualLast = 0.5, 0.25, 1
	return m
}

// TestVectorValidate: a vector manifest round-trips; each broken field is
// refused with ErrInvalid.
func TestVectorValidate(t *testing.T) {
	m := validVector()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, m)
	}
	if m.InputSize() != 16 {
		t.Errorf("input size %d", m.InputSize())
	}
	for name, breakIt := range map[string]func(*Manifest){
		"window-z":          func(m *Manifest) { m.Normalisation = NormWindowZ },
		"forecast":          func(m *Manifest) { m.Kind = KindForecast },
		"names":             func(m *Manifest) { m.FeatureNames = []string{"a"} },
		"repeated name":     func(m *Manifest) { m.FeatureNames = []string{"a", "a"} },
		"std 0":             func(m *Manifest) { m.FeatureStd = []float64{2, 0} },
		"mean NaN":          func(m *Manifest) { m.FeatureMean = []float64{math.NaN(), 0} },
		"clips":             func(m *Manifest) { m.FeatureClip = []float64{1} },
		"negative clip":     func(m *Manifest) { m.FeatureClip = []float64{-1, 0} },
		"alpha":             func(m *Manifest) { m.BaselineAlpha = 2 },
		"var alpha":         func(m *Manifest) { m.VarAlpha = -1 },
		"std floor":         func(m *Manifest) { m.StdFloor = 0 },
		"residual last":     func(m *Manifest) { m.ResidualLast = 9 },
		"single, feature-z": func(m *Manifest) { m.Features = 1 },
	} {
		m := validVector()
		breakIt(m)
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNormaliseVector checks the baseline arithmetic by hand: the first
// reading starts the mean (its value) and the variance (FeatureStd²); the
// std never falls below StdFloor·FeatureStd; clipping; a missing feature is
// 0 and leaves the baseline alone.
func TestNormaliseVector(t *testing.T) {
	m := validVector()
	var b Baseline
	dst := make([]float32, 2)
	m.NormaliseVector(dst, []float64{12, math.NaN()}, &b)
	// a: mean starts at 12, d = 0; b: missing -> 0, mean stays 0 (FeatureMean).
	if dst[0] != 0 || dst[1] != 0 || b.Mean[0] != 12 || b.Var[0] != 3 || b.Mean[1] != 0 || b.Var[1] != 1 {
		t.Fatalf("first: dst %v base %+v", dst, b)
	}
	// var a was 4 -> 4 + 0.25·(0 - 4) = 3 after the first reading.
	m.NormaliseVector(dst, []float64{15, 0.5}, &b)
	// a: d = 3, z = 3/sqrt(3) = 1.732; b: d = 0.5, z = 0.5/1 = 0.5.
	if math.Abs(float64(dst[0])-3/math.Sqrt(3)) > 1e-6 || dst[1] != 0.5 {
		t.Errorf("second: dst %v", dst)
	}
	if b.Mean[0] != 13.5 || b.Var[0] != 3+0.25*(9-3) {
		t.Errorf("second: base %+v", b)
	}
	// Clip: a far reading is clipped to ±3 on a; b has no clip.
	m.NormaliseVector(dst, []float64{-100, 50}, &b)
	if dst[0] != -3 || !(dst[1] > 3) {
		t.Errorf("clip: dst %v", dst)
	}
	// Floor: alpha 0 keeps mean and var at the manifest's; the std floor
	// 0.5·FeatureStd does not bind when var is FeatureStd².
	m.BaselineAlpha, m.VarAlpha = 0, 0
	var c Baseline
	m.NormaliseVector(dst, []float64{14, 1}, &c)
	if dst[0] != 2 || dst[1] != 1 || c.Mean[0] != 10 {
		t.Errorf("fixed: dst %v base %+v", dst, c)
	}
}
