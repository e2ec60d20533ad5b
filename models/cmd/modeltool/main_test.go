package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const repoCorpus = "../../../datasets/nab"

// TestTrainCheck trains a small int8 model from the in-repo corpus twice
// (same files, byte for byte), prints the int8/float agreement, and checks
// the result; a tampered file fails the check.
func TestTrainCheck(t *testing.T) {
	args := func(out string) []string {
		return []string{"train", "--corpus", repoCorpus, "--out", out, "--name", "tiny", "--window", "16", "--hidden", "8",
			"--epochs", "2", "--stride", "3", "--warmup", "32", "--seed", "9"}
	}
	var outs []string
	for k := 0; k < 2; k++ {
		out := filepath.Join(t.TempDir(), "m")
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args(out), &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		if s := stdout.String(); !strings.Contains(s, "int8 vs float on") || !strings.Contains(s, "same decision") || !strings.Contains(s, "thresholds low") {
			t.Errorf("output lacks the agreement or thresholds:\n%s", s)
		}
		outs = append(outs, out)
	}
	for _, f := range []string{"tiny.tflite", "tiny.json"} {
		a, err := os.ReadFile(filepath.Join(outs[0], f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(outs[1], f))
		if !bytes.Equal(a, b) && f == "tiny.tflite" {
			t.Errorf("%s differs between two runs", f)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", filepath.Join(outs[0], "tiny.json")}, &stdout, &stderr); code != 0 {
		t.Fatalf("check: exit %d: %s", code, stderr.String())
	}
	p := filepath.Join(outs[1], "tiny.tflite")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"check", filepath.Join(outs[1], "tiny.json")}, &stdout, &stderr); code != 1 {
		t.Errorf("tampered model: exit %d", code)
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"fly"}, {"train"}, {"train", "--corpus", "x"}, {"train", "--corpus", "x", "--out", "y", "--hidden", "a"}, {"check"}, {"train-video"}, {"train-video", "--out", "x", "--hidden", "0"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// TestShippedCheck: the shipped manifests pass the check.
func TestShippedCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "../../stock/ae-edge.json", "../../stock/forecast-cloud.json", "../../stock/ae-video.json", "../../stock/ae-video-cloud.json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestTrainVideo trains a small video model on generated scenes, evaluates
// it on a tiny det.txt with injected anomalies, and checks the files,
// with the float export written as a cloud model (--cloud).
func TestTrainVideo(t *testing.T) {
	dir := t.TempDir()
	det := filepath.Join(dir, "det.txt")
	var b strings.Builder
	for f := 1; f <= 200; f++ { // two pedestrians walking right
		for k := 0; k < 2; k++ {
			fmt.Fprintf(&b, "%d,-1,%d,%d,60,160,0.9,-1,-1,-1\n", f, 100+3*f+400*k, 500+100*k)
		}
	}
	if err := os.WriteFile(det, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m")
	var stdout, stderr bytes.Buffer
	args := []string{"train-video", "--out", out, "--name", "tinyvideo", "--scenes", "2", "--held-out-scenes", "1",
		"--seconds", "300", "--epochs", "1", "--hidden", "8,4", "--mot", det, "--cloud", "tinyvideo-cloud"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"int8 vs float on", "thresholds low", "injected anomalies", "crowd", "vanish", "det.txt (200 frames", "cloud model tinyvideo-cloud@1: residual thresholds"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"check", filepath.Join(out, "tinyvideo.json"), filepath.Join(out, "tinyvideo-cloud.json")}, &stdout, &stderr); code != 0 {
		t.Fatalf("check: exit %d: %s", code, stderr.String())
	}
}
