package decode

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

var vt0 = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

type obj struct {
	Class      string     `json:"class"`
	Confidence float64    `json:"confidence"`
	BBox       [4]float64 `json:"bbox"`
}

// frame builds a payload; ts is an offset from vt0, sent as RFC 3339 or
// unix ms alternately.
func frame(camera string, at time.Duration, n int, objs ...obj) []byte {
	m := map[string]any{"camera": camera, "frame": n, "objects": append([]obj{}, objs...)}
	ts := vt0.Add(at)
	if n%2 == 0 {
		m["ts"] = ts.Format(time.RFC3339Nano)
	} else {
		m["ts"] = ts.UnixMilli()
	}
	b, _ := json.Marshal(m)
	return b
}

func mustVideo(t *testing.T, prefix string, o VideoOptions) *Video {
	t.Helper()
	v, err := NewVideo(prefix, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func decodeOK(t *testing.T, v *Video, topic string, p []byte) []Reading {
	t.Helper()
	rs, err := v.Decode(topic, p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return rs
}

// features maps the readings' last stream level to values and checks they
// are all at ts.
func features(t *testing.T, rs []Reading, prefix string, ts time.Time) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, r := range rs {
		if !strings.HasPrefix(r.Stream, prefix+"/") {
			t.Errorf("stream %q lacks prefix %q", r.Stream, prefix)
		}
		if !r.TS.Equal(ts) {
			t.Errorf("%s at %v, want %v", r.Stream, r.TS, ts)
		}
		m[strings.TrimPrefix(r.Stream, prefix+"/")] = r.Value
	}
	return m
}

func checkFeatures(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("feature %s missing (got %v)", k, got)
		} else if math.Abs(g-w) > 1e-12 {
			t.Errorf("feature %s = %v, want %v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected feature %s = %v", k, got[k])
		}
	}
}

// TestVideoFeatures checks hand-computed features of small frames, with
// and without a known frame size, and the bucket boundaries.
func TestVideoFeatures(t *testing.T) {
	f1 := []obj{{"person", 0.9, [4]float64{0, 0, 10, 20}}, {"car", 0.5, [4]float64{50, 50, 20, 10}}}
	// Person centre (5,10) -> (8,14): 5 px; the dog's centre (70,55) is
	// 10 px from the car's (60,55).
	f2 := []obj{{"Person", 0.7, [4]float64{3, 4, 10, 20}}, {"dog", 0.6, [4]float64{60, 50, 20, 10}}}
	for _, c := range []struct {
		name         string
		opts         VideoOptions
		area, motion float64
	}{
		{"pixels", VideoOptions{Classes: []string{"person", "car"}}, 200, 7.5},
		// 100x100 frame: areas 200/10000, distances 0.05 and 0.1.
		{"normalised", VideoOptions{Classes: []string{"person", "car"}, FrameWidth: 100, FrameHeight: 100}, 0.02, 0.075},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := mustVideo(t, "", c.opts)
			topic := "cameras/cam-1/detections"
			if rs := decodeOK(t, v, topic, frame("cam-1", 0, 1, f1...)); len(rs) != 0 {
				t.Fatalf("first frame emitted %v", rs)
			}
			if rs := decodeOK(t, v, topic, frame("cam-1", 500*time.Millisecond, 2, f2...)); len(rs) != 0 {
				t.Fatalf("same bucket emitted %v", rs)
			}
			// The first frame of bucket 1 (an empty frame) closes bucket 0.
			rs := decodeOK(t, v, topic, frame("cam-1", 1200*time.Millisecond, 3))
			checkFeatures(t, features(t, rs, topic, vt0), map[string]float64{
				"frames": 2, "count_person": 1, "count_car": 0.5, "count_other": 0.5,
				"confidence_mean": (0.9 + 0.5 + 0.7 + 0.6) / 4, "area_mean": c.area, "motion_mean": c.motion,
			})
			// Exactly on the boundary belongs to bucket 2 and closes bucket 1:
			// no objects, so no confidence, area or motion.
			rs = decodeOK(t, v, topic, frame("cam-1", 2*time.Second, 4, f1[0]))
			checkFeatures(t, features(t, rs, topic, vt0.Add(time.Second)), map[string]float64{
				"frames": 1, "count_person": 0, "count_car": 0, "count_other": 0,
			})
			// A late frame of bucket 1 is skipped and counted.
			if rs := decodeOK(t, v, topic, frame("cam-1", 1900*time.Millisecond, 5, f1...)); len(rs) != 0 || v.Skipped() != 1 {
				t.Fatalf("late frame: %v, skipped %d", rs, v.Skipped())
			}
			// The last millisecond of bucket 2 stays in it.
			decodeOK(t, v, topic, frame("cam-1", 2999*time.Millisecond, 6, f1[0]))
			// A gap of buckets: bucket 2 is emitted at the next frame, the
			// empty buckets in between are not; the person did not move, but
			// only 1 s apart, so motion counts (0 px) for frame 6 only.
			rs = decodeOK(t, v, topic, frame("cam-1", 7*time.Second, 8, f1[0]))
			checkFeatures(t, features(t, rs, topic, vt0.Add(2*time.Second)), map[string]float64{
				"frames": 2, "count_person": 1, "count_car": 0, "count_other": 0,
				"confidence_mean": 0.9, "area_mean": c.area, "motion_mean": 0,
			})
		})
	}
}

