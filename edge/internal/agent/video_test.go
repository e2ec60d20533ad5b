package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/detect/zscore"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/models/train"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// videoProfile is the shipped firmware-configs/camera-gateway-model.yaml
// pointed at the test's mosquitto and NATS.
func videoProfile(t *testing.T, natsURL, mqttURL string) profile.Profile {
	t.Helper()
	p, err := profile.Load("../../../firmware-configs/camera-gateway-model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("shipped profile: %v", err)
	}
	p.Agent.ID = "cam-gw-test"
	p.Agent.Heartbeat = 200 * time.Millisecond
	p.MQTT.Embedded, p.MQTT.URL = nil, mqttURL
	p.NATS.URL = natsURL
	p.DataDir = t.TempDir()
	p.SummaryInterval = time.Hour
	return p
}

// judgedLog records the judgements of the agents of a test (OnJudged).
type judgedLog struct {
	mu sync.Mutex
	js []Judged
}

func (l *judgedLog) add(j Judged) {
	l.mu.Lock()
	l.js = append(l.js, j)
	l.mu.Unlock()
}

// of returns the judgements of stream.
func (l *judgedLog) of(stream string) []Judged {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Judged
	for _, j := range l.js {
		if j.Stream == stream {
			out = append(out, j)
		}
	}
	return out
}

