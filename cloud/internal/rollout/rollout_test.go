package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/rollout/simagent"
	"github.com/outpost-iot/outpost/cloud/internal/service"
	"github.com/outpost-iot/outpost/models/stock"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Models pushed by every test:
//
//	vib@1  hello_world_int8 (48-byte arena): what the agents run at start
//	vib@2  micro_speech (7,968-byte arena): the store accepts it, but the
//	       agents' runtime limit (AgentArena) refuses it at NewInterpreter
//	vib@3  the stock ae-edge model (288-byte arena): runs everywhere
const (
	modelOld  = "vib@1"
	modelBad  = "vib@2"
	modelGood = "vib@3"
	// AgentArena is the simulated gateways' runtime arena limit.
	AgentArena = 4096
)

type env struct {
	svc    *service.Service
	client *api.Client
	js     jetstream.JetStream
	pub    []byte
	agents []*simagent.Agent
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func corpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "models", "testdata", "tflite", name, "model.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startEnv starts outpost-cloud in-process and pushes the three models.
func startEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := service.Start(ctx, service.Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: quiet(),
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
	good, _, err := stock.Files(stock.Edge)
	if err != nil {
		t.Fatal(err)
	}
	for v, file := range [][]byte{corpus(t, "hello_world_int8"), corpus(t, "micro_speech"), good} {
		if _, err := e.client.PushModel(ctx, file, api.ModelPushRequest{Name: "vib", Version: v + 1, Role: "edge"}); err != nil {
			t.Fatalf("push vib@%d: %v", v+1, err)
		}
	}
	ki, err := e.client.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.pub, err = modelpkg.ParsePublicKey(ki.PublicKey); err != nil {
		t.Fatal(err)
	}
	return e
}

// startAgents starts n simulated gateways (ids prefix-00 ...) each with its
// own NATS connection and waits until the registry lists them online.
func (e *env) startAgents(t testing.TB, prefix, group string, n int, share func(string) float64) []*simagent.Agent {
	t.Helper()
	return e.start(t, prefix, n, func(i int) simagent.Config {
		return simagent.Config{Group: group, Heartbeat: 500 * time.Millisecond, AnomalyShare: share}
	})
}

// startAgentsWith starts n agents with heartbeat hb that call onSwap.
func (e *env) startAgentsWith(t testing.TB, prefix, group string, n int, hb time.Duration, onSwap func(agent, model string)) []*simagent.Agent {
	t.Helper()
	return e.start(t, prefix, n, func(i int) simagent.Config {
		return simagent.Config{Group: group, Heartbeat: hb, OnSwap: onSwap}
	})
}

func (e *env) start(t testing.TB, prefix string, n int, conf func(i int) simagent.Config) []*simagent.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make([]*simagent.Agent, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cfg := conf(i)
			cfg.ID, cfg.URL, cfg.PublicKey = fmt.Sprintf("%s-%04d", prefix, i), e.svc.NATSURL(), e.pub
			cfg.Initial, cfg.MaxArenaBytes = modelOld, AgentArena
			out[i], errs[i] = simagent.Start(ctx, cfg)
		}()
	}
	wg.Wait()
	for i, a := range out {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(a.Stop)
	}
	e.agents = append(e.agents, out...)
	waitFor(t, 30*time.Second, "agents online", func() bool {
		online := 0
		for _, d := range e.svc.Registry().Devices() {
			if d.Online && strings.HasPrefix(d.ID, prefix+"-") {
				online++
			}
		}
		return online == n
	})
	return out
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitState polls rollout id until its state is one of want.
func (e *env) waitState(t testing.TB, id string, d time.Duration, want ...string) api.Rollout {
	t.Helper()
	var r api.Rollout
	waitFor(t, d, "rollout "+id+" in "+strings.Join(want, "|"), func() bool {
		var err error
		r, err = e.client.RolloutStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if r.State == w {
				return true
			}
		}
		return false
	})
	return r
}

func modelsOf(agents []*simagent.Agent) map[string]int {
	out := map[string]int{}
	for _, a := range agents {
		out[a.Model()]++
	}
	return out
}

