package service

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWipedOutboxReachesTheCloud: an agent whose outbox was wiped and
// recreated (new incarnation; seqs below the old mark, as after the clock
// went back) has its new events accepted, listed and decided; a duplicate
// within the new incarnation is still dropped.
func TestWipedOutboxReachesTheCloud(t *testing.T) {
	svc := startCfg(t, Config{})
	a := newAgent(t, svc.NATSURL(), "gw-w")
	ctx := context.Background()
	pub := func(inc string, seq uint64, msgID string) {
		t.Helper()
		b, _ := json.Marshal(wire.Event{Agent: "gw-w", Seq: seq, Incarnation: inc, Stream: "s/t", TS: time.Now().UTC(),
			Kind: wire.KindAnomaly, Score: 2, Low: 1, High: 1.5, Model: "ae-edge@1", Created: time.Now().UTC()})
		if _, err := a.js.Publish(ctx, names.EventSubject("gw-w"), b, jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}
	old, fresh := uint64(1_790_000_000_000_000), uint64(1_780_000_000_000_000)
	pub("0ld0ld0ld0ld0ld0", old+1, names.MsgID("gw-w", old+1))
	pub("0ld0ld0ld0ld0ld0", old+2, names.MsgID("gw-w", old+2))
	pub("f4e5f4e5f4e5f4e5", fresh+1, names.MsgID("gw-w", fresh+1))
	pub("f4e5f4e5f4e5f4e5", fresh+2, names.MsgID("gw-w", fresh+2))
	pub("f4e5f4e5f4e5f4e5", fresh+2, fmt.Sprint(names.MsgID("gw-w", fresh+2), ":resent"))
	m := svc.Metrics()
	waitFor(t, "4 events and 1 duplicate", func() bool {
		return testutil.ToFloat64(m.EventsReceived.WithLabelValues("anomaly")) == 4 && testutil.ToFloat64(m.EventsDuplicate) == 1
	})
	c := apiClient(t, svc.NATSURL())
	waitFor(t, "4 verdicts", func() bool {
		vs, err := c.Verdicts(ctx, api.EventsQuery{Agent: "gw-w"})
		return err == nil && len(vs) == 4
	})
	vs, _ := c.Verdicts(ctx, api.EventsQuery{Agent: "gw-w"})
	incs := map[uint64]string{}
	for _, v := range vs {
		incs[v.Seq] = v.Incarnation
	}
	if incs[old+2] != "0ld0ld0ld0ld0ld0" || incs[fresh+1] != "f4e5f4e5f4e5f4e5" || incs[fresh+2] != "f4e5f4e5f4e5f4e5" {
		t.Errorf("verdicts %+v", vs)
	}
	evs, err := c.Events(ctx, api.EventsQuery{Agent: "gw-w"})
	if err != nil || len(evs) != 4 {
		t.Fatalf("events.list = %+v, %v", evs, err)
	}
}
