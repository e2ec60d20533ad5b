package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/cmd/videosim/internal/vsim"
	"github.com/outpost-iot/outpost/edge/internal/agent"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestCameraGatewayCrowdBurst runs the agent with the shipped
// camera-gateway profile (embedded broker, video decoder, z-score per
// feature) and feeds it three minutes of generated detections at 25 fps
// with a crowd burst after 150 s: the burst becomes an anomaly event on
// cameras/cam-1/count_person, and no count_person event comes before it.
// (Other features may have events of their own: a car, rare in the
// generated scene, scores high on count_car.)
func TestCameraGatewayCrowdBurst(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	p, err := profile.Load("../../../firmware-configs/camera-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p.Agent.ID = "cam-gw-1"
	p.NATS.URL = srv.URL()
	p.DataDir = t.TempDir()
	p.MQTT.Embedded.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))

	ready := make(chan *agent.Agent, 1)
	a, err := agent.New(agent.Options{Profile: p, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(a *agent.Agent) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
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

	const fps, frames, burstAt = 25, 180 * 25, 150*25 + 1
	start := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	g := vsim.NewSynthetic(vsim.SynthConfig{Seed: 5, FPS: fps, BurstAt: burstAt})
	res, err := vsim.Run(context.Background(), vsim.Config{MQTTURL: a.MQTTURL(), Camera: "cam-1", FPS: fps, Fast: true,
		Start: start, Count: frames}, vsim.Endless{Synthetic: g})
	if err != nil || res.Frames != frames || res.Failed != 0 {
		t.Fatalf("videosim: %+v %v", res, err)
	}
	// 180 buckets, the last pending: 179 x (frames + 7 counts) readings at
	// least, plus confidence, area and motion where there were objects.
	waitFor(t, "the buckets' readings", func() bool { return a.State().Readings >= 179*8 })
	if st := a.State(); st.DecodeErrors != 0 {
		t.Fatalf("decode errors: %+v", a.DecodeErrors())
	}
	burstTS := start.Add(150 * time.Second)
	var events []wire.Event
	waitFor(t, "an event for the burst", func() bool {
		events = events[:0]
		for _, m := range edgetest.Messages(t, js, names.StreamEvents) {
			var ev wire.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		for _, ev := range events {
			if ev.Stream == "cameras/cam-1/count_person" && !ev.TS.Before(burstTS) && ev.TS.Before(burstTS.Add(15*time.Second)) && ev.Kind == wire.KindAnomaly {
				return true
			}
		}
		return false
	})
	for _, ev := range events {
		if !strings.HasPrefix(ev.Stream, "cameras/cam-1/") {
			t.Errorf("event on stream %s", ev.Stream)
		}
		if ev.Stream == "cameras/cam-1/count_person" && ev.TS.Before(burstTS) {
			t.Errorf("event before the burst: %s at %v (score %.1f)", ev.Stream, ev.TS, ev.Score)
		}
		t.Logf("event: %s %s at +%v score %.1f value %.2f", ev.Kind, ev.Stream, ev.TS.Sub(start), ev.Score, ev.Value)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
