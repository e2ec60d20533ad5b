// Command modeltool trains, quantises, calibrates and exports the stock
// models from a corpus in NAB's layout (see models/train), and checks
// shipped models against their manifests.
//
// Usage:
//
//	modeltool train --corpus DIR --out DIR [--kind forecast|autoencoder] [--role edge-int8|cloud-float] [flags]
//	modeltool train-video --out DIR [flags]
//	modeltool check FILE.json...
//
// train-video trains the video-feature model (an int8 autoencoder of a
// camera's per-bucket detection features, models/train BuildVideo) on
// generated scenes, and prints, besides what train prints, how it scores
// anomalies injected into further generated scenes; with --mot FILE... it
// also scores real MOT det.txt files (read, never copied) with injected
// anomalies.
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

const usage = "usage: modeltool train --corpus DIR --out DIR [flags] | modeltool train-video --out DIR [flags] | modeltool check FILE.json..."

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
	case "train-video":
		return trainVideoCmd(args[1:], stdout, stderr)
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

func trainVideoCmd(args []string, stdout, stderr io.Writer) int {
	var s train.VideoSpec
	var out, hidden, cloud string
	var mot multiFlag
	fs := flag.NewFlagSet("train-video", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&out, "out", "", "output folder (required)")
	fs.StringVar(&s.Name, "name", "ae-video", "model name (file NAME.tflite, manifest NAME.json)")
	fs.IntVar(&s.Version, "version", 1, "model version")
	fs.IntVar(&s.Window, "window", 8, "buckets (feature vectors) the model reads")
	fs.StringVar(&hidden, "hidden", "24,8", "encoder hidden layer sizes, comma-separated (the decoder mirrors them)")
	fs.IntVar(&s.TrainScenes, "scenes", 32, "generated training scenes")
	fs.IntVar(&s.HeldOutScenes, "held-out-scenes", 8, "generated held-out scenes (thresholds, int8 agreement)")
	fs.Float64Var(&s.Seconds, "seconds", 1200, "length of each generated scene, seconds")
	fs.Float64Var(&s.BaselineAlpha, "baseline-alpha", 0.02, "weight of a bucket in a camera's per-feature running mean")
	fs.Float64Var(&s.VarAlpha, "var-alpha", 0.01, "weight of a bucket in a camera's per-feature running variance")
	fs.Float64Var(&s.StdFloor, "std-floor", 0.25, "a camera's running std is at least this fraction of the feature's pooled std")
	fs.Float64Var(&s.CountClip, "count-clip", 6, "normalised counts are clipped to ± this")
	fs.Float64Var(&s.OtherClip, "other-clip", 3, "normalised confidence, area and motion are clipped to ± this")
	fs.IntVar(&s.ResidualLast, "residual-last", 1, "the residual is the reconstruction error of the newest N buckets (-1: the whole window)")
	fs.IntVar(&s.Fit.Epochs, "epochs", 20, "training epochs")
	fs.IntVar(&s.Fit.Batch, "batch", 64, "mini-batch size")
	fs.Float64Var(&s.Fit.LR, "lr", 1e-3, "Adam step size")
	fs.Uint64Var(&s.Fit.Seed, "seed", 1, "seed of the scenes, the initial weights and the shuffling")
	fs.IntVar(&s.Warmup, "warmup", 60, "residuals that set the score's scale before scoring")
	fs.StringVar(&s.Scale, "scale", manifest.ScaleMax, "score scale: max or mean")
	fs.Float64Var(&s.ScaleAlpha, "scale-alpha", 0.002, "weight of a residual in the score's running scale")
	fs.Float64Var(&s.ScaleClamp, "scale-clamp", 4, "residuals are folded into the scale clamped at this many scales")
	fs.Float64Var(&s.LowQuantile, "low-quantile", 0.995, "held-out score quantile that is the low (uncertain) threshold")
	fs.Float64Var(&s.HighQuantile, "high-quantile", 0.9995, "held-out score quantile that is the high (anomaly) threshold")
	fs.Var(&mot, "mot", "a MOTChallenge det.txt to evaluate on with injected anomalies (repeatable; read only)")
	fs.StringVar(&cloud, "cloud", "", "also write the float32 export of the same network as the cloud-float model NAME (CLOUD.tflite, CLOUD.json; thresholds for the cloud's second stage)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "modeltool train-video: --out is required, and nothing else")
		return 2
	}
	for _, h := range strings.Split(hidden, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "modeltool train-video: --hidden %q: sizes must be positive integers\n", hidden)
			return 2
		}
		s.Hidden = append(s.Hidden, n)
	}
	s.Command = "modeltool train-video " + strings.Join(args, " ")
	res, err := train.BuildVideo(s, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "modeltool train-video: %v\n", err)
		return 1
	}
	model, err := tflite.Load(res.Model)
	if err != nil {
		fmt.Fprintf(stderr, "modeltool train-video: %v\n", err)
		return 1
	}
	seeds := make([]uint64, 20)
	for i := range seeds {
		seeds[i] = train.HeldOutSceneSeed(s.WithDefaults().Fit.Seed, 1000+i)
	}
	ds, err := train.EvalVideo(res.Manifest, model, s, seeds, train.StandardVideoAnomalies(600), 900)
	if err != nil {
		fmt.Fprintf(stderr, "modeltool train-video: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "injected anomalies in 20 further generated scenes (15 min each, anomaly at 10 min):")
	train.SummariseVideo(stdout, ds)
	for _, p := range mot {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(stderr, "modeltool train-video: %v\n", err)
			return 1
		}
		frames, err := train.ReadMOT(f, "person")
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "modeltool train-video: %s: %v\n", p, err)
			return 1
		}
		ds, err := train.EvalMOT(res.Manifest, model, s, frames)
		if err != nil {
			fmt.Fprintf(stderr, "modeltool train-video: %s: %v\n", p, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s (%d frames, looped to 15 min at 25 fps; anomalies injected at 10 min):\n", p, len(frames))
		train.SummariseVideo(stdout, ds)
	}
	if cloud != "" {
		cm, err := train.BuildVideoCloud(res, s, cloud)
		if err != nil {
			fmt.Fprintf(stderr, "modeltool train-video: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "cloud model %s: residual thresholds low %.4f high %.4f\n", cm.ID(), cm.Low, cm.High)
		if code := writeModel(out, cm, res.Float, stdout, stderr); code != 0 {
			return code
		}
	}
	return writeModel(out, res.Manifest, res.Model, stdout, stderr)
}

// writeModel writes a model and its manifest into dir.
func writeModel(dir string, m *manifest.Manifest, model []byte, stdout, stderr io.Writer) int {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "modeltool: %v\n", err)
		return 1
	}
	mj, err := m.Marshal()
	if err != nil {
		fmt.Fprintf(stderr, "modeltool: %v\n", err)
		return 1
	}
	path := filepath.Join(dir, m.File)
	man := filepath.Join(dir, m.Name+".json")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		fmt.Fprintf(stderr, "modeltool: %v\n", err)
		return 1
	}
	if err := os.WriteFile(man, mj, 0o644); err != nil {
		fmt.Fprintf(stderr, "modeltool: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, sha256 %s) and %s\n", path, len(model), m.SHA256, man)
	return 0
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
