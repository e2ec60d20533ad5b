package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/stock"
	tflwrite "github.com/outpost-iot/outpost/models/tflite/write"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// ctlEnv is a cloud as an agent's control sees it: the desired-state and
// config buckets and the model store on a real nats-server, and a signing
// key.
type ctlEnv struct {
	srv     *testenv.NATS
	js      jetstream.JetStream
	desired jetstream.KeyValue
	configs jetstream.KeyValue
	obj     jetstream.ObjectStore
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
}

func newCtlEnv(t *testing.T) *ctlEnv {
	t.Helper()
	e := &ctlEnv{srv: testenv.StartNATS(t)}
	edgetest.CreateStreams(t, e.srv.URL())
	nc, err := nats.Connect(e.srv.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.desired, err = e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketDesired, History: 5}); err != nil {
		t.Fatal(err)
	}
	if e.configs, err = e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketConfigs}); err != nil {
		t.Fatal(err)
	}
	if e.obj, err = e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: names.ObjectModels}); err != nil {
		t.Fatal(err)
	}
	if e.pub, e.priv, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	return e
}

// pkg signs model as name@version with the stock ae-edge manifest (its
// model description) and returns the encoded package.
func (e *ctlEnv) pkg(t *testing.T, priv ed25519.PrivateKey, name string, version int, model []byte) *modelpkg.Package {
	t.Helper()
	_, mj, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(mj, &fields); err != nil {
		t.Fatal(err)
	}
	fields["name"], fields["version"], fields["sha256"] = name, version, modelpkg.SumHex(model)
	extra, _ := json.Marshal(fields)
	manifest, err := modelpkg.NewManifest(modelpkg.Header{Name: name, Version: version, Role: modelpkg.RoleEdge}, extra, model)
	if err != nil {
		t.Fatal(err)
	}
	p, err := modelpkg.Sign(manifest, model, priv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *ctlEnv) put(t *testing.T, name string, version int, blob []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.obj.PutBytes(ctx, names.ModelObject(name, version), blob); err != nil {
		t.Fatal(err)
	}
}

// pushStock stores the stock ae-edge model signed as ae-edge@version.
func (e *ctlEnv) pushStock(t *testing.T, version int) {
	t.Helper()
	model, _, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, stock.Edge, version, e.pkg(t, e.priv, stock.Edge, version, model).Encode())
}

