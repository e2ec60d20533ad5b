package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/nab"
)

const (
	handCorpus = "../testdata/nab/corpus" // hand-made: see models/nab/corpus_test.go
	repoCorpus = "../../datasets/nab"     // the 7 realKnownCause files shipped in the repo
)

func loadCorpus(t *testing.T, dir string) *nab.Corpus {
	t.Helper()
	c, err := nab.LoadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handConfig: a 10-reading edge window after 5 readings of warm-up.
var handConfig = Config{Edge: ZScoreConfig{Window: 10, Warmup: 5}, Cloud: RobustConfig{Warmup: 5}}

// TestReplayHandMade: demo/steps.csv is 40 readings of 1 with 10 at rows 30
// and 31, one window at rows 27..33 (probation: 6 rows). Every mode detects
// row 30 once (row 31 belongs to the same incident); the multi-column and
// the unlabelled files give nothing.
func TestReplayHandMade(t *testing.T) {
	c := loadCorpus(t, handCorpus)
	r, err := Run(context.Background(), c, handConfig)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]*Replay{}
	for _, rp := range r.Replays {
		byKey[rp.Series.Key] = rp
	}
	steps := byKey["demo/steps.csv"]
	for _, m := range Modes {
		if got := steps.Detections[m]; !reflect.DeepEqual(got, []int{30}) {
			t.Errorf("%s detects %v, want [30]", m, got)
		}
		for _, k := range []string{"demo/multi.csv", "other/unlabelled.csv"} {
			if got := byKey[k].Detections[m]; len(got) != 0 {
				t.Errorf("%s detects %v in %s", m, got, k)
			}
		}
	}
	// Raw bytes: {"ts":"2020-01-01T00:00:00Z","value":1} is 39 bytes, with 10 40.
	if steps.RawBytes != 38*39+2*40 {
		t.Errorf("raw bytes %d, want %d", steps.RawBytes, 38*39+2*40)
	}
	// The edge's one event, as the agent would encode a wire.Event.
	score, _ := json.Marshal(finite(1e9 * 9)) // |10 - 1| / (1e-9 · max(1, 1))
	want := fmt.Sprintf(`{"agent":"eval","seq":1,"stream":"demo/steps","ts":"2020-01-01T02:30:00Z","kind":"anomaly","score":%s,`+
		`"low":4,"high":6,"value":10,"model":"zscore@1","window":[1,1,1,1,1,1,1,1,1,10],"created":"2020-01-01T02:30:00Z"}`, score)
	if steps.Uplink["edge"] != int64(len(want)) || steps.Uplink["hybrid"] != int64(len(want)) {
		t.Errorf("uplink edge %d hybrid %d, want %d (%s)", steps.Uplink["edge"], steps.Uplink["hybrid"], len(want), want)
	}
	if steps.Uplink["cloud"] != steps.RawBytes || steps.Events["edge"] != 1 || steps.Events["cloud"] != 40 {
		t.Errorf("cloud uplink %d, events %v", steps.Uplink["cloud"], steps.Events)
	}
	// Scores: one detection at row 30 of window 27..33.
	w := nab.Window{Start: 27, End: 33}
	for _, m := range Modes {
		mr := r.Mode(m)
		if got, want := mr.RawStandard, nab.InWindowValue(30, w, nab.Standard); !near(got, want, 1e-12) {
			t.Errorf("%s raw standard %g, want %g", m, got, want)
		}
		if *mr.NABStandard != nab.Normalize(mr.RawStandard, 1, nab.Standard) || mr.Precision != 1 || mr.Recall != 1 || mr.F1 != 1 {
			t.Errorf("%s: %+v", m, mr.Scores)
		}
	}
	if r.Forwarded["anomaly"] != 1 || r.Confirmed["anomaly"] != 1 || r.Forwarded["uncertain"] != 0 {
		t.Errorf("forwarded %v confirmed %v", r.Forwarded, r.Confirmed)
	}
}

