package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type rec struct {
	Agent string `json:"agent"`
	Seq   uint64 `json:"seq"`
	N     int    `json:"n"`
}

func decodeRec(msg jetstream.Msg, agent string) (uint64, any, error) {
	var r rec
	if err := json.Unmarshal(msg.Data(), &r); err != nil {
		return 0, nil, err
	}
	if r.Agent != agent {
		return r.Seq, nil, errors.New("agent mismatch")
	}
	return r.Seq, r, nil
}

// TestConsumerMarksStateAndOutcomes: accepted, duplicate and invalid
// messages are sorted out per agent; the state is written with the mark and
// survives a restart; a consumer that restarts finds everything committed.
func TestConsumerMarksStateAndOutcomes(t *testing.T) {
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
	accepted := map[string][]uint64{}
	cfg := Config{
		Name: "test", Stream: names.StreamEvents, Durable: "test-ingest", Filter: names.EventsAll, SubjectFor: names.EventSubject,
		Batch: 4, Decode: decodeRec,
		Prepare: func(_ context.Context, _ string, state json.RawMessage, acc []Item) (json.RawMessage, error) {
			var sum int
			if len(state) > 0 {
				_ = json.Unmarshal(state, &sum)
			}
			for _, it := range acc {
				sum += it.Value.(rec).N
			}
			return json.Marshal(sum)
		},
		Apply: func(agent string, r Result) {
			mu.Lock()
			defer mu.Unlock()
			for _, it := range r.Accepted {
				accepted[agent] = append(accepted[agent], it.Seq)
			}
		},
		Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	c, err := Start(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(agent string, data string, id string) {
		t.Helper()
		if _, err := js.Publish(ctx, names.EventSubject(agent), []byte(data), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for seq := 0; seq < 10; seq++ {
		for _, a := range []string{"x", "y"} {
			pub(a, fmt.Sprintf(`{"agent":%q,"seq":%d,"n":%d}`, a, seq, seq), fmt.Sprintf("%s:%d", a, seq))
		}
	}
	pub("x", `{"agent":"x","seq":3,"n":100}`, "x:3:again") // duplicate
	pub("x", `not json`, "x:junk")                         // invalid
	pub("y", `{"agent":"x","seq":50}`, "y:wrong")          // invalid: agent mismatch
	pub("x", `{"agent":"x","seq":12,"n":12}`, "x:12")      // a gap is fine
	count := func(o string) float64 { return testutil.ToFloat64(m.IngestMessages.WithLabelValues("test", o)) }
	deadline := time.Now().Add(15 * time.Second)
	for count("accepted") < 21 || count("duplicate") < 1 || count("invalid") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %v duplicate %v invalid %v", count("accepted"), count("duplicate"), count("invalid"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Stop()
	mu.Lock()
	if len(accepted["x"]) != 11 || len(accepted["y"]) != 10 || accepted["x"][10] != 12 {
		t.Errorf("accepted = %v", accepted)
	}
	for i, s := range accepted["y"] {
		if s != uint64(i) {
			t.Errorf("y accepted out of order: %v", accepted["y"])
			break
		}
	}
	mu.Unlock()
	mk, err := c.Mark(ctx, "x")
	var sum int
	if err != nil || mk.Seq != 12 || !mk.Seen || json.Unmarshal(mk.State, &sum) != nil || sum != 45+12 {
		t.Errorf("mark x = %+v (sum %d), %v; want seq 12 and state 57", mk, sum, err)
	}
	// A new consumer instance on the same durable and bucket: nothing is
	// accepted again, and a new duplicate is still caught.
	m2 := metrics.New(func() float64 { return 0 })
	cfg.Metrics = m2
	c2, err := Start(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	pub("y", `{"agent":"y","seq":9,"n":9}`, "y:9:late")
	pub("y", `{"agent":"y","seq":10,"n":10}`, "y:10")
	deadline = time.Now().Add(15 * time.Second)
	for testutil.ToFloat64(m2.IngestMessages.WithLabelValues("test", "accepted")) < 1 || testutil.ToFloat64(m2.IngestMessages.WithLabelValues("test", "duplicate")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("second instance did not process the new messages")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if mk, _ := c2.Mark(ctx, "y"); mk.Seq != 10 {
		t.Errorf("mark y = %+v", mk)
	}
	if n := testutil.ToFloat64(m2.IngestMessages.WithLabelValues("test", "accepted")); n != 1 {
		t.Errorf("second instance accepted %v, want 1", n)
	}
}