func (e *ctlEnv) setDesired(t *testing.T, agent string, d wire.Desired) {
	t.Helper()
	b, _ := json.Marshal(d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.desired.Put(ctx, agent, b); err != nil {
		t.Fatal(err)
	}
}

// ctlAgent runs an agent (restarted in process on config changes) until
// stop; cur is the running pipeline's Agent.
type ctlAgent struct {
	cur  atomic.Pointer[Agent]
	stop func()
}

func (c *ctlAgent) a() *Agent { return c.cur.Load() }

func startCtlAgent(t *testing.T, opts Options) *ctlAgent {
	t.Helper()
	c := &ctlAgent{}
	ready := make(chan struct{}, 1)
	opts.Version = "test"
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts.Ready = func(a *Agent) {
		c.cur.Store(a)
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	c.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(c.stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}
	return c
}

// swapCount is the agent's outpost_edge_model_swaps_total for the labels;
// reason "" with result "failed" sums every reason.
func swapCount(t *testing.T, a *Agent, kind, result, reason string) float64 {
	t.Helper()
	if result == "ok" || reason != "" {
		return testutil.ToFloat64(a.swaps.WithLabelValues(kind, result, reason))
	}
	mfs, err := a.met.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "outpost_edge_model_swaps_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["result"] == result {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestHotSwapUnderLoad: a sustained stream of readings through mosquitto
// into an agent scoring with the model, while the model is swapped every
// 100 ms through the desired state (alternating two signed packages of the
// stock model, versions 2 and 3). Every reading sent is judged exactly
// once, each by one model version, both versions judged readings, and
// after the model's first warm-up every reading is scored (a swapped-in
// model is rebuilt from the stream's window, no second warm-up).
func TestHotSwapUnderLoad(t *testing.T) {
	env := newCtlEnv(t)
	env.pushStock(t, 2)
	env.pushStock(t, 3)
	mq := testenv.StartMosquitto(t, "max_queued_messages 1000000")
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-swap"

	type key struct {
		stream string
		ts     int64
	}
	var (
		mu       sync.Mutex
		judged   = map[key]int{}
		byModel  = map[string]int{}
		perIdx   = map[string]int{} // judgements per stream so far
		coldLate []string           // readings past the warm-up judged cold
		switches int                // consecutive judgements of a stream by different models
		lastM    = map[string]string{}
	)
	warm := 32 - 1 + 64 // the stock model's window - 1 + warm-up
	ctl := startCtlAgent(t, Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub), Logger: testLogger(t), OnJudged: func(j Judged) {
		mu.Lock()
		defer mu.Unlock()
		judged[key{j.Stream, j.TS.UnixNano()}]++
		byModel[j.Model]++
		i := perIdx[j.Stream]
		perIdx[j.Stream] = i + 1
		if i >= warm && !j.Warm && len(coldLate) < 10 {
			coldLate = append(coldLate, fmt.Sprintf("%s #%d (%s)", j.Stream, i, j.Model))
		}
		if m, ok := lastM[j.Stream]; ok && m != j.Model {
			switches++
		}
		lastM[j.Stream] = j.Model
	}})
	a := ctl.a()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}

	const streams, perStream = 4, 3000
	pub := publisher(t, mq.URL(), "", "")
	stopSwaps := make(chan struct{})
	swapsDone := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSwaps:
				swapsDone <- n
				return
			case <-tick.C:
				n++
				env.setDesired(t, p.Agent.ID, wire.Desired{Revision: int64(n), Models: map[string]string{"*": fmt.Sprintf("ae-edge@%d", 2+n%2)}})
			}
		}
	}()
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var toks []interface{ WaitTimeout(time.Duration) bool }
	start := time.Now()
	for i := 0; i < perStream; i++ {
		for s := 0; s < streams; s++ {
			v := 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + 0.05*math.Sin(float64(i*(s+3)))
			payload := fmt.Sprintf(`{"ts":%d,"value":%.4f}`, t0.Add(time.Duration(i)*time.Second).UnixMilli(), v)
			toks = append(toks, pub.Publish(fmt.Sprintf("sensors/dev-%d/temp", s), 1, false, payload))
		}
		if i%50 == 49 { // about 4,000 readings/s, for a few seconds of swaps
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30 * time.Second) {
			t.Fatal("publish not acknowledged")
		}
	}
	sent := uint64(streams * perStream)
	waitFor(t, "every reading judged", func() bool { return a.State().Readings >= sent })
	close(stopSwaps)
	swaps := <-swapsDone
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	if r := a.State().Readings; r != sent {
		t.Fatalf("%d readings counted, %d sent", r, sent)
	}
	if len(judged) != int(sent) {
		t.Fatalf("%d distinct readings judged, %d sent", len(judged), sent)
	}
	for k, n := range judged {
		if n != 1 {
			t.Fatalf("reading %s at %d judged %d times", k.stream, k.ts, n)
		}
	}
	total := 0
	for m, n := range byModel {
		switch m {
		case "ae-edge@1", "ae-edge@2", "ae-edge@3":
		default:
			t.Fatalf("%d readings judged by %q", n, m)
		}
		total += n
	}
	if total != int(sent) {
		t.Fatalf("judgements by model add up to %d, want %d", total, sent)
	}
	okSwaps := swapCount(t, a, "model", "ok", "")
	t.Logf("%d readings in %v, %d desired-state changes, %v swaps done, %d model changes seen by streams; by model %v",
		sent, elapsed.Round(time.Millisecond), swaps, okSwaps, switches, byModel)
	if byModel["ae-edge@2"] == 0 || byModel["ae-edge@3"] == 0 || okSwaps < 4 || switches < 4*streams {
		t.Fatalf("the swaps did not interleave with the stream: by model %v, %v swaps, %d model changes", byModel, okSwaps, switches)
	}
	if len(coldLate) > 0 {
		t.Fatalf("readings past the warm-up judged without a score after a swap: %v", coldLate)
	}
	if f := swapCount(t, a, "model", "failed", ""); f != 0 {
		t.Fatalf("%v swaps failed: %s", f, a.State().LastError)
	}
}

