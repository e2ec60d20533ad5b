package learn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/learn"
	"github.com/outpost-iot/outpost/cloud/internal/rollout/simagent"
	"github.com/outpost-iot/outpost/cloud/internal/service"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

const (
	champion = "ae-edge@1"
	sensor   = "sensors/m1/vib"
)

type env struct {
	svc    *service.Service
	client *api.Client
	js     jetstream.JetStream
	agents []*simagent.Agent
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs outpost-cloud in-process with the learning loop in mode,
// stores the stock edge model as ae-edge@1 and starts n simulated gateways
// running it on every stream ("*").
func start(t *testing.T, mode string, n int) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := service.Start(ctx, service.Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: quiet(),
		Learn: learn.Config{
			Mode: mode, Interval: time.Hour, // the schedule does not fire in the test: drift does
			Reference: 40, MinRecent: 64, MaxRecent: 256, Canary: "1",
		},
	})
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	t.Cleanup(svc.Stop)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := &env{svc: svc, client: api.NewClient(nc)}
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	model, mj, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PushModel(ctx, model, api.ModelPushRequest{Name: "ae-edge", Version: 1, Role: "edge", Manifest: mj}); err != nil {
		t.Fatal(err)
	}
	ki, err := e.client.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := modelpkg.ParsePublicKey(ki.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		a, err := simagent.Start(ctx, simagent.Config{ID: fmt.Sprintf("gw-%d", i), URL: svc.NATSURL(), PublicKey: pub,
			Initial: champion, Heartbeat: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
		e.agents = append(e.agents, a)
	}
	waitFor(t, 30*time.Second, "agents online", func() bool {
		online := 0
		for _, d := range svc.Registry().Devices() {
			if d.Online && d.Models["*"] == champion {
				online++
			}
		}
		return online == n
	})
	return e
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// windows returns n windows of 32 consecutive readings of a synthetic
// sensor: before the drift a slow sine (period 16) around 10 with noise
// 0.1; after it a fast sawtooth (period 5) around 25, three times the
// amplitude, with noise 0.3 (level, variance and shape all shift).
func windows(after bool, n int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out [][]float64
	t := 0
	for k := 0; k < n; k++ {
		w := make([]float64, 32)
		t += 32 + rng.IntN(50)
		for i := range w {
			x := float64(t + i)
			if after {
				w[i] = 25 + 3*(math.Mod(x, 5)/2.5-1) + 0.3*rng.NormFloat64()
			} else {
				w[i] = 10 + math.Sin(2*math.Pi*x/16) + 0.1*rng.NormFloat64()
			}
		}
		out = append(out, w)
	}
	return out
}

// publish sends windows as the agents' samplers do, alternating agents;
// model is what the sampler says judged them ("": it does not say).
func (e *env) publish(t *testing.T, ws [][]float64, model string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC()
	for i, w := range ws {
		agent := fmt.Sprintf("gw-%d", i%len(e.agents))
		b, err := json.Marshal(wire.Sample{Agent: agent, Stream: sensor, TS: now, Window: w, Offered: 100, Sent: now, Model: model})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, names.SampleSubject(agent), b); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) history(t *testing.T, name string) []api.ModelDecision {
	t.Helper()
	ds, err := e.client.ModelHistory(context.Background(), api.ModelHistoryQuery{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func find(ds []api.ModelDecision, kind string) *api.ModelDecision {
	for i := range ds {
		if ds[i].Kind == kind {
			return &ds[i]
		}
	}
	return nil
}

// TestLearningLoop: a stream drifts (level, variance and shape); the
// learner detects it on the uploaded samples, trains a challenger, finds
// it better, signs and stores it as ae-edge@2 and rolls it out; the
// rollout succeeds and every agent reports running ae-edge@2.
func TestLearningLoop(t *testing.T) {
	e := start(t, learn.ModeAuto, 2)
	e.publish(t, windows(false, 40, 1), "") // the reference
	e.publish(t, windows(true, 100, 2), "") // the drift
	var promoted *api.ModelDecision
	waitFor(t, 45*time.Second, "a promoted challenger", func() bool {
		ds := e.history(t, "ae-edge")
		if d := find(ds, api.DecisionFailed); d != nil {
			t.Fatalf("learning failed: %+v", d)
		}
		if d := find(ds, api.DecisionRejected); d != nil {
			t.Fatalf("challenger rejected: %s", d.Reason)
		}
		promoted = find(ds, api.DecisionPromoted)
		return promoted != nil
	})
	ds := e.history(t, "ae-edge")
	drift := find(ds, api.DecisionDrift)
	if drift == nil || drift.Drift == nil || drift.Drift.Statistic <= drift.Drift.Critical || drift.Stream != sensor {
		t.Fatalf("no drift decision before the promotion: %+v", ds)
	}
	c := promoted.Compare
	if promoted.Challenger != "ae-edge@2" || promoted.Champion != champion || promoted.Rollout == "" || promoted.Key != "*" ||
		c == nil || !c.Better || c.Normal == 0 || !(c.ChallengerMeanError < c.ChampionMeanError) {
		t.Fatalf("promotion %+v, comparison %+v", promoted, c)
	}
	t.Logf("drift: %s", drift.Reason)
	t.Logf("promoted: %s", promoted.Reason)

	// The challenger is signed and stored with its manifest.
	d, err := e.client.ShowModel(context.Background(), api.ModelRef{Name: "ae-edge", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(d.Manifest)
	if err != nil || !d.SignatureOK || d.Role != modelpkg.RoleEdge || m.Window != 32 || m.Kind != manifest.KindAutoencoder {
		t.Fatalf("stored challenger: %+v, manifest %v", d, err)
	}

	// The rollout completes and the agents run the new version.
	waitFor(t, 45*time.Second, "rollout "+promoted.Rollout+" succeeded", func() bool {
		r, err := e.client.RolloutStatus(context.Background(), promoted.Rollout)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == api.RolloutRolledBack || r.State == api.RolloutRollingBack {
			t.Fatalf("rollout rolled back: %s", r.Reason)
		}
		return r.State == api.RolloutSucceeded
	})
	for _, a := range e.agents {
		if a.Model() != "ae-edge@2" || a.LastError() != "" {
			t.Fatalf("agent runs %s (error %q), want ae-edge@2", a.Model(), a.LastError())
		}
	}
	for _, dev := range e.svc.Registry().Devices() {
		if dev.Models["*"] != "ae-edge@2" {
			t.Fatalf("registry: %s reports %v", dev.ID, dev.Models)
		}
	}

	// The dashboard's JSON lists the decisions.
	resp, err := http.Get("http://" + e.svc.HTTPAddr() + "/api/v1/learn")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"promoted"`) || !strings.Contains(string(body), promoted.Rollout) {
		t.Fatalf("/api/v1/learn: %d %s", resp.StatusCode, body)
	}
}

// TestApprove: with --learn approve a better challenger is stored but waits;
// `fleet models approve` (models.approve) starts its rollout.
func TestApprove(t *testing.T) {
	e := start(t, learn.ModeApprove, 1)
	e.publish(t, windows(false, 40, 3), champion)
	e.publish(t, windows(true, 100, 4), champion)
	var waiting *api.ModelDecision
	waitFor(t, 45*time.Second, "a challenger awaiting approval", func() bool {
		ds := e.history(t, "")
		if d := find(ds, api.DecisionFailed); d != nil {
			t.Fatalf("learning failed: %+v", d)
		}
		waiting = find(ds, api.DecisionAwaitingApproval)
		return waiting != nil
	})
	if waiting.Rollout != "" || e.agents[0].Model() != champion {
		t.Fatalf("a challenger awaiting approval was rolled out: %+v", waiting)
	}
	ref, _ := api.ParseModelRef(waiting.Challenger)
	if _, err := e.client.ApproveModel(context.Background(), api.ModelRef{Name: "ae-edge", Version: 9}); err == nil {
		t.Fatal("approving a version that awaits nothing succeeded")
	}
	d, err := e.client.ApproveModel(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != api.DecisionPromoted || d.Rollout == "" || d.Approved.IsZero() {
		t.Fatalf("approve: %+v", d)
	}
	if _, err := e.client.ApproveModel(context.Background(), ref); err == nil {
		t.Fatal("a second approval succeeded")
	}
	waitFor(t, 45*time.Second, "the agent runs "+waiting.Challenger, func() bool { return e.agents[0].Model() == waiting.Challenger })
}

// TestLeaderLease: two learning loops (as on two replicas) on one NATS:
// one takes the leader lease and acts (drift, a challenger, a promotion
// and its rollout), the other records nothing; when the leader stops, the
// other takes over: it skips the samples the promoted challenger was
// judged on (read from the history), and on new drift judges a challenger
// of the new champion, with a version no one used.
func TestLeaderLease(t *testing.T) {
	e := start(t, learn.ModeOff, 2)
	ctx := context.Background()
	var mu sync.Mutex
	by := map[int][]api.ModelDecision{}
	var ls []*learn.Learner
	for i := range 2 {
		l, err := learn.Start(ctx, e.svc.JetStream(), learn.Config{
			Mode: learn.ModeAuto, Interval: time.Hour, Reference: 40, MinRecent: 64, MaxRecent: 256, Canary: "1",
			Models: e.svc.Models(), Rollouts: e.svc.Rollouts(), Devices: e.svc.Registry().Devices, Events: e.svc.Events(),
			Lease: time.Second, Logger: quiet(),
			OnDecision: func(d api.ModelDecision) {
				mu.Lock()
				defer mu.Unlock()
				by[i] = append(by[i], d)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Stop)
		ls = append(ls, l)
	}
	leader := func() int {
		n, at := 0, -1
		for i, l := range ls {
			if l.Leading() {
				n, at = n+1, i
			}
		}
		if n > 1 {
			t.Fatal("two learners lead at once")
		}
		return at
	}
	waitFor(t, 20*time.Second, "a leader", func() bool { return leader() >= 0 })
	first := leader()
	other := 1 - first
	decisions := func(i int) []api.ModelDecision {
		mu.Lock()
		defer mu.Unlock()
		return append([]api.ModelDecision(nil), by[i]...)
	}
	e.publish(t, windows(false, 40, 1), "")
	e.publish(t, windows(true, 100, 2), "")
	var promoted *api.ModelDecision
	waitFor(t, 45*time.Second, "a promotion by the leader", func() bool {
		if leader() != first {
			t.Fatalf("the lease moved from %d while it ran", first)
		}
		promoted = find(decisions(first), api.DecisionPromoted)
		return promoted != nil
	})
	if n := len(decisions(other)); n != 0 {
		t.Fatalf("the learner without the lease recorded %d decisions: %+v", n, decisions(other))
	}
	if promoted.Challenger != "ae-edge@2" {
		t.Fatalf("promoted %s", promoted.Challenger)
	}
	waitFor(t, 45*time.Second, "rollout "+promoted.Rollout+" succeeded", func() bool {
		r, err := e.client.RolloutStatus(ctx, promoted.Rollout)
		if err != nil {
			t.Fatal(err)
		}
		return r.State == api.RolloutSucceeded
	})

	// The leader stops; the other takes over. It does not read again the
	// samples its predecessor's challenger used, and acts on new ones.
	ls[first].Stop()
	if ls[first].Leading() {
		t.Fatal("a stopped learner leads")
	}
	before := len(decisions(first))
	waitFor(t, 20*time.Second, "the other learner to lead", func() bool { return leader() == other })
	time.Sleep(2 * time.Second) // time to read the old samples
	if n := len(decisions(other)); n != 0 {
		t.Fatalf("the new leader acted on samples its predecessor used: %+v", decisions(other))
	}
	e.publish(t, windows(true, 40, 5), "")   // the new champion's reference
	e.publish(t, windows(false, 100, 6), "") // back to the old regime
	var judged *api.ModelDecision
	waitFor(t, 45*time.Second, "a challenger judged by the new leader", func() bool {
		for _, d := range decisions(other) {
			if d.Challenger != "" && d.Kind != api.DecisionDrift {
				judged = &d
				return true
			}
		}
		return false
	})
	t.Logf("new leader: %s %s vs %s: %s", judged.Kind, judged.Challenger, judged.Champion, judged.Reason)
	if judged.Champion != "ae-edge@2" || judged.Challenger != "ae-edge@3" {
		t.Fatalf("the new leader's challenger: %s against %s, want ae-edge@3 against ae-edge@2", judged.Challenger, judged.Champion)
	}
	if n := len(decisions(first)); n != before {
		t.Fatalf("the stopped learner recorded %d more decisions", n-before)
	}
}
