// Package vsim produces per-frame object detections — replayed from a
// MOTChallenge det.txt file or generated — and publishes them over MQTT as
// the video-metadata JSON that the edge agent's "video" decoder reads.
package vsim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Object is one detected object.
type Object struct {
	Class      string     `json:"class"`
	Confidence float64    `json:"confidence"`
	BBox       [4]float64 `json:"bbox"` // left, top, width, height in pixels
}

// Frame is the detections of one video frame.
type Frame struct {
	// N is the frame number.
	N int
	// Objects detected in the frame (possibly none).
	Objects []Object
	// Width and Height are the frame size in pixels; 0 when unknown.
	Width, Height int
}

type payload struct {
	Camera  string   `json:"camera"`
	TS      string   `json:"ts"`
	Frame   int      `json:"frame"`
	Width   int      `json:"width,omitempty"`
	Height  int      `json:"height,omitempty"`
	Objects []Object `json:"objects"`
}

// Payload is the frame as the video decoder's JSON, timed ts.
func (f Frame) Payload(camera string, ts time.Time) []byte {
	objs := f.Objects
	if objs == nil {
		objs = []Object{}
	}
	b, _ := json.Marshal(payload{Camera: camera, TS: ts.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Frame: f.N,
		Width: f.Width, Height: f.Height, Objects: objs})
	return b
}

// ReadMOT reads detections in the MOTChallenge det.txt format
// ("frame, id, bb_left, bb_top, bb_width, bb_height, conf, x, y, z", one
// line per box) and returns one Frame per frame number from the first to
// the last, frames without a line included (empty). Every box gets class
// class (MOT15 is a pedestrian benchmark: "person"); confidences are
// clamped to [0, 1]. Bad lines are errors naming the line.
func ReadMOT(r io.Reader, class string) ([]Frame, error) {
	byFrame := map[int][]Object{}
	first, last := math.MaxInt, 0
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		f := strings.Split(text, ",")
		if len(f) < 7 {
			return nil, fmt.Errorf("line %d: %d fields, want at least 7 (frame,id,left,top,width,height,conf)", line, len(f))
		}
		var v [7]float64
		for i := range v {
			x, err := strconv.ParseFloat(strings.TrimSpace(f[i]), 64)
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				return nil, fmt.Errorf("line %d: field %d %q is not a number", line, i+1, f[i])
			}
			v[i] = x
		}
		n := int(v[0])
		if float64(n) != v[0] || n < 0 || n > 10_000_000 {
			return nil, fmt.Errorf("line %d: frame %q is not a frame number", line, f[0])
		}
		if v[4] < 0 || v[5] < 0 {
			return nil, fmt.Errorf("line %d: negative box size", line)
		}
		byFrame[n] = append(byFrame[n], Object{Class: class, Confidence: min(max(v[6], 0), 1), BBox: [4]float64{v[2], v[3], v[4], v[5]}})
		first, last = min(first, n), max(last, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(byFrame) == 0 {
		return nil, fmt.Errorf("no detections")
	}
	frames := make([]Frame, 0, last-first+1)
	for n := first; n <= last; n++ {
		frames = append(frames, Frame{N: n, Objects: byFrame[n]})
	}
	return frames, nil
}

// SynthConfig configures generated detections. The zero value means the
// defaults.
type SynthConfig struct {
	// Seed of the generator: the same seed gives the same frames.
	Seed int64
	// FPS is the frame rate the motion is computed for. Default 25.
	FPS float64
	// Width and Height of the frame. Default 1920x1080.
	Width, Height int
	// Rate is the mean number of pedestrians entering per second. Default
	// 0.5.
	Rate float64
	// BurstAt is the frame at which a crowd bursts in (a group of
	// BurstSize pedestrians at once, and arrivals 8 times as frequent for
	// BurstFrames frames); negative means never. Default 1500 (one minute
	// at 25 fps).
	BurstAt, BurstFrames, BurstSize int
}

func (c SynthConfig) withDefaults() SynthConfig {
	if c.FPS <= 0 {
		c.FPS = 25
	}
	if c.Width <= 0 || c.Height <= 0 {
		c.Width, c.Height = 1920, 1080
	}
	if c.Rate <= 0 {
		c.Rate = 0.5
	}
	if c.BurstAt == 0 {
		c.BurstAt = 1500
	}
	if c.BurstFrames <= 0 {
		c.BurstFrames = 250
	}
	if c.BurstSize <= 0 {
		c.BurstSize = 15
	}
	return c
}

