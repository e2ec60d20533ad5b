// Command eval replays a corpus in NAB's layout (data/<category>/<name>.csv,
// labels/combined_windows.json) through the edge detector, the cloud detector
// and the hybrid of the two, and writes report.json, report.md and a few PNG
// plots into --out. See package models/eval for what each mode does and
// models/nab for the scoring.
//
// Usage:
//
//	eval [--corpus DIR] [--out DIR] [flags]
//
// By default the edge runs the stock int8 model and the cloud the stock
// float model (models/stock, through the runtime); --edge zscore and
// --cloud robust select the rule-based detectors instead, and --models DIR
// loads models from a folder (modeltool's output) instead of the embedded
// ones.
//
// Without --corpus it uses ../shared/datasets/nab (the full NAB corpus, found
// relative to the working directory or the repository root) when it exists,
// else the in-repo datasets/nab, and says which.
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
	"strings"
	"time"

	"github.com/outpost-iot/outpost/models/eval"
	"github.com/outpost-iot/outpost/models/nab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	corpus string
	out    string
	plots  int
	plot   string
	cfg    eval.Config
	hybrid string
	stock  eval.StockOptions
}

// run parses args, evaluates and writes the outputs; it returns the exit
// code: 0 done, 1 failed, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.corpus, "corpus", "", "corpus folder in NAB's layout (default: ../shared/datasets/nab if present, else datasets/nab)")
	fs.StringVar(&o.out, "out", "eval-out", "output folder")
	fs.IntVar(&o.plots, "plots", 4, "number of series to plot")
	fs.StringVar(&o.plot, "plot", strings.Join(eval.DefaultPlots, ","), "comma-separated data keys to plot first, when present")
	fs.IntVar(&o.cfg.Edge.Window, "edge-window", 0, "edge: readings in the window (default 120)")
	fs.Float64Var(&o.cfg.Edge.Low, "edge-low", 0, "edge: uncertain from this z-score (default 4)")
	fs.Float64Var(&o.cfg.Edge.High, "edge-high", 0, "edge: anomaly from this z-score (default 6)")
	fs.IntVar(&o.cfg.Edge.Cooldown, "edge-cooldown", 0, "edge: normal readings that end an incident (default 20; -1 for 0)")
	fs.IntVar(&o.cfg.Edge.Warmup, "edge-warmup", 0, "edge: readings folded before scoring (default 120; -1 for 0)")
	fs.Float64Var(&o.cfg.Edge.Clamp, "edge-clamp", 0, "edge: clamp of folded readings in deviations (default 3)")
	fs.IntVar(&o.cfg.Cloud.Window, "cloud-window", 0, "cloud: readings the streaming detector judges against (default 1000)")
	fs.Float64Var(&o.cfg.Cloud.Threshold, "cloud-threshold", 0, "cloud: robust score that is an anomaly or confirms a window (default 10)")
	fs.IntVar(&o.cfg.Cloud.Cooldown, "cloud-cooldown", 0, "cloud: normal readings that end an incident (default 20; -1 for 0)")
	fs.IntVar(&o.cfg.Cloud.Warmup, "cloud-warmup", 0, "cloud: readings folded before scoring (default 120; -1 for 0)")
	fs.StringVar(&o.stock.Edge, "edge", "stock", "edge detector: stock (the stock int8 model, models/stock) or zscore")
	fs.StringVar(&o.stock.Cloud, "cloud", "stock", "cloud detector and second stage: stock (the stock float model) or robust")
	fs.StringVar(&o.stock.Dir, "models", "", "load the stock models from this folder (NAME.json + its .tflite) instead of the embedded ones")
	fs.StringVar(&o.stock.EdgeModel, "edge-model", "", "edge model name (default ae-edge)")
	fs.StringVar(&o.stock.CloudModel, "cloud-model", "", "cloud model name (default forecast-cloud)")
	fs.IntVar(&o.stock.EdgeConfig.Cooldown, "model-cooldown", 0, "stock edge: normal readings that end an incident (default 20; -1 for 0)")
	fs.IntVar(&o.stock.EdgeConfig.Forward, "forward", 0, "stock edge: raw values an uncertain event carries (default 96)")
	fs.IntVar(&o.stock.EdgeConfig.AnomalyForward, "anomaly-forward", 0, "stock edge: raw values an anomaly event carries (default the model's window; -1: as uncertain events)")
	fs.IntVar(&o.stock.CloudConfig.Cooldown, "cloud-model-cooldown", 0, "stock cloud: normal readings that end an incident (default 20; -1 for 0)")
	fs.Float64Var(&o.stock.EdgeLow, "model-low", 0, "stock edge: override the low threshold (a likelihood score; with --plain the manifest's)")
	fs.Float64Var(&o.stock.EdgeHigh, "model-high", 0, "stock edge: override the high threshold (a likelihood score; with --plain the manifest's)")
	fs.Float64Var(&o.stock.CloudHigh, "cloud-model-high", 0, "stock cloud: override the streaming detector's anomaly threshold (a likelihood score; with --plain the manifest's high)")
	fs.Float64Var(&o.stock.ConfirmAt, "confirm-at", 0, "stock cloud: a forwarded window is confirmed from this multiple of the cloud model's low threshold (default 3)")
	fs.BoolVar(&o.stock.EdgeConfig.Residual, "residual", false, "stock edge: the likelihood stage judges the model's plain |residual| (reading units) instead of its score |residual|/scale (the configuration before the fifth session)")
	fs.BoolVar(&o.stock.CloudConfig.Residual, "cloud-residual", false, "stock cloud: as --residual")
	fs.BoolVar(&o.stock.Plain, "plain", false, "stock: score |residual|/scale against the manifests' thresholds, without the likelihood stage and the range rule (the configuration before them)")
	fs.IntVar(&o.stock.EdgeConfig.Likelihood.Window, "likelihood-window", 0, "stock edge: averaged raw scores the likelihood's Gaussian is fitted to (default as tuned)")
	fs.IntVar(&o.stock.EdgeConfig.Likelihood.Learn, "likelihood-learn", 0, "stock edge: averaged raw scores the likelihood must hold before it scores (default as tuned)")
	fs.IntVar(&o.stock.CloudConfig.Likelihood.Learn, "cloud-likelihood-learn", 0, "stock cloud: as --likelihood-learn")
	fs.IntVar(&o.stock.EdgeConfig.Likelihood.Average, "likelihood-average", 0, "stock edge: raw scores in the judged moving average (default as tuned)")
	fs.Float64Var(&o.stock.EdgeConfig.RangeMargin, "range-margin", 0, "stock edge: a reading beyond the stream's range by this fraction of it is an anomaly (default as tuned; -1: off)")
	fs.Float64Var(&o.stock.CloudConfig.RangeMargin, "cloud-range-margin", 0, "stock cloud: as --range-margin for the cloud's streaming detector")
	fs.IntVar(&o.stock.EdgeConfig.StuckRun, "stuck-run", 0, "stock edge: a reading repeating the one before it for the longest run so far, at least this many repeats, is an anomaly (default as tuned; -1: off)")
	fs.IntVar(&o.stock.CloudConfig.StuckRun, "cloud-stuck-run", 0, "stock cloud: as --stuck-run")
	fs.IntVar(&o.stock.EdgeConfig.Novelty.Bins, "novelty-bins", 0, "stock edge: bins of the novelty channel (default as tuned; -1: off)")
	fs.IntVar(&o.stock.EdgeConfig.Novelty.Length, "novelty-length", 0, "stock edge: readings in a novelty context (default 3)")
	fs.Float64Var(&o.stock.EdgeConfig.Novelty.High, "novelty-high", 0, "stock edge: the novelty channel's likelihood score that counts as high (default as tuned)")
	fs.IntVar(&o.stock.EdgeConfig.Novelty.Holdoff, "novelty-holdoff", 0, "stock edge: readings after an anomalous one during which the novelty channel does not count (default as tuned; -1: none)")
	fs.IntVar(&o.stock.CloudConfig.Novelty.Holdoff, "cloud-novelty-holdoff", 0, "stock cloud: as --novelty-holdoff")
	fs.IntVar(&o.stock.CloudConfig.Novelty.Bins, "cloud-novelty-bins", 0, "stock cloud: as --novelty-bins")
	fs.Float64Var(&o.stock.CloudConfig.Novelty.High, "cloud-novelty-high", 0, "stock cloud: as --novelty-high")
	fs.Float64Var(&o.stock.EdgeConfig.ScoreHigh, "score-high", 0, "stock edge: the model's likelihood score that counts as high (default as tuned; -1: high itself)")
	fs.Float64Var(&o.stock.CloudConfig.ScoreHigh, "cloud-score-high", 0, "stock cloud: as --score-high")
	fs.IntVar(&o.stock.EdgeConfig.Volatility.Average, "volatility-average", 0, "stock edge: steps averaged by the volatility channel (default as tuned; -1: off)")
	fs.Float64Var(&o.stock.EdgeConfig.Volatility.High, "volatility-high", 0, "stock edge: the volatility channel's likelihood score that counts as high (default as tuned)")
	fs.IntVar(&o.stock.CloudConfig.Volatility.Average, "cloud-volatility-average", 0, "stock cloud: as --volatility-average")
	fs.Float64Var(&o.stock.CloudConfig.Volatility.High, "cloud-volatility-high", 0, "stock cloud: as --volatility-high")
	fs.IntVar(&o.stock.EdgeConfig.Seasonal.Average, "seasonal-average", 0, "stock edge: differences from a day earlier averaged by the seasonal channel (default as tuned; -1: off)")
	fs.Float64Var(&o.stock.EdgeConfig.Seasonal.High, "seasonal-high", 0, "stock edge: the seasonal channel's likelihood score that counts as high (default as tuned)")
	fs.DurationVar(&o.stock.EdgeConfig.Seasonal.Period, "seasonal-period", 0, "stock edge: the seasonal channel's period (default as tuned: 24h)")
	fs.DurationVar(&o.stock.CloudConfig.Seasonal.Period, "cloud-seasonal-period", 0, "stock cloud: as --seasonal-period")
	fs.IntVar(&o.stock.CloudConfig.Seasonal.Average, "cloud-seasonal-average", 0, "stock cloud: as --seasonal-average")
	fs.Float64Var(&o.stock.CloudConfig.Seasonal.High, "cloud-seasonal-high", 0, "stock cloud: as --seasonal-high")
	fs.StringVar(&o.hybrid, "hybrid-rule", string(eval.AnomalyOrConfirmed), "hybrid: anomaly-or-confirmed or confirmed-only")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "eval: unexpected arguments %q\n", fs.Args())
		return 2
	}
	o.cfg.Hybrid = eval.HybridRule(o.hybrid)
	d, err := eval.StockDetectors(o.stock)
	if err != nil {
		fmt.Fprintf(stderr, "eval: %v\n", err)
		return 2
	}
	o.cfg.Detectors = d
	o.cfg = o.cfg.WithDefaults()
	if err := o.cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "eval: %v\n", err)
		return 2
	}
	if o.corpus == "" {
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintf(stderr, "eval: %v\n", err)
			return 1
		}
		if o.corpus = findCorpus(wd); o.corpus == "" {
			fmt.Fprintln(stderr, "eval: no corpus found (../shared/datasets/nab or datasets/nab); use --corpus DIR")
			return 2
		}
	}
	if err := evaluate(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "eval: %v\n", err)
		return 1
	}
	return 0
}

