package profile

import (
	"strings"
	"testing"
	"time"
)

func TestDecoderNames(t *testing.T) {
	for _, n := range []string{"json", "senml", "video"} {
		if !contains(Decoders, n) {
			t.Errorf("decoder %q not known", n)
		}
	}
}

func TestDecoderOptions(t *testing.T) {
	p, err := Parse([]byte(`
mqtt:
  url: tcp://127.0.0.1:1883
  topics:
    - filter: senml/+
      decoder: senml
    - filter: cameras/+/detections
      decoder: video
      stream_prefix: cameras/{camera}
      video:
        bucket: 500ms
        classes: [person, car]
        frame_width: 1920
        frame_height: 1080
    - filter: lobby/+
      decoder: video
    - filter: sensors/+/+
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	d := p.Defaults()
	ts := d.MQTT.Topics
	if ts[0].StreamPrefix != "{topic}" || ts[0].Video != nil {
		t.Errorf("senml defaults: %+v", ts[0])
	}
	if v := ts[1].Video; ts[1].StreamPrefix != "cameras/{camera}" || v.Bucket != 500*time.Millisecond ||
		strings.Join(v.Classes, ",") != "person,car" || v.FrameWidth != 1920 || v.FrameHeight != 1080 {
		t.Errorf("video options not read: %+v %+v", ts[1], v)
	}
	if v := ts[2].Video; ts[2].StreamPrefix != "{topic}" || v == nil || v.Bucket != DefaultVideoBucket ||
		strings.Join(v.Classes, ",") != strings.Join(DefaultVideoClasses, ",") {
		t.Errorf("video defaults: %+v %+v", ts[2], v)
	}
	if ts[3].Decoder != "json" || ts[3].StreamPrefix != "" {
		t.Errorf("json defaults: %+v", ts[3])
	}
	// Defaults copies the class list: changing it leaves the default alone.
	ts[2].Video.Classes[0] = "x"
	if DefaultVideoClasses[0] != "person" {
		t.Fatal("Defaults aliased DefaultVideoClasses")
	}
}

func TestDecoderOptionsBroken(t *testing.T) {
	base := "mqtt:\n  url: tcp://127.0.0.1:1883\n  topics:\n    - filter: a/+\n"
	cases := []struct {
		name string
		yaml string
		want string
		line int
	}{
		{"prefix on json", base + "      stream_prefix: x\n", "mqtt.topics[0].stream_prefix: only the senml and video decoders", 5},
		{"unknown placeholder", base + "      decoder: senml\n      stream_prefix: s/{camera}\n", "mqtt.topics[0].stream_prefix: stream prefix \"s/{camera}\": unknown placeholder {camera}", 6},
		{"wildcard prefix", base + "      decoder: video\n      stream_prefix: a/+/{camera}\n", "must not contain '+', '#'", 6},
		{"empty level", base + "      decoder: video\n      stream_prefix: a//{camera}\n", "empty level", 6},
		{"trailing slash", base + "      decoder: senml\n      stream_prefix: \"{topic}/\"\n", "must not start or end with '/'", 6},
		{"unmatched brace", base + "      decoder: senml\n      stream_prefix: \"{topic\"\n", "unmatched '{'", 6},
		{"video on senml", base + "      decoder: senml\n      video:\n        bucket: 1s\n", "mqtt.topics[0].video: only the video decoder takes video options", 6},
		{"bucket negative", base + "      decoder: video\n      video:\n        bucket: -1s\n", "mqtt.topics[0].video.bucket: must be > 0", 7},
		{"bucket huge", base + "      decoder: video\n      video:\n        bucket: 2h\n", "mqtt.topics[0].video.bucket: must be > 0 and at most 1h", 7},
		{"class upper", base + "      decoder: video\n      video:\n        classes: [Person]\n", "mqtt.topics[0].video.classes[0]: class \"Person\"", 7},
		{"class other", base + "      decoder: video\n      video:\n        classes: [person, other]\n", "mqtt.topics[0].video.classes[1]: class \"other\" is implicit", 7},
		{"class twice", base + "      decoder: video\n      video:\n        classes: [car, car]\n", "mqtt.topics[0].video.classes[1]: class \"car\" listed twice", 7},
		{"width only", base + "      decoder: video\n      video:\n        frame_width: 640\n", "mqtt.topics[0].video: set both frame_width and frame_height", 6},
		{"height negative", base + "      decoder: video\n      video:\n        frame_width: 640\n        frame_height: -1\n", "mqtt.topics[0].video.frame_height: must be between 0 and 1000000", 8},
		{"unknown video key", base + "      decoder: video\n      video:\n        fps: 25\n", "mqtt.topics[0].video.fps: unknown key", 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := AsProblems(Check([]byte(c.yaml)))
			if ps == nil {
				t.Fatalf("no problems for\n%s", c.yaml)
			}
			for _, pr := range ps {
				if strings.Contains(pr.String(), c.want) {
					if pr.Line != c.line {
						t.Errorf("problem %q at line %d, want %d", pr, pr.Line, c.line)
					}
					return
				}
			}
			t.Errorf("want a problem containing %q, got:\n%v", c.want, ps)
		})
	}
}

// TestVideoNoClasses: "classes: []" means no listed class (everything is
// "other"), not the default list.
func TestVideoNoClasses(t *testing.T) {
	p, err := Parse([]byte("mqtt:\n  url: tcp://127.0.0.1:1883\n  topics:\n    - filter: c/+\n      decoder: video\n      video:\n        classes: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := p.Defaults().MQTT.Topics[0].Video.Classes; c == nil || len(c) != 0 {
		t.Fatalf("classes %#v, want empty and non-nil", c)
	}
}
