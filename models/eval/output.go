package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultPlots are the series plotted first when they are in the corpus
// (both are in the in-repo corpus and in NAB); PickPlots adds one series of
// each other category.
var DefaultPlots = []string{
	"realKnownCause/machine_temperature_system_failure.csv",
	"realKnownCause/nyc_taxi.csv",
}

// PickPlots returns the replays to plot: those named in keys that exist,
// in that order, then (up to n in all) the first series with windows of
// each category not yet plotted, then any other series with windows.
func (r *Report) PickPlots(keys []string, n int) []*Replay {
	byKey := map[string]*Replay{}
	for _, rp := range r.Replays {
		byKey[rp.Series.Key] = rp
	}
	var out []*Replay
	taken := map[string]bool{}
	add := func(rp *Replay) {
		if rp != nil && !taken[rp.Series.Key] && len(out) < n {
			out = append(out, rp)
			taken[rp.Series.Key] = true
		}
	}
	for _, k := range keys {
		add(byKey[k])
	}
	cats := map[string]bool{}
	for _, rp := range out {
		cats[rp.Series.Category()] = true
	}
	for _, rp := range r.Replays {
		if len(rp.Series.Windows) > 0 && !cats[rp.Series.Category()] {
			cats[rp.Series.Category()] = true
			add(rp)
		}
	}
	for _, rp := range r.Replays {
		if len(rp.Series.Windows) > 0 {
			add(rp)
		}
	}
	return out
}

// WriteFiles writes report.json, report.md and one PNG per replay in plots
// (plot-<category>-<name>.png) into dir (created if needed), after removing
// the plot-*.png files already there, and returns the paths written.
func (r *Report) WriteFiles(dir string, plots []*Replay) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	// Plots of an earlier run would be listed with this one's: remove them.
	old, _ := filepath.Glob(filepath.Join(dir, "plot-*.png"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
	}
	var written, names []string
	for _, rp := range plots {
		name := "plot-" + strings.NewReplacer("/", "-", ".csv", "").Replace(rp.Series.Key) + ".png"
		var buf bytes.Buffer
		if err := PlotReplay(&buf, rp); err != nil {
			return written, err
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return written, fmt.Errorf("eval: %w", err)
		}
		written = append(written, p)
		names = append(names, name)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return written, fmt.Errorf("eval: encoding report: %w", err)
	}
	p := filepath.Join(dir, "report.json")
	if err := os.WriteFile(p, append(js, '\n'), 0o644); err != nil {
		return written, fmt.Errorf("eval: %w", err)
	}
	written = append(written, p)
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md, names); err != nil {
		return written, err
	}
	p = filepath.Join(dir, "report.md")
	if err := os.WriteFile(p, md.Bytes(), 0o644); err != nil {
		return written, fmt.Errorf("eval: %w", err)
	}
	return append(written, p), nil
}