func evaluate(ctx context.Context, o options, stdout, stderr io.Writer) error {
	start := time.Now()
	c, err := nab.LoadCorpus(o.corpus)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "eval: corpus %s: %d files, %d rows, %d windows\n", o.corpus, len(c.Series), c.Rows(), c.Windows())
	if len(c.Unlabelled) > 0 {
		fmt.Fprintf(stderr, "eval: %d files are not in the labels (scored with no windows): %s\n", len(c.Unlabelled), strings.Join(c.Unlabelled, ", "))
	}
	r, err := eval.Run(ctx, c, o.cfg)
	if err != nil {
		return err
	}
	var keys []string
	if o.plot != "" {
		keys = strings.Split(o.plot, ",")
	}
	files, err := r.WriteFiles(o.out, r.PickPlots(keys, o.plots))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "corpus %s (%d files, %d windows)\n", o.corpus, r.Files, r.Windows)
	fmt.Fprintf(stdout, "%-7s %9s %9s %9s %9s %7s %7s %12s\n", "mode", "standard", "low_fp", "low_fn", "precision", "recall", "f1", "uplink")
	for _, m := range eval.Modes {
		s := r.Mode(m).Scores
		fmt.Fprintf(stdout, "%-7s %9s %9s %9s %9.3f %7.3f %7.3f %11.4f%%\n", m, num(s.NABStandard), num(s.NABLowFP), num(s.NABLowFN),
			s.Precision, s.Recall, s.F1, 100*s.UplinkRatio)
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	fmt.Fprintf(stderr, "eval: done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func num(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *p)
}

// findCorpus returns the default corpus: ../shared/datasets/nab relative to
// wd or to the repository root (the first folder at or above wd holding
// go.work), else datasets/nab under the root or wd; "" if none exists.
func findCorpus(wd string) string {
	var cands []string
	cands = append(cands, filepath.Join(wd, "..", "shared", "datasets", "nab"))
	root := ""
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			root = d
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if root != "" {
		cands = append(cands, filepath.Join(root, "..", "shared", "datasets", "nab"), filepath.Join(root, "datasets", "nab"))
	}
	cands = append(cands, filepath.Join(wd, "datasets", "nab"))
	for _, c := range cands {
		if isCorpus(c) {
			return filepath.Clean(c)
		}
	}
	return ""
}

func isCorpus(dir string) bool {
	if st, err := os.Stat(filepath.Join(dir, "data")); err != nil || !st.IsDir() {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(nab.WindowsFile)))
	return err == nil
}
