package alerts

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/cloud/internal/verdicts"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns := testenv.StartNATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := streams.Ensure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return js
}

// publishPair stores an event and its verdict as the second stage would.
func publishPair(t *testing.T, js jetstream.JetStream, agent string, seq uint64, d wire.Decision) {
	t.Helper()
	ctx := context.Background()
	ev := wire.Event{Agent: agent, Seq: seq, Stream: "s/1", Kind: wire.KindUncertain, Value: 9, Created: time.Now().UTC()}
	b, _ := json.Marshal(ev)
	ack, err := js.Publish(ctx, names.EventSubject(agent), b, jetstream.WithMsgID(names.MsgID(agent, seq)))
	if err != nil {
		t.Fatal(err)
	}
	v := wire.Verdict{Agent: agent, Seq: seq, Stream: "s/1", EdgeKind: wire.KindUncertain, Decision: d, Score: 7, Model: "robust-zscore@1", Decided: time.Now().UTC()}
	b, _ = json.Marshal(v)
	msg := &nats.Msg{Subject: names.VerdictSubject(agent), Data: b, Header: nats.Header{}}
	msg.Header.Set(verdicts.EventSeqHeader, strconv.FormatUint(ack.Sequence, 10))
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(names.MsgID(agent, seq))); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestWebhookRetriesThenDelivers(t *testing.T) {
	js := setup(t)
	var calls atomic.Int32
	var mu sync.Mutex
	var got []Alert
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		var a Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}))
	defer srv.Close()
	m := metrics.New(func() float64 { return 0 })
	w, err := StartWebhook(context.Background(), js, Config{URL: srv.URL, MaxAttempts: 5, Backoff: 20 * time.Millisecond, Metrics: m, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	publishPair(t, js, "gw-r", 1, wire.Rejected) // not an alert
	publishPair(t, js, "gw-c", 7, wire.Confirmed)
	waitFor(t, "delivery", func() bool { return testutil.ToFloat64(m.AlertsDelivered) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Verdict.Agent != "gw-c" || got[0].Verdict.Seq != 7 || got[0].Event == nil || got[0].Event.Value != 9 {
		t.Fatalf("alerts = %+v", got)
	}
	if calls.Load() != 3 {
		t.Errorf("POSTs = %d, want 3 (two failures, then success)", calls.Load())
	}
	// Exponential backoff: the second wait is about twice the first.
	if d1, d2 := times[1].Sub(times[0]), times[2].Sub(times[1]); d1 < 20*time.Millisecond || d2 < 40*time.Millisecond {
		t.Errorf("waits %v, %v; want >= 20ms then >= 40ms", d1, d2)
	}
	if e, ok := testutil.ToFloat64(m.AlertAttempts.WithLabelValues("error")), testutil.ToFloat64(m.AlertAttempts.WithLabelValues("ok")); e != 2 || ok != 1 {
		t.Errorf("attempts error=%v ok=%v", e, ok)
	}
	if dl, _ := DeadLetters(context.Background(), js); len(dl) != 0 {
		t.Errorf("dead letters = %+v, want none", dl)
	}
}

func TestWebhookDeadLetters(t *testing.T) {
	js := setup(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	m := metrics.New(func() float64 { return 0 })
	w, err := StartWebhook(context.Background(), js, Config{URL: srv.URL, MaxAttempts: 3, Backoff: time.Millisecond, Metrics: m, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	publishPair(t, js, "gw-d", 3, wire.Confirmed)
	waitFor(t, "dead letter", func() bool { return testutil.ToFloat64(m.AlertsDeadLettered) == 1 })
	dls, err := DeadLetters(context.Background(), js)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
	d := dls[0]
	if d.Verdict.Agent != "gw-d" || d.Verdict.Seq != 3 || d.Attempts != 3 || d.URL != srv.URL || d.Event == nil || d.LastError == "" {
		t.Errorf("dead letter = %+v", d)
	}
	if calls.Load() != 3 {
		t.Errorf("POSTs = %d, want 3", calls.Load())
	}
	if testutil.ToFloat64(m.AlertsDelivered) != 0 {
		t.Error("counted as delivered")
	}
}
