package uplink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// TestLagDuringOutage: while NATS is down the lag grows with the age of the
// oldest record and counts what waits; once the backlog drains it is zero.
func TestLagDuringOutage(t *testing.T) {
	srv := testenv.StartNATS(t)
	edgetest.CreateStreams(t, srv.URL())
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	add := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := ob.AppendWait(outbox.KindEvent, func(seq uint64) ([]byte, error) {
				return []byte(fmt.Sprintf(`{"seq":%d}`, seq)), nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	up, err := New(ob, Config{Agent: "gw-1", URL: srv.URL(), Window: 16, AckTimeout: time.Second, Backoff: 50 * time.Millisecond,
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
	if age, n := up.Lag(); age != 0 || n != 0 {
		t.Fatalf("lag with an empty outbox: %v, %d waiting", age, n)
	}
	add(20)
	waitFor(t, "the first records to be sent", func() bool { return ob.Stats().Depth == 0 })
	if age, n := up.Lag(); age != 0 || n != 0 {
		t.Fatalf("lag after the outbox drained: %v, %d waiting", age, n)
	}

	srv.Stop()
	waitFor(t, "the uplink to notice the outage", func() bool { return !up.Stats().Connected })
	t0 := time.Now()
	add(30)
	up.Lag() // the records are seen by now at the latest
	t1 := time.Now()
	time.Sleep(300 * time.Millisecond)
	tb := time.Now()
	age, n := up.Lag()
	t2 := time.Now()
	if n != 30 {
		t.Fatalf("%d records waiting, want 30", n)
	}
	// The oldest record was committed after t0 and seen by t1; Lag read
	// the clock between tb and t2.
	if age < tb.Sub(t1) || age > t2.Sub(t0) {
		t.Fatalf("lag %v, want between %v and %v", age, tb.Sub(t1), t2.Sub(t0))
	}
	add(5) // younger records do not change the oldest's age
	if age2, n := up.Lag(); n != 35 || age2 < age {
		t.Fatalf("lag %v with %d waiting after 5 more; was %v", age2, n, age)
	}

	srv.Restart()
	waitFor(t, "the backlog to drain", func() bool { return ob.Stats().Depth == 0 })
	if age, n := up.Lag(); age != 0 || n != 0 {
		t.Fatalf("lag after the backlog drained: %v, %d waiting", age, n)
	}
}

// TestLagTrackerBounded: marks stay bounded under many commits, and merging
// them only makes ages older, never younger.
func TestLagTrackerBounded(t *testing.T) {
	var l lagTracker
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	seen := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * time.Second) }
	for seq := uint64(1); seq <= 10000; seq++ {
		l.saw(seq, seen(seq))
	}
	if len(l.marks) > lagMaxMarks {
		t.Fatalf("%d marks, want at most %d", len(l.marks), lagMaxMarks)
	}
	now := seen(20000)
	for _, acked := range []uint64{0, 1, 999, 5000, 9998} {
		l.ack(acked)
		got := l.age(now, 10000-acked)
		want := now.Sub(seen(acked + 1))
		if got < want {
			t.Fatalf("acked %d: age %v younger than the true %v", acked, got, want)
		}
		if got > want+time.Duration(10000/lagMaxMarks*4)*time.Second {
			t.Fatalf("acked %d: age %v far older than the true %v", acked, got, want)
		}
	}
	l.ack(10000)
	if got := l.age(now, 0); got != 0 {
		t.Fatalf("age %v with nothing waiting", got)
	}
	// Seen within the resolution: one mark.
	var m lagTracker
	m.saw(1, t0)
	m.saw(2, t0.Add(lagMinSpacing/2))
	if len(m.marks) != 1 || m.marks[0].seq != 2 {
		t.Fatalf("marks %v", m.marks)
	}
}
