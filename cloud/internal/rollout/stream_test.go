package rollout_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/rollout/simagent"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestRolloutOneStream: a rollout for one stream's name (fleet rollout
// start --stream NAME) writes the model under that name in the desired
// state, beside the agent's other keys, waits for the agent to report it
// under the same name, and a rollback removes just that key (the agent's
// stream goes back to its pattern's model).
func TestRolloutOneStream(t *testing.T) {
	const stream = "sensors/dev-1/temp"
	e := startEnv(t)
	ctx := context.Background()
	agents := e.start(t, "one", 1, func(int) simagent.Config {
		return simagent.Config{Stream: stream, Heartbeat: 300 * time.Millisecond}
	})
	kv, err := e.js.KeyValue(ctx, names.BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	id := "one-0000" // e.start names them prefix-NNNN
	desired := func() wire.Desired {
		t.Helper()
		ent, err := kv.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var d wire.Desired
		if err := json.Unmarshal(ent.Value(), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	b, _ := json.Marshal(wire.Desired{Revision: 1, Models: map[string]string{"*": modelOld}})
	if _, err := kv.Put(ctx, id, b); err != nil {
		t.Fatal(err)
	}

	r, err := e.client.StartRollout(ctx, api.RolloutStartRequest{Model: modelGood, To: "device=" + id, Stream: stream, Canary: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stream != stream {
		t.Fatalf("rollout for stream %q, want %q", r.Stream, stream)
	}
	if r = e.waitState(t, r.ID, 20*time.Second, api.RolloutSucceeded, api.RolloutRolledBack); r.State != api.RolloutSucceeded {
		t.Fatalf("rollout %s: %s", r.State, r.Reason)
	}
	if d := desired(); len(d.Models) != 2 || d.Models["*"] != modelOld || d.Models[stream] != modelGood {
		t.Fatalf("desired models after the rollout: %v", d.Models)
	}
	if agents[0].Model() != modelGood {
		t.Fatalf("agent runs %s", agents[0].Model())
	}

	if _, err := e.client.RollbackRollout(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, r.ID, 10*time.Second, api.RolloutRolledBack)
	if d := desired(); len(d.Models) != 1 || d.Models["*"] != modelOld {
		t.Fatalf("desired models after the rollback: %v", d.Models)
	}
	waitFor(t, 10*time.Second, "the agent back on the old model", func() bool { return agents[0].Model() == modelOld })
}
