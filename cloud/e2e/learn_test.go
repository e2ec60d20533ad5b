package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestLearningLoopRealAgents: the learning loop of issue 6 with the real
// programs. outpost-cloud runs with --learn auto; two real outpost-edge
// agents on the model profile (generic-sensor-model.yaml with a large
// sample budget and a 1 s sample interval) read the same sensor stream
// from a real mosquitto, score it with the stock ae-edge@1 int8 model and
// upload samples of the windows they judge normal. The stream drifts (a
// slow sine around 10 becomes a fast sawtooth around 25 with three times
// the amplitude and noise) once the cloud holds the reference samples.
// The cloud detects the drift on the samples, trains a challenger, finds
// it better, signs and stores it as ae-edge@2 and rolls it out (one
// canary, a short bake); both agents verify it with the cloud's key
// (--trust-key from `fleet keys public`), swap it in and report it in
// `fleet devices list -o json`, `fleet models history -o json` shows
// drift and promotion, and after the swap both agents keep judging the
// stream with ae-edge@2: they upload samples judged by it and report the
// anomaly of a spike, scored by it.
func TestLearningLoopRealAgents(t *testing.T) {
	learningLoop(t, "auto", []string{"gw-learn-1", "gw-learn-2"})
}

// TestLearningLoopApprove: the same with --learn approve and one agent:
// the better challenger is stored and waits (the agent keeps running
// ae-edge@1) until `fleet models approve ae-edge@2` starts its rollout.
func TestLearningLoopApprove(t *testing.T) {
	learningLoop(t, "approve", []string{"gw-approve"})
}

