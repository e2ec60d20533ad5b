package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/shared/testenv"
)

func TestHelpDocumentsFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, &out); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, f := range []string{"-mqtt", "-camera", "-topic", "-fps", "-fast", "-frames", "-loop", "-seed", "-burst-at", "-qos"} {
		if !strings.Contains(out.String(), "  "+f+" ") && !strings.Contains(out.String(), "  "+f+"\n") {
			t.Errorf("-h does not document %s", f)
		}
	}
	if !strings.Contains(out.String(), "no frame rate") {
		t.Error("-h does not say MOT15 has no frame rate")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--qos", "2"}, {"--fps", "0"}, {"--width", "10"}, {"--start", "noon"}, {"--topic", "a/+"},
		{"missing-det.txt"}, {"a", "b"}, {"--nope"},
	} {
		var out bytes.Buffer
		if code := run(args, &out); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, out.String())
		}
	}
}

// TestReplayFile replays a small det.txt (made up here, not MOT data) to a
// real mosquitto.
func TestReplayFile(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	path := filepath.Join(t.TempDir(), "det.txt")
	os.WriteFile(path, []byte("1,-1,10,20,30,60,0.9,-1,-1,-1\n3,-1,12,20,30,60,0.8,-1,-1,-1\n"), 0o644)
	var out bytes.Buffer
	if code := run([]string{"--mqtt", mq.URL(), "--fps", "200", path}, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), `"frames":3`) {
		t.Fatalf("summary: %s", out.String())
	}
}
