package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/models/tflite"
)

const corpusDir = "../../testdata/tflite"

// tflrun runs the command tree in-process.
func tflrun(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

type manifest struct {
	Model string `json:"model"`
	Cases []struct {
		Name    string   `json:"name"`
		Inputs  []string `json:"inputs"`
		Outputs []string `json:"outputs"`
	} `json:"cases"`
}

func corpus(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("empty corpus")
	}
	return names
}

func readManifest(t *testing.T, name string) *manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// loadable returns the corpus model's path, or skips the test if the
// runtime does not load it yet.
func loadable(t *testing.T, name string) (string, *tflite.Model) {
	t.Helper()
	path := filepath.Join(corpusDir, name, "model.tflite")
	m, err := tflite.LoadFile(path)
	if err != nil {
		t.Skipf("the runtime refuses %s: %v", name, err)
	}
	return path, m
}

// sameOutput compares an output file with a golden one: integers
// bit-exact, float32 within 1e-5.
func sameOutput(t *testing.T, what, dtype string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, golden %d", what, len(got), len(want))
	}
	if dtype != "float32" {
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %s output differs from the golden one", what, dtype)
		}
		return
	}
	for i := 0; i+4 <= len(got); i += 4 {
		g := math.Float32frombits(binary.LittleEndian.Uint32(got[i:]))
		w := math.Float32frombits(binary.LittleEndian.Uint32(want[i:]))
		if d := math.Abs(float64(g - w)); !(d <= 1e-5) {
			t.Fatalf("%s[%d]: %v, golden %v", what, i/4, g, w)
		}
	}
}

// TestRunCorpus runs every corpus model the runtime loads on every golden
// case through `tflrun run` and compares the output files with the golden
// outputs, and the JSON summary with the model.
func TestRunCorpus(t *testing.T) {
	for _, name := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			path, m := loadable(t, name)
			man := readManifest(t, name)
			ts := m.Tensors()
			for _, c := range man.Cases {
				dir := filepath.Join(t.TempDir(), c.Name)
				args := []string{"run", "--model", path, "--output-dir", dir}
				for _, in := range c.Inputs {
					args = append(args, "--input", filepath.Join(corpusDir, name, in))
				}
				stdout, stderr, err := tflrun(args...)
				if err != nil {
					t.Fatalf("case %s: %v\n%s", c.Name, err, stderr)
				}
				var sum runSummary
				if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
					t.Fatalf("summary is not JSON: %v\n%s", err, stdout)
				}
				if len(sum.Inputs) != len(m.InputIndices()) || len(sum.Outputs) != len(m.OutputIndices()) {
					t.Fatalf("summary has %d inputs / %d outputs", len(sum.Inputs), len(sum.Outputs))
				}
				for i, ti := range m.InputIndices() {
					checkIO(t, sum.Inputs[i], &ts[ti], filepath.Join(corpusDir, name, c.Inputs[i]))
				}
				for i, ti := range m.OutputIndices() {
					want := filepath.Join(dir, fmt.Sprintf("output%d.bin", i))
					checkIO(t, sum.Outputs[i], &ts[ti], want)
					got, err := os.ReadFile(want)
					if err != nil {
						t.Fatal(err)
					}
					if i < len(c.Outputs) {
						golden, err := os.ReadFile(filepath.Join(corpusDir, name, c.Outputs[i]))
						if err != nil {
							t.Fatal(err)
						}
						sameOutput(t, c.Name, ts[ti].Type.String(), got, golden)
					}
				}
			}
		})
	}
}

