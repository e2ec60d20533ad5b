package rollout_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/rollout"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestRolloutReplicaTakeover: the replica that started a rollout stops
// while its canary bakes; another replica resumes it after the lease and
// finishes it. Every agent's desired state was written exactly once (no
// two replicas drove the rollout).
func TestRolloutReplicaTakeover(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	agents := e.startAgents(t, "rp", "r", 10, nil)
	start := func() *rollout.Controller {
		c, err := rollout.Start(ctx, e.js, rollout.Config{Devices: e.svc.Registry().Devices, Models: e.svc.Models(), Lease: 500 * time.Millisecond, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := start()
	r, err := a.StartRollout(ctx, api.RolloutStartRequest{Model: modelGood, To: "group=r", Canary: "1", Bake: wire.Duration(time.Second), BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	first := r.Driver
	e.waitState(t, r.ID, 20*time.Second, api.RolloutBaking)
	a.Stop()
	b := start()
	defer b.Stop()
	r = e.waitState(t, r.ID, 30*time.Second, api.RolloutSucceeded, api.RolloutRolledBack)
	if r.State != api.RolloutSucceeded || r.Driver == first || r.Driver == "" {
		t.Fatalf("after takeover: state %s driver %s (first %s) reason %q", r.State, r.Driver, first, r.Reason)
	}
	if got := modelsOf(agents); got[modelGood] != 10 {
		t.Fatalf("agents run %v", got)
	}
	kv, err := e.js.KeyValue(ctx, names.BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	for _, ag := range r.Agents {
		ent, err := kv.Get(ctx, ag.ID)
		if err != nil {
			t.Fatal(err)
		}
		var d wire.Desired
		if err := json.Unmarshal(ent.Value(), &d); err != nil {
			t.Fatal(err)
		}
		if d.Revision != 1 || d.Rollout != r.ID || d.Models["*"] != modelGood {
			t.Errorf("desired state of %s: %+v", ag.ID, d)
		}
	}
}
