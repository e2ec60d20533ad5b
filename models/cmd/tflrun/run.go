package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/spf13/cobra"
)

// runOptions are the flags of `tflrun run`.
type runOptions struct {
	model     string
	inputs    []string
	seed      int64
	outputDir string
	bench     int
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run --model MODEL [--input FILE]... [--seed N] --output-dir DIR [--bench N]",
		Short: "Run a model once on given or pseudo-random inputs, write its outputs, optionally time Invoke",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sum, err := runModel(o)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(sum)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "the .tflite model (required)")
	f.StringArrayVar(&o.inputs, "input", nil, "raw little-endian input file, one per model input, in order (default: pseudo-random inputs)")
	f.Int64Var(&o.seed, "seed", 1, "seed of the pseudo-random inputs")
	f.StringVar(&o.outputDir, "output-dir", "", "directory for output0.bin, output1.bin, ... (required; created if missing)")
	f.IntVar(&o.bench, "bench", 0, "time this many Invoke calls after a warm-up of max(10, N/10)")
	return cmd
}

// ioSummary describes one model input or output in run's JSON summary.
type ioSummary struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	Dtype string `json:"dtype"`
	// Scale and ZeroPoint are null for unquantized tensors; for
	// per-channel tensors they are channel 0's and Scales lists all.
	Scale     *float32  `json:"scale"`
	ZeroPoint *int64    `json:"zero_point"`
	Scales    []float32 `json:"scales,omitempty"`
	File      string    `json:"file"`
}

// runSummary is run's JSON output.
type runSummary struct {
	Model string `json:"model"`
	// Seed is set when the inputs were generated.
	Seed    *int64      `json:"seed,omitempty"`
	Inputs  []ioSummary `json:"inputs"`
	Outputs []ioSummary `json:"outputs"`
	// Bench fields, with --bench N.
	BenchRuns  int      `json:"bench_runs,omitempty"`
	WarmupRuns int      `json:"warmup_runs,omitempty"`
	MedianUs   *float64 `json:"median_us,omitempty"`
	P99Us      *float64 `json:"p99_us,omitempty"`
}

func describeIO(t *tflite.Tensor, file string) ioSummary {
	s := ioSummary{Name: t.Name(), Shape: t.Shape(), Dtype: t.Type().String(), File: file}
	if s.Shape == nil {
		s.Shape = []int{}
	}
	if q := t.Quantization(); q.Quantized() {
		sc, zp := q.Scales[0], q.ZeroPoints[0]
		s.Scale, s.ZeroPoint = &sc, &zp
		if len(q.Scales) > 1 {
			s.Scales = q.Scales
		}
	}
	return s
}

func runModel(o runOptions) (*runSummary, error) {
	if o.model == "" {
		return nil, errors.New("--model is required")
	}
	if o.outputDir == "" {
		return nil, errors.New("--output-dir is required")
	}
	if o.bench < 0 {
		return nil, fmt.Errorf("--bench %d: must be zero or more", o.bench)
	}
	m, err := tflite.LoadFile(o.model)
	if err != nil {
		return nil, err
	}
	ip, err := m.NewInterpreter()
	if err != nil {
		return nil, err
	}
	ins := ip.Inputs()
	if len(o.inputs) > 0 && len(o.inputs) != len(ins) {
		return nil, fmt.Errorf("the model has %d inputs, but %d --input files were given", len(ins), len(o.inputs))
	}
	if err := os.MkdirAll(o.outputDir, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	sum := &runSummary{Model: o.model}
	if len(o.inputs) == 0 {
		seed := o.seed
		sum.Seed = &seed
		rng := rand.New(rand.NewPCG(uint64(o.seed), 0x7f1_7e5))
		for i, t := range ins {
			if err := fillRandom(t, rng); err != nil {
				return nil, fmt.Errorf("input %d %q: %w", i, t.Name(), err)
			}
			path := filepath.Join(o.outputDir, fmt.Sprintf("input%d.bin", i))
			if err := os.WriteFile(path, t.Bytes(), 0o644); err != nil {
				return nil, fmt.Errorf("saving generated input %d: %w", i, err)
			}
			sum.Inputs = append(sum.Inputs, describeIO(t, path))
		}
	} else {
		for i, t := range ins {
			b, err := os.ReadFile(o.inputs[i])
			if err != nil {
				return nil, fmt.Errorf("input %d: %w", i, err)
			}
			if len(b) != len(t.Bytes()) {
				return nil, fmt.Errorf("input %d %q: file %s has %d bytes, but the tensor (%s %v) needs %d",
					i, t.Name(), o.inputs[i], len(b), t.Type(), t.Shape(), len(t.Bytes()))
			}
			copy(t.Bytes(), b)
			sum.Inputs = append(sum.Inputs, describeIO(t, o.inputs[i]))
		}
	}
	if err := ip.Invoke(); err != nil {
		return nil, err
	}
	for i, t := range ip.Outputs() {
		path := filepath.Join(o.outputDir, fmt.Sprintf("output%d.bin", i))
		if err := os.WriteFile(path, t.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("writing output %d: %w", i, err)
		}
		sum.Outputs = append(sum.Outputs, describeIO(t, path))
	}
	if o.bench > 0 {
		warm := max(10, o.bench/10)
		med, p99, err := bench(ip, warm, o.bench)
		if err != nil {
			return nil, err
		}
		sum.BenchRuns, sum.WarmupRuns = o.bench, warm
		sum.MedianUs, sum.P99Us = &med, &p99
	}
	return sum, nil
}

// bench runs warm Invokes, then n timed ones, and returns the median and
// the 99th percentile (nearest rank) in microseconds.
func bench(ip *tflite.Interpreter, warm, n int) (median, p99 float64, err error) {
	for i := 0; i < warm; i++ {
		if err := ip.Invoke(); err != nil {
			return 0, 0, err
		}
	}
	d := make([]time.Duration, n)
	for i := range d {
		t0 := time.Now()
		err := ip.Invoke()
		d[i] = time.Since(t0)
		if err != nil {
			return 0, 0, err
		}
	}
	slices.Sort(d)
	us := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1e3 }
	if n%2 == 1 {
		median = us(d[n/2])
	} else {
		median = (us(d[n/2-1]) + us(d[n/2])) / 2
	}
	rank := (99*n + 99) / 100 // ceil(0.99 n)
	p99 = us(d[rank-1])
	return median, p99, nil
}

// fillRandom fills t uniformly over its type's range (integers) or
// [0, 1) (floats).
func fillRandom(t *tflite.Tensor, rng *rand.Rand) error {
	b := t.Bytes()
	switch t.Type() {
	case tflite.Float32:
		for i := range t.Float32s() {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(rng.Float32()))
		}
	case tflite.Int8, tflite.Uint8:
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case tflite.Bool:
		for i := range b {
			b[i] = byte(rng.IntN(2))
		}
	case tflite.Int16:
		for i := 0; i+2 <= len(b); i += 2 {
			binary.LittleEndian.PutUint16(b[i:], uint16(rng.Uint32()))
		}
	case tflite.Int32:
		for i := 0; i+4 <= len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], rng.Uint32())
		}
	case tflite.Int64:
		for i := 0; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
		}
	default:
		return fmt.Errorf("cannot generate %s values", t.Type())
	}
	return nil
}
