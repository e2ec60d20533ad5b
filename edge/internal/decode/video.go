package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Video decodes per-frame object detections from a camera (the output of an
// object detector) and turns them into per-camera features per time bucket.
//
// Payload, one JSON object per frame:
//
//	{"camera": "cam-1", "ts": "2026-01-02T03:04:05.040Z", "frame": 123,
//	 "width": 1920, "height": 1080,
//	 "objects": [{"class": "person", "confidence": 0.91,
//	              "bbox": [left, top, width, height]}, ...]}
//
// Fields:
//
//   - camera: required, a non-empty string of at most 128 bytes; '/', '+',
//     '#', spaces and control characters become '_' where it is used in a
//     stream id.
//   - ts: the frame's time, an RFC 3339 string or unix milliseconds.
//   - frame: optional frame number, a non-negative integer (informational).
//   - width, height: optional frame size in pixels; when both are given (in
//     the payload or in VideoOptions) box areas and centres are normalised
//     by it, else they are in pixels.
//   - objects: required, possibly empty (a frame with nothing detected);
//     class a non-empty string (compared case-insensitively), confidence in
//     [0, 1], bbox four finite numbers, width and height >= 0. At most
//     10,000 objects.
//
// Features: frames are grouped per camera (per expanded stream prefix) into
// buckets of VideoOptions.Bucket (aligned to the Unix epoch). A bucket is
// emitted when the first frame of a later bucket arrives for that camera, as
// readings timed at the bucket's start, on streams <prefix>/<feature>:
//
//   - frames: frames in the bucket;
//   - count_<class>: objects of that class per frame (mean over the
//     bucket's frames), for each configured class, and count_other for the
//     rest;
//   - confidence_mean: mean confidence of the bucket's objects;
//   - area_mean: mean box area (width x height, divided by the frame's area
//     when the frame size is known);
//   - motion_mean: mean distance from each box centre to the nearest box
//     centre of the camera's previous frame (normalised coordinates when the
//     frame size is known), a cheap tracker-free estimate of movement; the
//     previous frame counts only if it is at most 5 buckets older.
//
// confidence_mean and area_mean are omitted for a bucket with no object,
// motion_mean when no box had a previous frame to compare with. A frame of
// a bucket older than the camera's current one is skipped and counted
// (Skipped), unless it is more than a minute (or 5 buckets, if longer)
// older: then the camera's clock is taken to have jumped back, the current
// bucket's frames are dropped (and counted as skipped) and a new bucket
// starts. A malformed frame leaves the state unchanged. The decoder keeps
// state per expanded stream prefix (cameras sharing one, e.g. two cameras
// on one topic with prefix "{topic}", share their buckets and streams: use
// "{camera}" or one topic per camera), for at most MaxCameras prefixes; frames of further cameras are
// rejected with reason "too_many_cameras". The stream prefix defaults to
// "{topic}"; "{camera}" gives e.g. "cameras/{camera}" ->
// "cameras/cam-1/count_person".
//
// A Video decoder's last bucket per camera (its open bucket) stays pending
// until a later frame arrives. That state survives a restart through
// checkpoints (video_state.go): Holds reports whether the last frame went
// into an open bucket, Dirty lists the cameras changed since the last
// checkpoint, AppendCameraState and RestoreCamera save and restore them. A
// frame already held in its camera's open bucket (same camera and time: a
// message the broker redelivers after a crash) is skipped as a duplicate,
// so no frame counts twice.
type Video struct {
	opts    VideoOptions
	prefix  prefixTemplate
	classes map[string]int
	cams    map[string]*camState
	skipped atomic.Uint64
	// dirty are the prefixes whose state changed since TakeDirty; holds
	// whether the last Decode's frame is held in an open bucket.
	dirty map[string]struct{}
	holds bool
	// scratch, reused between frames
	objs []videoObject
	cent []point
}

// VideoOptions configure the video decoder. The zero value means the
// defaults.
type VideoOptions struct {
	// Bucket is the length of a feature bucket. Default 1s.
	Bucket time.Duration
	// Classes get a count_<class> feature each; other classes are counted
	// as "other". Lower case letters, digits, '_' and '-'. Default
	// DefaultVideoClasses.
	Classes []string
	// FrameWidth and FrameHeight are the frame size in pixels used when a
	// payload carries none; 0 means unknown.
	FrameWidth, FrameHeight float64
	// MaxCameras bounds the cameras the decoder keeps state for. Default
	// 1024.
	MaxCameras int
}

// DefaultVideoClasses are the classes counted by default (COCO names).
var DefaultVideoClasses = []string{"person", "car", "bicycle", "motorcycle", "bus", "truck"}

// Video limits.
const (
	DefaultVideoBucket     = time.Second
	DefaultVideoMaxCameras = 1024
	maxVideoObjects        = 10000
	maxCameraLen           = 128
	motionMaxBuckets       = 5
)

type point struct{ x, y float64 }

type camState struct {
	start                   time.Time // current bucket's start
	frames                  int
	counts                  []float64 // per class, then other
	objects                 int
	confSum, areaSum        float64
	motionSum               float64
	motionN                 int
	prev                    []point
	prevTS                  time.Time
	hasPrev                 bool
	streams                 []string // frames, count_*, confidence_mean, area_mean, motion_mean
	conf, area, motionIndex int
	// seen are the frames of the open bucket (a redelivered one is a
	// duplicate).
	seen map[frameKey]struct{}
}

// frameKey identifies a frame of a camera: its time and its camera.
type frameKey struct {
	ts  int64
	cam uint64 // fnv-1a of the camera id
}

type videoObject struct {
	Class      *string   `json:"class"`
	Confidence *float64  `json:"confidence"`
	BBox       []float64 `json:"bbox"`
}

type videoFrame struct {
	Camera  json.RawMessage `json:"camera"`
	TS      json.RawMessage `json:"ts"`
	Frame   json.RawMessage `json:"frame"`
	Width   json.RawMessage `json:"width"`
	Height  json.RawMessage `json:"height"`
	Objects json.RawMessage `json:"objects"`
}

// NewVideo returns a video decoder; streamPrefix may use "{topic}" and
// "{camera}" and defaults to DefaultStreamPrefix.
func NewVideo(streamPrefix string, opts VideoOptions) (*Video, error) {
	p, err := newPrefixTemplate(streamPrefix, "topic", "camera")
	if err != nil {
		return nil, err
	}
	if opts.Bucket == 0 {
		opts.Bucket = DefaultVideoBucket
	}
	if opts.Bucket < 0 {
		return nil, fmt.Errorf("video: bucket %v must be > 0", opts.Bucket)
	}
	if opts.Classes == nil {
		opts.Classes = DefaultVideoClasses
	}
	opts.Classes = append([]string(nil), opts.Classes...)
	if opts.MaxCameras == 0 {
		opts.MaxCameras = DefaultVideoMaxCameras
	}
	if opts.FrameWidth < 0 || opts.FrameHeight < 0 || math.IsNaN(opts.FrameWidth+opts.FrameHeight) || math.IsInf(opts.FrameWidth+opts.FrameHeight, 0) {
		return nil, fmt.Errorf("video: frame size %gx%g must be >= 0", opts.FrameWidth, opts.FrameHeight)
	}
	v := &Video{opts: opts, prefix: p, classes: map[string]int{}, cams: map[string]*camState{}}
	for i, c := range opts.Classes {
		if err := CheckVideoClass(c); err != nil {
			return nil, err
		}
		if _, dup := v.classes[c]; dup {
			return nil, fmt.Errorf("video: class %q listed twice", c)
		}
		v.classes[c] = i
	}
	return v, nil
}

// CheckVideoClass reports whether c can be a configured class: 1 to 64 lower
// case letters, digits, '_' or '-', and not "other".
func CheckVideoClass(c string) error {
	if c == "" || len(c) > 64 {
		return fmt.Errorf("video: class %q must have 1 to 64 characters", c)
	}
	if c == "other" {
		return fmt.Errorf("video: class \"other\" is implicit")
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return fmt.Errorf("video: class %q: only lower case letters, digits, '_' and '-'", c)
		}
	}
	return nil
}