// TestEventFieldsMatchWire pins the JSON names of the local event struct to
// those of shared/wire.Event (which models may not import).
func TestEventFieldsMatchWire(t *testing.T) {
	b, err := json.Marshal(event{Window: []float64{1}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"agent", "seq", "stream", "ts", "kind", "score", "low", "high", "value", "model", "window", "created"}
	if len(m) != len(want) {
		t.Fatalf("fields %v, want %v", m, want)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
}

// TestRunRepoCorpus replays the 7 in-repo NAB files with the default
// configuration and checks the report's accounting.
func TestRunRepoCorpus(t *testing.T) {
	c := loadCorpus(t, repoCorpus)
	r, err := Run(context.Background(), c, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Files != 7 || r.Windows != 19 || len(r.Edge.Files) != 7 {
		t.Fatalf("files %d windows %d", r.Files, r.Windows)
	}
	for _, m := range Modes {
		mr := r.Mode(m)
		var raw float64
		var windows, detected int
		for _, f := range mr.Files {
			raw += f.RawStandard
			windows += f.Windows
			detected += f.WindowsDetected
		}
		if !near(raw, mr.RawStandard, 1e-9) || windows != 19 || detected != mr.WindowsDetected {
			t.Errorf("%s: files sum to raw %g windows %d detected %d; overall %g %d %d", m, raw, windows, detected, mr.RawStandard, mr.Windows, mr.WindowsDetected)
		}
		if got := nab.Normalize(mr.RawLowFN, 19, nab.LowFN); *mr.NABLowFN != got {
			t.Errorf("%s: low FN %g, want %g", m, *mr.NABLowFN, got)
		}
		if mr.WindowsDetected == 0 {
			t.Errorf("%s detects no window at all", m)
		}
	}
	if r.Cloud.UplinkRatio != 1 || r.Edge.UplinkBytes > r.Hybrid.UplinkBytes || r.Edge.UplinkRatio <= 0 {
		t.Errorf("uplink ratios: edge %g cloud %g hybrid %g", r.Edge.UplinkRatio, r.Cloud.UplinkRatio, r.Hybrid.UplinkRatio)
	}
	// With the default rule every edge anomaly is a hybrid detection.
	for i, rp := range r.Replays {
		hyb := map[int]bool{}
		for _, d := range rp.Detections["hybrid"] {
			hyb[d] = true
		}
		for _, d := range rp.Detections["edge"] {
			if !hyb[d] {
				t.Errorf("%s: edge detection at row %d is not a hybrid one", rp.Series.Key, d)
			}
		}
		if r.Edge.Files[i].Events != len(rp.Detections["edge"]) {
			t.Errorf("%s: %d edge events for %d detections", rp.Series.Key, r.Edge.Files[i].Events, len(rp.Detections["edge"]))
		}
	}

	// Outputs: report.json with the required keys, report.md, plots.
	dir := t.TempDir()
	stale := filepath.Join(dir, "plot-stale.png")
	if err := os.WriteFile(stale, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := r.WriteFiles(dir, r.PickPlots(DefaultPlots, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 6 {
		t.Errorf("wrote %v", files)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a plot of an earlier run is still there: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for _, m := range Modes {
		var mode map[string]any
		if err := json.Unmarshal(top[m], &mode); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		for _, k := range []string{"nab_standard", "nab_low_fp", "nab_low_fn", "precision", "recall", "f1", "uplink_ratio", "files"} {
			if _, ok := mode[k]; !ok {
				t.Errorf("report.json: %s.%s missing", m, k)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !bytes.Contains(md, []byte("| hybrid |")) || !bytes.Contains(md, []byte("realKnownCause/nyc_taxi.csv")) {
		t.Errorf("report.md: %v\n%s", err, md)
	}
}

func TestPickPlots(t *testing.T) {
	c := loadCorpus(t, repoCorpus)
	var rps []*Replay
	for _, s := range c.Series {
		rps = append(rps, &Replay{Series: s})
	}
	r := &Report{Replays: rps}
	got := r.PickPlots([]string{"realKnownCause/nyc_taxi.csv", "nope.csv"}, 3)
	if len(got) != 3 || got[0].Series.Key != "realKnownCause/nyc_taxi.csv" {
		t.Fatalf("picked %d, first %s", len(got), got[0].Series.Key)
	}
	if got[1].Series.Key != "realKnownCause/ambient_temperature_system_failure.csv" {
		t.Errorf("second pick %s", got[1].Series.Key)
	}
}

func TestPlotShowsWindowsAndDetections(t *testing.T) {
	c := loadCorpus(t, handCorpus)
	r, err := Run(context.Background(), c, handConfig)
	if err != nil {
		t.Fatal(err)
	}
	var steps *Replay
	for _, rp := range r.Replays {
		if rp.Series.Key == "demo/steps.csv" {
			steps = rp
		}
	}
	var buf bytes.Buffer
	if err := PlotReplay(&buf, steps); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotTotal {
		t.Fatalf("size %v", b)
	}
	n := steps.Series.Len()
	xOf := func(i int) int { return margin + labelW + i*(plotW-margin-labelW-margin)/(n-1) }
	at := func(x, y int) [3]uint32 {
		r, g, b, _ := img.At(x, y).RGBA()
		return [3]uint32{r >> 8, g >> 8, b >> 8}
	}
	rgb := func(c interface{ RGBA() (r, g, b, a uint32) }) [3]uint32 {
		r, g, b, _ := c.RGBA()
		return [3]uint32{r >> 8, g >> 8, b >> 8}
	}
	y := margin + 1 // above the series (its top is padded)
	if got := at(xOf(28), y); got != rgb(colWindow) {
		t.Errorf("window row 28: %v", got)
	}
	if got := at(xOf(2), y); got != rgb(colProbation) {
		t.Errorf("probation row 2: %v", got)
	}
	if got := at(xOf(15), y); got != rgb(colBackground) {
		t.Errorf("row 15: %v", got)
	}
	lanesTop := margin + plotH + 6
	for k, m := range Modes {
		ly := lanesTop + k*laneH + laneH/2
		if got := at(xOf(30), ly); got != rgb(modeColours[m]) {
			t.Errorf("%s lane at row 30: %v", m, got)
		}
		if got := at(xOf(20), ly); got != rgb(colBackground) {
			t.Errorf("%s lane at row 20: %v", m, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Hybrid: "sometimes"}.WithDefaults()
	if err := bad.Validate(); err == nil {
		t.Error("unknown hybrid rule accepted")
	}
	if _, err := Run(context.Background(), loadCorpus(t, handCorpus), Config{Edge: ZScoreConfig{Low: 7, High: 6}}); err == nil {
		t.Error("low > high accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, loadCorpus(t, handCorpus), Config{}); err == nil {
		t.Error("cancelled run returned no error")
	}
}

// BenchmarkReplaySeries replays the in-repo machine temperature series
// (22,695 readings) through the three modes.
func BenchmarkReplaySeries(b *testing.B) {
	c, err := nab.LoadCorpus(repoCorpus)
	if err != nil {
		b.Fatal(err)
	}
	var s *nab.Series
	for _, x := range c.Series {
		if x.Key == "realKnownCause/machine_temperature_system_failure.csv" {
			s = x
		}
	}
	cfg := Config{}.WithDefaults()
	b.ResetTimer()
	for range b.N {
		if _, err := ReplaySeries(s, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Len()*b.N)/b.Elapsed().Seconds(), "readings/s")
}

// TestCountSources: by hand, detections in and right after the probationary
// period, first and later in a window, and outside every window.
func TestCountSources(t *testing.T) {
	windows := []nab.Window{{Start: 200, End: 220}, {Start: 300, End: 310}}
	rows := []int{10, 150, 205, 207, 250, 305, 400}
	srcs := []detect.Source{detect.FromRange, detect.FromNovelty, detect.FromRange, detect.FromScorer, detect.FromNovelty, detect.FromNovelty, detect.FromVolatility}
	by := map[string]SourceCounts{}
	countSources(by, 1000, windows, rows, srcs) // probation: the first 150 rows
	want := map[string]SourceCounts{
		"range":      {Detections: 1, FirstInWindow: 1},
		"score":      {Detections: 1, LaterInWindow: 1},
		"novelty":    {Detections: 3, FirstInWindow: 1, FalsePositives: 2},
		"volatility": {Detections: 1, FalsePositives: 1},
	}
	if len(by) != len(want) {
		t.Fatalf("got %+v", by)
	}
	for k, w := range want {
		if by[k] != w {
			t.Errorf("%s: %+v, want %+v", k, by[k], w)
		}
	}
	// Without sources (a replay made by hand), the detections still count.
	by = map[string]SourceCounts{}
	countSources(by, 1000, windows, []int{205}, nil)
	if by["unknown"] != (SourceCounts{Detections: 1, FirstInWindow: 1}) {
		t.Errorf("without sources: %+v", by)
	}
}
