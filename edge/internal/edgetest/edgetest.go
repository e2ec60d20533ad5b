// Package edgetest holds test helpers of the edge module: the JetStream
// streams the cloud would create, created here with the subjects in
// shared/names so that agent tests run against a bare nats-server.
package edgetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// CreateStreams creates the events, summaries and state streams on the
// server at url and returns a JetStream handle on a connection closed at
// cleanup.
func CreateStreams(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: names.StreamEvents, Subjects: []string{names.EventsAll}, Duplicates: 10 * time.Minute},
		{Name: names.StreamSummaries, Subjects: []string{names.SummariesAll}, MaxAge: time.Hour},
		{Name: names.StreamState, Subjects: []string{names.StateAll}, MaxMsgsPerSubject: 1},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			t.Fatalf("create stream %s: %v", cfg.Name, err)
		}
	}
	return js
}

// Messages fetches every message of stream, oldest first.
func Messages(t testing.TB, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		out = append(out, m)
	}
	return out
}

// Events decodes every event in OUTPOST_EVENTS, oldest first.
func Events(t testing.TB, js jetstream.JetStream) []wire.Event {
	t.Helper()
	var evs []wire.Event
	for _, m := range Messages(t, js, names.StreamEvents) {
		var ev wire.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event %d: %v", m.Sequence, err)
		}
		evs = append(evs, ev)
	}
	return evs
}
