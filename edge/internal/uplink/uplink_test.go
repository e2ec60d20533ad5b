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
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	add := func(kind outbox.Kind, n int) {
		for i := 0; i < n; i++ {
			if _, err := ob.AppendWait(kind, false, func(seq uint64) ([]byte, error) {
				return []byte(fmt.Sprintf(`{"seq":%d}`, seq)), nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(outbox.KindEvent, 300)
	add(outbox.KindSummary, 2)

	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	up, err := New(nc, ob, Config{Agent: "gw-1", Window: 64, AckTimeout: 2 * time.Second, Backoff: 100 * time.Millisecond,
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
