package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectorFlags: the stock models by default, the z-score and robust
// detectors by flag, models from a folder by --models, bad names refused.
func TestDetectorFlags(t *testing.T) {
	report := func(args ...string) string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		var stdout, stderr bytes.Buffer
		args = append([]string{"--corpus", "../../../datasets/nab", "--out", out, "--plots", "0"}, args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d\n%s", args, code, stderr.String())
		}
		b, err := os.ReadFile(filepath.Join(out, "report.md"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if md := report(); !strings.Contains(md, "edge `ae-edge@1` (edge-int8 autoencoder") || !strings.Contains(md, "cloud `forecast-cloud@1` (cloud-float forecast") {
		t.Errorf("default report does not name the stock models:\n%.600s", md)
	}
	if md := report("--edge", "zscore", "--cloud", "robust"); !strings.Contains(md, "edge `zscore@1` window 120") {
		t.Errorf("zscore/robust report:\n%.600s", md)
	}
	if md := report("--edge", "zscore"); !strings.Contains(md, "edge `zscore@1` (defaults); cloud `forecast-cloud@1`") {
		t.Errorf("zscore + stock cloud report:\n%.600s", md)
	}
	if md := report("--models", "../../stock", "--edge-model", "ae-edge", "--model-high", "2.5"); !strings.Contains(md, "high 2.5") {
		t.Errorf("--models with a threshold override:\n%.600s", md)
	}
	// The tuned settings by default; --plain the manifests' thresholds;
	// channels off by -1.
	if md := report("--residual"); !strings.Contains(md, "anomaly likelihood of the 10-reading mean of |residual| against") {
		t.Errorf("--residual report:\n%.900s", md)
	}
	if md := report(); !strings.Contains(md, "anomaly likelihood of the 10-reading mean of |residual|/scale") || !strings.Contains(md, "novelty channel") || !strings.Contains(md, "out of the stream's range") {
		t.Errorf("default report does not describe the tuned detectors:\n%.900s", md)
	}
	if md := report("--plain"); strings.Contains(md, "likelihood") || !strings.Contains(md, "score |residual|/scale, low 1.104") {
		t.Errorf("--plain report:\n%.900s", md)
	}
	md := report("--novelty-bins", "-1", "--range-margin", "-1")
	edge, _, found := strings.Cut(md, "; cloud `")
	if !found || !strings.Contains(edge, "likelihood") || strings.Contains(edge, "novelty") || strings.Contains(edge, "range") {
		t.Errorf("edge channels off:\n%.900s", md)
	}
	for _, args := range [][]string{{"--edge", "lstm"}, {"--cloud", "gpt"}, {"--models", t.TempDir()}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
