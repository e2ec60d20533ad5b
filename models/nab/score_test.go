package nab

import (
	"math"
	"testing"
)

// Hand-computed cases. A file of N = 1000 rows has a probationary period of
// floor(0.15·1000) = 150 rows. sig(y) = 2/(1+e^(5y)) - 1; sig(-1) = 0.98661429815.
// The expected values below are those formulas evaluated by hand (with a
// calculator), not by this package.

const eps = 1e-9

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestSigmoidValues(t *testing.T) {
	for _, c := range []struct{ y, want float64 }{
		{-1, 0.9866142981514305},
		{-0.5, 0.8482836399575129},
		{0, 0},
		{1, -0.9866142981514305},
		{3, -0.9999993881955461},
		{3.0001, -1},
		{100, -1},
	} {
		if got := Sigmoid(c.y); !near(got, c.want, 1e-9) {
			t.Errorf("Sigmoid(%g) = %.12g, want %.12g", c.y, got, c.want)
		}
	}
}

func TestProbation(t *testing.T) {
	for _, c := range []struct{ n, want int }{{0, 0}, {10, 1}, {1000, 150}, {4032, 604}, {5000, 750}, {22695, 750}, {1127, 169}} {
		if got := Probation(c.n); got != c.want {
			t.Errorf("Probation(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestProfilesFromNAB(t *testing.T) {
	// config/profiles.json of NAB v1.1.
	want := map[string][3]float64{
		"standard":           {1.0, 0.11, 1.0},
		"reward_low_FP_rate": {1.0, 0.22, 1.0},
		"reward_low_FN_rate": {1.0, 0.11, 2.0},
	}
	for _, p := range Profiles() {
		w := want[p.Name]
		if p.TP != w[0] || p.FP != w[1] || p.FN != w[2] {
			t.Errorf("%s: %+v, want tp/fp/fn %v", p.Name, p, w)
		}
		q, err := ProfileByName(p.Name)
		if err != nil || q != p {
			t.Errorf("ProfileByName(%q) = %+v, %v", p.Name, q, err)
		}
	}
	if _, err := ProfileByName("nope"); err == nil {
		t.Error("ProfileByName(nope) did not fail")
	}
}

func TestScoreFileHandComputed(t *testing.T) {
	const n = 1000
	one := []Window{{Start: 500, End: 599}} // width 100
	two := []Window{{Start: 300, End: 349}, {Start: 600, End: 699}}
	cases := []struct {
		name     string
		windows  []Window
		det      []int
		p        Profile
		raw      float64
		detected int
		fps      int
	}{
		// y = -(599-500+1)/100 = -1: worth exactly tpWeight.
		{"window start", one, []int{500}, Standard, 1, 1, 0},
		// y = -(599-550+1)/100 = -0.5: sig(-0.5)/sig(-1) = 0.84828364/0.98661430.
		{"window middle", one, []int{550}, Standard, 0.8597925669097837, 1, 0},
		// y = -1/100: sig(-0.01)/sig(-1) = 0.02499479/0.98661430.
		{"window end", one, []int{599}, Standard, 0.025333905068325228, 1, 0},
		// Row 600 is a false positive one row after the window:
		// y = (600-599)/(100-1), value 0.11·sig(1/99) = 0.11·(-0.02524716); the window is missed (-1).
		{"just after", one, []int{600}, Standard, -1 - 0.002777187474616506, 0, 1},
		{"just after, low FP", one, []int{600}, LowFP, -1 - 0.005554374949233012, 0, 1},
		{"just after, low FN", one, []int{600}, LowFN, -2 - 0.002777187474616506, 0, 1},
		// Only the first detection in a window counts; the second adds and costs nothing.
		{"two in one window", one, []int{550, 500}, Standard, 1, 1, 0},
		{"duplicate detection", one, []int{500, 500}, Standard, 1, 1, 0},
		// Row 950: y = (950-599)/99 = 3.55 > 3, so the full -fpWeight; the window is missed.
		{"FP far after window", one, []int{950}, Standard, -1.11, 0, 1},
		// Before any window has ended: -fpWeight.
		{"FP before window", one, []int{200, 500}, Standard, 1 - 0.11, 1, 1},
		// Probationary rows are ignored.
		{"probation ignored", one, []int{149, 500}, Standard, 1, 1, 0},
		{"probation only", one, []int{0, 10, 149}, LowFN, -2, 0, 0},
		// No windows at all: every detection is a full false positive.
		{"no windows", nil, []int{300, 301}, Standard, -0.22, 0, 2},
		{"no windows, low FP", nil, []int{300, 301}, LowFP, -0.44, 0, 2},
		{"no windows, no detections", nil, nil, Standard, 0, 0, 0},
		// First window missed (-1); row 620 in the second: y = -(699-620+1)/100 = -0.8,
		// sig(-0.8)/sig(-1) = 0.96402758/0.98661430; row 800 after it: y = 101/99,
		// 0.11·sig(1.0202) = 0.11·(-0.98789256).
		{"two windows", two, []int{620, 800}, Standard, -1 + 0.9771068409226045 - 0.10866818146656083, 1, 1},
		// The perfect detector: first row of every window.
		{"perfect", two, []int{300, 600}, LowFN, 2, 2, 0},
		// The null detector.
		{"null", two, nil, LowFN, -4, 0, 0},
	}
	for _, c := range cases {
		fs := ScoreFile(n, c.windows, c.det, c.p)
		if !near(fs.Raw, c.raw, eps) || fs.Detected != c.detected || fs.FalsePositives != c.fps {
			t.Errorf("%s: raw %.12g detected %d fps %d, want %.12g %d %d", c.name, fs.Raw, fs.Detected, fs.FalsePositives, c.raw, c.detected, c.fps)
		}
		if fs.Missed != len(c.windows)-c.detected {
			t.Errorf("%s: missed %d", c.name, fs.Missed)
		}
		if !near(fs.TPValue+fs.FPValue+fs.FNValue, fs.Raw, eps) {
			t.Errorf("%s: parts %g+%g+%g != raw %g", c.name, fs.TPValue, fs.FPValue, fs.FNValue, fs.Raw)
		}
	}
}

func TestInWindowValueFalls(t *testing.T) {
	w := Window{Start: 10, End: 29}
	prev := math.Inf(1)
	for i := w.Start; i <= w.End; i++ {
		v := InWindowValue(i, w, Standard)
		if v >= prev || v <= 0 {
			t.Fatalf("row %d: value %g after %g: not falling within (0, 1]", i, v, prev)
		}
		prev = v
	}
}

func TestNormalize(t *testing.T) {
	// 116 windows: null -116 (standard, low FP) or -232 (low FN), perfect 116.
	for _, c := range []struct {
		raw  float64
		p    Profile
		want float64
	}{
		{-116, Standard, 0}, {116, Standard, 100}, {0, Standard, 50},
		{-232, LowFN, 0}, {116, LowFN, 100}, {0, LowFN, 100 * 232.0 / 348},
		{-150, LowFP, 100 * -34.0 / 232},
	} {
		if got := Normalize(c.raw, 116, c.p); !near(got, c.want, 1e-9) {
			t.Errorf("Normalize(%g, 116, %s) = %g, want %g", c.raw, c.p.Name, got, c.want)
		}
	}
	if got := Normalize(-1, 0, Standard); !math.IsNaN(got) {
		t.Errorf("Normalize with no windows = %g, want NaN", got)
	}
}

func TestCountRows(t *testing.T) {
	// n = 100: probation 15 rows; window rows 40..49 (10 rows).
	ws := []Window{{Start: 40, End: 49}}
	rc := CountRows(100, ws, []int{5, 20, 40, 41, 60})
	want := RowCounts{TP: 2, FN: 8, FP: 2, TN: 100 - 15 - 10 - 2, Total: 100}
	if rc != want {
		t.Errorf("CountRows = %+v, want %+v", rc, want)
	}
}

func TestWindowCounts(t *testing.T) {
	ws := []Window{{Start: 300, End: 349}, {Start: 600, End: 699}}
	c := CountWindows(1000, ws, []int{100, 310, 320, 800, 900})
	// Row 100 is probationary; 310 and 320 in window 1; 800 and 900 outside.
	want := WindowCounts{Windows: 2, Detected: 1, Detections: 4, InWindow: 2}
	if c != want {
		t.Fatalf("CountWindows = %+v, want %+v", c, want)
	}
	if p, r, f := c.Precision(), c.Recall(), c.F1(); p != 0.5 || r != 0.5 || f != 0.5 {
		t.Errorf("precision %g recall %g f1 %g, want 0.5 each", p, r, f)
	}
	sum := c.Add(WindowCounts{Windows: 2, Detected: 2, Detections: 2, InWindow: 2})
	if !near(sum.Precision(), 4.0/6, eps) || !near(sum.Recall(), 0.75, eps) || !near(sum.F1(), 2*(4.0/6)*0.75/(4.0/6+0.75), eps) {
		t.Errorf("summed %+v: %g %g %g", sum, sum.Precision(), sum.Recall(), sum.F1())
	}
	var zero WindowCounts
	if zero.Precision() != 0 || zero.Recall() != 0 || zero.F1() != 0 {
		t.Error("empty counts are not all 0")
	}
}
