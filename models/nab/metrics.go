package nab

// WindowCounts are the counts behind precision, recall and F1 over label
// windows. Like NAB's score, they ignore the probationary period: only
// detections at rows >= Probation(n) count.
//
//   - a window is detected (a true positive window) if it holds at least one
//     detection; otherwise it is missed;
//   - a detection inside any window is a true positive detection, one outside
//     every window a false positive;
//   - precision = true positive detections / all detections;
//   - recall = detected windows / windows;
//   - F1 = 2·precision·recall / (precision + recall).
//
// Counts add up over files, so corpus figures are computed from summed
// counts (micro-averaged), not averaged per file.
type WindowCounts struct {
	// Windows and Detected count label windows, and those with a detection.
	Windows, Detected int
	// Detections counts scored detections; InWindow those inside a window.
	Detections, InWindow int
}

// CountWindows returns the window counts of a file of n rows.
func CountWindows(n int, windows []Window, detections []int) WindowCounts {
	fs := ScoreFile(n, windows, detections, Standard)
	return WindowCounts{
		Windows:    fs.Windows,
		Detected:   fs.Detected,
		Detections: fs.InWindow + fs.FalsePositives,
		InWindow:   fs.InWindow,
	}
}

// Add returns the sum of c and o.
func (c WindowCounts) Add(o WindowCounts) WindowCounts {
	return WindowCounts{
		Windows:    c.Windows + o.Windows,
		Detected:   c.Detected + o.Detected,
		Detections: c.Detections + o.Detections,
		InWindow:   c.InWindow + o.InWindow,
	}
}

// Precision is InWindow / Detections; 0 when there are no detections.
func (c WindowCounts) Precision() float64 {
	if c.Detections == 0 {
		return 0
	}
	return float64(c.InWindow) / float64(c.Detections)
}

// Recall is Detected / Windows; 0 when there are no windows.
func (c WindowCounts) Recall() float64 {
	if c.Windows == 0 {
		return 0
	}
	return float64(c.Detected) / float64(c.Windows)
}

// F1 is the harmonic mean of precision and recall; 0 when both are 0.
func (c WindowCounts) F1() float64 {
	p, r := c.Precision(), c.Recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}
