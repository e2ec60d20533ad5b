package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestAgentReorderGapsAndRestart: through a real mosquitto, readings of one
// stream arrive partly out of order (within the 3s reordering delay), with
// a gap, one late reading and one duplicate. The spike is one anomaly event
// at its own time, its window marks the gap's samples missing, and the
// summaries count the late reading, the duplicate and the filled samples.
// The agent then stops with readings still held in the reorder buffer; the
// next run (same data dir) judges them from the checkpoint: every reading
// published in order is counted in the summaries exactly once.
func TestAgentReorderGapsAndRestart(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p, err := profile.Parse([]byte(`
agent:
  id: gw-re
  heartbeat: 200ms
mqtt:
  topics:
    - filter: sensors/+/+
streams:
  - match: sensors/#
    window: 60
    low: 4
    high: 6
    cooldown: 5
    reorder: 3s
    gap_fill: missing
    interval: 1s
summary_interval: 300ms
`))
	if err != nil {
		t.Fatal(err)
	}
	p.NATS.URL, p.MQTT.URL, p.DataDir = srv.URL(), mq.URL(), t.TempDir()
	if err := p.ValidateForRun(); err != nil {
		t.Fatal(err)
	}

	const topic = "sensors/re-1/temp"
	rng := rand.New(rand.NewSource(11))
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	value := func(i int) float64 {
		v := 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + rng.NormFloat64()*0.05
		if i == 150 {
			v += 15
		}
		return v
	}
	send := func(c paho.Client, i int, v float64) {
		payload := fmt.Sprintf(`{"ts":%d,"value":%g}`, t0.Add(time.Duration(i)*time.Second).UnixMilli(), v)
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// Readings 0..199 without 100..102 (a gap of 3), pairs 3-4, 13-14, ...
	// swapped (1 s out of order); then 20 again (late) and 198 (duplicate).
	var order []int
	for i := 0; i < 200; i++ {
		if i >= 100 && i <= 102 {
			continue
		}
		order = append(order, i)
	}
	for k := 0; k+1 < len(order); k++ {
		if order[k]%10 == 3 && order[k+1] == order[k]+1 {
			order[k], order[k+1] = order[k+1], order[k]
			k++
		}
	}
	vals := map[int]float64{}
	for i := 0; i < 210; i++ {
		vals[i] = value(i)
	}

	first := startAgentStoppable(t, p)
	pub := publisher(t, mq.URL(), "", "")
	for _, i := range order {
		send(pub, i, vals[i])
	}
	send(pub, 20, vals[20])
	send(pub, 198, vals[198]) // still held: a duplicate
	waitFor(t, "the readings", func() bool { return first.agent.State().Readings == uint64(len(order)+2) })
	first.stop()

	second := startAgent(t, p)
	for i := 200; i < 210; i++ {
		send(pub, i, vals[i])
	}
	waitFor(t, "the readings after the restart", func() bool { return second.State().Readings == 10 })

	// 207 readings in order once each; the last 3 (207..209 s) are held.
	const wantCount = 197 + 10 - 3
	var total wire.StreamSummary
	waitFor(t, "the summaries", func() bool {
		total = wire.StreamSummary{}
		for _, m := range edgetest.Messages(t, js, names.StreamSummaries) {
			var s wire.Summary
			if err := json.Unmarshal(m.Data, &s); err != nil {
				t.Fatal(err)
			}
			for _, ss := range s.Streams {
				if ss.Stream == topic {
					total.Count += ss.Count
					total.LateDropped += ss.LateDropped
					total.Duplicates += ss.Duplicates
					total.Filled += ss.Filled
					total.GapsReset += ss.GapsReset
				}
			}
		}
		return total.Count >= wantCount
	})
	if total.Count != wantCount || total.LateDropped != 1 || total.Duplicates != 1 || total.Filled != 3 || total.GapsReset != 0 {
		t.Fatalf("summaries add up to %+v, want count %d, 1 late, 1 duplicate, 3 filled", total, wantCount)
	}

	msgs := edgetest.Messages(t, js, names.StreamEvents)
	if len(msgs) != 1 {
		for _, m := range msgs {
			t.Logf("event: %s", m.Data)
		}
		t.Fatalf("%d events, want 1", len(msgs))
	}
	var ev wire.Event
	if err := json.Unmarshal(msgs[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	spikeTS := t0.Add(150 * time.Second)
	// Window: 60 samples ending at 150 s, i.e. 91..150; 100..102 missing.
	if !ev.TS.Equal(spikeTS) || ev.Kind != wire.KindAnomaly || ev.Value != vals[150] || len(ev.Window) != 60 ||
		fmt.Sprint(ev.Missing) != "[9 10 11]" || ev.Window[59] != ev.Value || ev.Window[0] != vals[91] {
		t.Fatalf("event %+v, want the spike at %v with 100..102 missing", ev, spikeTS)
	}
}
