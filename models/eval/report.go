package eval

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/nab"
)

// Report is the evaluation of one corpus: report.json.
type Report struct {
	// Corpus is the corpus folder; Files, Rows and Windows its size.
	Corpus  string `json:"corpus"`
	Files   int    `json:"files"`
	Rows    int    `json:"rows"`
	Windows int    `json:"windows"`
	// Config is the configuration used for every series.
	Config Config `json:"config"`
	// Edge, Cloud and Hybrid are the three modes' results.
	Edge   ModeReport `json:"edge"`
	Cloud  ModeReport `json:"cloud"`
	Hybrid ModeReport `json:"hybrid"`
	// Forwarded and Confirmed count the hybrid mode's events by edge kind
	// ("anomaly", "uncertain"), and those the cloud confirmed.
	Forwarded map[string]int `json:"hybrid_forwarded"`
	Confirmed map[string]int `json:"hybrid_confirmed"`
	// Replays are the per-series detections (not in report.json; for plots).
	Replays []*Replay `json:"-"`
}

// Mode returns the report of the named mode.
func (r *Report) Mode(name string) *ModeReport {
	switch name {
	case "edge":
		return &r.Edge
	case "cloud":
		return &r.Cloud
	case "hybrid":
		return &r.Hybrid
	}
	return nil
}

// Scores are results that exist for the corpus and for each file.
type Scores struct {
	// NABStandard, NABLowFP and NABLowFN are NAB scores (null detector 0,
	// perfect 100) under the standard, reward_low_FP_rate and
	// reward_low_FN_rate profiles; nil for a file without windows.
	NABStandard *float64 `json:"nab_standard"`
	NABLowFP    *float64 `json:"nab_low_fp"`
	NABLowFN    *float64 `json:"nab_low_fn"`
	// RawStandard, RawLowFP and RawLowFN are the NAB raw scores.
	RawStandard float64 `json:"raw_standard"`
	RawLowFP    float64 `json:"raw_low_fp"`
	RawLowFN    float64 `json:"raw_low_fn"`
	// Precision, Recall and F1 over label windows (see nab.WindowCounts).
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// Windows, WindowsDetected, Detections and FalsePositives are the counts
	// behind them (detections after the probationary period).
	Windows         int `json:"windows"`
	WindowsDetected int `json:"windows_detected"`
	Detections      int `json:"detections"`
	FalsePositives  int `json:"false_positives"`
	// UplinkRatio is UplinkBytes / RawBytes.
	UplinkRatio float64 `json:"uplink_ratio"`
	UplinkBytes int64   `json:"uplink_bytes"`
	RawBytes    int64   `json:"raw_bytes"`
	// Events is the number of messages uplinked.
	Events int `json:"events"`
}

// ModeReport is one mode's results over the corpus and per file.
type ModeReport struct {
	Scores
	// BySource says, per stage of the detector that raised them ("score",
	// "novelty", "volatility", "seasonal", "range"; see detect.Source),
	// what the mode's detections after the probationary periods were.
	BySource map[string]SourceCounts `json:"by_source"`
	Files    []FileResult            `json:"files"`
}

// SourceCounts is what the scored detections (after the probationary
// period) of one source were: the first in a label window (the one NAB
// scores), later ones in a window (neither gain nor cost), or false
// positives (outside every window).
type SourceCounts struct {
	Detections     int `json:"detections"`
	FirstInWindow  int `json:"first_in_window"`
	LaterInWindow  int `json:"later_in_window"`
	FalsePositives int `json:"false_positives"`
}

// countSources adds to by what each scored detection of one file was, by
// its source (rows increasing, srcs parallel to rows or nil).
func countSources(by map[string]SourceCounts, n int, windows []nab.Window, rows []int, srcs []detect.Source) {
	first := make([]bool, len(windows))
	p := nab.Probation(n)
	for k, i := range rows {
		if i < p || i >= n {
			continue
		}
		name := "unknown"
		if k < len(srcs) {
			name = srcs[k].String()
		}
		c := by[name]
		c.Detections++
		w := -1
		for x := range windows {
			if windows[x].Contains(i) {
				w = x
				break
			}
		}
		switch {
		case w < 0:
			c.FalsePositives++
		case first[w]:
			c.LaterInWindow++
		default:
			first[w] = true
			c.FirstInWindow++
		}
		by[name] = c
	}
}

