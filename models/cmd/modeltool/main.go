// Command modeltool trains, quantises, calibrates and exports the stock
// models from a corpus in NAB's layout (see models/train), and checks
// shipped models against their manifests.
//
// Usage:
//
//	modeltool train --corpus DIR --out DIR [--kind forecast|autoencoder] [--role edge-int8|cloud-float] [flags]
//	modeltool check FILE.json...
//
// train writes NAME.tflite and NAME.json into --out and prints the training
// loss, the calibrated thresholds and, for an int8 model, its agreement with
// the float model on held-out data. The same flags give the same files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/nab"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/models/train"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = "usage: modeltool train --corpus DIR --out DIR [flags] | modeltool check FILE.json..."

// run executes a subcommand and returns the exit code: 0 done, 1 failed, 2
// bad usage.
func run(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "train":
		return trainCmd(args[1:], stdout, stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

func trainCmd(args []string, stdout, stderr io.Writer) int {
	var s train.Spec
	var corpus, out, hidden string
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&corpus, "corpus", "", "corpus folder in NAB's layout (required)")
	fs.StringVar(&out, "out", "", "output folder (required)")
	fs.StringVar(&s.Name, "name", "model", "model name (file NAME.tflite, manifest NAME.json)")
	fs.IntVar(&s.Version, "version", 1, "model version")
	fs.StringVar(&s.Kind, "kind", manifest.KindForecast, "forecast or autoencoder")
	fs.StringVar(&s.Role, "role", manifest.RoleEdgeInt8, "edge-int8 (quantised) or cloud-float")
	fs.IntVar(&s.Window, "window", 32, "readings the model reads")
	fs.StringVar(&hidden, "hidden", "32,16", "hidden layer sizes, comma-separated")
	fs.IntVar(&s.Stride, "stride", 1, "take every n-th training window")
	fs.IntVar(&s.Fit.Epochs, "epochs", 20, "training epochs")
	fs.IntVar(&s.Fit.Batch, "batch", 64, "mini-batch size")
	fs.Float64Var(&s.Fit.LR, "lr", 1e-3, "Adam step size")
	fs.Uint64Var(&s.Fit.Seed, "seed", 1, "seed of the initial weights and the shuffling")
	fs.IntVar(&s.Warmup, "warmup", 64, "residuals that set the score's scale before scoring")
	fs.StringVar(&s.Scale, "scale", manifest.ScaleMax, "score scale: max (decaying maximum of |residual|) or mean (exponential mean)")
	fs.Float64Var(&s.ScaleAlpha, "scale-alpha", 0.002, "weight of a residual in the score's running scale")
	fs.Float64Var(&s.ScaleClamp, "scale-clamp", 4, "residuals are folded into the scale clamped at this many scales")
	fs.Float64Var(&s.LowQuantile, "low-quantile", 0.995, "held-out score quantile that is the low (uncertain) threshold")
	fs.Float64Var(&s.HighQuantile, "high-quantile", 0.9995, "held-out score quantile that is the high (anomaly) threshold")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if corpus == "" || out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "modeltool train: --corpus and --out are required, and nothing else")
		return 2
	}
	for _, h := range strings.Split(hidden, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "modeltool train: --hidden %q: sizes must be positive integers\n", hidden)
			return 2
		}
		s.Hidden = append(s.Hidden, n)
	}
	s.Command = "modeltool train " + strings.Join(args, " ")
	c, err := nab.LoadCorpus(corpus)
	if err != nil {
		fmt.Fprintf(stderr, "modeltool train: %v\n", err)
		return 1
	}
	res, err := train.Build(c, s, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "modeltool train: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		fmt.Fprintf(stderr, "modeltool train: %v\n", err)
		return 1
	}
	mj, err := res.Manifest.Marshal()
	if err != nil {
		fmt.Fprintf(stderr, "modeltool train: %v\n", err)
		return 1
	}
	model := filepath.Join(out, res.Manifest.File)
	man := filepath.Join(out, res.Manifest.Name+".json")
	if err := os.WriteFile(model, res.Model, 0o644); err != nil {
		fmt.Fprintf(stderr, "modeltool train: %v\n", err)
		return 1
	}
	if err := os.WriteFile(man, mj, 0o644); err != nil {
		fmt.Fprintf(stderr, "modeltool train: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, sha256 %s) and %s\n", model, len(res.Model), res.Manifest.SHA256, man)
	return 0
}

// checkCmd verifies manifests: valid, the model file next to each has its
// sha256 and loads in the runtime.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "modeltool check: name one or more manifest files")
		return 2
	}
	code := 0
	for _, p := range args {
		m, err := manifest.ReadFile(p)
		if err == nil {
			var b []byte
			if b, err = os.ReadFile(filepath.Join(filepath.Dir(p), m.File)); err == nil {
				if err = m.Check(b); err == nil {
					_, err = tflite.Load(b)
				}
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "modeltool check: %s: %v\n", p, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s %s %s, low %.3f high %.3f)\n", p, m.ID(), m.Role, m.Kind, m.Low, m.High)
	}
	return code
}