// TestVideoMotionGap: a previous frame more than 5 buckets old is not
// compared with.
func TestVideoMotionGap(t *testing.T) {
	v := mustVideo(t, "", VideoOptions{})
	p := obj{"person", 1, [4]float64{0, 0, 2, 2}}
	decodeOK(t, v, "c", frame("k", 0, 1, p))
	decodeOK(t, v, "c", frame("k", 6*time.Second, 2, p))
	rs := decodeOK(t, v, "c", frame("k", 7*time.Second, 3, p))
	m := features(t, rs, "c", vt0.Add(6*time.Second))
	if _, ok := m["motion_mean"]; ok {
		t.Errorf("motion across a 6 s gap: %v", m)
	}
	if m["count_person"] != 1 || m["area_mean"] != 4 {
		t.Errorf("features %v", m)
	}
}

func TestVideoCamerasAndPrefix(t *testing.T) {
	v := mustVideo(t, "cameras/{camera}", VideoOptions{Bucket: 250 * time.Millisecond, Classes: []string{"person"}})
	p := obj{"person", 0.5, [4]float64{0, 0, 1, 1}}
	// Two cameras on the same topic filter keep separate buckets.
	decodeOK(t, v, "cameras/cam-1/detections", frame("cam-1", 0, 1, p))
	decodeOK(t, v, "cameras/x/detections", frame("a/b+c#d e", 100*time.Millisecond, 1, p, p))
	rs := decodeOK(t, v, "cameras/cam-1/detections", frame("cam-1", 250*time.Millisecond, 2))
	checkFeatures(t, features(t, rs, "cameras/cam-1", vt0), map[string]float64{
		"frames": 1, "count_person": 1, "count_other": 0, "confidence_mean": 0.5, "area_mean": 1})
	rs = decodeOK(t, v, "cameras/x/detections", frame("a/b+c#d e", 260*time.Millisecond, 2))
	checkFeatures(t, features(t, rs, "cameras/a_b_c_d_e", vt0), map[string]float64{
		"frames": 1, "count_person": 2, "count_other": 0, "confidence_mean": 0.5, "area_mean": 1})
	for _, r := range rs {
		if !ValidStream(r.Stream) {
			t.Errorf("invalid stream %q", r.Stream)
		}
	}
	if got := rs[1].Stream; got != "cameras/a_b_c_d_e/count_person" {
		t.Errorf("stream %q", got)
	}
}

func TestVideoPayloadFrameSize(t *testing.T) {
	v := mustVideo(t, "", VideoOptions{FrameWidth: 10, FrameHeight: 10})
	decodeOK(t, v, "c", []byte(`{"camera":"k","ts":0,"width":200,"height":100,"objects":[{"class":"car","confidence":1,"bbox":[0,0,20,10]}]}`))
	rs := decodeOK(t, v, "c", []byte(`{"camera":"k","ts":1000,"objects":[]}`))
	m := features(t, rs, "c", time.UnixMilli(0).UTC())
	if m["area_mean"] != 0.01 || m["count_car"] != 1 {
		t.Errorf("payload frame size not used: %v", m)
	}
}

