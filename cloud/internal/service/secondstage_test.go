package service

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// sensorWindow is n readings of a noisy cycle, as an edge forwards them.
func sensorWindow(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	w := make([]float64, n)
	for i := range w {
		w[i] = 21 + 4*math.Sin(2*math.Pi*float64(i)/36) + 0.2*rng.NormFloat64()
	}
	return w
}

// publishWindows publishes events of agent with the given kinds and
// windows (seq 1, 2, ...) and returns the verdicts the agent reads back on
// its own subject, by seq.
func publishWindows(t *testing.T, url, agentID string, kinds []wire.Kind, windows [][]float64) map[uint64]wire.Verdict {
	t.Helper()
	a := newAgent(t, url, agentID)
	ctx := context.Background()
	cons, err := a.js.OrderedConsumer(ctx, names.StreamVerdicts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.VerdictSubject(agentID)}})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range windows {
		seq := uint64(i + 1)
		ev := wire.Event{Agent: agentID, Seq: seq, Stream: "sensors/s/temp", TS: time.Now().UTC(), Kind: kinds[i], Score: 1.3, Low: 1.1, High: 1.17,
			Model: "ae-edge@1", Window: w, Created: time.Now().UTC()}
		if len(w) > 0 {
			ev.Value = w[len(w)-1]
		}
		b, _ := json.Marshal(ev)
		if _, err := a.js.Publish(ctx, names.EventSubject(agentID), b, jetstream.WithMsgID(names.MsgID(agentID, seq))); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint64]wire.Verdict{}
	for len(got) < len(windows) {
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

// TestSecondStageStockModel: by default outpost-cloud re-scores events
// with the stock float model forecast-cloud: a clear spike is confirmed
// and a clear normal window rejected whatever the edge said, both with the
// model's name, score and latency; a window too short for the model falls
// back to the edge's kind and the verdict says so.
func TestSecondStageStockModel(t *testing.T) {
	svc := startCfg(t, Config{})
	normal := sensorWindow(96, 1)
	spike := sensorWindow(96, 2)
	spike[95] += 25
	short := sensorWindow(32, 3)
	short[31] += 25
	got := publishWindows(t, svc.NATSURL(), "gw-m",
		[]wire.Kind{wire.KindUncertain, wire.KindAnomaly, wire.KindAnomaly, wire.KindUncertain},
		[][]float64{spike, normal, short, short})
	const model = "forecast-cloud@1"
	threshold := 3 * 1.0549326905360668 // the manifest's low, times secondstage.DefaultConfirmAt
	if v := got[1]; v.Decision != wire.Confirmed || v.Model != model || v.Score < threshold || v.Reason != "" || v.LatencyMS <= 0 || v.EdgeKind != wire.KindUncertain {
		t.Errorf("spike: %+v", v)
	}
	if v := got[2]; v.Decision != wire.Rejected || v.Model != model || v.Score >= threshold || v.Reason != "" || v.LatencyMS <= 0 {
		t.Errorf("normal window the edge called an anomaly: %+v", v)
	}
	for seq, want := range map[uint64]wire.Decision{3: wire.Confirmed, 4: wire.Rejected} {
		if v := got[seq]; v.Decision != want || v.Model != model || v.Score != 1.3 || !strings.Contains(v.Reason, "fallback edge-kind") || !strings.Contains(v.Reason, "32 values") {
			t.Errorf("short window %d: %+v", seq, v)
		}
	}
	m := svc.Metrics()
	waitFor(t, "verdicts counted", func() bool {
		return testutil.ToFloat64(m.Verdicts.WithLabelValues("confirmed", model)) == 2 &&
			testutil.ToFloat64(m.Verdicts.WithLabelValues("rejected", model)) == 2
	})
}

// TestSecondStageModelFromStore: a cloud model pushed to the model store
// (--role cloud, with its manifest) is selected by name; it decides as the
// stock model whose file it is, and the verdicts name it.
func TestSecondStageModelFromStore(t *testing.T) {
	ns := testenv.StartNATS(t)
	key := t.TempDir() + "/signing.key"
	first := startCfg(t, Config{NATSURL: ns.URL(), SigningKey: key, Scorer: "robust-zscore"})
	model, mj, err := stock.Files(stock.Cloud)
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	if err := json.Unmarshal(mj, &man); err != nil {
		t.Fatal(err)
	}
	man["name"], man["version"] = "fc-site", 3
	mj, _ = json.Marshal(man)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := apiClient(t, ns.URL())
	if _, err := c.PushModel(ctx, model, api.ModelPushRequest{Name: "fc-site", Version: 3, Role: "cloud", Manifest: mj}); err != nil {
		t.Fatal(err)
	}
	// An unknown name, and an edge model in the store, are refused.
	em, emj, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PushModel(ctx, em, api.ModelPushRequest{Name: "ae-edge", Version: 1, Role: "edge", Manifest: emj}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"nope": "nor in the model store", "ae-edge@1": "the second stage runs cloud-float models"} {
		svc, err := Start(ctx, Config{NATSURL: ns.URL(), SigningKey: key, Scorer: name, HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(), Logger: quietLogger()})
		if err == nil {
			svc.Stop()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("second stage %s: err = %v", name, err)
		}
	}
	first.Stop() // the second replica decides alone
	second := startCfg(t, Config{NATSURL: ns.URL(), SigningKey: key, Scorer: "fc-site"})
	spike := sensorWindow(96, 5)
	spike[95] -= 25
	got := publishWindows(t, second.NATSURL(), "gw-s", []wire.Kind{wire.KindUncertain, wire.KindUncertain}, [][]float64{spike, sensorWindow(96, 6)})
	if v := got[1]; v.Model != "fc-site@3" || v.Decision != wire.Confirmed || v.Reason != "" {
		t.Errorf("spike: %+v", v)
	}
	if v := got[2]; v.Model != "fc-site@3" || v.Decision != wire.Rejected || v.Reason != "" {
		t.Errorf("normal: %+v", v)
	}
}