func videoErr(reason, format string, args ...any) *Error {
	return &Error{Decoder: "video", Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Decode implements Decoder.
func (v *Video) Decode(topic string, payload []byte) ([]Reading, error) {
	v.holds = false
	var f videoFrame
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&f); err != nil {
		return nil, videoErr("syntax", "%v", err)
	}
	if dec.More() {
		return nil, videoErr("syntax", "trailing data after the JSON object")
	}
	// camera
	if len(f.Camera) == 0 || string(f.Camera) == "null" {
		return nil, videoErr("no_camera", "field \"camera\" is missing")
	}
	var camera string
	if f.Camera[0] != '"' || json.Unmarshal(f.Camera, &camera) != nil {
		return nil, videoErr("bad_camera", "field \"camera\": not a string")
	}
	if camera == "" || len(camera) > maxCameraLen || !utf8.ValidString(camera) {
		return nil, videoErr("bad_camera", "field \"camera\": must be 1 to %d bytes of UTF-8", maxCameraLen)
	}
	ts, err := parseTS(f.TS)
	if err != nil {
		de := err.(*Error)
		return nil, videoErr(de.Reason, "field \"ts\": %s", de.Detail)
	}
	if len(f.Frame) > 0 && string(f.Frame) != "null" {
		n, err := senmlNumber(f.Frame)
		if err != nil || n < 0 || n != math.Trunc(n) || n > 1<<53 {
			return nil, videoErr("bad_frame", "field \"frame\": must be a non-negative integer, got %s", f.Frame)
		}
	}
	w, h := v.opts.FrameWidth, v.opts.FrameHeight
	if len(f.Width) > 0 || len(f.Height) > 0 {
		pw, err1 := senmlNumber(f.Width)
		ph, err2 := senmlNumber(f.Height)
		if err1 != nil || err2 != nil || pw < 1 || ph < 1 || pw > 1e6 || ph > 1e6 {
			return nil, videoErr("bad_size", "fields \"width\" and \"height\": both must be numbers from 1 to 1e6, got %s and %s", f.Width, f.Height)
		}
		w, h = pw, ph
	}
	if len(f.Objects) == 0 || string(f.Objects) == "null" {
		return nil, videoErr("no_objects", "field \"objects\" is missing (send [] for a frame with no detection)")
	}
	if f.Objects[0] != '[' {
		return nil, videoErr("bad_object", "field \"objects\": not an array")
	}
	clear(v.objs[:cap(v.objs)]) // json reuses elements: no field may leak from the last frame
	v.objs = v.objs[:0]
	if err := json.Unmarshal(f.Objects, &v.objs); err != nil {
		return nil, videoErr("bad_object", "field \"objects\": %v", err)
	}
	if len(v.objs) > maxVideoObjects {
		return nil, videoErr("too_many_objects", "%d objects, at most %d", len(v.objs), maxVideoObjects)
	}
	for i, o := range v.objs {
		switch {
		case o.Class == nil || *o.Class == "":
			return nil, videoErr("bad_object", "object %d: field \"class\": missing or empty", i)
		case o.Confidence == nil:
			return nil, videoErr("bad_confidence", "object %d: field \"confidence\": missing", i)
		case !(*o.Confidence >= 0 && *o.Confidence <= 1):
			return nil, videoErr("bad_confidence", "object %d: field \"confidence\": %g not in [0, 1]", i, *o.Confidence)
		case len(o.BBox) != 4:
			return nil, videoErr("bad_bbox", "object %d: field \"bbox\": want [left, top, width, height], got %d numbers", i, len(o.BBox))
		case o.BBox[2] < 0 || o.BBox[3] < 0:
			return nil, videoErr("bad_bbox", "object %d: field \"bbox\": negative width or height", i)
		}
		for _, x := range o.BBox {
			if math.IsInf(x, 0) || math.IsNaN(x) || math.Abs(x) > 1e9 {
				return nil, videoErr("bad_bbox", "object %d: field \"bbox\": coordinate %g out of range", i, x)
			}
		}
	}

	// The frame is valid: from here on, state changes.
	cam := sanitizeToken(camera)
	prefix := v.prefix.expand(topic, cam)
	st := v.cams[prefix]
	b := ts.Truncate(v.opts.Bucket)
	if st == nil {
		if len(v.cams) >= v.opts.MaxCameras {
			return nil, videoErr("too_many_cameras", "state for %d cameras already; camera %q refused", len(v.cams), camera)
		}
		st = v.newCam(prefix, b)
		v.cams[prefix] = st
	}
	key := frameKey{ts.UnixNano(), camHash(camera)}
	if b.Equal(st.start) {
		if _, dup := st.seen[key]; dup {
			// Redelivered: already in the open bucket. Its ack waits for
			// the checkpoint holding it, as the first delivery's did.
			v.skipped.Add(1)
			v.holds = true
			return nil, nil
		}
	}
	if b.Before(st.start) {
		if st.start.Sub(b) <= v.rewind() {
			v.skipped.Add(1)
			return nil, nil
		}
		// The camera's clock jumped back (or an earlier frame's was far
		// ahead): drop the current bucket and start again here, rather than
		// skip every frame until the clock catches up.
		v.skipped.Add(uint64(st.frames))
		st.reset(b)
		st.hasPrev = false
	}
	var out []Reading
	if b.After(st.start) {
		out = st.emit(nil)
		st.reset(b)
	}
	v.add(st, ts, w, h)
	if st.seen == nil {
		st.seen = map[frameKey]struct{}{}
	}
	st.seen[key] = struct{}{}
	v.markDirty(prefix)
	v.holds = true
	return out, nil
}

// rewind is how far behind its camera's current bucket a frame may be and
// still count as late (skipped) rather than as a clock reset.
func (v *Video) rewind() time.Duration { return max(motionMaxBuckets*v.opts.Bucket, time.Minute) }

// Skipped implements Skipper: frames that arrived after their bucket.
func (v *Video) Skipped() uint64 { return v.skipped.Load() }

func (v *Video) newCam(prefix string, start time.Time) *camState {
	st := &camState{start: start, counts: make([]float64, len(v.opts.Classes)+1)}
	st.streams = append(st.streams, prefix+"/frames")
	for _, c := range v.opts.Classes {
		st.streams = append(st.streams, prefix+"/count_"+c)
	}
	st.streams = append(st.streams, prefix+"/count_other", prefix+"/confidence_mean", prefix+"/area_mean", prefix+"/motion_mean")
	n := len(st.streams)
	st.conf, st.area, st.motionIndex = n-3, n-2, n-1
	return st
}

// add accumulates the frame in v.objs (validated) into st.
func (v *Video) add(st *camState, ts time.Time, w, h float64) {
	norm := w > 0 && h > 0
	st.frames++
	v.cent = v.cent[:0]
	for _, o := range v.objs {
		i, ok := v.classes[*o.Class]
		if !ok {
			i, ok = v.classes[strings.ToLower(*o.Class)]
		}
		if !ok {
			i = len(v.opts.Classes)
		}
		st.counts[i]++
		st.objects++
		st.confSum += *o.Confidence
		bw, bh := o.BBox[2], o.BBox[3]
		c := point{o.BBox[0] + bw/2, o.BBox[1] + bh/2}
		area := bw * bh
		if norm {
			area /= w * h
			c.x /= w
			c.y /= h
		}
		st.areaSum += area
		v.cent = append(v.cent, c)
	}
	if st.hasPrev && len(st.prev) > 0 && !ts.Before(st.prevTS) && ts.Sub(st.prevTS) <= motionMaxBuckets*v.opts.Bucket {
		for _, c := range v.cent {
			best := math.Inf(1)
			for _, p := range st.prev {
				if d := math.Hypot(c.x-p.x, c.y-p.y); d < best {
					best = d
				}
			}
			st.motionSum += best
			st.motionN++
		}
	}
	st.prev = append(st.prev[:0], v.cent...)
	st.prevTS = ts
	st.hasPrev = true
}

// emit appends the bucket's readings to out.
func (st *camState) emit(out []Reading) []Reading {
	if st.frames == 0 {
		return out
	}
	fr := float64(st.frames)
	out = append(out, Reading{Stream: st.streams[0], TS: st.start, Value: fr})
	for i, c := range st.counts {
		out = append(out, Reading{Stream: st.streams[1+i], TS: st.start, Value: c / fr})
	}
	if st.objects > 0 {
		n := float64(st.objects)
		out = append(out,
			Reading{Stream: st.streams[st.conf], TS: st.start, Value: st.confSum / n},
			Reading{Stream: st.streams[st.area], TS: st.start, Value: finiteOr0(st.areaSum / n)})
	}
	if st.motionN > 0 {
		out = append(out, Reading{Stream: st.streams[st.motionIndex], TS: st.start, Value: finiteOr0(st.motionSum / float64(st.motionN))})
	}
	return out
}

func (st *camState) reset(start time.Time) {
	st.start = start
	st.frames, st.objects, st.motionN = 0, 0, 0
	st.confSum, st.areaSum, st.motionSum = 0, 0, 0
	for i := range st.counts {
		st.counts[i] = 0
	}
	clear(st.seen)
}

func finiteOr0(f float64) float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return f
}
