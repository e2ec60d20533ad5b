package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/rollout/simagent"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/profile"
)

// TestRolloutCLI drives rollouts with the fleet CLI against a live service
// and simulated gateways, parsing -o json.
func TestRolloutCLI(t *testing.T) {
	svc, _ := startService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := api.NewClient(nc)
	for v, name := range []string{"hello_world_int8", "micro_speech"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "models", "testdata", "tflite", name, "model.tflite"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PushModel(ctx, b, api.ModelPushRequest{Name: "vib", Version: v + 1, Role: "edge"}); err != nil {
			t.Fatal(err)
		}
	}
	ki, err := c.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := modelpkg.ParsePublicKey(ki.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	agents := make([]*simagent.Agent, n)
	for i := range agents {
		// gw-0000 is a small gateway whose runtime refuses vib@2's arena.
		arena := 0
		if i == 0 {
			arena = 4096
		}
		a, err := simagent.Start(ctx, simagent.Config{ID: fmt.Sprintf("gw-%04d", i), URL: svc.NATSURL(), PublicKey: pub, Group: "g",
			Initial: "vib@1", MaxArenaBytes: arena, Heartbeat: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Stop()
		agents[i] = a
	}
	for deadline := time.Now().Add(20 * time.Second); svc.Registry().OnlineCount() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("agents not online")
		}
	}
	url := "--nats=" + svc.NATSURL()

	// To one agent that can run it.
	stdout, stderr, err := run(ctx, url, "-o", "json", "rollout", "start", "vib@2", "--to", "device=gw-0001", "--canary", "1", "--bake", "300ms", "--wait")
	if err != nil {
		t.Fatalf("start --wait: %v\n%s", err, stderr)
	}
	var r api.Rollout
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("parse %q: %v", stdout, err)
	}
	if r.State != api.RolloutSucceeded || r.Counts[api.PhaseRunning] != 1 || agents[1].Model() != "vib@2" {
		t.Fatalf("rollout: %+v", r)
	}
	if !strings.Contains(stderr, "1/1 running vib@2") {
		t.Errorf("no progress on stderr: %q", stderr)
	}

	// To all, canary gw-0000 fails: rolled back, exit status 1, JSON still
	// printed.
	stdout, stderr, err = run(ctx, url, "-o", "json", "rollout", "start", "vib@2", "--to", "group=g", "--canary", "1", "--bake", "300ms", "--wait")
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("failing rollout: err %v\n%s", err, stderr)
	}
	var failed api.Rollout
	if err := json.Unmarshal([]byte(stdout), &failed); err != nil {
		t.Fatalf("parse %q: %v", stdout, err)
	}
	if failed.State != api.RolloutRolledBack || !strings.Contains(failed.Reason, "canary gw-0000 failed") {
		t.Fatalf("failed rollout: %+v", failed)
	}

	stdout, _, err = run(ctx, url, "-o", "json", "rollout", "status")
	if err != nil {
		t.Fatal(err)
	}
	var list []api.Rollout
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || len(list) != 2 || list[0].ID != failed.ID {
		t.Fatalf("status list: %v %s", err, stdout)
	}
	stdout, _, err = run(ctx, url, "-o", "json", "rollout", "status", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var one api.Rollout
	if err := json.Unmarshal([]byte(stdout), &one); err != nil || len(one.Agents) != 1 || one.Agents[0].Phase != api.PhaseRunning {
		t.Fatalf("status %s: %v %s", r.ID, err, stdout)
	}
	stdout, _, err = run(ctx, url, "rollout", "status", failed.ID)
	if err != nil || !strings.Contains(stdout, "rolled_back") || !strings.Contains(stdout, "gw-0004") {
		t.Fatalf("status table: %v\n%s", err, stdout)
	}

	// Manual rollback of the first: gw-0001 goes back to vib@1.
	stdout, _, err = run(ctx, url, "-o", "json", "rollout", "rollback", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(stdout), &one); err != nil || one.State != api.RolloutRolledBack {
		t.Fatalf("rollback: %v %s", err, stdout)
	}
	for deadline := time.Now().Add(10 * time.Second); agents[1].Model() != "vib@1"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gw-0001 runs %s after rollback", agents[1].Model())
		}
	}
	if _, _, err := run(ctx, url, "rollout", "abort", r.ID); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("abort of a rolled-back rollout: %v", err)
	}
	if _, _, err := run(ctx, url, "rollout", "start", "vib@7", "--to", "all"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("start of a missing model: %v", err)
	}

	// config push: validated here first, then rolled out.
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("name: x\nrevision: 1\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(ctx, url, "config", "push", broken, "--to", "all"); err == nil || !strings.Contains(err.Error(), "nothing pushed") || !strings.Contains(stderr, "bogus") {
		t.Errorf("broken profile: %v %q", err, stderr)
	}
	good, err := os.ReadFile(filepath.Join("..", "..", "..", "firmware-configs", "generic-sensor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	goodFile := filepath.Join(dir, "generic-sensor.yaml")
	if err := os.WriteFile(goodFile, good, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = run(ctx, url, "-o", "json", "config", "push", goodFile, "--to", "group=g", "--canary", "0", "--wait")
	if err != nil {
		t.Fatalf("config push: %v\n%s", err, stderr)
	}
	var cr api.Rollout
	prof, err := profile.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(stdout), &cr); err != nil || cr.State != api.RolloutSucceeded || cr.Config != fmt.Sprintf("%s@%d", prof.Name, prof.Revision) || cr.Counts[api.PhaseRunning] != n {
		t.Fatalf("config rollout: %v %s", err, stdout)
	}
	for _, a := range agents {
		if name, rev := a.Profile(); name != prof.Name || rev != prof.Revision {
			t.Errorf("agent runs profile %s@%d, want %s@%d", name, rev, prof.Name, prof.Revision)
		}
	}
}

func TestRolloutProgressLine(t *testing.T) {
	r := api.Rollout{Kind: api.KindModel, Model: "vib@3", State: api.RolloutRolling,
		Counts: map[string]int{api.PhaseRunning: 15, api.PhasePending: 15, api.PhaseSkipped: 4}}
	if got, want := progressLine(r), "[###############---------------] 15/30 running vib@3  rolling"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	r.State, r.Counts = api.RolloutRolledBack, map[string]int{api.PhaseRolledBack: 2, api.PhasePending: 8}
	if got, want := progressLine(r), "[######------------------------] 2/10 rolled back  rolled_back"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
