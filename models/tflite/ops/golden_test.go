package ops

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// These tests check single-op corpus models whose parameters are all in the
// manifest (no weights), bit-exactly against TFLM's outputs.

// corpusDir finds the conformance corpus: $TFLITE_CORPUS, the module's
// testdata/tflite (where the runtime's conformance test reads it), or the
// shared read-only copy. A missing corpus fails the test.
func corpusDir(t *testing.T) string {
	if d := os.Getenv("TFLITE_CORPUS"); d != "" {
		return d
	}
	for _, d := range []string{
		filepath.Join("..", "..", "testdata", "tflite"),
		filepath.Join("..", "..", "..", "shared", "testdata", "tflite"),
		"/work/shared/testdata/tflite",
	} {
		if _, err := os.Stat(filepath.Join(d, "simple_add", "manifest.json")); err == nil {
			return d
		}
	}
	t.Fatal("TFLite corpus not found; set TFLITE_CORPUS to shared/testdata/tflite")
	return ""
}

type manifestTensor struct {
	Shape        []int `json:"shape"`
	Quantization *struct {
		Bits      string `json:"scale_float32_bits"`
		ZeroPoint int    `json:"zero_point"`
	} `json:"quantization"`
}

type manifest struct {
	Inputs  []manifestTensor `json:"inputs"`
	Outputs []manifestTensor `json:"outputs"`
	Cases   []struct {
		Inputs  []string `json:"inputs"`
		Outputs []string `json:"outputs"`
	} `json:"cases"`
}

func (m manifestTensor) scale(t *testing.T) float32 {
	v, err := strconv.ParseUint(m.Quantization.Bits, 0, 32)
	if err != nil {
		t.Fatal(err)
	}
	return math.Float32frombits(uint32(v))
}

func loadManifest(t *testing.T, model string) (manifest, string) {
	dir := filepath.Join(corpusDir(t), model)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("no cases")
	}
	return m, dir
}

func readBin(t *testing.T, dir, name string) []byte {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		// Case file names may be relative to the model dir or to cases/.
		b, err = os.ReadFile(filepath.Join(dir, "cases", name))
		if err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func asInt8(b []byte) []int8 {
	r := make([]int8, len(b))
	for i, v := range b {
		r[i] = int8(v)
	}
	return r
}

func asInt16(b []byte) []int16 {
	r := make([]int16, len(b)/2)
	for i := range r {
		r[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return r
}

func asInt32(b []byte) []int32 {
	r := make([]int32, len(b)/4)
	for i := range r {
		r[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return r
}

func binaryGolden(t *testing.T, model string, op BinaryOp, bits int) {
	m, dir := loadManifest(t, model)
	q := &BinaryQuant{
		In1Scale: m.Inputs[0].scale(t), In1ZeroPoint: m.Inputs[0].Quantization.ZeroPoint,
		In2Scale: m.Inputs[1].scale(t), In2ZeroPoint: m.Inputs[1].Quantization.ZeroPoint,
		OutScale: m.Outputs[0].scale(t), OutZeroPoint: m.Outputs[0].Quantization.ZeroPoint,
		ActBits: bits,
	}
	p, err := PrepareBinary(op, ActNone, m.Inputs[0].Shape, m.Inputs[1].Shape, m.Outputs[0].Shape, q)
	if err != nil {
		t.Fatal(err)
	}
	for ci, c := range m.Cases {
		a, b := readBin(t, dir, c.Inputs[0]), readBin(t, dir, c.Inputs[1])
		want := readBin(t, dir, c.Outputs[0])
		mism := 0
		if bits == 8 {
			got := make([]int8, p.N)
			BinaryInt8(p, asInt8(a), asInt8(b), got)
			for i, w := range asInt8(want) {
				if got[i] != w {
					mism++
				}
			}
		} else {
			got := make([]int16, p.N)
			BinaryInt16(p, asInt16(a), asInt16(b), got)
			for i, w := range asInt16(want) {
				if got[i] != w {
					mism++
				}
			}
		}
		if mism != 0 {
			t.Errorf("%s case %d: %d of %d elements differ", model, ci, mism, p.N)
		}
	}
}

func TestGoldenSimpleAdd(t *testing.T) { binaryGolden(t, "simple_add", OpAdd, 8) }
func TestGoldenSeanetAdd(t *testing.T) { binaryGolden(t, "seanet_add0", OpAdd, 16) }
func TestGoldenSeanetSub(t *testing.T) { binaryGolden(t, "seanet_sub0", OpSub, 16) }

func TestGoldenSeanetQuantize(t *testing.T) {
	m, dir := loadManifest(t, "seanet_quantize0")
	in, out := m.Inputs[0], m.Outputs[0]
	p, err := PrepareQuantize(in.scale(t), in.Quantization.ZeroPoint, out.scale(t), out.Quantization.ZeroPoint, 16)
	if err != nil {
		t.Fatal(err)
	}
	for ci, c := range m.Cases {
		x := asInt32(readBin(t, dir, c.Inputs[0]))
		want := asInt16(readBin(t, dir, c.Outputs[0]))
		got := make([]int16, len(x))
		Requantize(p, x, got)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("case %d element %d: got %d want %d (input %d)", ci, i, got[i], want[i], x[i])
			}
		}
	}
}