// nanModel is a model of the stock model's shape (float32 [1,32] in and
// out) whose weights are NaN: it loads and runs, and every output is NaN.
func nanModel(t *testing.T) []byte {
	t.Helper()
	b := tflwrite.New("nan autoencoder")
	x := b.Input("x", tflwrite.Float32, []int{1, 32}, nil)
	w := make([]float32, 32*32)
	for i := range w {
		w[i] = float32(math.NaN())
	}
	wt := b.ConstFloat32("w", []int{32, 32}, w)
	bias := b.ConstFloat32("b", []int{32}, make([]float32, 32))
	y := b.Tensor("y", tflwrite.Float32, []int{1, 32}, nil)
	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x, wt, bias}, []tflwrite.TensorID{y}, &tflwrite.FullyConnectedOptions{})
	b.Outputs(y)
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestControlRefusesBadModels: every kind of bad update is refused, the
// old model keeps running and LastError says which model and why: a bad
// signature, a model whose sha256 does not match, a package signed by
// another key, a model that fails the test run, one whose shape does not
// fit its manifest, and a missing object. Then a good one runs and is
// reported; after a restart with NATS down and the object deleted, the
// agent still runs it, from the package it kept.
func TestControlRefusesBadModels(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-ctl"
	opts := Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub)}
	ctl := startCtlAgent(t, opts)
	a := ctl.a()

	stockModel, _, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	cloudModel, _, err := stock.Files(stock.Cloud)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	badSig := env.pkg(t, env.priv, "ae-edge", 10, stockModel)
	badSig.Signature[3] ^= 1
	badHash := env.pkg(t, env.priv, "ae-edge", 11, stockModel)
	badHash.Model = append([]byte(nil), badHash.Model...)
	badHash.Model[len(badHash.Model)/2] ^= 1
	env.put(t, "ae-edge", 10, badSig.Encode())
	env.put(t, "ae-edge", 11, badHash.Encode())
	env.put(t, "ae-edge", 12, env.pkg(t, otherKey, "ae-edge", 12, stockModel).Encode())
	env.put(t, "ae-edge", 13, env.pkg(t, env.priv, "ae-edge", 13, nanModel(t)).Encode())
	env.put(t, "ae-edge", 14, env.pkg(t, env.priv, "ae-edge", 14, cloudModel).Encode())
	env.put(t, "ae-edge", 15, env.pkg(t, env.priv, "ae-edge", 15, []byte("not a tflite file at all")).Encode())

	rev := int64(0)
	for _, c := range []struct {
		model, reason, says string
	}{
		{"ae-edge@10", "signature", "signature does not verify"},
		{"ae-edge@11", "hash", "hash mismatch"},
		{"ae-edge@12", "wrong_key", "signed by another key"},
		{"ae-edge@13", "test_invoke", "scored NaN"},
		{"ae-edge@14", "load", "the manifest wants"},
		{"ae-edge@15", "load", ""},
		{"ae-edge@16", "fetch", "not found"},
	} {
		rev++
		before := swapCount(t, a, "model", "failed", c.reason)
		env.setDesired(t, p.Agent.ID, wire.Desired{Revision: rev, Models: map[string]string{"*": c.model}})
		waitFor(t, c.model+" refused", func() bool { return swapCount(t, a, "model", "failed", c.reason) > before })
		st := a.State()
		if !strings.Contains(st.LastError, "model "+c.model) || !strings.Contains(st.LastError, "("+c.reason+")") ||
			!strings.Contains(st.LastError, c.says) {
			t.Fatalf("%s: LastError %q, want it to name the model, %q and %q", c.model, st.LastError, c.reason, c.says)
		}
		if st.Models["sensors/#"] != "ae-edge@1" || st.Models["*"] != "" {
			t.Fatalf("%s: models %v after a refused update", c.model, st.Models)
		}
		t.Logf("%s refused: %s", c.model, st.LastError)
	}

	// Readings are scored by the old model all along.
	pub := publisher(t, mq.URL(), "", "")
	publishSeries(t, pub, "sensors/press-1/temp", 120, 200)
	waitFor(t, "readings", func() bool { return a.State().Readings == 120 })

	// A good one.
	env.pushStock(t, 2)
	rev++
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: rev, Models: map[string]string{"*": "ae-edge@2"}})
	waitFor(t, "ae-edge@2 running", func() bool {
		st := a.State()
		return st.Models["*"] == "ae-edge@2" && st.Models["sensors/#"] == "ae-edge@2" && st.LastError == ""
	})
	// The state on NATS says so too.
	waitFor(t, "the state message", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := env.js.Stream(ctx, names.StreamState)
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(ctx, names.StateSubject(p.Agent.ID))
		if err != nil {
			return false
		}
		var st wire.State
		return json.Unmarshal(m.Data, &st) == nil && st.Models["*"] == "ae-edge@2" && st.LastError == ""
	})
	if _, err := os.Stat(filepath.Join(p.DataDir, "control", "models", "ae-edge@2.pkg")); err != nil {
		t.Fatalf("package not kept: %v", err)
	}
	ctl.stop()

	// Restart without the cloud: the object is gone and NATS is down.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.obj.Delete(ctx, names.ModelObject("ae-edge", 2)); err != nil {
		t.Fatal(err)
	}
	env.srv.Stop()
	ctl = startCtlAgent(t, opts)
	a = ctl.a()
	// (LastError may be the uplink's: NATS is down.)
	if st := a.State(); st.Models["*"] != "ae-edge@2" || st.Models["sensors/#"] != "ae-edge@2" || strings.Contains(st.LastError, "model") {
		t.Fatalf("after a restart: models %v, last error %q", st.Models, st.LastError)
	}
	// And it judges with it.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	publishSeries(t, pub, "sensors/press-2/temp", 10, 100)
	waitFor(t, "readings after the restart", func() bool { return a.State().Readings == 10 })
	a.mu.Lock()
	d := a.detectors["sensors/press-2/temp"]
	ok := d != nil && d.Model() == "ae-edge@2"
	a.mu.Unlock()
	if !ok {
		t.Fatal("the restarted agent does not score with ae-edge@2")
	}
}

