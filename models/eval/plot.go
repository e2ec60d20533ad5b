package eval

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"github.com/outpost-iot/outpost/models/nab"
)

// Plot geometry, in pixels.
const (
	plotW     = 1200
	plotH     = 300 // the series area
	laneH     = 18  // one detection lane
	margin    = 10
	labelW    = 14 // left of the lanes, for the lane letter
	plotTotal = margin + plotH + 6 + 3*laneH + margin
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colWindow     = color.RGBA{250, 200, 200, 255}
	colProbation  = color.RGBA{225, 225, 225, 255}
	colSeries     = color.RGBA{20, 20, 20, 255}
	colAxis       = color.RGBA{160, 160, 160, 255}
	modeColours   = map[string]color.RGBA{
		"edge":   {30, 90, 220, 255},
		"cloud":  {20, 150, 60, 255},
		"hybrid": {150, 40, 170, 255},
	}
	modeLetters = map[string]string{"edge": "E", "cloud": "C", "hybrid": "H"}
)

// PlotReplay draws the first value column of a replayed series: the series
// (per pixel column, the range of its values joined to the next), label
// windows shaded red, the probationary period shaded grey, and below it one
// lane per mode (edge, cloud, hybrid) with a tick at each detection; a
// hybrid detection is also drawn as a thin purple line through the series.
func PlotReplay(w io.Writer, rp *Replay) error {
	s := rp.Series
	n := s.Len()
	if n == 0 {
		return fmt.Errorf("eval: plot %s: no rows", s.Key)
	}
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotTotal))
	fill(img, img.Bounds(), colBackground)
	x0, x1 := margin+labelW, plotW-margin
	xOf := func(i int) int {
		if n == 1 {
			return x0
		}
		return x0 + int(math.Round(float64(i)*float64(x1-x0)/float64(n-1)))
	}
	top, bottom := margin, margin+plotH
	lanesTop := bottom + 6

	// Background bands over the series and the lanes.
	fill(img, image.Rect(xOf(0), top, xOf(nab.Probation(n))+1, lanesTop+3*laneH), colProbation)
	for _, win := range s.Windows {
		fill(img, image.Rect(xOf(win.Start), top, xOf(win.End)+1, lanesTop+3*laneH), colWindow)
	}

	// Value range.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range s.Values {
		if x := v[0]; !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if !(hi > lo) {
		lo, hi = lo-1, hi+1
	}
	pad := (hi - lo) * 0.04
	lo, hi = lo-pad, hi+pad
	yOf := func(v float64) int {
		return bottom - int(math.Round((v-lo)/(hi-lo)*float64(plotH)))
	}

	// Hybrid detections through the series area.
	for _, i := range rp.Detections["hybrid"] {
		vline(img, xOf(i), top, bottom, color.RGBA{200, 150, 220, 255})
	}

	// The series: per pixel column, min..max of its rows, joined to the
	// previous column's last value.
	prevY := -1
	for i := 0; i < n; {
		x := xOf(i)
		cmin, cmax := math.Inf(1), math.Inf(-1)
		first, last := s.Values[i][0], s.Values[i][0]
		for ; i < n && xOf(i) == x; i++ {
			v := s.Values[i][0]
			cmin, cmax = math.Min(cmin, v), math.Max(cmax, v)
			last = v
		}
		y0, y1 := yOf(cmax), yOf(cmin)
		if prevY >= 0 {
			fy := yOf(first)
			y0, y1 = min(y0, fy, prevY), max(y1, fy, prevY)
		}
		vline(img, x, y0, y1, colSeries)
		prevY = yOf(last)
	}
	hline(img, x0, x1, bottom, colAxis)

	// Lanes.
	for k, mode := range Modes {
		ly := lanesTop + k*laneH
		hline(img, x0, x1, ly+laneH-1, colAxis)
		drawLetter(img, margin, ly+4, modeLetters[mode], modeColours[mode])
		for _, i := range rp.Detections[mode] {
			x := xOf(i)
			fill(img, image.Rect(x-1, ly+2, x+2, ly+laneH-3), modeColours[mode])
		}
	}
	return png.Encode(w, img)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	fill(img, image.Rect(x, y0, x+1, y1+1), c)
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	fill(img, image.Rect(x0, y, x1+1, y+1), c)
}

// letters are 5×7 bitmaps of the lane labels, one string per row.
var letters = map[string][7]string{
	"E": {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	"C": {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	"H": {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
}

func drawLetter(img *image.RGBA, x, y int, l string, c color.RGBA) {
	for dy, row := range letters[l] {
		for dx, ch := range row {
			if ch == '#' {
				img.SetRGBA(x+dx, y+dy, c)
			}
		}
	}
}