func TestVideoErrors(t *testing.T) {
	ok := `{"class":"person","confidence":0.5,"bbox":[0,0,1,1]}`
	cases := []struct{ payload, reason, msg string }{
		{`nope`, "syntax", ""},
		{`{"camera":"c","ts":0,"objects":[]} {}`, "syntax", ""},
		{`{"ts":0,"objects":[]}`, "no_camera", `video: field "camera" is missing`},
		{`{"camera":7,"ts":0,"objects":[]}`, "bad_camera", ""},
		{`{"camera":"","ts":0,"objects":[]}`, "bad_camera", ""},
		{`{"camera":"` + strings.Repeat("x", 129) + `","ts":0,"objects":[]}`, "bad_camera", ""},
		{`{"camera":"c","objects":[]}`, "no_ts", ""},
		{`{"camera":"c","ts":"noon","objects":[]}`, "bad_ts", ""},
		{`{"camera":"c","ts":0,"frame":-1,"objects":[]}`, "bad_frame", ""},
		{`{"camera":"c","ts":0,"frame":1.5,"objects":[]}`, "bad_frame", ""},
		{`{"camera":"c","ts":0,"width":0,"height":10,"objects":[]}`, "bad_size", ""},
		{`{"camera":"c","ts":0,"width":10,"objects":[]}`, "bad_size", ""},
		{`{"camera":"c","ts":0}`, "no_objects", ""},
		{`{"camera":"c","ts":0,"objects":{}}`, "bad_object", ""},
		{`{"camera":"c","ts":0,"objects":[1]}`, "bad_object", ""},
		{`{"camera":"c","ts":0,"objects":[` + ok + `,{"confidence":0.5,"bbox":[0,0,1,1]}]}`, "bad_object", `video: object 1: field "class": missing or empty`},
		{`{"camera":"c","ts":0,"objects":[{"class":"a","bbox":[0,0,1,1]}]}`, "bad_confidence", ""},
		{`{"camera":"c","ts":0,"objects":[{"class":"a","confidence":1.5,"bbox":[0,0,1,1]}]}`, "bad_confidence", `video: object 0: field "confidence": 1.5 not in [0, 1]`},
		{`{"camera":"c","ts":0,"objects":[{"class":"a","confidence":0.5,"bbox":[0,0,1]}]}`, "bad_bbox", ""},
		{`{"camera":"c","ts":0,"objects":[{"class":"a","confidence":0.5,"bbox":[0,0,-1,1]}]}`, "bad_bbox", ""},
		{`{"camera":"c","ts":0,"objects":[{"class":"a","confidence":0.5,"bbox":[0,0,1,1e300]}]}`, "bad_bbox", ""},
		{`{"camera":"c","ts":0,"objects":[{"class":"a","confidence":0.5,"bbox":"box"}]}`, "bad_object", ""},
		{`{"camera":"c","ts":0,"objects":[` + strings.TrimSuffix(strings.Repeat(ok+",", 10001), ",") + `]}`, "too_many_objects", ""},
	}
	for _, c := range cases {
		v := mustVideo(t, "", VideoOptions{})
		_, err := v.Decode("cameras/c/detections", []byte(c.payload))
		if err == nil {
			t.Errorf("%.80s: no error", c.payload)
			continue
		}
		if Reason(err) != c.reason {
			t.Errorf("%.80s: reason %q, want %q (%v)", c.payload, Reason(err), c.reason, err)
		}
		if c.msg != "" && err.Error() != c.msg {
			t.Errorf("%.80s:\n got  %s\n want %s", c.payload, err, c.msg)
		}
	}
}

