// Package nab reads a corpus in the layout of the Numenta Anomaly Benchmark
// (NAB) and scores detections against its label windows, following the
// scoring rules of NAB v1.1 (numenta/NAB at commit ea702d7, as written down in
// ../shared/datasets/nab/README.md). The code is our own; only the rules and
// the profile weights come from NAB.
//
// Scoring works on row positions: a file of N rows has rows 0..N-1 in file
// order (never sorted or de-duplicated), windows are inclusive ranges of row
// indices, and a detection is a row index. Rows of the probationary period
// (the first min(floor(0.15·N), 750) rows) count neither for nor against a
// detector.
package nab

import (
	"fmt"
	"math"
)

// Profile is one of NAB's scoring profiles: the weights of true positives,
// false positives and false negatives (missed windows). NAB's profiles also
// carry a tnWeight, which its scorer does not use; it is kept for
// completeness.
type Profile struct {
	// Name is NAB's name of the profile, e.g. "standard".
	Name string
	// TP is the value of a detection on the first row of a window.
	TP float64
	// FP is the cost of a detection far from any window.
	FP float64
	// FN is the cost of a window without any detection.
	FN float64
	// TN is not used by the scorer (as in NAB).
	TN float64
}

// NAB's three profiles, from config/profiles.json at numenta/NAB commit
// ea702d75cc2258d9d7dd35ca8e5e2539d71f3140 (NAB v1.1).
var (
	Standard = Profile{Name: "standard", TP: 1.0, FP: 0.11, FN: 1.0, TN: 1.0}
	LowFP    = Profile{Name: "reward_low_FP_rate", TP: 1.0, FP: 0.22, FN: 1.0, TN: 1.0}
	LowFN    = Profile{Name: "reward_low_FN_rate", TP: 1.0, FP: 0.11, FN: 2.0, TN: 1.0}
)

// Profiles returns the three NAB profiles in NAB's scoreboard order:
// standard, reward_low_FP_rate, reward_low_FN_rate.
func Profiles() []Profile { return []Profile{Standard, LowFP, LowFN} }