// TestControlNoTrustKey: without a trust key every model is refused, with
// a LastError that says so.
func TestControlNoTrustKey(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-nokey"
	p.NATS.TrustKey = ""
	env.pushStock(t, 2)
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Models: map[string]string{"*": "ae-edge@2"}})
	a := startCtlAgent(t, Options{Profile: p}).a()
	waitFor(t, "the refusal", func() bool { return swapCount(t, a, "model", "failed", "no_trust_key") == 1 })
	st := a.State()
	if !strings.Contains(st.LastError, "ae-edge@2") || !strings.Contains(st.LastError, "no trust key") || st.Models["sensors/#"] != "ae-edge@1" {
		t.Fatalf("state %+v", st)
	}
}

// pushedYAML is a profile the cloud sends: no agent id, NATS URL or data
// directory (the gateway's own are kept), z-score streams.
func pushedYAML(name string, rev int, mqttURL, window string) string {
	return fmt.Sprintf(`name: %s
revision: %d
agent:
  heartbeat: 200ms
mqtt:
  url: %s
  topics:
    - filter: sensors/+/+
streams:
  - match: sensors/#
    window: %s
    low: 4
    high: 6
summary_interval: 1h
`, name, rev, mqttURL, window)
}

// TestControlConfig: a config revision in the desired state is fetched,
// validated, applied (the pipeline restarts in process with it, keeping
// the agent id, data directory and connections) and reported in State;
// an invalid one is refused with a LastError naming it, and the agent
// keeps running the good one; a restart runs the applied one from disk.
// An empty config goes back to the installed profile.
func TestControlConfig(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-cfg"
	// /metrics on a fixed port (the command line's): every restarted
	// pipeline serves it again.
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p.Metrics.Listen = metricsAddr
	opts := Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub), Logger: testLogger(t),
		Overrides: Overrides{MetricsListen: metricsAddr}}
	ctl := startCtlAgent(t, opts)
	if st := ctl.a().State(); st.Profile != "generic-sensor-model" || st.Revision != 1 {
		t.Fatalf("installed profile %s revision %d", st.Profile, st.Revision)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(key, text string) {
		if _, err := env.configs.Put(ctx, key, []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	good := pushedYAML("plant-a", 2, mq.URL(), "50")
	if err := profile.Check([]byte(good)); err != nil {
		t.Fatalf("the pushed profile does not validate: %v", err)
	}
	put(names.ConfigKey("plant-a", 2), good)
	put(names.ConfigKey("plant-a", 3), pushedYAML("plant-a", 3, mq.URL(), "-5"))

	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Config: names.ConfigKey("plant-a", 2), ConfigRevision: 2})
	waitFor(t, "plant-a revision 2 running", func() bool {
		st := ctl.a().State()
		return st.Profile == "plant-a" && st.Revision == 2 && st.LastError == ""
	})
	a := ctl.a()
	if a.MetricsAddr() != metricsAddr {
		t.Fatalf("metrics on %q after the restart, want %s", a.MetricsAddr(), metricsAddr)
	}
	if a.p.Agent.ID != "gw-cfg" || a.p.DataDir != p.DataDir || a.p.NATS.URL != env.srv.URL() || a.p.MQTT.URL != mq.URL() ||
		a.p.StreamFor("sensors/x/y").Window != 50 {
		t.Fatalf("pushed profile runs as %+v", a.p)
	}
	// It takes readings.
	pub := publisher(t, mq.URL(), "", "")
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	publishSeries(t, pub, "sensors/press-1/temp", 20, 100)
	waitFor(t, "readings on the new profile", func() bool { return ctl.a().State().Readings == 20 })

	// An invalid revision is refused; revision 2 keeps running.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 2, Config: names.ConfigKey("plant-a", 3), ConfigRevision: 3})
	waitFor(t, "the refusal", func() bool { return strings.Contains(ctl.a().State().LastError, "config plant-a.3 refused") })
	if st := ctl.a().State(); st.Profile != "plant-a" || st.Revision != 2 || !strings.Contains(st.LastError, "window") {
		t.Fatalf("after the invalid config: %s revision %d, last error %q", st.Profile, st.Revision, st.LastError)
	}
	// A missing one too.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 3, Config: names.ConfigKey("plant-a", 4), ConfigRevision: 4})
	waitFor(t, "the refusal", func() bool { return strings.Contains(ctl.a().State().LastError, "config plant-a.4 refused (fetch)") })

	// A restart runs revision 2 from disk, without NATS.
	ctl.stop()
	env.srv.Stop()
	ctl = startCtlAgent(t, opts)
	if st := ctl.a().State(); st.Profile != "plant-a" || st.Revision != 2 {
		t.Fatalf("after a restart: %s revision %d", st.Profile, st.Revision)
	}
	env.srv.Restart()

	// No config: back to the installed profile.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 4})
	waitFor(t, "the installed profile", func() bool {
		st := ctl.a().State()
		return st.Profile == "generic-sensor-model" && st.Revision == 1
	})
	if _, err := os.Stat(filepath.Join(p.DataDir, "control", "profile.yaml")); !os.IsNotExist(err) {
		t.Fatalf("stored profile still there: %v", err)
	}

	// A profile that validates but does not start (its embedded broker's
	// port is taken): the agent goes back to the installed profile and
	// says why, and does not try it again.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := strings.Replace(pushedYAML("plant-a", 5, mq.URL(), "50"), "  url: "+mq.URL()+"\n",
		"  embedded:\n    listen: "+busy.Addr().String()+"\n", 1)
	if err := profile.Check([]byte(bad)); err != nil {
		t.Fatalf("revision 5 does not validate: %v\n%s", err, bad)
	}
	put(names.ConfigKey("plant-a", 5), bad)
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 5, Config: names.ConfigKey("plant-a", 5), ConfigRevision: 5})
	waitFor(t, "plant-a.5 refused after it failed to start", func() bool {
		st := ctl.a().State()
		return st.Profile == "generic-sensor-model" && st.Revision == 1 &&
			strings.Contains(st.LastError, "config plant-a.5 refused") && strings.Contains(st.LastError, "did not run")
	})
	if st := ctl.a().State(); !strings.Contains(st.LastError, busy.Addr().String()) {
		t.Fatalf("LastError %q does not say what failed", st.LastError)
	}
}

