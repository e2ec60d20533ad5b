package service

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
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
	waitFor(t, "the stream client", func() bool { return svc.stream.Clients() == 1 })

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
