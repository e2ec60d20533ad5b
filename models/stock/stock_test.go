package stock

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// TestShippedFiles: every embedded manifest is valid, its model file has
// the manifest's sha256, loads in the runtime and has the input and output
// the manifest states; the embedded files are the files on disk.
func TestShippedFiles(t *testing.T) {
	for _, name := range []string{Edge, Cloud} {
		m, model, err := Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, mj, _ := Files(name)
		disk, err := os.ReadFile(m.File)
		if err != nil || string(disk) != string(raw) {
			t.Errorf("%s: embedded model differs from %s on disk (%v)", name, m.File, err)
		}
		if dm, err := manifest.ReadFile(name + ".json"); err != nil || dm.SHA256 != manifest.Sum(disk) {
			t.Errorf("%s: manifest on disk: %v", name, err)
		}
		_ = mj
		wantRole := manifest.RoleEdgeInt8
		if name == Cloud {
			wantRole = manifest.RoleCloudFloat
		}
		if m.Role != wantRole || m.Name != name {
			t.Errorf("%s: role %s name %s", name, m.Role, m.Name)
		}
		hasInt8 := false
		for _, ti := range model.Tensors() {
			if ti.Type == tflite.Int8 {
				hasInt8 = true
			}
		}
		if hasInt8 != (m.Role == manifest.RoleEdgeInt8) {
			t.Errorf("%s: int8 tensors %v for role %s", name, hasInt8, m.Role)
		}
		if _, err := NewScorer(m, model); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := Load("nope"); err == nil {
		t.Error("an unknown model loaded")
	}
}

// noisySine is a daily-like cycle with noise: n readings.
func noisySine(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := make([]float64, n)
	for i := range v {
		v[i] = 50 + 10*math.Sin(2*math.Pi*float64(i)/96) + rng.NormFloat64()
	}
	return v
}

// TestScorerFlagsSpike runs both stock models as streams over a noisy
// cycle with one spike: the spike scores above High, and normal readings
// mostly below Low.
func TestScorerFlagsSpike(t *testing.T) {
	for _, name := range []string{Edge, Cloud} {
		m, model, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewScorer(m, model)
		if err != nil {
			t.Fatal(err)
		}
		vals := noisySine(2000, 1)
		vals[1500] += 25
		var above, scored int
		for i, v := range vals {
			sc, ok, err := s.Step(v)
			if err != nil {
				t.Fatal(err)
			}
			if i == 1500 {
				if !ok || sc < m.High {
					t.Errorf("%s: spike scores %g (ok %v), high %g", name, sc, ok, m.High)
				}
				continue
			}
			if ok {
				scored++
				if sc >= m.Low && (i < 1500 || i > 1500+m.Window) {
					above++
				}
			}
		}
		if scored < 2000-m.Window-m.Warmup-2 || float64(above) > 0.02*float64(scored) {
			t.Errorf("%s: %d of %d normal readings at or above low %g", name, above, scored, m.Low)
		}
		// NaN is skipped, not folded.
		if _, ok, err := s.Step(math.NaN()); ok || err != nil {
			t.Errorf("NaN scored: %v %v", ok, err)
		}
		// ScoreWindow: a window ending in a spike scores high, a normal
		// one low; too short a window is an error.
		w := noisySine(m.Window+60, 2)
		normal, err := s.ScoreWindow(w)
		if err != nil {
			t.Fatal(err)
		}
		w[len(w)-1] += 30
		spike, _ := s.ScoreWindow(w)
		if !(spike > 3*normal) || spike < m.Low {
			t.Errorf("%s: ScoreWindow spike %g normal %g", name, spike, normal)
		}
		if _, err := s.ScoreWindow(w[:m.Window]); err == nil {
			t.Errorf("%s: a window of %d values scored", name, m.Window)
		}
	}
}

// liteRTDir is the writer's LiteRT.js installation (`make test` installs
// it); TFLWRITE_LITERT_DIR overrides it.
func liteRTDir() string {
	if d := os.Getenv("TFLWRITE_LITERT_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "tflite", "write", "testdata", "litert")
}

// TestShippedInLiteRT runs the shipped .tflite files (ae-edge,
// forecast-cloud, ae-video, ae-video-cloud) unchanged in the official runtime (LiteRT.js
// under node) on real windows and compares its
// outputs with this repo's runtime: the float model within 1e-4, the int8
// model within one output quantisation step (XNNPACK may round
// differently). Skipped when LiteRT.js or node is missing (fatal under CI).
func TestShippedInLiteRT(t *testing.T) {
	dir := liteRTDir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@litertjs", "core", "wasm")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("LiteRT.js not installed in %s; `make test` installs it", dir)
		}
		t.Skipf("LiteRT.js not installed in %s", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not found")
		}
		t.Skip("node not found")
	}
	for _, name := range []string{Edge, Cloud, Video, VideoCloud} {
		m, model, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		raw, _, _ := Files(name)
		ip, err := model.NewInterpreter()
		if err != nil {
			t.Fatal(err)
		}
		tmp := t.TempDir()
		path := filepath.Join(tmp, "model.tflite")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		vals := noisySine(m.Window+8, 3)
		// A vector model reads normalised camera feature vectors, one
		// with a crowd (person count x4) in its last buckets.
		var vecs []float32
		if m.Features > 1 {
			cam := cameraVectors(m.Window+8, 3)
			for i := m.Window + 4; i < len(cam); i++ {
				cam[i][0] *= 4
			}
			var b manifest.Baseline
			vecs = make([]float32, len(cam)*m.Features)
			for i, v := range cam {
				m.NormaliseVector(vecs[i*m.Features:(i+1)*m.Features], v, &b)
			}
		}
		var ours [][]float32
		for k := 0; k < 8; k++ {
			in := make([]float32, m.InputSize())
			if m.Features > 1 {
				copy(in, vecs[k*m.Features:])
			} else {
				manifest.Normalise(in, vals[k:k+m.Window], m.StdFloor)
			}
			copy(ip.Input(0).Float32s(), in)
			if err := ip.Invoke(); err != nil {
				t.Fatal(err)
			}
			ours = append(ours, append([]float32(nil), ip.Output(0).Float32s()...))
			cdir := filepath.Join(tmp, fmt.Sprintf("case%d", k))
			if err := os.Mkdir(cdir, 0o755); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 4*len(in))
			for i, v := range in {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			}
			if err := os.WriteFile(filepath.Join(cdir, "input0.bin"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(node, filepath.Join(dir, "run.mjs"), path, tmp).CombinedOutput(); err != nil {
			t.Fatalf("%s: LiteRT: %v\n%s", name, err, out)
		}
		tol := 1e-4
		if m.Role == manifest.RoleEdgeInt8 {
			for _, ti := range model.Tensors() {
				if ti.Name == "output_int8" {
					tol = float64(ti.Quantization.Scales[0]) * 1.001
				}
			}
		}
		for k, want := range ours {
			b, err := os.ReadFile(filepath.Join(tmp, fmt.Sprintf("case%d", k), "output0.bin"))
			if err != nil || len(b) != 4*len(want) {
				t.Fatalf("%s case %d: LiteRT output %d bytes (%v), want %d", name, k, len(b), err, 4*len(want))
			}
			for i, w := range want {
				g := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
				if d := math.Abs(float64(g - w)); d > tol+1e-5*math.Abs(float64(w)) {
					t.Errorf("%s case %d output %d: LiteRT %g, ours %g", name, k, i, g, w)
				}
			}
		}
	}
}