// runVideoAgent runs an agent on p recording its judgements in log; stop
// stops it (also at the test's end).
func runVideoAgent(t *testing.T, p profile.Profile, log *judgedLog) (a *Agent, stop func()) {
	t.Helper()
	ready := make(chan *Agent, 1)
	a, err := New(Options{Profile: p, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(a *Agent) { ready <- a }, OnJudged: log.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
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

// videoT0 is the time of the first generated frame.
var videoT0 = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

// publishFrames publishes frames[from:to] of a camera (25 fps from
// videoT0) as the video decoder's JSON, QoS 1.
func publishFrames(t *testing.T, c paho.Client, camera string, frames []train.Frame, from, to int) {
	t.Helper()
	topic := "cameras/" + camera + "/detections"
	var b strings.Builder
	toks := make([]paho.Token, 0, 256)
	for i := from; i < to; i++ {
		b.Reset()
		ts := videoT0.Add(time.Duration(i) * 40 * time.Millisecond)
		fmt.Fprintf(&b, `{"camera":%q,"ts":%q,"frame":%d,"objects":[`, camera, ts.Format(time.RFC3339Nano), i)
		for k, o := range frames[i].Boxes {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"class":%q,"confidence":%.4f,"bbox":[%.2f,%.2f,%.2f,%.2f]}`, o.Class, o.Confidence, o.Left, o.Top, o.Width, o.Height)
		}
		b.WriteString("]}")
		toks = append(toks, c.Publish(topic, 1, false, b.String()))
		if len(toks) == cap(toks) || i == to-1 {
			for _, tok := range toks {
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
			}
			toks = toks[:0]
		}
	}
}

// videoEvents returns the events in OUTPOST_EVENTS.
func videoEvents(t *testing.T, msgs []wire.Event) string {
	var b strings.Builder
	for _, e := range msgs {
		fmt.Fprintf(&b, "\n  %s %s %s score %.3f", e.Stream, e.TS.Format("15:04:05"), e.Kind, e.Score)
	}
	return b.String()
}

// TestAgentVideoModel runs the shipped camera-gateway-model.yaml (the stock
// ae-video model) through a real mosquitto and NATS on a generated street
// scene (models/train.SynthVideo, 25 fps, one JSON message per frame):
// the 200 s before the crowd raise no anomaly event; the state reports
// ae-video@1 for the video rule; after a restart the camera's scorer
// resumes from the checkpoint (the first bucket after the restart is
// scored, where a fresh one needs 67 first); a crowd of 40 walking in at 240 s
// raises an anomaly event on cameras/cam-1/ae-video naming ae-video@1,
// whose value is the bucket's score and whose window holds the scores of
// the last 30 buckets. The frame-rate stream keeps its own z-score rule.
func TestAgentVideoModel(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := videoProfile(t, srv.URL(), mq.URL())
	var log judgedLog
	a, stop := runVideoAgent(t, p, &log)
	m := a.runners["ae-video"].Manifest()
	if got := a.State().Models["cameras/#"]; got != "ae-video@1" {
		t.Fatalf("state models %v", a.State().Models)
	}
	if got := a.State().Models["cameras/+/frames"]; got != zscore.Model {
		t.Fatalf("state models %v", a.State().Models)
	}

	// Seed 13: the offline scorer (modelscore) raises no event of any level
	// in its 200 normal s and an anomaly during the crowd (peak 2.15).
	crowd := train.Anomaly{Kind: train.AnomalyCrowd, At: 240, Duration: 10, Size: 40}
	frames := train.SynthVideo(train.Scene{Seed: 13, Anomaly: &crowd}, 300)
	const score = "cameras/cam-1/ae-video"
	pub := publisher(t, mq.URL(), "", "")
	publishFrames(t, pub, "cam-1", frames, 0, 200*25)
	// Bucket 199 completes with the next frame; 198 is the last to judge.
	waitFor(t, "bucket 198's score", func() bool {
		js := log.of(score)
		return len(js) > 0 && !js[len(js)-1].TS.Before(videoT0.Add(198*time.Second))
	})
	first := log.of(score)
	// The first score is the bucket after the 7 that fill the window and
	// the 60 of the residual scale's warm-up.
	if n, want := len(first), 199-(m.Window-1)-m.Warmup; n != want {
		t.Errorf("%d buckets scored before the restart, want %d", n, want)
	}
	for _, j := range first {
		if j.Model != "ae-video@1" || !j.Warm {
			t.Fatalf("judgement %+v", j)
		}
	}
	if fr := log.of("cameras/cam-1/frames"); len(fr) < 190 || fr[0].Model != zscore.Model {
		t.Fatalf("frames stream: %d judged (%+v)", len(fr), fr)
	}
	if n := len(log.of("cameras/cam-1/count_person")); n != 0 {
		t.Fatalf("a feature stream was judged on its own %d times", n)
	}
	waitFor(t, "the outbox to drain", func() bool { return a.State().OutboxDepth == 0 })
	before := edgetest.Events(t, js)
	for _, ev := range before {
		if ev.Stream == score && ev.Kind == wire.KindAnomaly {
			t.Errorf("anomaly event before the crowd:%s", videoEvents(t, before))
		}
	}
	stop()

	// Restart on the same data directory: the camera's scorer comes back
	// from the checkpoint.
	a, _ = runVideoAgent(t, p, &log)
	publishFrames(t, pub, "cam-1", frames, 200*25, len(frames))
	waitFor(t, "bucket 298's score", func() bool {
		js := log.of(score)
		return len(js) > 0 && !js[len(js)-1].TS.Before(videoT0.Add(298*time.Second))
	})
	after := log.of(score)[len(first):]
	if len(after) == 0 || after[0].TS.After(videoT0.Add(201*time.Second)) {
		t.Fatalf("after the restart the first score is at %v, want bucket 200 or 201 (resumed, no warm-up)", after[0].TS.Sub(videoT0))
	}
	if want := 298 - int(after[0].TS.Sub(videoT0)/time.Second) + 1; len(after) != want {
		t.Errorf("%d buckets scored after the restart, want %d", len(after), want)
	}
	waitFor(t, "the crowd's event", func() bool { return a.State().Anomalies >= 1 && a.State().OutboxDepth == 0 })
	var all []wire.Event
	for _, msg := range edgetest.Messages(t, js, names.StreamEvents) {
		var ev wire.Event
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Fatal(err)
		}
		all = append(all, ev)
	}
	t.Logf("events:%s", videoEvents(t, all))
	var got *wire.Event
	for i, ev := range all[len(before):] {
		if ev.Stream == score && ev.Kind == wire.KindAnomaly && got == nil {
			got = &all[len(before)+i]
		}
	}
	at := videoT0.Add(240 * time.Second)
	if got == nil || got.TS.Before(at) || !got.TS.Before(at.Add(30*time.Second)) {
		t.Fatalf("no anomaly event on %s in the 30 s from the crowd at %v:%s", score, at, videoEvents(t, all))
	}
	if got.Model != "ae-video@1" || got.Agent != "cam-gw-test" || got.Value != got.Score || got.Score < m.High ||
		got.Low != m.Low || got.High != m.High || len(got.Window) != 30 || got.Window[29] != got.Value {
		t.Fatalf("event %+v", got)
	}
	// Features are the raw vectors of the model's window of buckets, ending
	// with the event's, as the decoder computes them from the frames.
	if len(got.Features) != m.Window*m.Features {
		t.Fatalf("event features: %d values, want %d buckets of %d", len(got.Features), m.Window, m.Features)
	}
	if !slices.Equal(m.FeatureNames, train.VideoFeatureNames) {
		t.Fatalf("manifest features %v", m.FeatureNames)
	}
	feats := train.VideoFeatures(frames, 25, 1920, 1080)
	missing := map[int]bool{}
	for _, i := range got.FeaturesMissing {
		missing[i] = true
	}
	end := int(got.TS.Sub(videoT0) / time.Second)
	for k := 0; k < m.Window; k++ {
		want := feats[end-m.Window+1+k]
		for f, w := range want {
			i := k*m.Features + f
			g := got.Features[i]
			if w != w {
				if !missing[i] || g != 0 {
					t.Fatalf("features[%d] (bucket %d, %s) = %g, missing %v; the bucket has none", i, end-m.Window+1+k, m.FeatureNames[f], g, missing[i])
				}
				continue
			}
			if missing[i] || math.Abs(g-w) > 1e-3*max(1, math.Abs(w)) {
				t.Fatalf("features[%d] (bucket %d, %s) = %g (missing %v), want %g", i, end-m.Window+1+k, m.FeatureNames[f], g, missing[i], w)
			}
		}
	}
	// The window is the scores judged, bucket by bucket.
	scores := map[time.Time]float64{}
	for _, j := range log.of(score) {
		scores[j.TS] = j.Value
	}
	for i, w := range got.Window {
		if s, ok := scores[got.TS.Add(time.Duration(i-29)*time.Second)]; !ok || s != w {
			t.Fatalf("window[%d] = %g, the score of that bucket %g (%v)", i, w, s, ok)
		}
	}
	if st := a.State(); st.Models["cameras/#"] != "ae-video@1" {
		t.Fatalf("state models %v", st.Models)
	}
}

// videoReadings are a camera's decoded readings of bucket i of feats, as
// the video decoder emits them (missing features omitted, frames first).
func videoReadings(prefix string, i int, v []float64) []decode.Reading {
	ts := videoT0.Add(time.Duration(i) * time.Second)
	rs := []decode.Reading{{Stream: prefix + "/frames", TS: ts, Value: 25}}
	for f, x := range v {
		if x == x {
			rs = append(rs, decode.Reading{Stream: prefix + "/" + train.VideoFeatureNames[f], TS: ts, Value: x})
		}
	}
	return rs
}

// TestVideoCheckpointAndSwap drives the video path in process (no broker):
// two cameras interleaved score exactly what modelscore's VectorScorer
// scores for each alone; a camera's score detector restored from its
// checkpoint scores the next buckets as the running one does; a swap of a
// single-value model onto the video rule, or of ae-video onto a rule of
// single-value streams, is refused naming the rule; a swap of another
// version of the video model starts the cameras afresh on it.
func TestVideoCheckpointAndSwap(t *testing.T) {
	p, err := profile.Load("../../../firmware-configs/camera-gateway-model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p.Agent.ID = "cam-gw-unit"
	p.DataDir = t.TempDir()
	p.Streams = append(p.Streams, profile.Stream{Match: "sensors/#", Window: 96, Scorer: profile.ScorerModel, Model: stock.Edge})
	a, err := New(Options{Profile: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m, model, err := modelscore.Load(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := modelscore.NewVectorRunner(m, model)
	if err != nil {
		t.Fatal(err)
	}
	cams := map[string][][]float64{}
	refs := map[string]*modelscore.VectorScorer{}
	for k, prefix := range []string{"cameras/cam-a", "cameras/cam-b"} {
		cams[prefix] = train.VideoSpec{}.SceneFeatures(train.Scene{Seed: uint64(21 + k)}, 150)
		refs[prefix] = modelscore.NewVector(ref)
	}
	step := func(i int) map[string]float64 {
		var rs []decode.Reading
		for _, prefix := range []string{"cameras/cam-a", "cameras/cam-b"} {
			rs = append(rs, videoReadings(prefix, i, cams[prefix][i])...)
		}
		judge, _ := a.vectorReadings(rs)
		got := map[string]float64{}
		for _, r := range judge {
			if strings.HasSuffix(r.Stream, "/frames") {
				continue
			}
			if !strings.HasSuffix(r.Stream, "/ae-video") || !r.TS.Equal(videoT0.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("bucket %d: reading %+v to judge", i, r)
			}
			got[strings.TrimSuffix(r.Stream, "/ae-video")] = r.Value
			a.detector(r.Stream).Offer(nil, r.TS, r.Value)
		}
		return got
	}
	for i := 0; i < 100; i++ {
		got := step(i)
		for prefix, vs := range refs {
			want, ok := vs.StepVector(cams[prefix][i])
			if g, gok := got[prefix]; gok != ok || g != want {
				t.Fatalf("bucket %d %s: agent %g %v, alone %g %v", i, prefix, g, gok, want, ok)
			}
		}
	}

	// Checkpoint: a detector restored from cam-a's state scores the next
	// buckets as the running one does.
	const stream = "cameras/cam-a/ae-video"
	b, err := a.detectors[stream].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.restoreDetector(stream, a.p.StreamFor(stream), b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Model() != "ae-video@1" || d.Config().Scorer != vectorScorerName {
		t.Fatalf("restored %s %q", d.Model(), d.Config().Scorer)
	}
	// The kept raw vectors (an event's Features) come back too.
	run, back := a.cellOf(a.detectors[stream]), a.cellOf(d)
	if len(run.ts) != m.Window || !slices.Equal(back.ts, run.ts) || !slices.EqualFunc(back.raw, run.raw, func(x, y float64) bool { return x == y || x != x && y != y }) {
		t.Fatalf("restored vectors %v %v, running %v %v", back.ts, back.raw, run.ts, run.raw)
	}
	// A state from before the vectors were kept (the VectorScorer's alone)
	// restores, with none.
	old := &vectorScore{Passthrough: modelscore.NewPassthrough(ref.Model()), cell: &camCell{vs: modelscore.NewVector(ref)}}
	if _, rest, err := old.RestoreState(run.vs.AppendState(nil), 0); err != nil || len(rest) != 0 || old.cell.raw != nil || old.cell.ts != nil {
		t.Fatalf("old camera state: %v, %d bytes left, vectors %v", err, len(rest), old.cell.raw)
	}
	twin := a.cellOf(d).vs
	for i := 100; i < 110; i++ {
		got := step(i)
		want, ok := twin.StepVector(cams["cameras/cam-a"][i])
		if !ok || got["cameras/cam-a"] != want {
			t.Fatalf("bucket %d: running %g, restored %g %v", i, got["cameras/cam-a"], want, ok)
		}
	}

	// Swaps.
	em, emodel, err := modelscore.Load(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	edge, err := modelscore.NewRunner(em, emodel)
	if err != nil {
		t.Fatal(err)
	}
	for key, r := range map[string]*modelscore.Runner{"cameras/#": edge, "*": edge, "sensors/#": ref} {
		err := a.SwapModel(key, r)
		if err == nil || !strings.Contains(err.Error(), "stream rule") {
			t.Errorf("swap %s onto %s: %v", r.Model(), key, err)
		}
	}
	if got := a.modelOf(stream, a.p.StreamFor(stream)); got != "ae-video@1" {
		t.Fatalf("a refused swap changed the model to %s", got)
	}
	m2 := *m
	m2.Version = 2
	v2, err := modelscore.NewVectorRunner(&m2, model)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SwapModel("cameras/#", v2); err != nil {
		t.Fatal(err)
	}
	if got := a.RunningModel("cameras/#"); got != "ae-video@2" {
		t.Fatalf("running model %s", got)
	}
	if got := a.detectors[stream].Model(); got != "ae-video@2" {
		t.Fatalf("camera detector runs %s", got)
	}
	// A checkpoint of ae-video@1 does not come back on ae-video@2: the
	// camera starts afresh.
	if d, err := a.restoreDetector(stream, a.p.StreamFor(stream), b); err == nil {
		t.Fatalf("an ae-video@1 checkpoint restored on ae-video@2 as %s", d.Model())
	}
	fresh := modelscore.NewVector(v2)
	for i := 110; i < 150; i++ {
		got := step(i)
		want, ok := fresh.StepVector(cams["cameras/cam-a"][i])
		if g, gok := got["cameras/cam-a"]; gok != ok || g != want {
			t.Fatalf("bucket %d after the swap: %g %v, a fresh scorer %g %v", i, g, gok, want, ok)
		}
	}
}

// videoPkg signs the stock ae-video model as ae-video@version, with its
// manifest.
func videoPkg(t *testing.T, e *ctlEnv, version int) []byte {
	t.Helper()
	model, mj, err := stock.Files(stock.Video)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(mj, &fields); err != nil {
		t.Fatal(err)
	}
	fields["version"] = version
	extra, _ := json.Marshal(fields)
	mf, err := modelpkg.NewManifest(modelpkg.Header{Name: stock.Video, Version: version, Role: modelpkg.RoleEdge}, extra, model)
	if err != nil {
		t.Fatal(err)
	}
	p, err := modelpkg.Sign(mf, model, e.priv)
	if err != nil {
		t.Fatal(err)
	}
	return p.Encode()
}

// TestControlVideoModel: through the desired state (control, a real
// nats-server), a signed ae-video@2 is swapped in for the video rule of
// camera-gateway-model.yaml and scores the camera from then on (after a
// fresh warm-up); ae-edge@2, a single-value model, is refused for that
// rule, the error naming the rule, and ae-video@2 keeps running.
func TestControlVideoModel(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := videoProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "cam-gw-ctl"
	var log judgedLog
	ctl := startCtlAgent(t, Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub), OnJudged: log.add})
	a := ctl.a()
	if err := a.WaitMQTT(context.Background()); err != nil {
		t.Fatal(err)
	}
	env.put(t, stock.Video, 2, videoPkg(t, env, 2))
	env.pushStock(t, 2)

	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Models: map[string]string{"cameras/#": "ae-video@2"}})
	// The state names the model as the swap is made, the counter counts it
	// just after.
	waitFor(t, "ae-video@2 swapped in", func() bool {
		return a.State().Models["cameras/#"] == "ae-video@2" && swapCount(t, a, "model", "ok", "") == 1
	})
	frames := train.SynthVideo(train.Scene{Seed: 3}, 80)
	publishFrames(t, publisher(t, mq.URL(), "", ""), "cam-1", frames, 0, len(frames))
	waitFor(t, "bucket 78's score", func() bool {
		js := log.of("cameras/cam-1/ae-video")
		return len(js) > 0 && !js[len(js)-1].TS.Before(videoT0.Add(78*time.Second))
	})
	for _, j := range log.of("cameras/cam-1/ae-video") {
		if j.Model != "ae-video@2" {
			t.Fatalf("judged by %s", j.Model)
		}
	}

	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 2, Models: map[string]string{"cameras/#": "ae-edge@2"}})
	waitFor(t, "ae-edge@2 refused", func() bool { return swapCount(t, a, "model", "failed", "stream") == 1 })
	if e := a.ControlError(); !strings.Contains(e, "stream rule cameras/# runs the video model ae-video@2") {
		t.Fatalf("control error %q", e)
	}
	if got := a.State().Models["cameras/#"]; got != "ae-video@2" {
		t.Fatalf("after the refusal the rule runs %s", got)
	}
}

// BenchmarkVideoBucket is the in-process cost of one camera's bucket on
// the video path, as handle runs it after decoding (no MQTT, no outbox):
// its 11 readings into the rule's assembler, the camera's vector scored by
// the stock ae-video (int8) on the shared runner, and the score judged by
// the camera's score detector; 16 cameras in turn. buckets/s is per core.
func BenchmarkVideoBucket(b *testing.B) {
	p, err := profile.Load("../../../firmware-configs/camera-gateway-model.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p.Agent.ID = "cam-gw-bench"
	a, err := New(Options{Profile: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	const cams = 16
	feats := train.VideoSpec{}.SceneFeatures(train.Scene{Seed: 4}, 600)
	msgs := make([][][]decode.Reading, cams)
	for c := range msgs {
		prefix := fmt.Sprintf("cameras/cam-%d", c)
		for i, v := range feats {
			msgs[c] = append(msgs[c], videoReadings(prefix, i, v))
		}
	}
	var judged []detect.Judgement
	step := func(n int) {
		c, i := n%cams, n/cams
		rs := msgs[c][i%len(feats)]
		if i >= len(feats) { // a distinct time per bucket: the features repeat
			shift := time.Duration(i/len(feats)*len(feats)) * time.Second
			for k := range rs {
				rs[k].TS = rs[k].TS.Add(shift)
			}
			defer func() {
				for k := range rs {
					rs[k].TS = rs[k].TS.Add(-shift)
				}
			}()
		}
		judge, _ := a.vectorReadings(rs)
		for _, r := range judge {
			if strings.HasSuffix(r.Stream, "/ae-video") {
				judged, _ = a.detector(r.Stream).Offer(judged[:0], r.TS, r.Value)
			}
		}
	}
	for n := 0; n < 100*cams; n++ { // past the window and warm-up
		step(n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		step(100*cams + n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "buckets/s")
}

// TestVideoMissing: the features a video model reads that the profile's
// video topics do not emit are named.
func TestVideoMissing(t *testing.T) {
	p, err := profile.Load("../../../firmware-configs/camera-gateway-model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{p: p}
	if m := a.videoMissing(train.VideoFeatureNames); len(m) != 0 {
		t.Fatalf("shipped profile misses %v", m)
	}
	a.p.MQTT.Topics[0].Video.Classes = []string{"person", "car"}
	if m := a.videoMissing(train.VideoFeatureNames); strings.Join(m, ",") != "count_bicycle,count_motorcycle,count_bus,count_truck" {
		t.Fatalf("missing %v", m)
	}
	a.p.MQTT.Topics[0].Decoder = "json"
	if m := a.videoMissing(train.VideoFeatureNames); len(m) != len(train.VideoFeatureNames) {
		t.Fatalf("missing %v without a video topic", m)
	}
}

// TestVideoEventFeatures: a camera cell keeps the raw vectors of the
// model's window of buckets, and an event's Features are those up to its
// bucket, missing values written as 0 and listed.
func TestVideoEventFeatures(t *testing.T) {
	var c camCell
	nan := math.NaN()
	for i := 0; i < 5; i++ {
		c.keep(videoT0.Add(time.Duration(i)*time.Second), []float64{float64(i), nan}, 3)
	}
	f, missing := c.features(videoT0.Add(4 * time.Second))
	if !slices.Equal(f, []float64{2, 0, 3, 0, 4, 0}) || !slices.Equal(missing, []int{1, 3, 5}) {
		t.Fatalf("features %v missing %v", f, missing)
	}
	// An event of an earlier bucket (judged late) ends with that bucket.
	if f, _ := c.features(videoT0.Add(3 * time.Second)); !slices.Equal(f, []float64{2, 0, 3, 0}) {
		t.Fatalf("features up to bucket 3: %v", f)
	}
	if f, m := c.features(videoT0); f != nil || m != nil {
		t.Fatalf("features before the kept buckets: %v %v", f, m)
	}
	// Another model's feature count starts afresh.
	c.keep(videoT0.Add(5*time.Second), []float64{7, 8, 9}, 3)
	if f, _ := c.features(videoT0.Add(5 * time.Second)); !slices.Equal(f, []float64{7, 8, 9}) {
		t.Fatalf("features after a change of model: %v", f)
	}
}