// testLogger logs to the test's output when -v is given.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestControlWatchOutageAndDelete: the desired state written while NATS
// was down and back is applied (the watch resumes after the outage, and a
// resync catches what a watcher may miss); deleting the agent's key goes
// back to the installed model.
func TestControlWatchOutageAndDelete(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-outage"
	env.pushStock(t, 2)
	env.pushStock(t, 3)
	// A desired state written before the agent starts is applied at start.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Models: map[string]string{"*": "ae-edge@3"}})
	a := startCtlAgent(t, Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub), Logger: testLogger(t)}).a()
	waitFor(t, "ae-edge@3", func() bool { return a.State().Models["*"] == "ae-edge@3" })

	env.srv.Stop()
	time.Sleep(300 * time.Millisecond)
	env.srv.Restart()
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 2, Models: map[string]string{"*": "ae-edge@2"}})
	waitFor(t, "ae-edge@2 after the outage", func() bool { return a.State().Models["*"] == "ae-edge@2" })

	// A stream pattern of the profile wins over "*"; a pattern no stream
	// of the profile has is refused.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 3, Models: map[string]string{"*": "ae-edge@2", "sensors/#": "ae-edge@3", "pumps/#": "ae-edge@3"}})
	waitFor(t, "ae-edge@3 for sensors/#", func() bool {
		st := a.State()
		return st.Models["*"] == "ae-edge@2" && st.Models["sensors/#"] == "ae-edge@3" &&
			strings.Contains(st.LastError, "model ae-edge@3 for pumps/# refused (stream)")
	})

	// The installed model named by the desired state (a rollout back to
	// the stock model) is reported under the key, with no package.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 4, Models: map[string]string{"*": "ae-edge@1", "sensors/#": "ae-edge@3"}})
	waitFor(t, "ae-edge@1 named for *", func() bool {
		st := a.State()
		return st.Models["*"] == "ae-edge@1" && st.Models["sensors/#"] == "ae-edge@3" && !strings.Contains(st.LastError, "model")
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.desired.Delete(ctx, p.Agent.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the installed model, and the package of ae-edge@2 removed", func() bool {
		st := a.State()
		_, err := os.Stat(filepath.Join(p.DataDir, "control", "models", "ae-edge@2.pkg"))
		return st.Models["*"] == "" && st.Models["sensors/#"] == "ae-edge@1" && os.IsNotExist(err) && !strings.Contains(st.LastError, "model")
	})
}

