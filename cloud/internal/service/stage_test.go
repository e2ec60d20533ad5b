package service

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/alerts"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSecondStageSummariesAndRegistry: events are re-scored into verdicts
// the agent can read on its own subject, confirmed ones reach the webhook,
// events.list carries the verdicts, summaries feed the registry's bandwidth
// figures exactly once, and the registry shows the agent's reported state.
func TestSecondStageSummariesAndRegistry(t *testing.T) {
	var mu sync.Mutex
	var hooked []alerts.Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alerts.Alert
		_ = json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		hooked = append(hooked, a)
		mu.Unlock()
	}))
	defer hook.Close()
	// robust-zscore (chosen by its bare name) scores these 11-value windows.
	svc := startCfg(t, Config{Scorer: "robust-zscore", Webhook: alerts.Config{URL: hook.URL, Backoff: time.Millisecond}})
	url := svc.NATSURL()
	a := newAgent(t, url, "gw-v")
	ctx := context.Background()

	// The agent follows its own verdicts.
	cons, err := a.js.OrderedConsumer(ctx, names.StreamVerdicts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.VerdictSubject("gw-v")}})
	if err != nil {
		t.Fatal(err)
	}
	rest := []float64{20.1, 19.9, 20.0, 20.2, 19.8, 20.1, 20.0, 19.9, 20.05, 19.95}
	pub := func(seq uint64, kind wire.Kind, window []float64, msgID string) {
		ev := wire.Event{Agent: "gw-v", Seq: seq, Stream: "sensors/v/temp", TS: time.Now().UTC(), Kind: kind, Score: 0.8, Low: 0.5, High: 0.9,
			Model: "edge@1", Window: window, Created: time.Now().UTC()}
		if window != nil {
			ev.Value = window[len(window)-1]
		}
		b, _ := json.Marshal(ev)
		if _, err := a.js.Publish(ctx, names.EventSubject("gw-v"), b, jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}
	pub(1, wire.KindUncertain, append(append([]float64{}, rest...), 35), names.MsgID("gw-v", 1))  // spike: confirmed
	pub(2, wire.KindAnomaly, append(append([]float64{}, rest...), 20.05), names.MsgID("gw-v", 2)) // explained: rejected
	pub(3, wire.KindAnomaly, nil, names.MsgID("gw-v", 3))                                         // no window: edge kind
	pub(1, wire.KindUncertain, append(append([]float64{}, rest...), 35), "gw-v:1:again")          // duplicate: no verdict

	got := map[uint64]wire.Verdict{}
	for len(got) < 3 {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("verdict on %s: %v (have %d)", names.VerdictSubject("gw-v"), err, len(got))
		}
		var v wire.Verdict
		if err := json.Unmarshal(msg.Data(), &v); err != nil {
			t.Fatal(err)
		}
		if msg.Headers().Get(jetstream.MsgIDHeader) != names.MsgID("gw-v", v.Seq) {
			t.Errorf("verdict %d Msg-Id = %q", v.Seq, msg.Headers().Get(jetstream.MsgIDHeader))
		}
		got[v.Seq] = v
	}
	if v := got[1]; v.Decision != wire.Confirmed || v.Score < 10 || v.Model != "robust-zscore@1" || v.EdgeKind != wire.KindUncertain || v.LatencyMS < 0 || v.Decided.IsZero() || v.Reason != "" {
		t.Errorf("verdict 1 = %+v", v)
	}
	if v := got[2]; v.Decision != wire.Rejected || v.Score > 3 {
		t.Errorf("verdict 2 = %+v", v)
	}
	if v := got[3]; v.Decision != wire.Confirmed || !strings.Contains(v.Reason, "no window") || v.Score != 0.8 {
		t.Errorf("verdict 3 = %+v", v)
	}
	m := svc.metrics
	waitFor(t, "two alerts", func() bool { return testutil.ToFloat64(m.AlertsDelivered) == 2 })
	mu.Lock()
	if len(hooked) != 2 || hooked[0].Event == nil || hooked[0].Verdict.Decision != wire.Confirmed {
		t.Errorf("webhook got %+v", hooked)
	}
	mu.Unlock()
	// The verdict metrics are counted after the verdicts' publish acks, and
	// the webhook reads the verdict stream on its own, so the alerts may be
	// out before the counts are in: wait for them.
	waitFor(t, "two confirmed verdicts counted", func() bool {
		return testutil.ToFloat64(m.Verdicts.WithLabelValues("confirmed", "robust-zscore@1")) == 2
	})
	if n := testutil.CollectAndCount(m.VerdictLatency); n != 1 {
		t.Errorf("latency histogram series = %d", n)
	}

	// events.list joins the verdicts.
	c := apiClient(t, url)
	evs, err := c.Events(ctx, api.EventsQuery{Agent: "gw-v"})
	if err != nil || len(evs) != 3 {
		t.Fatalf("events.list = %+v, %v", evs, err)
	}
	if evs[0].Verdict != "confirmed" || evs[0].VerdictScore == nil || *evs[0].VerdictScore < 10 || evs[1].Verdict != "rejected" || evs[2].VerdictReason == "" {
		t.Errorf("events.list verdicts: %+v", evs)
	}
	vs, err := c.Verdicts(ctx, api.EventsQuery{Agent: "gw-v", Limit: 2})
	if err != nil || len(vs) != 2 || vs[1].Seq != 3 {
		t.Errorf("verdicts.list = %+v, %v", vs, err)
	}

	// State and summaries make the registry entry.
	st := wire.State{Agent: "gw-v", TS: time.Now().UTC(), Heartbeat: wire.Duration(5 * time.Second), Version: "v2", Profile: "press", Revision: 4,
		Group: "line-1", Models: map[string]string{"sensors/v/temp": "ae@3"}, OutboxDepth: 12, OutboxBytes: 3400, Drops: 2, DropsByKind: map[string]uint64{"summary": 2}, LastError: "uplink: timeout",
		Readings: 1000, DecodeErrors: 3}
	b, _ := json.Marshal(st)
	if _, err := a.js.Publish(ctx, names.StateSubject("gw-v"), b); err != nil {
		t.Fatal(err)
	}
	sum := func(seq uint64, raw, up uint64, msgID string) {
		s := wire.Summary{Agent: "gw-v", Seq: seq, From: time.Now().Add(-time.Minute).UTC(), To: time.Now().UTC(), RawBytes: raw, UplinkBytes: up,
			Streams: []wire.StreamSummary{{Stream: "sensors/v/temp", Count: 60, Anomalies: 1, Mean: 20}}}
		b, _ := json.Marshal(s)
		if _, err := a.js.Publish(ctx, names.SummarySubject("gw-v"), b, jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}
	sum(4, 6000, 300, names.MsgID("gw-v", 4))
	sum(5, 4000, 100, names.MsgID("gw-v", 5))
	sum(4, 6000, 300, "gw-v:4:again") // outside the window: dropped
	var d api.Device
	waitFor(t, "registry with summaries", func() bool {
		devs, err := c.Devices(ctx)
		if err != nil || len(devs) != 1 {
			return false
		}
		d = devs[0]
		return d.Summaries == 2 && d.Version == "v2" && testutil.ToFloat64(m.IngestMessages.WithLabelValues("summaries", "duplicate")) == 1
	})
	if d.RawBytes != 10000 || d.UplinkBytes != 400 || len(d.Streams) != 1 || d.Streams[0].Count != 120 || d.Streams[0].Anomalies != 2 ||
		d.Models["sensors/v/temp"] != "ae@3" || d.OutboxDepth != 12 || d.OutboxBytes != 3400 || d.Drops != 2 || d.LastError != "uplink: timeout" ||
		d.Group != "line-1" || d.Revision != 4 || d.DecodeErrors != 3 || d.DropsByKind["summary"] != 2 || !d.Online {
		t.Errorf("device = %+v", d)
	}
	if testutil.ToFloat64(m.EdgeRawBytes) != 10000 || testutil.ToFloat64(m.EdgeUplinkBytes) != 400 {
		t.Errorf("bandwidth metrics raw=%v uplink=%v", testutil.ToFloat64(m.EdgeRawBytes), testutil.ToFloat64(m.EdgeUplinkBytes))
	}

	// The dashboard shows verdicts and bandwidth; /api/v1/verdicts lists them.
	res, err := http.Get("http://" + svc.HTTPAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"Latest verdicts", "confirmed", "robust-zscore@1", "9.8 KiB", "ae@3", "uplink: timeout"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	res, err = http.Get("http://" + svc.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`outpost_cloud_ingest_messages_total{consumer="events",outcome="accepted"} 3`,
		`outpost_cloud_ingest_messages_total{consumer="events",outcome="duplicate"} 1`,
		`outpost_cloud_ingest_messages_total{consumer="verdicts",outcome="accepted"} 3`,
		`outpost_cloud_ingest_messages_total{consumer="summaries",outcome="accepted"} 2`,
		`outpost_cloud_verdicts_total{decision="rejected",model="robust-zscore@1"} 1`,
		`outpost_cloud_verdict_latency_seconds_count 3`,
		`outpost_cloud_edge_raw_bytes_total 10000`,
		`outpost_cloud_edge_uplink_bytes_total 400`,
		`outpost_cloud_alerts_delivered_total 2`,
		`outpost_cloud_alerts_dead_lettered_total 0`,
		`outpost_cloud_score_duration_seconds_count{model="robust-zscore@1"} 3`,
		`outpost_cloud_ingest_batch_duration_seconds_bucket{consumer="events",le="0.01"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	res, err = http.Get("http://" + svc.HTTPAddr() + "/api/v1/verdicts?limit=10")
	if err != nil {
		t.Fatal(err)
	}
	var hv []wire.Verdict
	if err := json.NewDecoder(res.Body).Decode(&hv); err != nil || len(hv) != 3 {
		t.Errorf("/api/v1/verdicts = %+v, %v", hv, err)
	}
	res.Body.Close()
}