func checkIO(t *testing.T, s ioSummary, ti *tflite.TensorInfo, file string) {
	t.Helper()
	if s.Name != ti.Name || s.Dtype != ti.Type.String() || fmt.Sprint(s.Shape) != fmt.Sprint(ti.Shape) || s.File != file {
		t.Errorf("summary %+v does not describe tensor %s (file %s)", s, ti.String(), file)
	}
	q := ti.Quantization
	switch {
	case !q.Quantized() && (s.Scale != nil || s.ZeroPoint != nil):
		t.Errorf("%s: unquantized tensor with scale/zero point in the summary", s.Name)
	case q.Quantized() && (s.Scale == nil || *s.Scale != q.Scales[0] || s.ZeroPoint == nil || *s.ZeroPoint != q.ZeroPoints[0]):
		t.Errorf("%s: summary scale/zero point do not match %v %v", s.Name, q.Scales, q.ZeroPoints)
	}
}

// TestInspect: inspect prints every operator's name, the inputs, outputs
// and tensors with their quantization; --json gives the same as JSON.
func TestInspect(t *testing.T) {
	for _, name := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			path, m := loadable(t, name)
			out, _, err := tflrun("inspect", path)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"inputs:", "outputs:", "operators (", "tensors ("} {
				if !strings.Contains(out, want) {
					t.Errorf("inspect output lacks %q", want)
				}
			}
			for _, o := range m.Operators() {
				line := fmt.Sprintf("%d %s v%d inputs=%v outputs=%v", o.Index, o.Name, o.Version, o.Inputs, o.Outputs)
				if !strings.Contains(out, line) {
					t.Errorf("inspect output lacks %q", line)
				}
			}
			ts := m.Tensors()
			for i := range ts {
				if !strings.Contains(out, fmt.Sprintf("%d %q %s %v", i, ts[i].Name, ts[i].Type, ts[i].Shape)) {
					t.Errorf("inspect output lacks tensor %d", i)
				}
				if q := ts[i].Quantization; len(q.Scales) > 1 && !strings.Contains(out, fmt.Sprintf("quantized_dimension=%d", q.Dim)) {
					t.Errorf("tensor %d: per-channel quantization not shown", i)
				}
			}
			js, _, err := tflrun("inspect", "--json", path)
			if err != nil {
				t.Fatal(err)
			}
			var d inspectDesc
			if err := json.Unmarshal([]byte(js), &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Operators) != len(m.Operators()) || len(d.Tensors) != len(ts) {
				t.Fatalf("JSON has %d operators, %d tensors", len(d.Operators), len(d.Tensors))
			}
			for k, o := range m.Operators() {
				if d.Operators[k].Op != o.Name || d.Operators[k].Version != o.Version {
					t.Errorf("JSON operator %d: %+v", k, d.Operators[k])
				}
			}
		})
	}
	// The quantization details of a known tensor (person_detect has
	// per-channel int8 weights).
	path, m := loadable(t, "person_detect")
	out, _, err := tflrun("inspect", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range m.Tensors() {
		if q := ti.Quantization; len(q.Scales) > 1 && ti.Constant {
			want := fmt.Sprintf("scales=%v zero_points=%v quantized_dimension=%d const", q.Scales, q.ZeroPoints, q.Dim)
			if !strings.Contains(out, want) {
				t.Fatalf("tensor %d: inspect lacks %q", ti.Index, want)
			}
			break
		}
	}
}

// TestRunBench: --bench adds median_us and p99_us.
func TestRunBench(t *testing.T) {
	path, _ := loadable(t, "hello_world_int8")
	out, _, err := tflrun("run", "--model", path, "--output-dir", t.TempDir(), "--bench", "50")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	med, ok1 := raw["median_us"].(float64)
	p99, ok2 := raw["p99_us"].(float64)
	if !ok1 || !ok2 || med <= 0 || p99 < med {
		t.Fatalf("bench fields median_us=%v p99_us=%v", raw["median_us"], raw["p99_us"])
	}
	if raw["bench_runs"] != 50.0 || raw["warmup_runs"] != 10.0 {
		t.Errorf("bench_runs %v warmup_runs %v", raw["bench_runs"], raw["warmup_runs"])
	}
	// Without --bench the fields are absent.
	out, _, err = tflrun("run", "--model", path, "--output-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "median_us") {
		t.Error("median_us without --bench")
	}
}

