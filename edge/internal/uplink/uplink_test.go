package uplink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishInOrderAndSurviveOutage(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "o.db"), outbox.Options{FirstSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	add := func(kind outbox.Kind, n int) {
		for i := 0; i < n; i++ {
			if _, err := ob.AppendWait(kind, func(seq uint64) ([]byte, error) {
				return []byte(fmt.Sprintf(`{"seq":%d}`, seq)), nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(outbox.KindEvent, 300)
	add(outbox.KindSummary, 2)

	up, err := New(ob, Config{Agent: "gw-1", URL: srv.URL(), Window: 64, AckTimeout: 2 * time.Second, Backoff: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	waitFor(t, "outbox to drain", func() bool { return ob.Stats().Depth == 0 })
	msgs := edgetest.Messages(t, js, names.StreamEvents)
	if len(msgs) != 300 {
		t.Fatalf("%d events in the stream, want 300", len(msgs))
	}
	for i, m := range msgs {
		want := names.MsgID("gw-1", uint64(i+1))
		if got := m.Header.Get(nats.MsgIdHdr); got != want || m.Subject != names.EventSubject("gw-1") {
			t.Fatalf("message %d: id %q subject %q, want %q", i, got, m.Subject, want)
		}
	}
	if s := edgetest.Messages(t, js, names.StreamSummaries); len(s) != 2 || s[0].Header.Get(nats.MsgIdHdr) != "gw-1:301" {
		t.Fatalf("summaries: %d", len(s))
	}

	// Outage: records committed while NATS is down are sent after it returns.
	srv.Stop()
	add(outbox.KindEvent, 20)
	time.Sleep(300 * time.Millisecond) // let the uplink fail at least once
	if ob.Stats().Depth != 20 {
		t.Fatalf("records deleted while NATS was down: depth %d", ob.Stats().Depth)
	}
	srv.Restart()
	waitFor(t, "outbox to drain after restart", func() bool { return ob.Stats().Depth == 0 })
	msgs = edgetest.Messages(t, js, names.StreamEvents)
	if len(msgs) != 320 {
		t.Fatalf("%d events after the outage, want 320 (no loss, no duplicates)", len(msgs))
	}
	if got := msgs[319].Header.Get(nats.MsgIdHdr); got != "gw-1:322" {
		t.Fatalf("last id %q", got)
	}
	if st := up.Stats(); st.Published != 322 {
		t.Fatalf("published %d, want 322", st.Published)
	}
}

// checkStream checks that the stream holds exactly the records with seqs
// 1..n of agent, in seq order, once each.
func checkStream(t *testing.T, msgs []*jetstream.RawStreamMsg, agent string, n int) {
	t.Helper()
	seen := map[string]int{}
	for i, m := range msgs {
		id := m.Header.Get(nats.MsgIdHdr)
		if j, dup := seen[id]; dup {
			t.Errorf("message %d: id %s already stored as message %d", i, id, j)
		}
		seen[id] = i
	}
	if len(msgs) != n {
		t.Fatalf("%d messages in the stream, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if got, want := m.Header.Get(nats.MsgIdHdr), names.MsgID(agent, uint64(i+1)); got != want {
			t.Fatalf("message %d has id %s, want %s: order broken or gap", i, got, want)
		}
	}
}

// TestStrictOrderAcrossNATSRestarts appends records in a steady stream while
// the NATS server is restarted several times in the middle of the burst;
// the stream must hold every record once, in seq order.
func TestStrictOrderAcrossNATSRestarts(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "o.db"), outbox.Options{FirstSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	up, err := New(ob, Config{Agent: "gw-1", URL: srv.URL(), Window: 128, AckTimeout: 2 * time.Second, Backoff: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	const total = 6000
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < total; i++ {
			ob.Append(outbox.Request{Kind: outbox.KindEvent, Build: func(seq uint64) ([]byte, error) {
				return []byte(fmt.Sprintf(`{"seq":%d}`, seq)), nil
			}})
			if i%20 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	// Restart the server while records flow: each restart cuts publishes in
	// flight.
	for r := 0; r < 4; r++ {
		waitFor(t, "some records published", func() bool { return up.Stats().Published > uint64(r*total/6) })
		srv.Stop()
		time.Sleep(100 * time.Millisecond)
		srv.Restart()
	}
	<-produced
	waitFor(t, "outbox to drain", func() bool { return ob.Stats().Depth == 0 && ob.Stats().LastSeq == total })
	checkStream(t, edgetest.Messages(t, js, names.StreamEvents), "gw-1", total)
	st := up.Stats()
	if st.OutOfOrder != 0 {
		t.Fatalf("out of order: %d", st.OutOfOrder)
	}
	if st.Failures == 0 {
		t.Fatalf("no failure seen: the restarts did not cut the burst")
	}
	t.Logf("uplink: %+v", st)
}

// TestNoStreamYet: records committed before the stream exists ("no
// responders") wait in the outbox and go out, in order, once it does.
func TestNoStreamYet(t *testing.T) {
	srv := testenv.StartNATS(t)
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "o.db"), outbox.Options{FirstSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for i := 0; i < 500; i++ {
		ob.Append(outbox.Request{Kind: outbox.KindEvent, Build: func(seq uint64) ([]byte, error) { return []byte(`{}`), nil }})
	}
	waitFor(t, "records committed", func() bool { return ob.Stats().Depth == 500 })
	up, err := New(ob, Config{Agent: "gw-1", URL: srv.URL(), Window: 64, AckTimeout: time.Second, Backoff: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "failed publishes", func() bool { return up.Stats().Failures >= 2 })
	if d := ob.Stats().Depth; d != 500 {
		t.Fatalf("depth %d: records deleted without an ack", d)
	}
	js := edgetest.CreateStreams(t, srv.URL())
	waitFor(t, "outbox to drain", func() bool { return ob.Stats().Depth == 0 })
	checkStream(t, edgetest.Messages(t, js, names.StreamEvents), "gw-1", 500)
}