// TestRestoreCheckpointOfOtherModel: a stream checkpointed with one model
// and restarted with another (the agent stopped between a swap and the
// next checkpoint) keeps its window: the state is restored with the model
// it names and that model swapped for the new one, which scores the first
// reading after the restart.
func TestRestoreCheckpointOfOtherModel(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-cp"
	opts := Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub)}
	ctl := startCtlAgent(t, opts)
	a := ctl.a()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	pub := publisher(t, mq.URL(), "", "")
	const topic = "sensors/press-1/temp"
	publishSeries(t, pub, topic, 150, 1000)
	waitFor(t, "readings", func() bool { return a.State().Readings == 150 })
	ctl.stop() // checkpoints the stream, scored by ae-edge@1

	// What control keeps after swapping in ae-edge@2, had the agent
	// stopped before its next checkpoint.
	model, _, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(p.DataDir, "control")
	if err := os.WriteFile(filepath.Join(dir, "models", "ae-edge@2.pkg"), env.pkg(t, env.priv, "ae-edge", 2, model).Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"models":{"*":"ae-edge@2"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Models: map[string]string{"*": "ae-edge@2"}})
	var judged []Judged
	var mu sync.Mutex
	opts.OnJudged = func(j Judged) { mu.Lock(); judged = append(judged, j); mu.Unlock() }
	ctl = startCtlAgent(t, opts)
	a = ctl.a()
	a.mu.Lock()
	d := a.detectors[topic]
	ok := d != nil && d.Model() == "ae-edge@2" && d.Len() == 96
	a.mu.Unlock()
	if !ok {
		t.Fatal("the stream's window was not restored under ae-edge@2")
	}
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(150 * time.Second)
	if tok := pub.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%d,"value":20.1}`, ts.UnixMilli())); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, "the reading", func() bool { mu.Lock(); defer mu.Unlock(); return len(judged) == 1 })
	if j := judged[0]; j.Model != "ae-edge@2" || !j.Warm {
		t.Fatalf("first reading after the restart: %+v", j)
	}
}

// BenchmarkSwapModel is one model swap over 100 warm streams, as the
// detection goroutine pays it: each stream's new scorer is rebuilt from
// its window (the stock model: 65 invocations of 96 readings folded).
func BenchmarkSwapModel(b *testing.B) {
	p, err := profile.Load("../../../firmware-configs/generic-sensor-model.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p.Agent.ID = "gw-bench"
	p.DataDir = b.TempDir()
	a, err := New(Options{Profile: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	const streams = 100
	for s := 0; s < streams; s++ {
		d := a.detector(fmt.Sprintf("sensors/dev-%d/temp", s))
		for i := 0; i < 200; i++ {
			d.Judge(t0.Add(time.Duration(i)*time.Second), 20+2*math.Sin(float64(i)/8))
		}
	}
	m, model, err := stock.Load(stock.Edge)
	if err != nil {
		b.Fatal(err)
	}
	var runners [2]*modelscore.Runner
	for i := range runners {
		mm := *m
		mm.Version = 2 + i
		if runners[i], err = modelscore.NewRunner(&mm, model); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.SwapModel("*", runners[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/streams, "µs/stream")
}

// TestTrustKeyPrecedence: Options.TrustKey (--trust-key) wins over the
// profile's nats.trust_key; a bad key stops New.
func TestTrustKeyPrecedence(t *testing.T) {
	p := modelProfile(t, "nats://127.0.0.1:1", "tcp://127.0.0.1:1")
	profKey, _, _ := ed25519.GenerateKey(rand.Reader)
	flagKey, _, _ := ed25519.GenerateKey(rand.Reader)
	p.NATS.TrustKey = modelpkg.FormatPublicKey(profKey)
	a, err := New(Options{Profile: p})
	if err != nil || !a.trust.Equal(profKey) {
		t.Fatalf("profile key: %v", err)
	}
	a, err = New(Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(flagKey)})
	if err != nil || !a.trust.Equal(flagKey) {
		t.Fatalf("flag key: %v", err)
	}
	if _, err := New(Options{Profile: p, TrustKey: "ed25519:AAAA"}); err == nil || !strings.Contains(err.Error(), "--trust-key") {
		t.Fatalf("bad flag key: %v", err)
	}
}
