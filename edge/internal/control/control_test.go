package control

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/tflite"
	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
)

// TestTestRun: the stock model passes the test run; a model of the same
// shape whose output is NaN does not.
func TestTestRun(t *testing.T) {
	m, model, err := stock.Load(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	r, err := modelscore.NewRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	if err := Test(r); err != nil {
		t.Fatalf("stock model: %v", err)
	}

	b := tflwrite.New("nan")
	x := b.Input("x", tflwrite.Float32, []int{1, m.Window}, nil)
	w := make([]float32, m.Window*m.Window)
	for i := range w {
		w[i] = float32(math.NaN())
	}
	y := b.Tensor("y", tflwrite.Float32, []int{1, m.Window}, nil)
	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x, b.ConstFloat32("w", []int{m.Window, m.Window}, w),
		b.ConstFloat32("b", []int{m.Window}, make([]float32, m.Window))}, []tflwrite.TensorID{y}, &tflwrite.FullyConnectedOptions{})
	b.Outputs(y)
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	nm := *m
	nm.SHA256 = manifest.Sum(raw)
	tm, err := tflite.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	nr, err := modelscore.NewRunner(&nm, tm)
	if err != nil {
		t.Fatal(err)
	}
	if err := Test(nr); err == nil {
		t.Fatal("a model scoring NaN passed the test run")
	}
}

// TestAppliedConfig: LoadConfig finds what was stored, DropConfig forgets
// it; a corrupt state file is an error, not a silent reset.
func TestAppliedConfig(t *testing.T) {
	dir := t.TempDir()
	if _, _, ok, err := LoadConfig(dir); ok || err != nil {
		t.Fatalf("empty dir: ok %v err %v", ok, err)
	}
	if err := writeFile(filepath.Join(dir, "profile.yaml"), []byte("name: x\n")); err != nil {
		t.Fatal(err)
	}
	if err := writeApplied(dir, applied{Config: "x.2", Models: map[string]string{"*": "m@2"}}); err != nil {
		t.Fatal(err)
	}
	text, key, ok, err := LoadConfig(dir)
	if !ok || err != nil || key != "x.2" || string(text) != "name: x\n" {
		t.Fatalf("LoadConfig: %q %q %v %v", text, key, ok, err)
	}
	if err := DropConfig(dir, os.ErrPermission); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := LoadConfig(dir); ok || err != nil {
		t.Fatalf("after DropConfig: ok %v err %v", ok, err)
	}
	st, err := readApplied(dir)
	if err != nil || st.Models["*"] != "m@2" || st.Refused != "x.2" || st.Why != os.ErrPermission.Error() {
		t.Fatalf("models lost by DropConfig: %+v %v", st, err)
	}
	os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o600)
	if _, _, _, err := LoadConfig(dir); err == nil {
		t.Fatal("corrupt state.json read without an error")
	}
}
