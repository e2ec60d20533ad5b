package tflite

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// FuzzInvoke (below) complements FuzzLoad (reader_test.go): FuzzLoad mutates
// model files, FuzzInvoke mutates the inputs of the corpus models the
// runtime supports. It runs as an ordinary test over its seed corpus (the
// golden inputs, plus any input a fuzzing run found and left in
// testdata/fuzz/FuzzInvoke/). To fuzz:
//
//	go test -run '^$' -fuzz '^FuzzInvoke$' -fuzztime 5m -parallel 1 ./tflite

// fuzzCorpusDir is the conformance corpus (see its README.md).
const fuzzCorpusDir = "../testdata/tflite"

type fuzzCase struct {
	inputs [][]byte
}

type fuzzModel struct {
	name  string
	raw   []byte
	cases []fuzzCase
}

// fuzzCorpus reads every corpus model and the inputs of its golden cases.
func fuzzCorpus(tb testing.TB) []fuzzModel {
	tb.Helper()
	ents, err := os.ReadDir(fuzzCorpusDir)
	if err != nil {
		tb.Fatalf("reading corpus: %v", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		tb.Fatalf("corpus %s is empty", fuzzCorpusDir)
	}
	var out []fuzzModel
	for _, name := range names {
		dir := filepath.Join(fuzzCorpusDir, name)
		mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			tb.Fatal(err)
		}
		var man struct {
			Model string `json:"model"`
			Cases []struct {
				Inputs []string `json:"inputs"`
			} `json:"cases"`
		}
		if err := json.Unmarshal(mb, &man); err != nil {
			tb.Fatalf("%s: manifest: %v", name, err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, man.Model))
		if err != nil {
			tb.Fatal(err)
		}
		fm := fuzzModel{name: name, raw: raw}
		for _, c := range man.Cases {
			var fc fuzzCase
			for _, f := range c.Inputs {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					tb.Fatal(err)
				}
				fc.inputs = append(fc.inputs, b)
			}
			fm.cases = append(fm.cases, fc)
		}
		out = append(out, fm)
	}
	return out
}

// fuzzLoaded holds the corpus models the runtime supports, loaded once per
// process and shared by FuzzInvoke's iterations (each builds its own
// interpreters, so nothing mutable is shared).
var fuzzLoaded struct {
	once   sync.Once
	models []*Model
	names  []string
	seeds  []fuzzModel
}

func loadFuzzModels(tb testing.TB) {
	fuzzLoaded.once.Do(func() {
		for _, fm := range fuzzCorpus(tb) {
			m, err := Load(fm.raw)
			if err != nil {
				tb.Logf("FuzzInvoke skips %s: %v", fm.name, err)
				continue
			}
			fuzzLoaded.models = append(fuzzLoaded.models, m)
			fuzzLoaded.names = append(fuzzLoaded.names, fm.name)
			fuzzLoaded.seeds = append(fuzzLoaded.seeds, fm)
		}
	})
}

// FuzzInvoke runs every supported corpus model on arbitrary input bytes
// (the fuzzed bytes fill the inputs in order; missing bytes are zero, so
// int8 models see every value and float models see NaNs, infinities and
// denormals). Invoke must not panic, and it must be deterministic:
// an interpreter that has already run other inputs (and then Reset) gives
// the same output bytes as a fresh one.
func FuzzInvoke(f *testing.F) {
	loadFuzzModels(f)
	if len(fuzzLoaded.models) == 0 {
		f.Skip("the runtime supports no corpus model yet")
	}
	for k, fm := range fuzzLoaded.seeds {
		for _, c := range fm.cases {
			f.Add(uint8(k), bytes.Join(c.inputs, nil))
		}
	}
	// One long-lived interpreter per model, reused across iterations of
	// one fuzzing worker (the fuzz function runs serially per process).
	var mu sync.Mutex
	reused := make([]*Interpreter, len(fuzzLoaded.models))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		k := int(which) % len(fuzzLoaded.models)
		m := fuzzLoaded.models[k]
		name := fuzzLoaded.names[k]
		// run returns the output bytes, or the Invoke error as a string:
		// an error is fine for some inputs (seanet_transpose_conv4 takes
		// its output shape as an input and refuses a wrong one), but it
		// must be the same error on both interpreters.
		run := func(ip *Interpreter) [][]byte {
			d := data
			for _, in := range ip.Inputs() {
				b := in.Bytes()
				n := copy(b, d)
				clear(b[n:])
				d = d[n:]
			}
			if err := ip.Invoke(); err != nil {
				return [][]byte{[]byte("error: " + err.Error())}
			}
			var outs [][]byte
			for _, o := range ip.Outputs() {
				outs = append(outs, bytes.Clone(o.Bytes()))
			}
			return outs
		}
		mu.Lock()
		defer mu.Unlock()
		if reused[k] == nil {
			ip, err := m.NewInterpreter()
			if err != nil {
				t.Fatalf("%s: NewInterpreter: %v", name, err)
			}
			reused[k] = ip
		}
		reused[k].Reset()
		got := run(reused[k])
		fresh, err := m.NewInterpreter()
		if err != nil {
			t.Fatalf("%s: NewInterpreter: %v", name, err)
		}
		want := run(fresh)
		if len(got) != len(want) {
			t.Fatalf("%s: reused interpreter gave %q, fresh one %q", name, got[0], want[0])
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: output %d differs between a reused interpreter and a fresh one on the same input", name, i)
			}
		}
	})
}
