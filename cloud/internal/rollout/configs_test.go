package rollout_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/rollout/simagent"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

func genericSensor(t *testing.T, rev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "firmware-configs", "generic-sensor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^revision: *\d+ *$`)
	if !re.Match(b) {
		t.Fatal("no revision line in generic-sensor.yaml")
	}
	return re.ReplaceAllString(string(b), "revision: "+rev)
}

func profilesOf(agents []*simagent.Agent) map[string]int {
	out := map[string]int{}
	for _, a := range agents {
		name, rev := a.Profile()
		out[name+"@"+itoa(rev)]++
	}
	return out
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// TestConfigRollout pushes firmware profiles: validated (a broken one is
// refused with its problems), revisioned (an old revision is refused),
// rolled out canary first, and rolled back to the previous revision.
func TestConfigRollout(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	agents := e.startAgents(t, "cf", "c", 5, nil)
	push := func(text string) (api.Rollout, error) {
		return e.client.PushConfig(ctx, api.ConfigPushRequest{Profile: text, RolloutStartRequest: api.RolloutStartRequest{
			To: "group=c", Canary: "1", Bake: wire.Duration(300 * time.Millisecond),
		}})
	}
	if _, err := push("name: broken\nrevision: 1\nbogus: 1\n"); err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("broken profile: %v", err)
	}
	if _, err := push(strings.Replace(genericSensor(t, "1"), "agent:\n", "agent:\n  id: cf-0000\n", 1)); err == nil || !strings.Contains(err.Error(), "device=cf-0000") {
		t.Fatalf("profile with agent.id to a group: %v", err)
	}
	r, err := push(genericSensor(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != api.KindConfig || r.Config != "generic-sensor@1" {
		t.Fatalf("rollout %+v", r)
	}
	r = e.waitState(t, r.ID, 20*time.Second, api.RolloutSucceeded, api.RolloutRolledBack)
	if r.State != api.RolloutSucceeded || profilesOf(agents)["generic-sensor@1"] != 5 {
		t.Fatalf("rev 1: %s %q, agents %v", r.State, r.Reason, profilesOf(agents))
	}
	if _, err := push(genericSensor(t, "1")); err == nil || !strings.Contains(err.Error(), "set revision: 2") {
		t.Fatalf("same revision again: %v", err)
	}
	r2, err := push(genericSensor(t, "2"))
	if err != nil {
		t.Fatal(err)
	}
	r2 = e.waitState(t, r2.ID, 20*time.Second, api.RolloutSucceeded, api.RolloutRolledBack)
	if r2.State != api.RolloutSucceeded || profilesOf(agents)["generic-sensor@2"] != 5 {
		t.Fatalf("rev 2: %s %q, agents %v", r2.State, r2.Reason, profilesOf(agents))
	}
	if _, err := e.client.RollbackRollout(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, r2.ID, 10*time.Second, api.RolloutRolledBack)
	waitFor(t, 10*time.Second, "agents back on revision 1", func() bool { return profilesOf(agents)["generic-sensor@1"] == 5 })
	kv, err := e.js.KeyValue(ctx, names.BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := kv.Get(ctx, "cf-0003")
	if err != nil {
		t.Fatal(err)
	}
	var d wire.Desired
	if err := json.Unmarshal(ent.Value(), &d); err != nil || d.Config != "generic-sensor.1" || d.ConfigRevision != 1 || d.Revision != 3 {
		t.Fatalf("desired state of cf-0003: %v %+v", err, d)
	}
}
