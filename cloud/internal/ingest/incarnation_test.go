package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMarkAdmit: the mark keeps a high-water mark per outbox incarnation.
func TestMarkAdmit(t *testing.T) {
	var m Mark
	steps := []struct {
		inc  string
		seq  uint64
		want bool
	}{
		{"", 5, true}, {"", 5, false}, {"", 6, true}, // an agent without incarnations
		{"a", 1000, true}, {"a", 999, false}, {"a", 1001, true}, // first incarnation-aware outbox
		{"b", 3, true}, {"b", 3, false}, {"b", 4, true}, // wiped, clock went back
		{"a", 1001, false}, {"", 6, false}, // late duplicates of retired incarnations
		{"a", 1002, true}, // a retired incarnation that goes on is accepted
		{"b", 4, false}, {"b", 5, true},
	}
	for i, s := range steps {
		if got := m.Admit(s.inc, s.seq); got != s.want {
			t.Fatalf("step %d (%q, %d): admitted %v, want %v; mark %+v", i, s.inc, s.seq, got, s.want, m)
		}
	}
	want := Mark{Seq: 5, Seen: true, Incarnation: "b", Retired: []RetiredMark{{"", 6}, {"a", 1002}}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("mark %+v, want %+v", m, want)
	}
	// Retired is bounded, oldest forgotten first; the caller's copy is
	// not changed.
	for i := range MaxRetired + 3 {
		m.Admit(fmt.Sprint("i", i), 1)
	}
	if len(m.Retired) != MaxRetired || m.Retired[len(m.Retired)-1].Incarnation != fmt.Sprint("i", MaxRetired+1) {
		t.Errorf("retired %+v", m.Retired)
	}
	before := append([]RetiredMark{}, m.Retired...)
	c := m
	c.Admit("new", 1)
	if !reflect.DeepEqual(m.Retired, before) {
		t.Errorf("admit changed a copy's Retired: %+v", m.Retired)
	}
}

// TestWipedOutboxIsAccepted: an agent whose outbox was wiped and recreated
// (a new incarnation, seqs below the old mark because the clock went back)
// gets its new events accepted; duplicates are still dropped within each
// incarnation, and marks written before incarnations existed go on.
func TestWipedOutboxIsAccepted(t *testing.T) {
	ns := testenv.StartNATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := streams.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(func() float64 { return 0 })
	var mu sync.Mutex
	var accepted []string
	c, err := Start(ctx, js, Config{
		Name: "test", Stream: names.StreamEvents, Durable: "test-inc", Filter: names.EventsAll, SubjectFor: names.EventSubject,
		Batch: 3,
		Decode: func(msg jetstream.Msg, agent string) (uint64, any, error) {
			var ev wire.Event
			err := wire.DecodeEvent(msg.Data(), &ev)
			return ev.Seq, ev, err
		},
		Apply: func(agent string, r Result) {
			mu.Lock()
			defer mu.Unlock()
			for _, it := range r.Accepted {
				accepted = append(accepted, fmt.Sprintf("%s:%d", it.Incarnation, it.Seq))
			}
		},
		Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pub := func(inc string, seq uint64, msgID string) {
		t.Helper()
		b, _ := json.Marshal(wire.Event{Agent: "gw", Seq: seq, Incarnation: inc, Stream: "s", Kind: wire.KindAnomaly})
		if _, err := js.Publish(ctx, names.EventSubject("gw"), b, jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}
	// An agent from before incarnations, upgraded: its outbox keeps
	// sending without one.
	pub("", 1, "gw:1")
	pub("", 2, "gw:2")
	// Its data directory is wiped: the new outbox has an incarnation and
	// starts at the wall clock.
	pub("a1", 1_700_000_000_000_001, "gw:1700000000000001")
	pub("a1", 1_700_000_000_000_002, "gw:1700000000000002")
	pub("a1", 1_700_000_000_000_001, "gw:1700000000000001:again") // republished after the Msg-Id window
	// Wiped again, on a gateway whose clock went back: seqs below the mark.
	pub("b2", 1_600_000_000_000_001, "gw:1600000000000001")
	pub("b2", 1_600_000_000_000_002, "gw:1600000000000002")
	pub("b2", 1_600_000_000_000_002, "gw:1600000000000002:again")
	pub("a1", 1_700_000_000_000_002, "gw:1700000000000002:again") // a late duplicate of the old outbox
	pub("b2", 1_600_000_000_000_003, "gw:1600000000000003")
	count := func(o string) float64 { return testutil.ToFloat64(m.IngestMessages.WithLabelValues("test", o)) }
	deadline := time.Now().Add(15 * time.Second)
	for count("accepted")+count("duplicate") < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %v duplicate %v", count("accepted"), count("duplicate"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	want := []string{":1", ":2", "a1:1700000000000001", "a1:1700000000000002", "b2:1600000000000001", "b2:1600000000000002", "b2:1600000000000003"}
	if !reflect.DeepEqual(accepted, want) {
		t.Errorf("accepted %v, want %v", accepted, want)
	}
	mu.Unlock()
	if n := count("duplicate"); n != 3 {
		t.Errorf("%v duplicates, want 3", n)
	}
	mk, err := c.Mark(ctx, "gw")
	if err != nil || mk.Incarnation != "b2" || mk.Seq != 1_600_000_000_000_003 || len(mk.Retired) != 2 {
		t.Errorf("mark %+v, %v", mk, err)
	}
}