// TestVideoErrorKeepsState: a malformed frame (even one that would be in a
// later bucket, or would reuse a previous frame's fields) changes nothing.
func TestVideoErrorKeepsState(t *testing.T) {
	run := func(bad bool) []Reading {
		v := mustVideo(t, "", VideoOptions{MaxCameras: 1})
		decodeOK(t, v, "c", frame("k", 0, 1, obj{"person", 0.8, [4]float64{0, 0, 4, 4}}))
		if bad {
			for _, p := range []string{
				`{"camera":"k","ts":5000,"objects":[{"confidence":0.1,"bbox":[0,0,1,1]}]}`,
				`{"camera":"other","ts":100,"objects":[]}`, // too many cameras (its own topic)
			} {
				topic := "c"
				if strings.Contains(p, "other") {
					topic = "d"
				}
				if _, err := v.Decode(topic, []byte(p)); err == nil {
					t.Fatalf("%s accepted", p)
				}
			}
		}
		return decodeOK(t, v, "c", frame("k", time.Second, 2))
	}
	a, b := run(false), run(true)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) == 0 {
		t.Fatalf("state changed by bad frames:\n%v\n%v", a, b)
	}
	v := mustVideo(t, "", VideoOptions{MaxCameras: 1})
	decodeOK(t, v, "c", frame("k", 0, 1))
	if _, err := v.Decode("d", frame("k2", 0, 1)); Reason(err) != "too_many_cameras" {
		t.Errorf("second camera: %v", err)
	}
}

func TestVideoOptions(t *testing.T) {
	for _, o := range []VideoOptions{
		{Bucket: -time.Second},
		{Classes: []string{"Person"}},
		{Classes: []string{"other"}},
		{Classes: []string{"a", "a"}},
		{Classes: []string{"a/b"}},
		{FrameWidth: -1},
	} {
		if _, err := NewVideo("", o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := NewVideo("{topic}/{nope}", VideoOptions{}); err == nil {
		t.Error("unknown placeholder accepted")
	}
	v := mustVideo(t, "", VideoOptions{})
	decodeOK(t, v, "c", frame("k", 0, 1))
	rs := decodeOK(t, v, "c", frame("k", time.Second, 2))
	want := []string{"frames"}
	for _, c := range DefaultVideoClasses {
		want = append(want, "count_"+c)
	}
	want = append(want, "count_other")
	if len(rs) != len(want) {
		t.Fatalf("default features %v", rs)
	}
	for i, r := range rs {
		if r.Stream != "c/"+want[i] {
			t.Errorf("feature %d: %s, want c/%s", i, r.Stream, want[i])
		}
	}
}

func TestStreamPrefixExpand(t *testing.T) {
	p, err := newPrefixTemplate("site/{camera}/x/{topic}", "topic", "camera")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.expand("a/{camera}", "c1"); got != "site/c1/x/a/{camera}" {
		t.Errorf("expand = %q", got)
	}
}

// TestVideoClockJump: one frame far in the future does not freeze the
// camera: when frames at the right time come back, the state restarts.
func TestVideoClockJump(t *testing.T) {
	v := mustVideo(t, "", VideoOptions{})
	p := obj{"person", 1, [4]float64{0, 0, 2, 2}}
	decodeOK(t, v, "c", frame("k", 0, 1, p))
	rs := decodeOK(t, v, "c", frame("k", 24*time.Hour, 2, p)) // clock glitch: closes bucket 0
	if len(rs) == 0 || !rs[0].TS.Equal(vt0) {
		t.Fatalf("bucket 0: %v", rs)
	}
	// Back to normal: within a minute behind is late, further is a reset.
	if rs := decodeOK(t, v, "c", frame("k", 24*time.Hour-30*time.Second, 3, p)); len(rs) != 0 || v.Skipped() != 1 {
		t.Fatalf("late frame: %v skipped %d", rs, v.Skipped())
	}
	if rs := decodeOK(t, v, "c", frame("k", 1*time.Second, 4, p)); len(rs) != 0 || v.Skipped() != 2 {
		t.Fatalf("reset: %v skipped %d (the glitched bucket's frame counts)", rs, v.Skipped())
	}
	rs = decodeOK(t, v, "c", frame("k", 2*time.Second, 5, p))
	m := features(t, rs, "c", vt0.Add(time.Second))
	if m["frames"] != 1 || m["count_person"] != 1 {
		t.Fatalf("after the reset: %v", m)
	}
	if _, ok := m["motion_mean"]; ok {
		t.Fatalf("motion across a clock reset: %v", m)
	}
}