// walker is one simulated pedestrian (or car).
type walker struct {
	class  string
	x, y   float64 // box centre
	vx, vy float64 // pixels per frame
	w, h   float64
}

// Synthetic generates detections of pedestrians walking across a frame
// (entering at the left or right edge at a walking pace, boxes growing
// towards the bottom of the frame), a car now and then, detector noise
// (missed boxes, jitter, false positives) and one crowd burst.
type Synthetic struct {
	cfg     SynthConfig
	rng     *rand.Rand
	n       int
	walkers []walker
}

// NewSynthetic returns a generator.
func NewSynthetic(cfg SynthConfig) *Synthetic {
	cfg = cfg.withDefaults()
	return &Synthetic{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed))}
}

// Config returns the generator's configuration, defaults filled.
func (s *Synthetic) Config() SynthConfig { return s.cfg }

// InBurst reports whether frame n is in the crowd burst.
func (s *Synthetic) InBurst(n int) bool {
	return s.cfg.BurstAt >= 0 && n >= s.cfg.BurstAt && n < s.cfg.BurstAt+s.cfg.BurstFrames
}

func (s *Synthetic) spawn(class string) {
	W, H := float64(s.cfg.Width), float64(s.cfg.Height)
	wk := walker{class: class, y: H * (0.35 + 0.5*s.rng.Float64())}
	scale := wk.y / H // nearer the bottom, nearer the camera: bigger
	speed := (50 + 60*s.rng.Float64()) * scale * 2 / s.cfg.FPS
	if class == "car" {
		wk.w, wk.h = 320*scale, 160*scale
		speed *= 5
	} else {
		wk.w = (40 + 20*s.rng.Float64()) * scale * 2
		wk.h = wk.w * 2.6
	}
	if s.rng.Intn(2) == 0 {
		wk.x, wk.vx = -wk.w/2, speed
	} else {
		wk.x, wk.vx = W+wk.w/2, -speed
	}
	wk.vy = (s.rng.Float64() - 0.5) * speed * 0.2
	s.walkers = append(s.walkers, wk)
}

// Next returns the next frame (numbered from 1).
func (s *Synthetic) Next() Frame {
	s.n++
	rate := s.cfg.Rate
	if s.InBurst(s.n) {
		rate *= 8
	}
	if s.n == s.cfg.BurstAt {
		for i := 0; i < s.cfg.BurstSize; i++ {
			s.spawn("person")
		}
	}
	// Poisson arrivals per frame (small means: at most a few).
	for k := s.poisson(rate / s.cfg.FPS); k > 0; k-- {
		s.spawn("person")
	}
	if s.rng.Float64() < 0.05/s.cfg.FPS {
		s.spawn("car")
	}
	W, H := float64(s.cfg.Width), float64(s.cfg.Height)
	f := Frame{N: s.n, Width: s.cfg.Width, Height: s.cfg.Height}
	live := s.walkers[:0]
	for _, wk := range s.walkers {
		wk.x += wk.vx
		wk.y += wk.vy
		if wk.x < -wk.w || wk.x > W+wk.w {
			continue // left the frame
		}
		live = append(live, wk)
		if s.rng.Float64() < 0.05 {
			continue // missed by the detector
		}
		j := func() float64 { return (s.rng.Float64() - 0.5) * 4 }
		l, t := max(wk.x-wk.w/2+j(), 0), max(wk.y-wk.h/2+j(), 0)
		r, b := min(wk.x+wk.w/2+j(), W), min(wk.y+wk.h/2+j(), H)
		if r-l < 4 || b-t < 4 {
			continue // mostly outside
		}
		f.Objects = append(f.Objects, Object{Class: wk.class, Confidence: round3(0.6 + 0.39*s.rng.Float64()),
			BBox: [4]float64{round1(l), round1(t), round1(r - l), round1(b - t)}})
	}
	s.walkers = live
	if s.rng.Float64() < 0.02 { // a false positive
		w := 30 + 40*s.rng.Float64()
		f.Objects = append(f.Objects, Object{Class: "person", Confidence: round3(0.5 + 0.1*s.rng.Float64()),
			BBox: [4]float64{round1(s.rng.Float64() * (W - w)), round1(s.rng.Float64() * (H - 2.5*w)), round1(w), round1(2.5 * w)}})
	}
	sort.SliceStable(f.Objects, func(i, j int) bool { return f.Objects[i].BBox[0] < f.Objects[j].BBox[0] })
	return f
}

func (s *Synthetic) poisson(mean float64) int {
	// Knuth's method; mean is small.
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= s.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
