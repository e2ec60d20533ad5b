package agent

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/edge/internal/deadletter"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// publishAll publishes payloads to topic at QoS 1 without waiting for each
// acknowledgement, then waits for all of them.
func publishAll(t *testing.T, c paho.Client, topic string, payloads []string) {
	t.Helper()
	toks := make([]paho.Token, 0, len(payloads))
	for _, p := range payloads {
		toks = append(toks, c.Publish(topic, 1, false, p))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Errorf("publish to %s: %v", topic, tok.Error())
			return
		}
	}
}

// TestAgentMalformedStorm: 5,000 malformed payloads on one topic, published
// at the same time as good JSON, SenML and video traffic on others. Every
// good reading is processed, every bad payload is counted per topic and
// reason, and the dead-letter store holds samples within its bound.
func TestAgentMalformedStorm(t *testing.T) {
	srv := testenv.StartNATS(t)
	edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p, err := profile.Parse([]byte(`
name: storm
agent:
  id: gw-storm
  heartbeat: 1s
mqtt:
  topics:
    - filter: sensors/+/+
    - filter: senml/+
      decoder: senml
    - filter: cameras/+/detections
      decoder: video
      stream_prefix: cameras/{camera}
      video:
        classes: [person]
        frame_width: 100
        frame_height: 100
    - filter: junk/+
      decoder: senml
streams:
  - match: "#"
    window: 60
summary_interval: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	p.NATS.URL = srv.URL()
	p.MQTT.URL = mq.URL()
	p.DataDir = t.TempDir()
	p.Metrics.Listen = "127.0.0.1:0"
	a := startAgent(t, p)

	// Good traffic: 1,000 JSON readings, 200 SenML packs of 2 records, 50
	// video frames at 10 fps (5 buckets of 1 s; the last stays pending, the
	// other 4 give 6 features each: frames, count_person, count_other,
	// confidence_mean, area_mean, motion_mean).
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var jsonP, senmlP, videoP []string
	for i := 0; i < 1000; i++ {
		jsonP = append(jsonP, fmt.Sprintf(`{"ts":%d,"value":%g}`, t0.Add(time.Duration(i)*time.Second).UnixMilli(), 20+float64(i%7)))
	}
	for i := 0; i < 200; i++ {
		senmlP = append(senmlP, fmt.Sprintf(`[{"bn":"dev1:","bt":%d,"n":"temp","u":"Cel","v":%d},{"n":"hum","u":"%%RH","v":40},{"n":"label","vs":"x"}]`,
			t0.Unix()+int64(i), 20+i%3))
	}
	for i := 0; i < 50; i++ {
		videoP = append(videoP, fmt.Sprintf(`{"camera":"cam-1","ts":%d,"frame":%d,"objects":[{"class":"person","confidence":0.9,"bbox":[%d,10,10,20]}]}`,
			t0.Add(time.Duration(i)*100*time.Millisecond).UnixMilli(), i, i))
	}
	const wantGood = 1000 + 400 + 24
	// The storm: 5,000 malformed payloads of several kinds.
	kinds := []string{`not json at all`, `[{"n":"a","v":"x"}]`, `[]`, `[{"n":"a b","v":1}]`, `{"n":"a","v":1}`}
	var storm []string
	for i := 0; i < 5000; i++ {
		storm = append(storm, kinds[i%len(kinds)]+strings.Repeat(" ", i%3))
	}

	var wg sync.WaitGroup
	for _, job := range []struct {
		topic    string
		payloads []string
	}{{"junk/a", storm}, {"sensors/dev-1/temp", jsonP}, {"senml/gw", senmlP}, {"cameras/cam-1/detections", videoP}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishAll(t, publisher(t, mq.URL(), "", ""), job.topic, job.payloads)
		}()
	}
	wg.Wait()

	waitFor(t, "every good reading and every bad payload", func() bool {
		st := a.State()
		return st.Readings >= wantGood && st.DecodeErrors >= 5000
	})
	st := a.State()
	if st.Readings != wantGood || st.DecodeErrors != 5000 {
		t.Fatalf("readings %d (want %d), decode errors %d (want 5000)", st.Readings, wantGood, st.DecodeErrors)
	}
	errs := a.DecodeErrors()
	if len(errs) != 1 {
		t.Fatalf("decode errors on topics other than junk/a: %v", errs)
	}
	byReason := errs["junk/a"]
	if byReason["syntax"] != 2000 || byReason["bad_value"] != 1000 || byReason["empty"] != 1000 || byReason["bad_name"] != 1000 {
		t.Fatalf("decode errors by reason: %v", byReason)
	}

	dl := a.DeadLetter()
	dl.Flush()
	ds := dl.Stats()
	if ds.Offered != 5000 || ds.Written+ds.RateLimited+ds.QueueFull != 5000 || ds.Errors != 0 {
		t.Fatalf("dead-letter stats %+v", ds)
	}
	if ds.Entries < 1 || ds.Entries > deadletter.DefaultMaxEntries {
		t.Fatalf("dead-letter store holds %d entries, bound %d", ds.Entries, deadletter.DefaultMaxEntries)
	}
	es, err := dl.Entries()
	if err != nil || len(es) != ds.Entries {
		t.Fatalf("entries %d, %v", len(es), err)
	}
	for _, e := range es {
		if e.Topic != "junk/a" || e.Reason == "" || e.Error == "" || len(e.Payload) == 0 {
			t.Fatalf("entry %+v", e)
		}
	}
	t.Logf("dead letters: %+v", ds)

	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("outpost_edge_readings_total %d", wantGood),
		`outpost_edge_decode_errors_total{reason="syntax"} 2000`,
		fmt.Sprintf("outpost_edge_deadletter_entries %d", ds.Entries),
		fmt.Sprintf("outpost_edge_deadletter_written_total %d", ds.Written),
		"outpost_edge_decode_skipped_total 200", // the SenML string records
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
