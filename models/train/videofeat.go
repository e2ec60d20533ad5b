package train

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// VideoFeatureNames are the per-bucket features of a camera that the video
// model reads, in its order: the edge's video decoder (edge/internal/decode,
// decoder "video") emits each on the stream <camera prefix>/<name> with the
// default classes (person, car, bicycle, motorcycle, bus, truck). The
// decoder's "frames" feature is left out: it depends on the frame rate, not
// on the scene.
var VideoFeatureNames = []string{
	"count_person", "count_car", "count_bicycle", "count_motorcycle", "count_bus", "count_truck", "count_other",
	"confidence_mean", "area_mean", "motion_mean",
}

// VideoClasses are the classes with a count feature, in order.
var VideoClasses = []string{"person", "car", "bicycle", "motorcycle", "bus", "truck"}

// Indexes of the non-count features in a video feature vector.
const (
	VideoConfidence = 7
	VideoArea       = 8
	VideoMotion     = 9
)

// Box is one detected object of a frame: class, confidence and box
// (left, top, width, height) in pixels.
type Box struct {
	Class                    string
	Confidence               float64
	Left, Top, Width, Height float64
}

// Frame is one video frame's detections.
type Frame struct {
	Boxes []Box
}

// VideoFeatures computes the per-bucket feature vectors (VideoFeatureNames
// order) of a camera's frames, as the edge's video decoder does with frames
// of the given size (pixels) grouped perBucket frames to a bucket: objects
// per frame by class, mean confidence, mean box area as a fraction of the
// frame, mean distance from each box centre to the nearest box centre of
// the previous frame (fractions of the frame's width and height).
// Features the decoder omits (confidence and area of a bucket without an
// object, motion without a previous box) are NaN. A trailing partial
// bucket is dropped. perBucket < 1 or a frame size not > 0 gives nil.
func VideoFeatures(frames []Frame, perBucket int, width, height float64) [][]float64 {
	classes := map[string]int{}
	for i, c := range VideoClasses {
		classes[c] = i
	}
	if perBucket < 1 || !(width > 0) || !(height > 0) {
		return nil
	}
	var out [][]float64
	var prev, cur [][2]float64
	hasPrev := false
	for start := 0; start+perBucket <= len(frames); start += perBucket {
		v := make([]float64, len(VideoFeatureNames))
		var objects, motionN int
		var conf, area, motion float64
		for _, f := range frames[start : start+perBucket] {
			cur = cur[:0]
			for _, b := range f.Boxes {
				i, ok := classes[strings.ToLower(b.Class)]
				if !ok {
					i = len(VideoClasses)
				}
				v[i]++
				objects++
				conf += b.Confidence
				area += b.Width * b.Height / (width * height)
				cur = append(cur, [2]float64{(b.Left + b.Width/2) / width, (b.Top + b.Height/2) / height})
			}
			if hasPrev && len(prev) > 0 {
				for _, c := range cur {
					best := math.Inf(1)
					for _, p := range prev {
						best = math.Min(best, math.Hypot(c[0]-p[0], c[1]-p[1]))
					}
					motion += best
					motionN++
				}
			}
			prev = append(prev[:0], cur...)
			hasPrev = true
		}
		for i := 0; i <= len(VideoClasses); i++ {
			v[i] /= float64(perBucket)
		}
		v[VideoConfidence], v[VideoArea], v[VideoMotion] = math.NaN(), math.NaN(), math.NaN()
		if objects > 0 {
			v[VideoConfidence] = conf / float64(objects)
			v[VideoArea] = area / float64(objects)
		}
		if motionN > 0 {
			v[VideoMotion] = motion / float64(motionN)
		}
		out = append(out, v)
	}
	return out
}

