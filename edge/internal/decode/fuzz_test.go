package decode

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// checkFuzzResult is the contract every decoder meets on any input: no
// panic (the fuzzer catches those), errors are *Error with a reason,
// readings have finite values, times in years 1970..9999 and valid stream
// ids under the topic's prefix.
func checkFuzzResult(t *testing.T, prefix string, rs []Reading, err error) {
	t.Helper()
	if err != nil {
		var de *Error
		if !errors.As(err, &de) || de.Reason == "" || Reason(err) == "other" {
			t.Fatalf("error is not a *Error with a reason: %#v", err)
		}
		if len(rs) != 0 {
			t.Fatalf("readings with an error: %v", rs)
		}
		return
	}
	for _, r := range rs {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			t.Fatalf("non-finite value %v in %v", r.Value, r)
		}
		if r.TS.Year() < 1970 || r.TS.Year() > 9999 {
			t.Fatalf("time %v out of range", r.TS)
		}
		if !ValidStream(r.Stream) || !strings.HasPrefix(r.Stream, prefix+"/") || len(r.Stream) == len(prefix)+1 {
			t.Fatalf("stream %q invalid or not under %q", r.Stream, prefix)
		}
	}
}

func FuzzSenML(f *testing.F) {
	for _, s := range []string{
		`[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`,
		`[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2},{"n":"current","v":1.7}]`,
		`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},{"n":"label","vs":"Machine Room"},{"n":"open","vb":false},{"n":"nfc-reader","vd":"aGkgCg"}]`,
		`[{"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":27.2},{"n":"humidity","u":"%RH","v":80}]`,
		`[{"bn":"d:","bv":1e308,"bs":3,"n":"x","v":1e308,"s":1}]`,
		`[{"n":"a","t":-9e9,"v":1},{"n":"b","t":268435456,"v":2,"x_":1}]`,
		`[]`, `[null]`, `{}`, `[{"n":"a","v":1}] trailing`,
	} {
		f.Add("senml/gw-1", []byte(s))
	}
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if topic == "" {
			topic = "t"
		}
		d, err := NewSenML("")
		if err != nil {
			t.Fatal(err)
		}
		rs, err := d.DecodeAt(topic, payload, now)
		checkFuzzResult(t, sanitizeTopic(topic), rs, err)
		// Deterministic: the same input gives the same result.
		rs2, err2 := d.DecodeAt(topic, payload, now)
		if (err == nil) != (err2 == nil) || len(rs) != len(rs2) {
			t.Fatalf("not deterministic: %v %v / %v %v", rs, err, rs2, err2)
		}
		for i := range rs {
			if rs[i] != rs2[i] {
				t.Fatalf("not deterministic: %v / %v", rs[i], rs2[i])
			}
		}
	})
}

func FuzzVideo(f *testing.F) {
	seeds := []string{
		`{"camera":"cam-1","ts":"2026-01-02T03:04:05.040Z","frame":1,"objects":[{"class":"person","confidence":0.91,"bbox":[10,20,30,60]}]}`,
		`{"camera":"cam-1","ts":1767323046000,"frame":26,"width":640,"height":480,"objects":[{"class":"car","confidence":0.5,"bbox":[1,2,3,4]},{"class":"dog","confidence":1,"bbox":[0,0,0,0]}]}`,
		`{"camera":"a/b+#","ts":0,"objects":[]}`,
		`{"camera":"c","ts":1e300,"objects":[]}`,
		`{"camera":"c","ts":1000,"objects":[{"class":"x","confidence":0.5,"bbox":[1e9,1e9,1e9,1e9]}]}`,
		`{"camera":"c","ts":0,"objects":[{"class":"x"}]}`, `{}`, `[]`, `null`,
	}
	for _, s := range seeds {
		f.Add("cameras/cam-1/detections", []byte(s), []byte(seeds[1]))
	}
	f.Fuzz(func(t *testing.T, topic string, first, payload []byte) {
		if topic == "" {
			topic = "t"
		}
		// Two decoders fed the same sequence give the same readings; a
		// frame before the fuzzed one gives the decoder state to break.
		var results [2][]Reading
		for k := range results {
			v, err := NewVideo("{topic}/{camera}", VideoOptions{Bucket: 40 * time.Millisecond, Classes: []string{"person", "car"}, MaxCameras: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range [][]byte{first, payload, payload, first} {
				rs, err := v.Decode(topic, p)
				// The prefix is <topic>/<camera>: check what precedes the
				// feature level.
				for _, r := range rs {
					i := strings.LastIndexByte(r.Stream, '/')
					checkFuzzResult(t, r.Stream[:max(i, 0)], []Reading{r}, nil)
					if !strings.HasPrefix(r.Stream, sanitizeTopic(topic)+"/") {
						t.Fatalf("stream %q not under topic %q", r.Stream, topic)
					}
				}
				checkFuzzResult(t, "", nil, err)
				results[k] = append(results[k], rs...)
			}
		}
		if len(results[0]) != len(results[1]) {
			t.Fatalf("not deterministic: %v / %v", results[0], results[1])
		}
		for i := range results[0] {
			if results[0][i] != results[1][i] {
				t.Fatalf("not deterministic: %v / %v", results[0][i], results[1][i])
			}
		}
	})
}
