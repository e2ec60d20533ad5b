package service

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestLiveStream: the dashboard's /api/v1/stream carries each accepted
// event (without its window) and its verdict as server-sent events, the
// callbacks in Config still see them, the JSON API answers from the
// stream, and Stop ends open streams.
func TestLiveStream(t *testing.T) {
	var seen, decided int
	got := make(chan struct{}, 4)
	svc := startCfg(t, Config{
		OnEvent:   func(api.Event) { seen++; got <- struct{}{} },
		OnVerdict: func(api.Event, wire.Verdict) { decided++; got <- struct{}{} },
	})
	res, err := http.Get("http://" + svc.HTTPAddr() + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	waitFor(t, "the stream client", func() bool { return svc.stream.Clients() == 1 && svc.live.Following() })

	a := newAgent(t, svc.NATSURL(), "gw-live")
	a.event(4, wire.KindUncertain, names.MsgID("gw-live", 4))

	type msg struct{ event, data string }
	msgs := make(chan msg, 16)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(res.Body)
		var m msg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.event != "" {
					msgs <- m
				}
				m = msg{}
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				m.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	var ev api.Event
	var v wire.Verdict
	for ev.Seq == 0 || v.Seq == 0 {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("stream ended")
			}
			switch m.event {
			case "event":
				if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
					t.Fatal(err)
				}
			case "verdict":
				if err := json.Unmarshal([]byte(m.data), &v); err != nil {
					t.Fatal(err)
				}
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no event and verdict on the stream (event %+v, verdict %+v)", ev, v)
		}
	}
	if ev.Agent != "gw-live" || ev.Seq != 4 || ev.Kind != wire.KindUncertain || ev.StreamSeq == 0 || ev.Received.IsZero() || ev.Window != nil {
		t.Errorf("streamed event = %+v", ev)
	}
	if v.Agent != "gw-live" || v.Seq != 4 || v.Decision == "" || v.Model == "" {
		t.Errorf("streamed verdict = %+v", v)
	}
	for range 2 {
		<-got
	}
	if seen != 1 || decided != 1 {
		t.Errorf("callbacks saw %d events and %d verdicts, want 1 and 1", seen, decided)
	}

	// The JSON API reads the stream: the event with its verdict.
	r2, err := http.Get("http://" + svc.HTTPAddr() + "/api/v1/events?agent=gw-live&since=1h")
	if err != nil {
		t.Fatal(err)
	}
	var evs []api.Event
	if err := json.NewDecoder(r2.Body).Decode(&evs); err != nil || len(evs) != 1 || evs[0].Verdict != string(v.Decision) {
		t.Errorf("/api/v1/events = %+v (%v)", evs, err)
	}
	r2.Body.Close()

	// Stop ends the open stream instead of waiting for it.
	svc.Stop()
	for range msgs {
	}
}

// sseClient reads one replica's /api/v1/stream.
type sseClient struct {
	msgs chan sseMsg
}

type sseMsg struct{ event, data string }

func openStream(t *testing.T, svc *Service) *sseClient {
	t.Helper()
	res, err := http.Get("http://" + svc.HTTPAddr() + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("stream = %d", res.StatusCode)
	}
	c := &sseClient{msgs: make(chan sseMsg, 256)}
	go func() {
		defer close(c.msgs)
		sc := bufio.NewScanner(res.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.event == "event" || m.event == "verdict" {
					c.msgs <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				m.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return c
}

// until reads events and verdicts until done says so, counting each
// agent:seq per kind.
func (c *sseClient) until(t *testing.T, name string, done func(events, verdicts map[uint64]int) bool) (events, verdicts map[uint64]int) {
	t.Helper()
	events, verdicts = map[uint64]int{}, map[uint64]int{}
	for !done(events, verdicts) {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatalf("%s: stream ended", name)
			}
			var k struct {
				Agent string `json:"agent"`
				Seq   uint64 `json:"seq"`
			}
			if err := json.Unmarshal([]byte(m.data), &k); err != nil || k.Agent != "gw-fleet" {
				t.Fatalf("%s: %s %s", name, m.event, m.data)
			}
			if m.event == "event" {
				events[k.Seq]++
			} else {
				verdicts[k.Seq]++
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: timed out with events %v and verdicts %v", name, events, verdicts)
		}
	}
	return events, verdicts
}

// TestLiveStreamFleet: two replicas on one NATS; only the first ingests and
// decides (the second's event and verdict consumers are stopped), yet
// both replicas' dashboard streams show every event and verdict, each
// once: a republished duplicate (outside JetStream's duplicate window, so
// in the stream twice) is shown by neither.
func TestLiveStreamFleet(t *testing.T) {
	ns := testenv.StartNATS(t)
	key := filepath.Join(t.TempDir(), "signing.key")
	var mu sync.Mutex
	accepted := map[uint64]int{}
	first := startCfg(t, Config{NATSURL: ns.URL(), SigningKey: key, OnEvent: func(ev api.Event) {
		mu.Lock()
		defer mu.Unlock()
		accepted[ev.Seq]++
	}})
	second := startCfg(t, Config{NATSURL: ns.URL(), SigningKey: key})
	second.events.Stop()
	second.stage.Stop()
	streams := []*sseClient{openStream(t, first), openStream(t, second)}
	if !first.live.Following() || !second.live.Following() {
		t.Fatal("a stream opened before its replica followed the fleet's events")
	}

	a := newAgent(t, first.NATSURL(), "gw-fleet")
	for seq := uint64(1); seq <= 5; seq++ {
		a.event(seq, wire.KindUncertain, names.MsgID("gw-fleet", seq))
	}
	// Seq 3 again under another message id: JetStream stores it, the
	// ingest drops it (high-water mark), and so does the live stream.
	a.event(3, wire.KindUncertain, "gw-fleet:3:again")
	a.event(6, wire.KindAnomaly, names.MsgID("gw-fleet", 6))
	for i, c := range streams {
		name := fmt.Sprintf("replica %d", i+1)
		evs, vs := c.until(t, name, func(evs, vs map[uint64]int) bool { return evs[6] > 0 && vs[6] > 0 })
		for seq := uint64(1); seq <= 6; seq++ {
			if evs[seq] != 1 || vs[seq] != 1 {
				t.Errorf("%s showed event %d %d times and its verdict %d times, want once", name, seq, evs[seq], vs[seq])
			}
		}
		if len(evs) != 6 || len(vs) != 6 {
			t.Errorf("%s showed events %v, verdicts %v", name, evs, vs)
		}
	}
	// The stream shows an event when it is stored, about when a replica
	// accepts it.
	waitFor(t, "the first replica to accept seq 6", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted[6] > 0
	})
	mu.Lock()
	defer mu.Unlock()
	for seq := uint64(1); seq <= 6; seq++ {
		if accepted[seq] != 1 {
			t.Errorf("the first replica accepted seq %d %d times", seq, accepted[seq])
		}
	}
}
