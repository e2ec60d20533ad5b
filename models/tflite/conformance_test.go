package tflite

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusDir holds the conformance corpus (a copy of
// shared/testdata/tflite; see its README.md and LICENSE-NOTICE).
const corpusDir = "../testdata/tflite"

// notYetSupported lists corpus models that this runtime cannot run yet,
// with the operator that is missing. For these the conformance test asserts
// that Load refuses the model with an error naming that operator, so the
// list has to shrink as kernels land: a model that starts loading fails
// the test until it is removed from here (and then must pass).
var notYetSupported = map[string]string{}

type manifest struct {
	Name    string `json:"name"`
	Model   string `json:"model"`
	Outputs []struct {
		Dtype string `json:"dtype"`
		Shape []int  `json:"shape"`
		Name  string `json:"name"`
	} `json:"outputs"`
	Inputs []struct {
		Dtype string `json:"dtype"`
		Shape []int  `json:"shape"`
		Name  string `json:"name"`
	} `json:"inputs"`
	Stateful bool `json:"stateful"`
	Cases    []struct {
		Name    string   `json:"name"`
		Inputs  []string `json:"inputs"`
		Outputs []string `json:"outputs"`
	} `json:"cases"`
}

func corpusModels(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatalf("reading corpus: %v", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) < 15 {
		t.Fatalf("corpus has %d models, want at least 15", len(names))
	}
	return names
}

func readManifest(t testing.TB, name string) *manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: manifest: %v", name, err)
	}
	return &m
}

func TestConformance(t *testing.T) {
	passed := map[string]string{}
	var ran []string
	for _, name := range corpusModels(t) {
		ran = append(ran, name)
		ok := t.Run(name, func(t *testing.T) {
			man := readManifest(t, name)
			m, err := LoadFile(filepath.Join(corpusDir, name, man.Model))
			if op, ok := notYetSupported[name]; ok {
				if err == nil {
					t.Fatalf("model loads now; remove it from notYetSupported (missing op was %s)", op)
				}
				if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), op) {
					t.Fatalf("Load error %q does not name the missing operator %s", err, op)
				}
				passed[name] = "not yet supported: " + op
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			ip, err := m.NewInterpreter()
			if err != nil {
				t.Fatalf("NewInterpreter: %v", err)
			}
			checkIO(t, man, ip)
			for ci, c := range man.Cases {
				// The first case runs on a fresh interpreter, the others
				// after Reset, which must give the same starting state.
				if ci > 0 {
					ip.Reset()
				}
				for i, f := range c.Inputs {
					b := readCorpusFile(t, name, f)
					in := ip.Input(i)
					if len(b) != len(in.Bytes()) {
						t.Fatalf("case %s: input %d file has %d bytes, tensor has %d", c.Name, i, len(b), len(in.Bytes()))
					}
					copy(in.Bytes(), b)
				}
				if err := ip.Invoke(); err != nil {
					t.Fatalf("case %s: Invoke: %v", c.Name, err)
				}
				for i, f := range c.Outputs {
					want := readCorpusFile(t, name, f)
					compareOutput(t, c.Name, ip.Output(i), want, 0)
				}
				if strings.HasPrefix(name, "seanet_") && c.Name == "repo" {
					// The repo's CSV golden came from desktop TFLite and
					// agrees with TFLM within ±1.
					want := readCorpusFile(t, name, "cases/repo.repo_golden.bin")
					compareOutput(t, c.Name+" (repo golden)", ip.Output(0), want, 1)
				}
			}
			if !t.Failed() {
				passed[name] = "pass"
			}
		})
		if !ok {
			passed[name] = "FAIL"
		}
	}
	var lines []string
	for _, name := range ran {
		if st, ok := passed[name]; ok {
			lines = append(lines, name+": "+st)
		}
	}
	t.Logf("conformance per model:\n  %s", strings.Join(lines, "\n  "))
}

func checkIO(t *testing.T, man *manifest, ip *Interpreter) {
	t.Helper()
	if len(ip.Inputs()) != len(man.Inputs) || len(ip.Outputs()) != len(man.Outputs) {
		t.Fatalf("model has %d inputs / %d outputs, manifest %d / %d", len(ip.Inputs()), len(ip.Outputs()), len(man.Inputs), len(man.Outputs))
	}
	for i, in := range man.Inputs {
		x := ip.Input(i)
		if x.Type().String() != in.Dtype || !sameShape(x.Shape(), in.Shape) || x.Name() != in.Name {
			t.Errorf("input %d: %s %v %q, manifest %s %v %q", i, x.Type(), x.Shape(), x.Name(), in.Dtype, in.Shape, in.Name)
		}
		if ip.InputByName(in.Name) != x {
			t.Errorf("InputByName(%q) is not input %d", in.Name, i)
		}
	}
	for i, out := range man.Outputs {
		x := ip.Output(i)
		if x.Type().String() != out.Dtype || !sameShape(x.Shape(), out.Shape) || x.Name() != out.Name {
			t.Errorf("output %d: %s %v %q, manifest %s %v %q", i, x.Type(), x.Shape(), x.Name(), out.Dtype, out.Shape, out.Name)
		}
		if ip.OutputByName(out.Name) != x {
			t.Errorf("OutputByName(%q) is not output %d", out.Name, i)
		}
	}
}

func readCorpusFile(t testing.TB, model, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, model, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compareOutput compares an output tensor with golden bytes: float32
// within 1e-5 absolute, integers within tol (0 = bit-exact).
func compareOutput(t *testing.T, cname string, out *Tensor, want []byte, tol int64) {
	t.Helper()
	got := out.Bytes()
	if len(got) != len(want) {
		t.Errorf("case %s: output has %d bytes, golden %d", cname, len(got), len(want))
		return
	}
	size := out.Type().Size()
	n := len(got) / size
	bad, first := 0, -1
	var worst float64
	for i := 0; i < n; i++ {
		g, w := got[i*size:(i+1)*size], want[i*size:(i+1)*size]
		var diff float64
		ok := true
		switch out.Type() {
		case Float32:
			gf := math.Float32frombits(binary.LittleEndian.Uint32(g))
			wf := math.Float32frombits(binary.LittleEndian.Uint32(w))
			diff = math.Abs(float64(gf) - float64(wf))
			ok = diff <= 1e-5
		default:
			d := intAt(out.Type(), g) - intAt(out.Type(), w)
			if d < 0 {
				d = -d
			}
			diff = float64(d)
			ok = d <= tol
		}
		if !ok {
			bad++
			if first < 0 {
				first = i
			}
		}
		worst = math.Max(worst, diff)
	}
	if bad > 0 {
		t.Errorf("case %s: %d of %d elements differ (first at %d, max |diff| %g)", cname, bad, n, first, worst)
	}
}

func intAt(ty TensorType, b []byte) int64 {
	switch ty {
	case Int8:
		return int64(int8(b[0]))
	case Uint8, Bool:
		return int64(b[0])
	case Int16:
		return int64(int16(binary.LittleEndian.Uint16(b)))
	case Int32:
		return int64(int32(binary.LittleEndian.Uint32(b)))
	case Int64:
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}