// ReadMOT reads a MOTChallenge det.txt (frame, id, left, top, width,
// height, conf, ...; frames 1-based) into frames, every box of class
// class; frames without a line are empty frames.
func ReadMOT(r io.Reader, class string) ([]Frame, error) {
	var frames []Frame
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" {
			continue
		}
		f := strings.Split(t, ",")
		if len(f) < 7 {
			return nil, fmt.Errorf("train: det.txt line %d: %d fields, want at least 7", line, len(f))
		}
		var x [7]float64
		for i := range x {
			v, err := strconv.ParseFloat(strings.TrimSpace(f[i]), 64)
			if err != nil {
				return nil, fmt.Errorf("train: det.txt line %d field %d: %w", line, i+1, err)
			}
			x[i] = v
		}
		n := int(x[0])
		if n < 1 || n > 1e7 {
			return nil, fmt.Errorf("train: det.txt line %d: frame %v", line, x[0])
		}
		for len(frames) < n {
			frames = append(frames, Frame{})
		}
		frames[n-1].Boxes = append(frames[n-1].Boxes, Box{Class: class, Confidence: math.Max(0, math.Min(1, x[6])),
			Left: x[2], Top: x[3], Width: x[4], Height: x[5]})
	}
	return frames, sc.Err()
}

// Scene parameterises SynthVideo: a fixed camera over a street. Zero fields
// are drawn from the seed.
type Scene struct {
	// Seed draws the scene's parameters and every detection.
	Seed uint64
	// Width and Height are the frame size in pixels (1920x1080); FPS the
	// frame rate (25).
	Width, Height, FPS float64
	// PersonRate, CarRate and BikeRate are mean arrivals per second;
	// LargeRate is buses and trucks per second. Drawn per scene when 0.
	PersonRate, CarRate, BikeRate, LargeRate float64
	// Anomaly, when set, is injected into the scene.
	Anomaly *Anomaly
}

// Anomaly kinds SynthVideo can inject.
const (
	// AnomalyCrowd: Size pedestrians walk in at once (a crowd forms).
	AnomalyCrowd = "crowd"
	// AnomalyVanish: the detector reports no person for Duration seconds
	// (a class vanishes: occlusion, a failing detector, a closed area).
	AnomalyVanish = "vanish"
	// AnomalyRush: pedestrians entering in Duration seconds run (speed
	// ×Size) rather than walk, and arrive Size times as often.
	AnomalyRush = "rush"
)

// Anomaly is an injected event: Kind from second At for Duration seconds.
type Anomaly struct {
	Kind     string
	At       float64
	Duration float64
	Size     float64
}

type track struct {
	class          string
	x, y, vx, vy   float64 // centre, pixels; pixels per frame
	w, h           float64
	conf           float64
	miss, stillFor int
}

