package httpui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestLiveFollowsWhileWatched: the feed follows the streams only while the
// broadcaster has clients (and Linger after); a client's stream opens once
// it follows; it shows valid events and verdicts once each, not events
// the ingest refuses (a wrong agent, a bad kind) nor republished ones
// (a seq already shown, in the stream again) nor a verdict again.
func TestLiveFollowsWhileWatched(t *testing.T) {
	srv := testenv.StartNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := streams.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	b := NewBroadcaster(BroadcasterConfig{Logger: quiet()})
	defer b.Close()
	lv := StartLive(js, b, LiveConfig{Linger: 200 * time.Millisecond, Logger: quiet()})
	defer lv.Stop()
	hs := httptest.NewServer(b)
	defer hs.Close()
	if lv.Following() {
		t.Fatal("following without clients")
	}
	msgs, cancel := connect(t, hs)
	if !lv.Following() {
		t.Fatal("the stream opened before the feed followed")
	}
	pub := func(subject string, v any) {
		t.Helper()
		data, _ := json.Marshal(v)
		if _, err := js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(agent string, seq uint64, kind wire.Kind) wire.Event {
		return wire.Event{Agent: agent, Seq: seq, Incarnation: "i1", Stream: "s", Kind: kind, Window: []float64{1, 2}}
	}
	pub(names.EventSubject("gw-1"), ev("gw-1", 1, wire.KindAnomaly))
	pub(names.EventSubject("gw-1"), ev("gw-2", 2, wire.KindAnomaly)) // agent does not match the subject
	pub(names.EventSubject("gw-1"), ev("gw-1", 3, "odd"))            // no such kind
	pub(names.EventSubject("gw-1"), ev("gw-1", 1, wire.KindAnomaly)) // republished
	v := wire.Verdict{Agent: "gw-1", Seq: 1, Incarnation: "i1", Decision: wire.Confirmed}
	pub(names.VerdictSubject("gw-1"), v)
	pub(names.VerdictSubject("gw-1"), v) // republished
	pub(names.EventSubject("gw-1"), ev("gw-1", 4, wire.KindUncertain))
	// Another incarnation of the outbox starts its seqs anew.
	e5 := ev("gw-1", 1, wire.KindUncertain)
	e5.Incarnation = "i2"
	pub(names.EventSubject("gw-1"), e5)
	pub(names.VerdictSubject("gw-1"), wire.Verdict{Agent: "gw-1", Seq: 4, Incarnation: "i1", Decision: wire.Rejected})

	// Events and verdicts come from two streams: each in order, not
	// interleaved in a fixed way.
	var evs, vs []string
	for len(evs)+len(vs) < 5 {
		m := next(t, msgs)
		if m.event == SSEHeartbeat {
			continue
		}
		var k struct {
			Agent       string    `json:"agent"`
			Seq         uint64    `json:"seq"`
			Incarnation string    `json:"incarnation"`
			Window      []float64 `json:"window"`
			StreamSeq   uint64    `json:"stream_seq"`
		}
		if err := json.Unmarshal([]byte(m.data), &k); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s/%s:%d", k.Agent, k.Incarnation, k.Seq)
		switch m.event {
		case SSEEvent:
			if k.Window != nil || k.StreamSeq == 0 {
				t.Errorf("event %s: window %v, stream seq %d", m.data, k.Window, k.StreamSeq)
			}
			evs = append(evs, id)
		case SSEVerdict:
			vs = append(vs, id)
		}
	}
	if want := []string{"gw-1/i1:1", "gw-1/i1:4", "gw-1/i2:1"}; !slices.Equal(evs, want) {
		t.Errorf("events shown %v, want %v", evs, want)
	}
	if want := []string{"gw-1/i1:1", "gw-1/i1:4"}; !slices.Equal(vs, want) {
		t.Errorf("verdicts shown %v, want %v", vs, want)
	}
	// Nothing else follows: a last event comes next.
	pub(names.EventSubject("gw-1"), ev("gw-1", 9, wire.KindAnomaly))
	for {
		m := next(t, msgs)
		if m.event == SSEHeartbeat {
			continue
		}
		var k struct{ Seq uint64 }
		if json.Unmarshal([]byte(m.data), &k) != nil || m.event != SSEEvent || k.Seq != 9 {
			t.Fatalf("after the last expected message: %s %s", m.event, m.data)
		}
		break
	}
	cancel()
	waitUntil(t, "the feed to stop following after the last client left", func() bool { return !lv.Following() })
}