// FileResult is one mode's results on one file.
type FileResult struct {
	File string `json:"file"`
	Rows int    `json:"rows"`
	Scores
	// DetectionRows are the detected rows (all, probation included).
	DetectionRows []int `json:"detection_rows"`
}

// NewReport scores the replays of corpus c made with cfg.
func NewReport(c *nab.Corpus, cfg Config, replays []*Replay) *Report {
	r := &Report{Corpus: c.Dir, Files: len(c.Series), Rows: c.Rows(), Windows: c.Windows(), Config: cfg,
		Forwarded: map[string]int{}, Confirmed: map[string]int{}, Replays: replays}
	for _, mode := range Modes {
		mr := r.Mode(mode)
		mr.BySource = map[string]SourceCounts{}
		var counts nab.WindowCounts
		for _, rp := range replays {
			s := rp.Series
			det := rp.Detections[mode]
			fr := FileResult{File: s.Key, Rows: s.Len(), DetectionRows: append([]int{}, det...)}
			if fr.DetectionRows == nil {
				fr.DetectionRows = []int{}
			}
			countSources(mr.BySource, s.Len(), s.Windows, det, rp.Sources[mode])
			wc := nab.CountWindows(s.Len(), s.Windows, det)
			counts = counts.Add(wc)
			fr.Scores = scores(wc, len(s.Windows), func(p nab.Profile) float64 {
				return nab.ScoreFile(s.Len(), s.Windows, det, p).Raw
			}, rp.Uplink[mode], rp.RawBytes, rp.Events[mode])
			mr.Files = append(mr.Files, fr)
			mr.RawStandard += fr.RawStandard
			mr.RawLowFP += fr.RawLowFP
			mr.RawLowFN += fr.RawLowFN
			mr.UplinkBytes += fr.UplinkBytes
			mr.RawBytes += fr.RawBytes
			mr.Events += fr.Events
		}
		raw := map[string]float64{nab.Standard.Name: mr.RawStandard, nab.LowFP.Name: mr.RawLowFP, nab.LowFN.Name: mr.RawLowFN}
		mr.Scores = scores(counts, c.Windows(), func(p nab.Profile) float64 { return raw[p.Name] }, mr.UplinkBytes, mr.RawBytes, mr.Events)
	}
	for _, rp := range replays {
		for l, n := range rp.Forwarded {
			r.Forwarded[l.String()] += n
		}
		for l, n := range rp.Confirmed {
			r.Confirmed[l.String()] += n
		}
	}
	return r
}

func scores(wc nab.WindowCounts, windows int, raw func(nab.Profile) float64, up, rawBytes int64, events int) Scores {
	s := Scores{
		RawStandard: raw(nab.Standard), RawLowFP: raw(nab.LowFP), RawLowFN: raw(nab.LowFN),
		Precision: wc.Precision(), Recall: wc.Recall(), F1: wc.F1(),
		Windows: wc.Windows, WindowsDetected: wc.Detected, Detections: wc.Detections,
		FalsePositives: wc.Detections - wc.InWindow,
		UplinkBytes:    up, RawBytes: rawBytes, Events: events,
	}
	if rawBytes > 0 {
		s.UplinkRatio = float64(up) / float64(rawBytes)
	}
	if windows > 0 {
		s.NABStandard = ptr(nab.Normalize(s.RawStandard, windows, nab.Standard))
		s.NABLowFP = ptr(nab.Normalize(s.RawLowFP, windows, nab.LowFP))
		s.NABLowFN = ptr(nab.Normalize(s.RawLowFN, windows, nab.LowFN))
	}
	return s
}

func ptr(f float64) *float64 { return &f }

func fmtScore(p *float64) string {
	if p == nil || math.IsNaN(*p) {
		return "–"
	}
	return fmt.Sprintf("%.1f", *p)
}

