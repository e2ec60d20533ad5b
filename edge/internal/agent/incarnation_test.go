package agent

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestWipedDataDirNewIncarnation: events carry the incarnation of the
// outbox that numbered them and seqs from the wall clock; after the agent's
// data directory is wiped, the restarted agent's events carry a new
// incarnation and seqs above the old ones, and JetStream stores them (no
// Nats-Msg-Id collides with the old outbox's).
func TestWipedDataDirNewIncarnation(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := testProfile(t, srv.URL())
	p.MQTT.URL = mq.URL()
	pub := publisher(t, mq.URL(), "", "")
	start := uint64(time.Now().UnixMicro())

	a := startAgentStoppable(t, p)
	publishSeries(t, pub, "sensors/x/before", 320, 300)
	waitFor(t, "the first event delivered", func() bool { st := a.agent.State(); return st.Anomalies == 1 && st.OutboxDepth == 0 })
	a.stop()
	if err := os.RemoveAll(p.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := startAgentStoppable(t, p)
	defer b.stop()
	publishSeries(t, pub, "sensors/x/after", 320, 300)
	waitFor(t, "the second event delivered", func() bool {
		return len(edgetest.Messages(t, js, names.StreamEvents)) == 2
	})
	msgs := edgetest.Messages(t, js, names.StreamEvents)
	var evs [2]wire.Event
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for i, m := range msgs {
		if err := json.Unmarshal(m.Data, &evs[i]); err != nil {
			t.Fatal(err)
		}
		ev := evs[i]
		if !hex16.MatchString(ev.Incarnation) || ev.Seq <= start || m.Header.Get(nats.MsgIdHdr) != names.MsgID("gw-1", ev.Seq) {
			t.Errorf("event %d: seq %d (started at %d µs) incarnation %q msg id %q", i, ev.Seq, start, ev.Incarnation, m.Header.Get(nats.MsgIdHdr))
		}
	}
	if evs[0].Stream != "sensors/x/before" || evs[1].Stream != "sensors/x/after" {
		t.Fatalf("events %+v", evs)
	}
	if evs[0].Incarnation == evs[1].Incarnation || evs[1].Seq <= evs[0].Seq {
		t.Errorf("after the wipe: incarnation %q seq %d; before: %q seq %d", evs[1].Incarnation, evs[1].Seq, evs[0].Incarnation, evs[0].Seq)
	}
	// Summaries carry the incarnation too.
	waitFor(t, "a summary", func() bool { return len(edgetest.Messages(t, js, names.StreamSummaries)) > 0 })
	for _, m := range edgetest.Messages(t, js, names.StreamSummaries) {
		var sum wire.Summary
		if err := json.Unmarshal(m.Data, &sum); err != nil || (sum.Incarnation != evs[0].Incarnation && sum.Incarnation != evs[1].Incarnation) {
			t.Errorf("summary seq %d incarnation %q, want %q or %q (%v)", sum.Seq, sum.Incarnation, evs[0].Incarnation, evs[1].Incarnation, err)
		}
	}
}
