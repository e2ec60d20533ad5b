package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// runAgent runs an agent until stop is called (or the test ends).
func runAgent(t *testing.T, p profile.Profile) (a *Agent, stop func()) {
	t.Helper()
	ready := make(chan *Agent, 1)
	a, err := New(Options{Profile: p, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(a *Agent) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	return a, stop
}

// TestCheckpointNoWarmupGap: an agent stopped after its streams warmed up
// and started again on the same data directory detects a spike in the very
// first reading after the restart: stream state (window, statistics) is
// checkpointed, there is no second warm-up.
func TestCheckpointNoWarmupGap(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := deliveryProfile(t, "gw-cp", srv.URL(), mq.URL())
	pub := publisher(t, mq.URL(), "", "")

	a, stop := runAgent(t, p)
	sig := newSignal(3, 1<<30, 3)  // no spikes
	sig.publish(t, pub, 100, 2000) // 100 readings per stream: 2.5 windows
	waitFor(t, "readings judged", func() bool { return a.State().Readings == 300 })
	stop()

	a, _ = runAgent(t, p)
	// The first reading after the restart is a spike.
	sigma := 1.414
	ts := sig.t0.Add(time.Duration(sig.next[1]) * 10 * time.Millisecond)
	payload := fmt.Sprintf(`{"ts":%d,"value":%.4f}`, ts.UnixMilli(), 20+12*sigma)
	if tok := pub.Publish(topicOf(1), 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	spikes := map[string]bool{spikeKey(topicOf(1), ts): true}
	d := waitDelivered(t, js, "gw-cp", spikes, 20*time.Second)
	checkDelivered(t, d, spikes)
	if r := a.State().Readings; r != 1 {
		t.Fatalf("second run judged %d readings, want 1", r)
	}
}

// checkpointEntries is the agent's outpost_edge_checkpoint_entries_total.
func checkpointEntries(t *testing.T, a *Agent) float64 {
	t.Helper()
	mfs, err := a.met.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "outpost_edge_checkpoint_entries_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no outpost_edge_checkpoint_entries_total")
	return 0
}

// TestCheckpointInterval: the profile's checkpoint_interval sets how often
// a stream's state is saved once it is warm (while it warms up, every
// message is checkpointed). One stream takes readings for about 1.5 s after
// its warm-up: every 200ms, that is several checkpoints; every hour, none
// until the agent stops, when its state is saved once.
func TestCheckpointInterval(t *testing.T) {
	srv := testenv.StartNATS(t)
	edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	pub := publisher(t, mq.URL(), "", "")
	for _, tc := range []struct {
		every    time.Duration
		min, max float64 // checkpoint entries stored while the warm stream took readings
	}{{200 * time.Millisecond, 3, 100}, {time.Hour, 0, 0}} {
		t.Run(tc.every.String(), func(t *testing.T) {
			p := deliveryProfile(t, "gw-cp-"+strings.ReplaceAll(tc.every.String(), ".", ""), srv.URL(), mq.URL())
			p.CheckpointInterval = tc.every
			a, stop := runAgent(t, p)
			wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer wcancel()
			if err := a.WaitMQTT(wctx); err != nil {
				t.Fatal(err)
			}
			topic := "sensors/cp/temp"
			publishRange(t, pub, topic, 0, 60) // the window (40) warms up
			waitFor(t, "the warm-up readings", func() bool { return a.State().Readings == 60 })
			// The warm-up's checkpoints committed (Flush waits for the
			// lazy ones queued before it).
			if err := a.box.Flush(); err != nil {
				t.Fatal(err)
			}
			before := checkpointEntries(t, a)
			for i := 0; i < 15; i++ {
				publishRange(t, pub, topic, 60+5*i, 5)
				time.Sleep(100 * time.Millisecond)
			}
			waitFor(t, "the readings", func() bool { return a.State().Readings == 135 })
			if err := a.box.Flush(); err != nil { // the lazy checkpoints applied
				t.Fatal(err)
			}
			n := checkpointEntries(t, a) - before
			if n < tc.min || n > tc.max {
				t.Fatalf("checkpoint_interval %v: %v checkpoint entries stored in 1.5 s of readings, want %v to %v", tc.every, n, tc.min, tc.max)
			}
			t.Logf("checkpoint_interval %v: %v entries stored in 1.5 s of readings (%v during the warm-up)", tc.every, n, before)
			m := a
			stop()
			if got := checkpointEntries(t, m) - before - n; got != 1 {
				t.Fatalf("stopping saved %v checkpoint entries, want 1", got)
			}
		})
	}
}