// WriteMarkdown writes the report as markdown: the configuration, the overall
// table, the published scoreboard for reference, and a per-file table.
func (r *Report) WriteMarkdown(w io.Writer, plots []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Outpost on NAB\n\nCorpus `%s`: %d files, %d rows, %d label windows.\n\n", r.Corpus, r.Files, r.Rows, r.Windows)
	e, c := r.Config.Edge, r.Config.Cloud
	if d := r.Config.Detectors; d != nil {
		fmt.Fprintf(&b, "One configuration for every file: %s; hybrid rule `%s`.\n\n", d.Describe, r.Config.Hybrid)
	} else {
		fmt.Fprintf(&b, "One configuration for every file: edge `%s` window %d, low %g, high %g, cool-down %d, warm-up %d, clamp %g; "+
			"cloud `%s` window %d (streaming; the second stage re-scores the forwarded window), threshold %g, cool-down %d, warm-up %d; hybrid rule `%s`.\n\n",
			ZScoreModel, e.Window, e.Low, e.High, e.Cooldown, e.Warmup, e.Clamp, RobustModel, c.Window, c.Threshold, c.Cooldown, c.Warmup, r.Config.Hybrid)
	}
	b.WriteString("## Overall\n\n")
	b.WriteString("| mode | NAB standard | NAB low FP | NAB low FN | precision | recall | F1 | windows detected | detections | false positives | uplink / raw bytes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range Modes {
		s := r.Mode(m).Scores
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.3f | %.3f | %.3f | %d / %d | %d | %d | %.4f%% (%d / %d) |\n",
			m, fmtScore(s.NABStandard), fmtScore(s.NABLowFP), fmtScore(s.NABLowFN), s.Precision, s.Recall, s.F1,
			s.WindowsDetected, s.Windows, s.Detections, s.FalsePositives, 100*s.UplinkRatio, s.UplinkBytes, s.RawBytes)
	}
	fmt.Fprintf(&b, "\nHybrid: the edge forwarded %d anomaly and %d uncertain events; the cloud confirmed %d and %d of them.\n",
		r.Forwarded["anomaly"], r.Forwarded["uncertain"], r.Confirmed["anomaly"], r.Confirmed["uncertain"])
	b.WriteString(`
Definitions. NAB scores follow NAB v1.1's rules (models/nab): 0 is the null detector, 100 the
perfect one; detections in each file's probationary period are ignored. A detection is a reading at
which a mode raises an anomaly (one per incident, not every reading above a threshold). A window is
detected if it holds at least one detection; precision = detections inside windows / all
detections; recall = detected windows / windows; F1 their harmonic mean; counts are summed over
files. Uplink: raw bytes are each reading as the JSON payload {"ts":"…","value":…} the edge
receives; edge-only uplinks its anomaly events, hybrid every event the edge raises (anomaly and
uncertain), each as the JSON of a wire.Event with its window; cloud-only uplinks every reading as
it came (ratio 1).

Published NAB scoreboard (58 files, standard / low FP / low FN): ARTime 74.9 / 65.1 / 80.4;
Numenta HTM 70.5 / 62.6 / 75.2; Random Cut Forest 51.7 / 38.4 / 59.7; Windowed Gaussian
39.6 / 20.9 / 47.4; null 0. On a subset of NAB the figures are not comparable with these.
`)
	b.WriteString("\n## Where the detections come from\n\nThe stage of the detector that raised each detection after the probationary periods: " +
		"the scorer (its own score), a channel, or the range rule; the first detection in a label window is the one NAB scores, later ones neither gain nor cost.\n\n")
	b.WriteString("| mode | source | detections | first in a window | later in a window | false positives |\n|---|---|---:|---:|---:|---:|\n")
	for _, m := range Modes {
		by := r.Mode(m).BySource
		names := make([]string, 0, len(by))
		for name := range by {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c := by[name]
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d |\n", m, name, c.Detections, c.FirstInWindow, c.LaterInWindow, c.FalsePositives)
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\nSeries in black, label windows shaded red, probationary period shaded grey; detections as ticks in the lanes below: edge (E, blue), cloud (C, green), hybrid (H, purple).\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n\n", p, p)
		}
	}
	b.WriteString("\n## Per file\n\nFor each mode: windows detected / windows, false positives, NAB standard raw score of the file; then the uplink ratios of edge and hybrid.\n\n")
	b.WriteString("| file | rows | windows | edge | cloud | hybrid | edge uplink | hybrid uplink |\n|---|---:|---:|---|---|---|---:|---:|\n")
	for i, f := range r.Edge.Files {
		fmt.Fprintf(&b, "| %s | %d | %d |", f.File, f.Rows, f.Windows)
		for _, m := range Modes {
			fr := r.Mode(m).Files[i]
			fmt.Fprintf(&b, " %d/%d, %d FP, %+.2f |", fr.WindowsDetected, fr.Windows, fr.FalsePositives, fr.RawStandard)
		}
		fmt.Fprintf(&b, " %.3f%% | %.3f%% |\n", 100*f.UplinkRatio, 100*r.Hybrid.Files[i].UplinkRatio)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
