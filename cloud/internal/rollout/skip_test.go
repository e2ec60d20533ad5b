package rollout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRolloutSkipsOfflineAgents: agents offline when a rollout starts are
// left alone and reported as skipped in its status, the online ones get
// the model; the rollout metrics count what happened, including a rollout
// rolled back.
func TestRolloutSkipsOfflineAgents(t *testing.T) {
	e := startEnv(t)
	agents := e.startAgents(t, "sk", "", 6, nil)
	ctx := context.Background()
	agents[1].Stop()
	agents[4].Stop()
	waitFor(t, 30*time.Second, "two agents offline", func() bool {
		off := 0
		for _, d := range e.svc.Registry().Devices() {
			if !d.Online {
				off++
			}
		}
		return off == 2
	})
	started, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelGood, To: "all", SwapTimeout: wire.Duration(20 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if started.Counts[api.PhaseSkipped] != 2 || len(started.Agents) != 6 {
		t.Fatalf("started: %+v", started)
	}
	r := e.waitState(t, started.ID, 30*time.Second, api.RolloutSucceeded, api.RolloutRolledBack, api.RolloutAborted)
	if r.State != api.RolloutSucceeded || r.Counts[api.PhaseRunning] != 4 || r.Counts[api.PhaseSkipped] != 2 {
		t.Fatalf("rollout %s, counts %v (%s)", r.State, r.Counts, r.Reason)
	}
	for _, a := range r.Agents {
		offline := a.ID == "sk-0001" || a.ID == "sk-0004"
		if offline != (a.Phase == api.PhaseSkipped) || (offline && !strings.Contains(a.Error, "offline")) {
			t.Errorf("agent %s: phase %s error %q", a.ID, a.Phase, a.Error)
		}
		if offline && e.desiredModel(t, a.ID) != "" {
			t.Errorf("offline agent %s was given %s", a.ID, e.desiredModel(t, a.ID))
		}
	}
	for i, a := range agents {
		if i != 1 && i != 4 && a.Model() != modelGood {
			t.Errorf("agent %d runs %s", i, a.Model())
		}
	}
	m := e.svc.Metrics()
	if v := testutil.ToFloat64(m.RolloutsStarted.WithLabelValues("model")); v != 1 {
		t.Errorf("rollouts started %v", v)
	}
	if v := testutil.ToFloat64(m.RolloutsFinished.WithLabelValues(api.RolloutSucceeded)); v != 1 {
		t.Errorf("rollouts succeeded %v", v)
	}
	if run, skip := testutil.ToFloat64(m.RolloutAgents.WithLabelValues(api.PhaseRunning)), testutil.ToFloat64(m.RolloutAgents.WithLabelValues(api.PhaseSkipped)); run != 4 || skip != 2 {
		t.Errorf("agents running %v skipped %v, want 4 and 2", run, skip)
	}

	// A model the canary cannot run: rolled back, counted.
	bad, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelBad, To: "all", Canary: "1", SwapTimeout: wire.Duration(20 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.waitState(t, bad.ID, 30*time.Second, api.RolloutRolledBack, api.RolloutSucceeded); r.State != api.RolloutRolledBack {
		t.Fatalf("bad rollout %s", r.State)
	}
	waitFor(t, 10*time.Second, "the rollback counted", func() bool {
		return testutil.ToFloat64(m.RolloutsFinished.WithLabelValues(api.RolloutRolledBack)) == 1 &&
			testutil.ToFloat64(m.RolloutAgents.WithLabelValues(api.PhaseRolledBack)) == 1
	})
	if v := testutil.ToFloat64(m.RolloutsStarted.WithLabelValues("model")); v != 2 {
		t.Errorf("rollouts started %v", v)
	}
}