func learningLoop(t *testing.T, mode string, agents []string) {
	const topic = "sensors/m1/vib"
	mq := testenv.StartMosquitto(t)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cp := start(t, "outpost-cloud", filepath.Join(binDir, "outpost-cloud"), "serve",
		"--data", t.TempDir(), "--nats-listen", natsAddr, "--http", httpAddr,
		"--learn", mode, "--learn-interval", "1h", "--learn-canary", "1", "--learn-bake", "1s")
	waitListen(t, natsAddr, cp)
	waitListen(t, httpAddr, cp)
	natsURL := "nats://" + natsAddr

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fleet := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "fleet"), append([]string{"--nats", natsURL}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("fleet %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out
	}

	// The model profile, on the shared mosquitto, with a quick heartbeat
	// and a sample budget and interval that make the test quick.
	dir := t.TempDir()
	prof, err := os.ReadFile(filepath.Join(repoRoot, "firmware-configs", "generic-sensor-model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(prof), "  embedded:\n    listen: 127.0.0.1:1883\n", "  url: "+mq.URL()+"\n", 1)
	text = strings.Replace(text, "  heartbeat: 5s\n", "  heartbeat: 1s\n", 1)
	text += "uplink:\n  sample_budget: 1073741824\n  sample_interval: 1s\n  sample_windows: 16\n"
	if !strings.Contains(text, mq.URL()) || !strings.Contains(text, "heartbeat: 1s") {
		t.Fatalf("profile not rewritten:\n%s", text)
	}
	profFile := filepath.Join(dir, "learn.yaml")
	keyFile := filepath.Join(dir, "trust.key")
	if err := os.WriteFile(profFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, fleet("keys", "public"), 0o600); err != nil {
		t.Fatal(err)
	}
	var eps []*proc
	for _, a := range agents {
		eps = append(eps, start(t, a, filepath.Join(binDir, "outpost-edge"), "run", "--config", profFile,
			"--agent-id", a, "--nats", natsURL, "--data", filepath.Join(dir, a), "--trust-key", keyFile))
	}
	type device struct {
		ID        string            `json:"id"`
		Online    bool              `json:"online"`
		Models    map[string]string `json:"models"`
		LastError string            `json:"last_error"`
	}
	devices := func() map[string]device {
		var ds []device
		out := fleet("devices", "list", "-o", "json")
		if err := json.Unmarshal(out, &ds); err != nil {
			t.Fatalf("fleet devices list -o json: %v\n%s", err, out)
		}
		m := map[string]device{}
		for _, d := range ds {
			m[d.ID] = d
		}
		return m
	}
	running := func(model string) bool {
		ds := devices()
		for _, a := range agents {
			if d := ds[a]; !d.Online || d.Models["sensors/#"] != model {
				return false
			}
		}
		return true
	}
	waitFor(t, ctx, cp, "the agents online running ae-edge@1", func() bool { return running("ae-edge@1") })

	// What the agents upload, as the cloud receives it.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	samples := map[string]int{} // "agent model" -> samples
	sub, err := nc.Subscribe(names.SamplesAll, func(m *nats.Msg) {
		var s wire.Sample
		if json.Unmarshal(m.Data, &s) == nil && s.Stream == topic {
			mu.Lock()
			samples[s.Agent+" "+s.Model]++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	count := func(agent, model string) int {
		mu.Lock()
		defer mu.Unlock()
		return samples[agent+" "+model]
	}

	// The sensor: one reading every 2 ms (its timestamps one second
	// apart), a slow sine until the phase changes, then a fast sawtooth at
	// another level; spike asks for one reading 40 sawtooth amplitudes up.
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("e2e-learn-sensor"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	var drifted, spike atomic.Bool
	var spikeTS atomic.Value
	stop := make(chan struct{})
	pubDone := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(6, 1))
		base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				pubDone <- nil
				return
			case <-tick.C:
			}
			ts := base.Add(time.Duration(i) * time.Second)
			x := float64(i)
			v := 10 + math.Sin(2*math.Pi*x/16) + 0.1*rng.NormFloat64()
			if drifted.Load() {
				v = 25 + 3*(math.Mod(x, 5)/2.5-1) + 0.3*rng.NormFloat64()
				if spike.CompareAndSwap(true, false) {
					v = 25 + 120
					spikeTS.Store(ts)
				}
			}
			tok := pub.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%q,"value":%g}`, ts.Format(time.RFC3339Nano), v))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				pubDone <- fmt.Errorf("publish reading %d: %v", i, tok.Error())
				return
			}
		}
	}()
	defer func() {
		select {
		case <-pubDone:
		default:
			close(stop)
			if err := <-pubDone; err != nil {
				t.Error(err)
			}
		}
	}()
	pubAlive := func() {
		t.Helper()
		select {
		case err := <-pubDone:
			t.Fatalf("the sensor stopped: %v", err)
		default:
		}
	}

	// The reference: the learner keeps the first 64 windows of the stream;
	// once the cloud has them the stream drifts.
	total := func(model string) int {
		n := 0
		for _, a := range agents {
			n += count(a, model)
		}
		return n
	}
	waitFor(t, ctx, cp, "64 samples judged by ae-edge@1", func() bool {
		pubAlive()
		return total("ae-edge@1") >= 64
	})
	drifted.Store(true)
	t.Logf("drift starts after %d samples", total("ae-edge@1"))

	// The learner: drift, a challenger, a promotion with a rollout.
	type decision struct {
		Kind       string `json:"kind"`
		Stream     string `json:"stream"`
		Key        string `json:"key"`
		Champion   string `json:"champion"`
		Challenger string `json:"challenger"`
		Rollout    string `json:"rollout"`
		Reason     string `json:"reason"`
		Drift      *struct {
			Statistic float64 `json:"statistic"`
			Critical  float64 `json:"critical"`
		} `json:"drift"`
		Compare *struct {
			Better              bool    `json:"better"`
			ChampionMeanError   float64 `json:"champion_mean_error"`
			ChallengerMeanError float64 `json:"challenger_mean_error"`
		} `json:"compare"`
	}
	history := func() []decision {
		var ds []decision
		out := fleet("models", "history", "ae-edge", "-o", "json")
		if err := json.Unmarshal(out, &ds); err != nil {
			t.Fatalf("fleet models history -o json: %v\n%s", err, out)
		}
		return ds
	}
	find := func(ds []decision, kind string) *decision {
		for i := range ds {
			if ds[i].Kind == kind {
				return &ds[i]
			}
		}
		return nil
	}
	want := "promoted"
	if mode == "approve" {
		want = "awaiting_approval"
	}
	var promoted *decision
	waitFor(t, ctx, cp, "a "+want+" challenger in fleet models history", func() bool {
		pubAlive()
		ds := history()
		for _, k := range []string{"failed", "rejected"} {
			if d := find(ds, k); d != nil {
				t.Fatalf("learning loop: %s: %+v", k, *d)
			}
		}
		promoted = find(ds, want)
		return promoted != nil
	})
	if mode == "approve" {
		// Stored and signed, not rolled out: the agents still run
		// ae-edge@1 until the operator approves.
		if promoted.Challenger != "ae-edge@2" || promoted.Rollout != "" {
			t.Fatalf("awaiting approval: %+v", *promoted)
		}
		if !strings.Contains(string(fleet("models", "list")), "ae-edge") {
			t.Fatal("the challenger awaiting approval is not in fleet models list")
		}
		if !running("ae-edge@1") {
			t.Fatalf("a challenger awaiting approval reached the agents: %+v", devices())
		}
		out := fleet("models", "approve", "ae-edge@2")
		t.Logf("fleet models approve ae-edge@2: %s", strings.TrimSpace(string(out)))
		promoted = find(history(), "promoted")
		if promoted == nil {
			t.Fatalf("no promotion after the approval: %+v", history())
		}
	}
	ds := history()
	drift := find(ds, "drift")
	if drift == nil || drift.Stream != topic || drift.Drift == nil || !(drift.Drift.Statistic > drift.Drift.Critical) {
		t.Fatalf("no drift decision on %s before the promotion: %+v", topic, ds)
	}
	if c := promoted.Compare; promoted.Champion != "ae-edge@1" || promoted.Challenger != "ae-edge@2" || promoted.Stream != topic ||
		promoted.Rollout == "" || c == nil || !c.Better || !(c.ChallengerMeanError < c.ChampionMeanError) {
		t.Fatalf("promotion: %+v (compare %+v)", *promoted, promoted.Compare)
	}
	t.Logf("drift: %s", drift.Reason)
	t.Logf("promoted: %s", promoted.Reason)

	// The rollout succeeds and both agents run ae-edge@2.
	waitFor(t, ctx, cp, "rollout "+promoted.Rollout+" to succeed", func() bool {
		pubAlive()
		var r struct {
			State  string `json:"state"`
			Reason string `json:"reason"`
		}
		out := fleet("rollout", "status", promoted.Rollout, "-o", "json")
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("fleet rollout status -o json: %v\n%s", err, out)
		}
		if r.State == "rolling_back" || r.State == "rolled_back" || r.State == "aborted" {
			t.Fatalf("rollout %s: %s (%s)", promoted.Rollout, r.State, r.Reason)
		}
		return r.State == "succeeded"
	})
	for _, a := range agents {
		if d := devices()[a]; d.Models["sensors/#"] != "ae-edge@2" || d.LastError != "" {
			t.Fatalf("after the rollout %s runs %v (last error %q), want ae-edge@2", a, d.Models, d.LastError)
		}
	}
	for i, a := range agents {
		if _, err := os.Stat(filepath.Join(dir, a, "control", "models", "ae-edge@2.pkg")); err != nil {
			t.Fatalf("%s kept no verified package of ae-edge@2: %v\n%s", a, err, eps[i].output())
		}
	}

	// After the swap both agents keep judging the stream with ae-edge@2:
	// samples of windows it judged normal, and the anomaly of a spike.
	waitFor(t, ctx, cp, "samples judged by ae-edge@2 from every agent", func() bool {
		pubAlive()
		for _, a := range agents {
			if count(a, "ae-edge@2") == 0 {
				return false
			}
		}
		return true
	})
	spike.Store(true)
	waitFor(t, ctx, cp, "the spike's anomaly scored by ae-edge@2 from every agent", func() bool {
		pubAlive()
		at, ok := spikeTS.Load().(time.Time)
		if !ok {
			return false
		}
		for _, a := range agents {
			hit := false
			for _, e := range readEvents(t, ctx, js, a) {
				if e.Kind == wire.KindAnomaly && e.Stream == topic && e.Model == "ae-edge@2" && !e.TS.Before(at) && e.TS.Sub(at) < time.Minute {
					hit = true
				}
			}
			if !hit {
				return false
			}
		}
		return true
	})
}