// desiredModel reads agent's desired model for "*" ("" when none).
func (e *env) desiredModel(t testing.TB, agent string) string {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), names.BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := kv.Get(context.Background(), agent)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var d wire.Desired
	if err := json.Unmarshal(ent.Value(), &d); err != nil {
		t.Fatal(err)
	}
	return d.Models["*"]
}

// TestRolloutFiftyAgents rolls out to 50 simulated gateways: first a model
// whose test-invoke fails on the canary (automatic rollback, all on the old
// version, the reason recorded), then a good one (all on the new version).
func TestRolloutFiftyAgents(t *testing.T) {
	e := startEnv(t)
	agents := e.startAgents(t, "gw", "plant-1", 50, nil)
	ctx := context.Background()

	bad, err := e.client.StartRollout(ctx, api.RolloutStartRequest{
		Model: modelBad, To: "all", Canary: "2", Bake: wire.Duration(time.Second), SwapTimeout: wire.Duration(20 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad.Canaries != 2 || len(bad.Agents) != 50 || bad.State != api.RolloutCanary {
		t.Fatalf("started: %+v", bad)
	}
	r := e.waitState(t, bad.ID, 30*time.Second, api.RolloutRolledBack, api.RolloutSucceeded, api.RolloutAborted)
	if r.State != api.RolloutRolledBack || !strings.Contains(r.Reason, "automatic rollback: canary gw-000") || !strings.Contains(r.Reason, "arena") {
		t.Fatalf("bad model: state %s, reason %q", r.State, r.Reason)
	}
	t.Logf("bad rollout: %s: %s; counts %v", r.State, r.Reason, r.Counts)
	for _, a := range r.Agents {
		switch {
		case a.Canary && a.Phase != api.PhaseRolledBack:
			t.Errorf("canary %s phase %s", a.ID, a.Phase)
		case !a.Canary && a.Phase != api.PhasePending:
			t.Errorf("agent %s phase %s, want pending (never given the model)", a.ID, a.Phase)
		}
	}
	if got := modelsOf(agents); got[modelOld] != 50 {
		t.Fatalf("after rollback agents run %v, want all %s", got, modelOld)
	}
	for _, a := range agents[:2] {
		if !strings.Contains(a.LastError(), "arena") {
			t.Errorf("canary last error %q", a.LastError())
		}
		if m := e.desiredModel(t, "gw-0000"); m != "" {
			t.Errorf("desired model after rollback = %q, want none (the profile's)", m)
		}
	}

	// The canaries report the refusal in their next state; the first to
	// arrive rolled the rollout back, the other may still be on its way. A
	// rollout started before the registry has it would take that report
	// for a new error of its own canary: wait for both.
	waitFor(t, 10*time.Second, "the canaries' refusals in the registry", func() bool {
		n := 0
		for _, d := range e.svc.Registry().Devices() {
			if (d.ID == "gw-0000" || d.ID == "gw-0001") && strings.Contains(d.LastError, "arena") {
				n++
			}
		}
		return n == 2
	})
	good, err := e.client.StartRollout(ctx, api.RolloutStartRequest{
		Model: modelGood, To: "all", Canary: "10%", Bake: wire.Duration(time.Second), SwapTimeout: wire.Duration(20 * time.Second), BatchSize: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if good.Canaries != 5 {
		t.Fatalf("10%% of 50 = %d canaries", good.Canaries)
	}
	r = e.waitState(t, good.ID, 30*time.Second, api.RolloutRolledBack, api.RolloutSucceeded, api.RolloutAborted)
	if r.State != api.RolloutSucceeded || r.Counts[api.PhaseRunning] != 50 {
		t.Fatalf("good model: state %s reason %q counts %v", r.State, r.Reason, r.Counts)
	}
	if got := modelsOf(agents); got[modelGood] != 50 {
		t.Fatalf("agents run %v, want all %s", got, modelGood)
	}
	for _, d := range e.svc.Registry().Devices() {
		if d.Models["*"] != modelGood {
			t.Errorf("registry: %s runs %v", d.ID, d.Models)
		}
	}
	if m := e.desiredModel(t, "gw-0049"); m != modelGood {
		t.Errorf("desired model of gw-0049 = %q", m)
	}
	list, err := e.client.Rollouts(ctx)
	if err != nil || len(list) != 2 || list[0].ID != good.ID || list[0].Agents != nil {
		t.Fatalf("list: %v %+v", err, list)
	}
	// The dashboard's rollouts section reads /api/v1/rollouts.
	res, err := http.Get("http://" + e.svc.HTTPAddr() + "/api/v1/rollouts")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var rows []map[string]any
	if err := json.NewDecoder(res.Body).Decode(&rows); err != nil || res.StatusCode != 200 || len(rows) != 2 ||
		rows[0]["id"] != good.ID || rows[0]["state"] != api.RolloutSucceeded || rows[1]["state"] != api.RolloutRolledBack {
		t.Fatalf("GET /api/v1/rollouts: %d %v %v", res.StatusCode, err, rows)
	}
}

// TestRolloutAbortRollbackRegression: abort leaves agents where they are;
// rollback restores them; a canary whose anomaly rate rises over the bake
// is rolled back; unknown models and targets are refused.
func TestRolloutAbortRollbackRegression(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	agents := e.startAgents(t, "ab", "a", 6, nil)
	noisy := e.startAgents(t, "nz", "n", 4, func(model string) float64 {
		if model == modelGood {
			return 0.2
		}
		return 0.01
	})

	// Refusals.
	for _, req := range []api.RolloutStartRequest{
		{Model: "vib@9", To: "all"},
		{Model: "vib", To: "all"},
		{Model: modelGood, To: "group=nobody"},
		{Model: modelGood, To: "everyone"},
	} {
		if _, err := e.client.StartRollout(ctx, req); err == nil {
			t.Errorf("start %+v: no error", req)
		}
	}

	r, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelGood, To: "group=a", Canary: "1", Bake: wire.Duration(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(t, r.ID, 20*time.Second, api.RolloutBaking)
	if _, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelOld, To: "device=ab-0003"}); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("overlapping rollout: %v", err)
	}
	ab, err := e.client.AbortRollout(ctx, r.ID)
	if err != nil || ab.State != api.RolloutAborted {
		t.Fatalf("abort: %v %+v", err, ab)
	}
	time.Sleep(300 * time.Millisecond)
	if got := modelsOf(agents); got[modelGood] != 1 || got[modelOld] != 5 || agents[0].Model() != modelGood {
		t.Fatalf("after abort: %v", got)
	}
	if _, err := e.client.AbortRollout(ctx, r.ID); err == nil {
		t.Errorf("second abort: no error")
	}
	rb, err := e.client.RollbackRollout(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	rb = e.waitState(t, rb.ID, 10*time.Second, api.RolloutRolledBack)
	if rb.Counts[api.PhaseRolledBack] != 1 || !strings.Contains(rb.Reason, "rolled back by the operator") {
		t.Fatalf("rollback: %+v", rb)
	}
	waitFor(t, 10*time.Second, "canary back on the old model", func() bool { return modelsOf(agents)[modelOld] == 6 })

	// A good model that raises the noisy group's anomaly share from 1% to
	// 20%: above 3 × 1% + 1%.
	time.Sleep(time.Second) // some readings before the rollout
	nr, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelGood, To: "group=n", Canary: "2", Bake: wire.Duration(1500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	nr = e.waitState(t, nr.ID, 20*time.Second, api.RolloutRolledBack, api.RolloutSucceeded)
	if nr.State != api.RolloutRolledBack || !strings.Contains(nr.Reason, "regressed: anomaly rate") {
		t.Fatalf("noisy rollout: %s %q", nr.State, nr.Reason)
	}
	t.Logf("noisy rollout: %s", nr.Reason)
	waitFor(t, 10*time.Second, "noisy group back on the old model", func() bool { return modelsOf(noisy)[modelOld] == 4 })

	// Manual rollback of a rollout that succeeded.
	ok, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelGood, To: "group=a", Canary: "0"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(t, ok.ID, 20*time.Second, api.RolloutSucceeded)
	if _, err := e.client.RollbackRollout(ctx, ok.ID); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, ok.ID, 10*time.Second, api.RolloutRolledBack)
	waitFor(t, 10*time.Second, "group a back on the old model", func() bool { return modelsOf(agents)[modelOld] == 6 })
}
