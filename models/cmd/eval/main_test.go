package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunWritesReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--corpus", "../../../datasets/nab", "--out", out, "--plots", "2",
		"--plot", "realKnownCause/nyc_taxi.csv"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "corpus ../../../datasets/nab: 7 files") {
		t.Errorf("stderr does not name the corpus: %s", stderr.String())
	}
	for _, m := range []string{"edge", "cloud", "hybrid"} {
		if !strings.Contains(stdout.String(), "\n"+m+" ") {
			t.Errorf("stdout has no %s line:\n%s", m, stdout.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Files int `json:"files"`
		Edge  struct {
			NABStandard *float64 `json:"nab_standard"`
			UplinkRatio float64  `json:"uplink_ratio"`
			Files       []any    `json:"files"`
		} `json:"edge"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Files != 7 || rep.Edge.NABStandard == nil || len(rep.Edge.Files) != 7 || rep.Edge.UplinkRatio <= 0 {
		t.Errorf("report.json: %+v", rep)
	}
	pngs, _ := filepath.Glob(filepath.Join(out, "*.png"))
	// nyc_taxi as asked, then the first other file with windows (Glob sorts).
	if len(pngs) != 2 || filepath.Base(pngs[0]) != "plot-realKnownCause-ambient_temperature_system_failure.png" ||
		filepath.Base(pngs[1]) != "plot-realKnownCause-nyc_taxi.png" {
		t.Errorf("plots %v", pngs)
	}
	for _, p := range pngs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Error(err)
	}
}

func TestRunBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--nope"},
		{"extra"},
		{"--edge-low", "7", "--edge-high", "6"},
		{"--hybrid-rule", "maybe"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--corpus", t.TempDir(), "--out", t.TempDir()}, &stdout, &stderr); code != 1 {
		t.Errorf("empty corpus: exit %d, want 1", code)
	}
}

func TestFindCorpus(t *testing.T) {
	mk := func(dir string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "labels"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "labels", "combined_windows.json"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := t.TempDir()
	root := filepath.Join(base, "main")
	wd := filepath.Join(root, "models")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.work"), []byte("go 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := findCorpus(wd); got != "" {
		t.Errorf("nothing there: got %q", got)
	}
	mk(filepath.Join(root, "datasets", "nab"))
	if got := findCorpus(wd); got != filepath.Join(root, "datasets", "nab") {
		t.Errorf("in-repo corpus: got %q", got)
	}
	mk(filepath.Join(base, "shared", "datasets", "nab"))
	if got := findCorpus(wd); got != filepath.Join(base, "shared", "datasets", "nab") {
		t.Errorf("shared corpus from models/: got %q", got)
	}
	if got := findCorpus(root); got != filepath.Join(base, "shared", "datasets", "nab") {
		t.Errorf("shared corpus from the root: got %q", got)
	}
}
