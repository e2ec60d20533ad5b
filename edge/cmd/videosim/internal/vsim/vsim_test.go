package vsim

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/shared/testenv"
)

func TestReadMOT(t *testing.T) {
	in := "2,-1,10,20,30,60,0.9,-1,-1,-1\n2,-1,100.5,20,30,60,1.2,-1,-1,-1\n\n4,-1,5,5,10,10,0.7,-1,-1,-1\n"
	fs, err := ReadMOT(strings.NewReader(in), "person")
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 3 || fs[0].N != 2 || fs[1].N != 3 || fs[2].N != 4 || len(fs[0].Objects) != 2 || len(fs[1].Objects) != 0 || len(fs[2].Objects) != 1 {
		t.Fatalf("frames %+v", fs)
	}
	o := fs[0].Objects[1]
	if o.Class != "person" || o.Confidence != 1 || o.BBox != [4]float64{100.5, 20, 30, 60} {
		t.Fatalf("object %+v", o)
	}
	for _, bad := range []string{"", "1,2,3\n", "1,-1,a,2,3,4,0.5\n", "1,-1,1,2,-3,4,0.5\n", "1.5,-1,1,2,3,4,0.5\n"} {
		if _, err := ReadMOT(strings.NewReader(bad), "person"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ReadMOT(strings.NewReader("1,-1,1,2,3,4,0.5\n1,2\n"), "person"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error does not name the line: %v", err)
	}
}

func gen(seed int64, n int) ([]Frame, *Synthetic) {
	g := NewSynthetic(SynthConfig{Seed: seed, BurstAt: 500, BurstFrames: 250})
	out := make([]Frame, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out, g
}

func TestSynthetic(t *testing.T) {
	a, g := gen(7, 1000)
	b, _ := gen(7, 1000)
	c, _ := gen(8, 1000)
	same, differ := true, false
	for i := range a {
		pa, pb, pc := a[i].Payload("k", time.Unix(0, 0)), b[i].Payload("k", time.Unix(0, 0)), c[i].Payload("k", time.Unix(0, 0))
		same = same && bytes.Equal(pa, pb)
		differ = differ || !bytes.Equal(pa, pc)
	}
	if !same || !differ {
		t.Fatalf("same seed same frames: %v; other seed other frames: %v", same, differ)
	}
	var before, during float64
	for i, f := range a {
		if f.N != i+1 || f.Width != 1920 || f.Height != 1080 {
			t.Fatalf("frame %d: %+v", i, f)
		}
		for _, o := range f.Objects {
			if o.Confidence < 0 || o.Confidence > 1 || o.BBox[0] < 0 || o.BBox[1] < 0 || o.BBox[0]+o.BBox[2] > 1920.05 || o.BBox[1]+o.BBox[3] > 1080.05 {
				t.Fatalf("frame %d: object %+v outside the frame", f.N, o)
			}
		}
		switch {
		case f.N >= 250 && f.N < 500:
			before += float64(len(f.Objects)) / 250
		case g.InBurst(f.N):
			during += float64(len(f.Objects)) / 250
		}
	}
	if during < 3*before || during < 5 {
		t.Fatalf("no crowd burst: %.1f objects per frame before, %.1f during", before, during)
	}
	t.Logf("objects per frame: %.1f before the burst, %.1f during", before, during)
}

// TestPayloadsDecode: what videosim publishes, the agent's video decoder
// reads, and the burst shows in count_person.
func TestPayloadsDecode(t *testing.T) {
	fs, g := gen(3, 1000)
	v, err := decode.NewVideo("cameras/{camera}", decode.VideoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	maxBefore, maxDuring := 0.0, 0.0
	for i, f := range fs {
		rs, err := v.Decode("cameras/cam-1/detections", f.Payload("cam-1", t0.Add(time.Duration(i)*40*time.Millisecond)))
		if err != nil {
			t.Fatalf("frame %d: %v", f.N, err)
		}
		for _, r := range rs {
			if r.Stream != "cameras/cam-1/count_person" {
				continue
			}
			frame := int(r.TS.Sub(t0)/(40*time.Millisecond)) + 1
			if g.InBurst(frame) {
				maxDuring = max(maxDuring, r.Value)
			} else if frame < 500 {
				maxBefore = max(maxBefore, r.Value)
			}
		}
	}
	if maxDuring <= 2*maxBefore {
		t.Fatalf("count_person: max %.1f before the burst, %.1f during", maxBefore, maxDuring)
	}
}

func TestRunPublishes(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("sub"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	var mu sync.Mutex
	var got []map[string]any
	var topics []string
	tok := sub.Subscribe("cameras/+/detections", 1, func(_ mqtt.Client, m mqtt.Message) {
		var p map[string]any
		json.Unmarshal(m.Payload(), &p)
		mu.Lock()
		got = append(got, p)
		topics = append(topics, m.Topic())
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	start := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	res, err := Run(context.Background(), Config{MQTTURL: mq.URL(), Camera: "gate", Fast: true, Start: start, Count: 100},
		Endless{NewSynthetic(SynthConfig{Seed: 1})})
	if err != nil || res.Frames != 100 || res.Failed != 0 {
		t.Fatalf("run: %+v %v", res, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 100 {
		t.Fatalf("received %d frames, want 100", len(got))
	}
	for i, p := range got {
		ts, _ := time.Parse(time.RFC3339Nano, p["ts"].(string))
		if topics[i] != "cameras/gate/detections" || p["camera"] != "gate" || p["frame"].(float64) != float64(i+1) || !ts.Equal(start.Add(time.Duration(i)*40*time.Millisecond)) {
			t.Fatalf("message %d on %s: %v", i, topics[i], p)
		}
	}
}
