package tflite

import (
	"path/filepath"
	"testing"
)

// BenchmarkInvoke runs each corpus model on its first golden case.
// allocs/op must be 0: Invoke allocates nothing.
//
//	go test ./tflite -run '^$' -bench Invoke -benchmem
func BenchmarkInvoke(b *testing.B) {
	for _, name := range corpusModels(b) {
		b.Run(name, func(b *testing.B) {
			man := readManifest(b, name)
			m, err := LoadFile(filepath.Join(corpusDir, name, man.Model))
			if err != nil {
				b.Skipf("not supported yet: %v", err)
			}
			ip, err := m.NewInterpreter()
			if err != nil {
				b.Fatal(err)
			}
			for i, f := range man.Cases[0].Inputs {
				copy(ip.Input(i).Bytes(), readCorpusFile(b, name, f))
			}
			if err := ip.Invoke(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := ip.Invoke(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInvokeAllocatesNothing checks the zero-allocation guarantee outside
// benchmarks, on every corpus model that loads.
func TestInvokeAllocatesNothing(t *testing.T) {
	for _, name := range corpusModels(t) {
		man := readManifest(t, name)
		m, err := LoadFile(filepath.Join(corpusDir, name, man.Model))
		if err != nil {
			continue // covered by TestConformance's notYetSupported list
		}
		ip, err := m.NewInterpreter()
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range man.Cases[0].Inputs {
			copy(ip.Input(i).Bytes(), readCorpusFile(t, name, f))
		}
		runs := 5
		if name == "person_detect" {
			runs = 1
		}
		if n := testing.AllocsPerRun(runs, func() { _ = ip.Invoke() }); n != 0 {
			t.Errorf("%s: Invoke allocates %v times per run", name, n)
		}
	}
}