// TestRunRandomInputs: without --input, inputs are generated from the
// seed (saved next to the outputs), reproducibly, over the dtype's range.
func TestRunRandomInputs(t *testing.T) {
	path, _ := loadable(t, "person_detect")
	run := func(seed string) (in, out []byte) {
		dir := t.TempDir()
		stdout, _, err := tflrun("run", "--model", path, "--output-dir", dir, "--seed", seed)
		if err != nil {
			t.Fatal(err)
		}
		var sum runSummary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Seed == nil || fmt.Sprint(*sum.Seed) != seed || sum.Inputs[0].File != filepath.Join(dir, "input0.bin") {
			t.Fatalf("summary %+v", sum)
		}
		in, err = os.ReadFile(filepath.Join(dir, "input0.bin"))
		if err != nil {
			t.Fatal(err)
		}
		out, err = os.ReadFile(filepath.Join(dir, "output0.bin"))
		if err != nil {
			t.Fatal(err)
		}
		return in, out
	}
	in1, out1 := run("7")
	in2, out2 := run("7")
	in3, _ := run("8")
	if !bytes.Equal(in1, in2) || !bytes.Equal(out1, out2) {
		t.Fatal("the same seed gave different inputs or outputs")
	}
	if bytes.Equal(in1, in3) {
		t.Fatal("different seeds gave the same input")
	}
	if len(in1) != 96*96 {
		t.Fatalf("input has %d bytes", len(in1))
	}
	// int8 over its whole range: both extremes appear in 9216 values.
	lo, hi := false, false
	for _, b := range in1 {
		lo = lo || int8(b) == -128
		hi = hi || int8(b) == 127
	}
	if !lo || !hi {
		t.Error("int8 inputs do not cover the type's range")
	}

	// float inputs are in [0, 1).
	fpath, _ := loadable(t, "hello_world_float")
	dir := t.TempDir()
	if _, _, err := tflrun("run", "--model", fpath, "--output-dir", dir, "--seed", "3"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "input0.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if v := math.Float32frombits(binary.LittleEndian.Uint32(b)); !(v >= 0 && v < 1) {
		t.Errorf("float input %v not in [0,1)", v)
	}
}

// TestRunErrors: bad flags and inputs give clear errors.
func TestRunErrors(t *testing.T) {
	add, _ := loadable(t, "simple_add")
	in0 := filepath.Join(corpusDir, "simple_add", "cases")
	ents, err := os.ReadDir(in0)
	if err != nil {
		t.Fatal(err)
	}
	var good string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".input0.bin") {
			good = filepath.Join(in0, e.Name())
			break
		}
	}
	short := filepath.Join(t.TempDir(), "short.bin")
	if err := os.WriteFile(short, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"run", "--output-dir", out}, "--model is required"},
		{"no output dir", []string{"run", "--model", add}, "--output-dir is required"},
		{"missing model", []string{"run", "--model", "nope.tflite", "--output-dir", out}, "nope.tflite"},
		{"input count", []string{"run", "--model", add, "--output-dir", out, "--input", good}, "the model has 2 inputs, but 1 --input files were given"},
		{"input size", []string{"run", "--model", add, "--output-dir", out, "--input", good, "--input", short},
			"file " + short + " has 100 bytes, but the tensor (int8 [1 128 128 1]) needs 16384"},
		{"bad bench", []string{"run", "--model", add, "--output-dir", out, "--bench", "-1"}, "--bench -1: must be zero or more"},
		{"unknown flag", []string{"run", "--modle", add}, "unknown flag: --modle"},
		{"bad seed", []string{"run", "--model", add, "--output-dir", out, "--seed", "x"}, "invalid argument \"x\" for \"--seed\""},
		{"inspect arity", []string{"inspect"}, "accepts 1 arg(s), received 0"},
		{"not a model", []string{"inspect", short}, "invalid model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, err := tflrun(c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not show the error", stderr)
			}
		})
	}
}
