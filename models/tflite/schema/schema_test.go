package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
)

func TestDecodeCorpus(t *testing.T) {
	dirs, err := filepath.Glob("../../testdata/tflite/*/model.tflite")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no corpus models: %v", err)
	}
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(m.Subgraphs) != 1 || len(m.Subgraphs[0].Operators) == 0 || len(m.Buffers) == 0 {
			t.Fatalf("%s: %d subgraphs, %d buffers", p, len(m.Subgraphs), len(m.Buffers))
		}
		for _, oc := range m.OperatorCodes {
			if oc.Builtin() < 0 || oc.Version < 1 {
				t.Errorf("%s: operator code %+v", p, oc)
			}
		}
	}
}

// TestAmplification: a small file whose tensors vector repeats one offset
// many times, each tensor carrying a large quantization table, must not
// make Decode allocate gigabytes.
func TestAmplification(t *testing.T) {
	b := flatbuffers.NewBuilder(1 << 20)
	const nScales, nRefs = 20000, 20000
	b.StartVector(4, nScales, 4)
	for i := 0; i < nScales; i++ {
		b.PrependFloat32(1)
	}
	scales := b.EndVector(nScales)
	b.StartObject(7)
	b.PrependUOffsetTSlot(2, scales, 0)
	q := b.EndObject()
	b.StartObject(8)
	b.PrependUOffsetTSlot(4, q, 0)
	tensor := b.EndObject()
	b.StartVector(4, nRefs, 4)
	for i := 0; i < nRefs; i++ {
		b.PrependUOffsetT(tensor)
	}
	tensors := b.EndVector(nRefs)
	b.StartObject(5)
	b.PrependUOffsetTSlot(0, tensors, 0)
	sg := b.EndObject()
	b.StartVector(4, 1, 4)
	b.PrependUOffsetT(sg)
	sgs := b.EndVector(1)
	b.StartObject(5)
	b.PrependUOffsetTSlot(2, sgs, 0)
	root := b.EndObject()
	b.FinishWithFileIdentifier(root, []byte("TFL3"))
	buf := b.FinishedBytes()
	// Decoding it fully would take nRefs*nScales*4 = 1.6 GB.
	_, err := Decode(buf)
	if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "more than the file's size justifies") {
		t.Fatalf("Decode of a %d-byte amplifying file: %v", len(buf), err)
	}
}

func TestTableGettersBounds(t *testing.T) {
	// The zero Table returns defaults and never fails.
	var z Table
	if v, err := z.Int32(3, 7); v != 7 || err != nil {
		t.Fatalf("zero Table Int32 = %d, %v", v, err)
	}
	if v, err := z.Float32(0, 1.5); v != 1.5 || err != nil {
		t.Fatalf("zero Table Float32 = %v, %v", v, err)
	}
	if v, err := z.Int32s(0, nil); v != nil || err != nil {
		t.Fatalf("zero Table Int32s = %v, %v", v, err)
	}
}
