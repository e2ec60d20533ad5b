package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJudge: the probation's verdicts on what a pushed profile's pipeline
// has done, against the baseline of the one before it.
func TestJudge(t *testing.T) {
	c := &Controller{cfg: Config{Grace: 10 * time.Second, MaxWait: 100 * time.Second, RateFactor: 3, RateFloor: 0.01}}
	busy := Baseline{Readings: 1000, DecodeErrors: 10, Uptime: 100 * time.Second} // 1% errors, 10 readings/s
	quiet := Baseline{Readings: 2, Uptime: time.Hour}
	for _, tc := range []struct {
		name   string
		ran    time.Duration
		r, e   uint64
		base   Baseline
		ok     bool
		reason string // "" while it goes on, when !ok
	}{
		{"healthy, grace not over", 5 * time.Second, 50, 0, busy, false, ""},
		{"healthy after the grace", 11 * time.Second, 110, 1, busy, true, ""},
		{"errors within 3x before + 0.01", 11 * time.Second, 100, 3, busy, true, ""},
		{"errors above the bound", 11 * time.Second, 100, 10, busy, false, "decode-error rate 0.0909"},
		{"errors above the bound, in the grace", 1 * time.Second, 0, 5, busy, false, ""},
		{"only errors after the grace", 11 * time.Second, 0, 5, busy, false, "decode-error rate 1.0000"},
		{"nothing yet", 50 * time.Second, 0, 0, busy, false, ""},
		{"nothing for MaxWait, the one before was busy", 100 * time.Second, 0, 0, busy, false, "no reading judged in 1m40s"},
		{"nothing for MaxWait, the one before was quiet", 100 * time.Second, 0, 0, quiet, true, ""},
		{"nothing for MaxWait, no baseline", 100 * time.Second, 0, 0, Baseline{}, true, ""},
		{"no baseline, clean", 11 * time.Second, 5, 0, Baseline{}, true, ""},
		{"no baseline, 1 error in 5", 11 * time.Second, 4, 1, Baseline{}, false, "above 0.0100"},
	} {
		ok, why := c.judge(tc.ran, tc.r, tc.e, tc.base)
		if ok != tc.ok || (tc.reason == "") != (why == "") || !strings.Contains(why, tc.reason) {
			t.Errorf("%s: ok %v why %q, want ok %v why containing %q", tc.name, ok, why, tc.ok, tc.reason)
		}
	}
}

// TestDropConfigGoesBack: a profile on probation that does not run is
// replaced by the one applied before it (kept as previous.yaml); without
// one, by the installed profile.
func TestDropConfigGoesBack(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := writeFile(filepath.Join(dir, name), []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	write("profile.yaml", "name: x\nrevision: 3\n")
	write("previous.yaml", "name: x\nrevision: 2\n")
	if err := writeApplied(dir, applied{Config: "x.3", Pending: true, Previous: "x.2", Baseline: &Baseline{Readings: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := DropConfig(dir, errors.New("port in use")); err != nil {
		t.Fatal(err)
	}
	text, key, ok, err := LoadConfig(dir)
	if !ok || err != nil || key != "x.2" || string(text) != "name: x\nrevision: 2\n" {
		t.Fatalf("after dropping x.3: %q %q %v %v", text, key, ok, err)
	}
	st, _ := readApplied(dir)
	if st.Refused != "x.3" || st.Why != "port in use" || st.Pending || st.Previous != "" || st.Baseline != nil {
		t.Fatalf("state after dropping x.3: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "previous.yaml")); !os.IsNotExist(err) {
		t.Fatalf("previous.yaml left: %v", err)
	}
	// x.2 was applied (not on probation): dropping it goes to the
	// installed profile.
	if err := DropConfig(dir, errors.New("gone")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := LoadConfig(dir); ok || err != nil {
		t.Fatalf("after dropping x.2: ok %v err %v", ok, err)
	}
}

// TestStartConfigCrashLoop: a profile on probation is started
// ProbationStarts times; a clean stop in between resets the count; the
// next start after ProbationStarts starts without one refuses it and
// returns the profile before it (previous.yaml), not the installed one.
func TestStartConfigCrashLoop(t *testing.T) {
	dir := t.TempDir()
	st := applied{Config: "plant.3", Pending: true, Previous: "plant.2", Baseline: &Baseline{Readings: 5}}
	if err := writeApplied(dir, st); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"profile.yaml": "name: plant\nrevision: 3\n", "previous.yaml": "name: plant\nrevision: 2\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startOK := func(want int) {
		t.Helper()
		text, key, ok, refused, _, err := StartConfig(dir)
		if err != nil || !ok || key != "plant.3" || refused != "" || !strings.Contains(string(text), "revision: 3") {
			t.Fatalf("start %d: key %q ok %v refused %q text %q err %v", want, key, ok, refused, text, err)
		}
		if got, _ := readApplied(dir); got.Starts != want {
			t.Fatalf("start %d: %d starts stored", want, got.Starts)
		}
	}
	startOK(1)
	startOK(2)
	if err := StoppedCleanly(dir); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= ProbationStarts; i++ {
		startOK(i)
	}
	text, key, ok, refused, why, err := StartConfig(dir)
	if err != nil || !ok || key != "plant.2" || refused != "plant.3" || !strings.Contains(string(text), "revision: 2") {
		t.Fatalf("start after %d crashes: key %q ok %v refused %q text %q err %v", ProbationStarts, key, ok, refused, text, err)
	}
	if !strings.Contains(why, "3 times") {
		t.Fatalf("why: %q", why)
	}
	got, err := readApplied(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != "plant.2" || got.Pending || got.Starts != 0 || got.Refused != "plant.3" || got.Reason != ReasonUnhealthy {
		t.Fatalf("state after the refusal: %+v", got)
	}
	// The profile before it is not on probation: its starts are not counted.
	if _, key, _, refused, _, err := StartConfig(dir); err != nil || key != "plant.2" || refused != "" {
		t.Fatalf("next start: key %q refused %q err %v", key, refused, err)
	}
	if got, _ := readApplied(dir); got.Starts != 0 {
		t.Fatalf("%d starts counted for an applied profile", got.Starts)
	}
}
