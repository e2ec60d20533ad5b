package service

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/models/detect/secondstage"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// publishEvents publishes evs as agent agentID's events (Agent, Seq 1, 2,
// ... and Created set here) and returns the verdicts the agent reads back
// on its own subject, by seq.
func publishEvents(t *testing.T, url, agentID string, evs []wire.Event) map[uint64]wire.Verdict {
	t.Helper()
	a := newAgent(t, url, agentID)
	ctx := context.Background()
	cons, err := a.js.OrderedConsumer(ctx, names.StreamVerdicts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.VerdictSubject(agentID)}})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		ev.Agent, ev.Seq, ev.Created = agentID, uint64(i+1), time.Now().UTC()
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.js.Publish(ctx, names.EventSubject(agentID), b, jetstream.WithMsgID(names.MsgID(agentID, ev.Seq))); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint64]wire.Verdict{}
	for len(got) < len(evs) {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("verdict on %s: %v (have %d)", names.VerdictSubject(agentID), err, len(got))
		}
		var v wire.Verdict
		if err := json.Unmarshal(msg.Data(), &v); err != nil {
			t.Fatal(err)
		}
		got[v.Seq] = v
	}
	return got
}

// rows flattens feats[from:to] as an event's Features.
func rows(feats [][]float64, from, to int) (out []float64, missing []int) {
	for _, v := range feats[from:to] {
		for _, x := range v {
			if math.IsNaN(x) {
				missing = append(missing, len(out))
				x = 0
			}
			out = append(out, x)
		}
	}
	return out, missing
}

// TestSecondStageVideo: events of the edge's video model (ae-video@1) that
// carry their buckets' features are decided by the stock video second
// stage ae-video-cloud@1, through the service: the bucket a crowd of 15
// pedestrians walks into (generated street scene) is confirmed although
// the edge only called it uncertain, a normal bucket the edge called an
// anomaly is rejected, each with the model's residual as the score; a
// camera's first buckets (fewer rows than the model reads) fall back to
// the edge's kind and say why; a video event without features (an agent
// from before features) is decided as before, by the default scorer
// forecast-cloud; a sensor event in the same batch is still decided by
// forecast-cloud.
func TestSecondStageVideo(t *testing.T) {
	svc := startCfg(t, Config{})
	m, model, err := stock.Load(stock.VideoCloud)
	if err != nil {
		t.Fatal(err)
	}
	c, err := secondstage.NewVector(m, model, 0)
	if err != nil {
		t.Fatal(err)
	}
	W := m.Window
	spec := train.VideoSpec{}.WithDefaults()
	a := train.Anomaly{Kind: train.AnomalyCrowd, At: 300, Duration: 10, Size: 15}
	feats := spec.SceneFeatures(train.Scene{Seed: train.HeldOutSceneSeed(7, 2000), Anomaly: &a}, 400)
	at := int(a.At / spec.Bucket)
	// The crowd's bucket: the first of its first three buckets at or above
	// the threshold; the normal bucket: the first one before it below.
	crowdEnd, normalEnd := -1, -1
	var crowdRes, normalRes float64
	for end := at + 1; end <= at+3 && crowdEnd < 0; end++ {
		f, miss := rows(feats, end-W, end)
		if r, ok, _ := c.Decide(f, miss); ok {
			crowdEnd, crowdRes = end, r
		}
	}
	for end := 100; end < at && normalEnd < 0; end++ {
		f, miss := rows(feats, end-W, end)
		if r, ok, _ := c.Decide(f, miss); !ok {
			normalEnd, normalRes = end, r
		}
	}
	if crowdEnd < 0 || normalEnd < 0 {
		t.Fatalf("no crowd bucket confirmed (%d) or no normal bucket rejected (%d) by %s", crowdEnd, normalEnd, m.ID())
	}
	video := func(kind wire.Kind, end, from int) wire.Event {
		f, miss := rows(feats, from, end)
		return wire.Event{Stream: "video/cam1/scores", TS: time.Now().UTC(), Kind: kind, Score: 1.3, Low: 1.18, High: 1.49,
			Model: "ae-video@1", Value: 1.3, Window: []float64{0.4, 0.5, 0.6, 1.3}, Features: f, FeaturesMissing: miss}
	}
	old := video(wire.KindAnomaly, crowdEnd, crowdEnd-W)
	old.Features, old.FeaturesMissing = nil, nil
	sensor := wire.Event{Stream: "sensors/s/temp", TS: time.Now().UTC(), Kind: wire.KindUncertain, Score: 1.3, Low: 1.1, High: 1.17,
		Model: "ae-edge@1", Window: sensorWindow(96, 2), Value: 0}
	sensor.Window[95] += 25
	sensor.Value = sensor.Window[95]
	got := publishEvents(t, svc.NATSURL(), "gw-v", []wire.Event{
		video(wire.KindUncertain, crowdEnd, crowdEnd-W),
		video(wire.KindAnomaly, normalEnd, normalEnd-2*W), // more rows than the model reads: the last W count
		video(wire.KindAnomaly, 3, 0),
		video(wire.KindUncertain, 3, 0),
		old,
		sensor,
	})
	const vm = "ae-video-cloud@1"
	if v := got[1]; v.Decision != wire.Confirmed || v.Model != vm || math.Abs(v.Score-crowdRes) > 1e-9 || v.Score < m.Low || v.Reason != "" || v.EdgeKind != wire.KindUncertain {
		t.Errorf("crowd bucket: %+v (residual %v, threshold %v)", v, crowdRes, m.Low)
	}
	if v := got[2]; v.Decision != wire.Rejected || v.Model != vm || math.Abs(v.Score-normalRes) > 1e-9 || v.Score >= m.Low || v.Reason != "" || v.EdgeKind != wire.KindAnomaly {
		t.Errorf("normal bucket the edge called an anomaly: %+v (residual %v)", v, normalRes)
	}
	for seq, want := range map[uint64]wire.Decision{3: wire.Confirmed, 4: wire.Rejected} {
		if v := got[seq]; v.Decision != want || v.Model != vm || v.Score != 1.3 || !strings.Contains(v.Reason, "fallback edge-kind") || !strings.Contains(v.Reason, "got 3") {
			t.Errorf("3 rows, seq %d: %+v", seq, v)
		}
	}
	if v := got[5]; v.Model != "forecast-cloud@1" || v.Decision != wire.Confirmed || !strings.Contains(v.Reason, "fallback edge-kind") {
		t.Errorf("video event without features: %+v", v)
	}
	if v := got[6]; v.Model != "forecast-cloud@1" || v.Decision != wire.Confirmed || v.Reason != "" {
		t.Errorf("sensor spike: %+v", v)
	}
	mt := svc.Metrics()
	waitFor(t, "verdicts counted per model", func() bool {
		return testutil.ToFloat64(mt.Verdicts.WithLabelValues("confirmed", vm)) == 2 &&
			testutil.ToFloat64(mt.Verdicts.WithLabelValues("rejected", vm)) == 2 &&
			testutil.ToFloat64(mt.Verdicts.WithLabelValues("confirmed", "forecast-cloud@1")) == 2
	})
}