// ProfileByName returns the profile with NAB's name name.
func ProfileByName(name string) (Profile, error) {
	for _, p := range Profiles() {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("nab: unknown profile %q", name)
}

// Window is a labelled anomaly window: the inclusive row indices of its first
// and last rows.
type Window struct {
	Start, End int
}

// Width is the number of rows in w.
func (w Window) Width() int { return w.End - w.Start + 1 }

// Contains reports whether row i is in w.
func (w Window) Contains(i int) bool { return i >= w.Start && i <= w.End }

// Probation is the length of the probationary period of a file of n rows:
// min(floor(0.15·n), 750), where 750 = 0.15·5000.
func Probation(n int) int {
	p := int(math.Floor(0.15 * float64(n)))
	if p > 750 {
		p = 750
	}
	return p
}

// Sigmoid is NAB's scaled sigmoid: 2/(1+e^(5y)) - 1 for y <= 3, and -1
// beyond. It is 0 at y = 0, close to 1 at y = -1 and close to -1 at y = 1.
func Sigmoid(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// InWindowValue is the value of a detection at row i inside window w for
// profile p: tpWeight · sig(y) / sig(-1) with y = -(End - i + 1)/width, so the
// first row of the window is worth exactly p.TP and the last close to 0.
func InWindowValue(i int, w Window, p Profile) float64 {
	y := -float64(w.End-i+1) / float64(w.Width())
	return p.TP * Sigmoid(y) / Sigmoid(-1)
}

// FalsePositiveValue is the (negative) value of a detection at row i outside
// every window. prev is the most recent window that ended before i, or nil if
// none did: then the value is -p.FP. Otherwise y = (i - prev.End)/(width-1)
// and the value is p.FP · sig(y), which costs little just after a window and
// the full p.FP three window widths later.
func FalsePositiveValue(i int, prev *Window, p Profile) float64 {
	if prev == nil {
		return -p.FP
	}
	den := float64(prev.Width() - 1)
	if den < 1 {
		den = 1 // a one-row window: NAB divides by zero here; we treat it as width 2
	}
	y := float64(i-prev.End) / den
	return p.FP * Sigmoid(y)
}

// FileScore is the NAB account of one file's detections under one profile.
type FileScore struct {
	// Raw is the file's raw score: for each window, the value of its first
	// detection or -FN if it has none, plus the values of all detections
	// outside windows.
	Raw float64
	// Windows is the number of label windows; Detected of them hold at least
	// one scored detection, Missed = Windows - Detected.
	Windows, Detected, Missed int
	// FalsePositives counts the scored detections outside every window.
	FalsePositives int
	// InWindow counts the scored detections inside windows (all of them, not
	// only the first of each window).
	InWindow int
	// TPValue is the sum of the first-detection values of the detected
	// windows; FPValue the (negative) sum of the false-positive values;
	// FNValue the (negative) sum of the missed windows' costs.
	TPValue, FPValue, FNValue float64
}

// ScoreFile scores a file of n rows with label windows windows (sorted, not
// overlapping, as in NAB's combined_windows.json) and detected rows
// detections (any order; duplicates are counted once) under profile p.
// Detections in the probationary period and out of range are ignored.
func ScoreFile(n int, windows []Window, detections []int, p Profile) FileScore {
	det := detectedRows(n, detections)
	fs := FileScore{Windows: len(windows)}
	firstHit := make([]bool, len(windows))
	wi := 0          // index of the first window that does not end before i
	var prev *Window // most recent window that ended before i
	for _, i := range det {
		for wi < len(windows) && windows[wi].End < i {
			prev = &windows[wi]
			wi++
		}
		if wi < len(windows) && windows[wi].Contains(i) {
			fs.InWindow++
			if !firstHit[wi] {
				firstHit[wi] = true
				v := InWindowValue(i, windows[wi], p)
				fs.TPValue += v
				fs.Detected++
			}
			continue
		}
		fs.FalsePositives++
		fs.FPValue += FalsePositiveValue(i, prev, p)
	}
	fs.Missed = fs.Windows - fs.Detected
	fs.FNValue = -p.FN * float64(fs.Missed)
	fs.Raw = fs.TPValue + fs.FPValue + fs.FNValue
	return fs
}

// detectedRows returns the distinct scored detections (>= the probationary
// period, < n) in increasing order.
func detectedRows(n int, detections []int) []int {
	p := Probation(n)
	seen := make([]bool, n)
	for _, i := range detections {
		if i >= p && i < n {
			seen[i] = true
		}
	}
	out := make([]int, 0, len(detections))
	for i := p; i < n; i++ {
		if seen[i] {
			out = append(out, i)
		}
	}
	return out
}

// NullScore is the raw score of a detector that never fires, over a corpus
// with the given number of windows: -FN · windows.
func NullScore(windows int, p Profile) float64 { return -p.FN * float64(windows) }

// PerfectScore is the raw score of a detector that fires once on the first
// row of every window and nowhere else: TP · windows.
func PerfectScore(windows int, p Profile) float64 { return p.TP * float64(windows) }

// Normalize maps a corpus raw score to NAB's scoreboard scale, on which the
// null detector scores 0 and the perfect detector 100:
// 100 · (raw - null) / (perfect - null). With no windows the scale is
// undefined and Normalize returns NaN.
func Normalize(raw float64, windows int, p Profile) float64 {
	null, perfect := NullScore(windows, p), PerfectScore(windows, p)
	if perfect == null {
		return math.NaN()
	}
	return 100 * (raw - null) / (perfect - null)
}

// RowCounts are the row counts of NAB's per-file score tables: of the rows
// after the probationary period, TP are detected rows inside windows, FN
// undetected rows inside windows, FP detected rows outside windows and TN
// undetected rows outside windows. Total is all rows of the file, probation
// included (NAB's Total_Count).
type RowCounts struct {
	TP, TN, FP, FN, Total int
}

// CountRows returns the row counts of a file of n rows.
func CountRows(n int, windows []Window, detections []int) RowCounts {
	det := make([]bool, n)
	for _, i := range detections {
		if i >= 0 && i < n {
			det[i] = true
		}
	}
	in := inWindowRows(n, windows)
	rc := RowCounts{Total: n}
	for i := Probation(n); i < n; i++ {
		switch {
		case in[i] && det[i]:
			rc.TP++
		case in[i]:
			rc.FN++
		case det[i]:
			rc.FP++
		default:
			rc.TN++
		}
	}
	return rc
}

func inWindowRows(n int, windows []Window) []bool {
	in := make([]bool, n)
	for _, w := range windows {
		for i := max(w.Start, 0); i <= w.End && i < n; i++ {
			in[i] = true
		}
	}
	return in
}