// SynthVideo generates seconds·FPS frames of detections in a scene of
// pedestrians, cars, bicycles and the odd bus or truck crossing the frame,
// their boxes sized by perspective, with detector noise (box jitter,
// confidence noise, missed detections, occasional false positives) and
// arrival rates that drift slowly (a few-minute cycle), after a minute of
// pre-roll so the street is not empty at the start. The same scene
// gives the same frames.
func SynthVideo(sc Scene, seconds float64) []Frame {
	rng := rand.New(rand.NewPCG(sc.Seed, 0x766964656f))
	if sc.Width == 0 {
		sc.Width, sc.Height = 1920, 1080
	}
	if sc.FPS == 0 {
		sc.FPS = 25
	}
	if sc.PersonRate == 0 {
		sc.PersonRate = 0.05 + 0.55*rng.Float64()
	}
	if sc.CarRate == 0 {
		sc.CarRate = 0.6 * rng.Float64() * rng.Float64()
	}
	if sc.BikeRate == 0 {
		sc.BikeRate = 0.15 * rng.Float64()
	}
	if sc.LargeRate == 0 {
		sc.LargeRate = 0.04 * rng.Float64()
	}
	period := 120 + 480*rng.Float64() // seconds of the rate cycle
	phase := 2 * math.Pi * rng.Float64()
	horizon := 0.25 + 0.25*rng.Float64() // top of the walkable area, fraction of height
	missP := 0.02 + 0.08*rng.Float64()
	fpRate := 0.02 * rng.Float64() // false positives per frame
	W, H, fps := sc.Width, sc.Height, sc.FPS
	n := int(seconds * fps)
	pre := int(60 * fps) // a minute of pre-roll: the street is not empty at the start
	frames := make([]Frame, n)
	var tracks []*track
	anom := sc.Anomaly
	in := func(t float64) bool { return anom != nil && t >= anom.At && t < anom.At+anom.Duration }
	spawn := func(class string, speed float64) *track {
		y := H * (horizon + (1-horizon)*rng.Float64())
		depth := (y/H - horizon) / (1 - horizon) // 0 far, 1 near
		scale := 0.3 + 0.7*depth
		tr := &track{class: class, y: y, conf: 0.65 + 0.3*rng.Float64()}
		switch class {
		case "person":
			tr.h, tr.w = H*0.28*scale, H*0.1*scale
		case "bicycle", "motorcycle":
			tr.h, tr.w = H*0.22*scale, H*0.2*scale
		case "car":
			tr.h, tr.w = H*0.2*scale, H*0.35*scale
		default:
			tr.h, tr.w = H*0.4*scale, H*0.8*scale
		}
		v := speed * W * scale / fps * (0.8 + 0.4*rng.Float64())
		if rng.IntN(2) == 0 {
			tr.x, tr.vx = -tr.w/2, v
		} else {
			tr.x, tr.vx = W+tr.w/2, -v
		}
		tr.vy = (rng.Float64() - 0.5) * 0.1 * v
		if class == "person" && rng.Float64() < 0.1 { // someone standing for a while
			tr.stillFor = int(fps * (5 + 30*rng.Float64()))
			tr.x = tr.w + (W-2*tr.w)*rng.Float64()
		}
		tracks = append(tracks, tr)
		return tr
	}
	poisson := func(rate float64) int { // arrivals in one frame
		k := 0
		for p := rate / fps; rng.Float64() < p; p = rate / fps / 2 {
			k++
		}
		return k
	}
	for fi := -pre; fi < n; fi++ {
		i := fi
		t := float64(i) / fps
		mod := 1 + 0.5*math.Sin(2*math.Pi*t/period+phase)
		pr, walk := sc.PersonRate*mod, 0.12
		if in(t) && anom.Kind == AnomalyRush {
			pr *= anom.Size
			walk *= anom.Size
		}
		for k := poisson(pr); k > 0; k-- {
			spawn("person", walk)
		}
		if anom != nil && anom.Kind == AnomalyCrowd && i == int(anom.At*fps) {
			for k := 0; k < int(anom.Size); k++ {
				spawn("person", walk*(0.7+0.3*rng.Float64()))
			}
		}
		for k := poisson(sc.CarRate * mod); k > 0; k-- {
			spawn("car", 0.5)
		}
		for k := poisson(sc.BikeRate * mod); k > 0; k-- {
			spawn([]string{"bicycle", "motorcycle"}[rng.IntN(2)], 0.2)
		}
		for k := poisson(sc.LargeRate); k > 0; k-- {
			spawn([]string{"bus", "truck"}[rng.IntN(2)], 0.3)
		}
		live := tracks[:0]
		var boxes []Box
		for _, tr := range tracks {
			if tr.stillFor > 0 {
				tr.stillFor--
				tr.x += (rng.Float64() - 0.5) * 0.002 * W
			} else {
				tr.x += tr.vx
				tr.y += tr.vy
			}
			if tr.x < -tr.w || tr.x > W+tr.w {
				continue
			}
			live = append(live, tr)
			vanished := in(t) && anom.Kind == AnomalyVanish && tr.class == "person"
			if vanished || rng.Float64() < missP {
				continue
			}
			l, tp := tr.x-tr.w/2, tr.y-tr.h/2
			w, h := tr.w, tr.h
			if l < 0 { // clipped at the frame's edge
				w += l
				l = 0
			}
			if l+w > W {
				w = W - l
			}
			if w < 2 {
				continue
			}
			j := 0.02 * tr.h
			boxes = append(boxes, Box{Class: tr.class, Confidence: math.Max(0.3, math.Min(1, tr.conf+0.05*rng.NormFloat64())),
				Left: l + j*rng.NormFloat64(), Top: tp + j*rng.NormFloat64(), Width: math.Max(1, w+j*rng.NormFloat64()), Height: math.Max(1, h+j*rng.NormFloat64())})
		}
		tracks = live
		if rng.Float64() < fpRate {
			boxes = append(boxes, Box{Class: []string{"person", "car", "dog"}[rng.IntN(3)], Confidence: 0.3 + 0.3*rng.Float64(),
				Left: W * rng.Float64() * 0.9, Top: H * rng.Float64() * 0.9, Width: W * 0.05, Height: H * 0.1})
		}
		if i >= 0 {
			frames[i].Boxes = boxes
		}
	}
	return frames
}
