package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestModelRollout: the operator's model update path with the real
// programs. outpost-cloud signs a model pushed with `fleet models push`
// (the stock ae-edge model with its manifest, as version 2); `fleet rollout
// start --wait` gives it to a real outpost-edge, which trusts the cloud's
// key (--trust-key, from `fleet keys public`), fetches, verifies,
// test-runs and swaps it in; the rollout succeeds and `fleet devices list
// -o json` shows the agent running ae-edge@2. Then `fleet config push`
// gives it a new profile revision, which it runs and reports, and a
// rollout of the stock ae-edge@1 takes it back to its installed model.
func TestModelRollout(t *testing.T) {
	const agent = "gw-rollout"
	mq := testenv.StartMosquitto(t)
	natsURL := cloud(t)
	fleet := func(ctx context.Context, args ...string) []byte {
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "trust.key")
	if err := os.WriteFile(keyFile, fleet(ctx, "keys", "public"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := start(t, "outpost-edge", filepath.Join(binDir, "outpost-edge"), "run",
		"--config", filepath.Join(repoRoot, "firmware-configs", "generic-sensor-model.yaml"),
		"--agent-id", agent, "--nats", natsURL, "--mqtt", mq.URL(), "--data", filepath.Join(dir, "data"),
		"--trust-key", keyFile, "--config-grace", "2s")

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	lastState := func() (wire.State, bool) {
		s, err := js.Stream(ctx, names.StreamState)
		if err != nil {
			return wire.State{}, false
		}
		m, err := s.GetLastMsgForSubject(ctx, names.StateSubject(agent))
		if err != nil {
			return wire.State{}, false
		}
		var st wire.State
		return st, json.Unmarshal(m.Data, &st) == nil
	}
	waitFor(t, ctx, ep, "the agent's state", func() bool { _, ok := lastState(); return ok })
	waitFor(t, ctx, ep, "the agent online in fleet devices list", func() bool {
		return strings.Contains(string(fleet(ctx, "devices", "list", "-o", "json")), agent)
	})

	// The stock model and its manifest, as version 2.
	mj, err := os.ReadFile(filepath.Join(repoRoot, "models", "stock", "ae-edge.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(mj, &fields); err != nil {
		t.Fatal(err)
	}
	fields["version"] = 2
	mj, _ = json.Marshal(fields)
	manifestFile := filepath.Join(dir, "ae-edge-2.json")
	if err := os.WriteFile(manifestFile, mj, 0o600); err != nil {
		t.Fatal(err)
	}
	fleet(ctx, "models", "push", filepath.Join(repoRoot, "models", "stock", "ae-edge.tflite"),
		"--name", "ae-edge", "--version", "2", "--manifest", manifestFile)
	fleet(ctx, "rollout", "start", "ae-edge@2", "--to", "device="+agent, "--bake", "2s", "--wait")

	var devices []struct {
		ID        string            `json:"id"`
		Models    map[string]string `json:"models"`
		LastError string            `json:"last_error"`
	}
	out := fleet(ctx, "devices", "list", "-o", "json")
	if err := json.Unmarshal(out, &devices); err != nil {
		t.Fatalf("fleet devices list -o json: %v\n%s", err, out)
	}
	found := false
	for _, d := range devices {
		if d.ID == agent {
			found = true
			if d.Models["*"] != "ae-edge@2" || d.Models["sensors/#"] != "ae-edge@2" {
				t.Fatalf("device %s runs %v (last error %q), want ae-edge@2", agent, d.Models, d.LastError)
			}
		}
	}
	if !found {
		t.Fatalf("fleet devices list has no %s: %s", agent, out)
	}
	// The agent kept the verified package for its next start.
	if _, err := os.Stat(filepath.Join(dir, "data", "control", "models", "ae-edge@2.pkg")); err != nil {
		t.Fatalf("package not kept on the gateway: %v", err)
	}

	// A config revision: `fleet config push --wait` succeeds once the agent
	// reports the profile's name and revision; it restarted its pipeline
	// with it and still runs the model it was given.
	prof, err := os.ReadFile(filepath.Join(repoRoot, "firmware-configs", "generic-sensor-model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(prof), "name: generic-sensor-model\nrevision: 1\n", "name: e2e-plant\nrevision: 2\n", 1)
	text = strings.Replace(text, "  embedded:\n    listen: 127.0.0.1:1883\n", "  url: "+mq.URL()+"\n", 1)
	if !strings.Contains(text, "e2e-plant") || !strings.Contains(text, mq.URL()) {
		t.Fatalf("profile not rewritten:\n%s", text)
	}
	profFile := filepath.Join(dir, "e2e-plant.yaml")
	if err := os.WriteFile(profFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet(ctx, "config", "push", profFile, "--to", "device="+agent, "--bake", "1s", "--wait")
	var after []struct {
		ID       string            `json:"id"`
		Profile  string            `json:"profile"`
		Revision int64             `json:"revision"`
		Status   string            `json:"config_status"`
		Models   map[string]string `json:"models"`
	}
	out = fleet(ctx, "devices", "list", "-o", "json")
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatalf("fleet devices list -o json: %v\n%s", err, out)
	}
	for _, d := range after {
		if d.ID == agent && (d.Profile != "e2e-plant" || d.Revision != 2 || d.Status != "applied" || d.Models["*"] != "ae-edge@2") {
			t.Fatalf("after the config push: device %+v", d)
		}
	}

	// Back to the stock model (stored as ae-edge@1): the agent runs the
	// one it was installed with, without a download, and reports it.
	fleet(ctx, "models", "push", filepath.Join(repoRoot, "models", "stock", "ae-edge.tflite"),
		"--name", "ae-edge", "--version", "1", "--manifest", filepath.Join(repoRoot, "models", "stock", "ae-edge.json"))
	fleet(ctx, "rollout", "start", "ae-edge@1", "--to", "device="+agent, "--bake", "1s", "--wait")
	after = nil
	out = fleet(ctx, "devices", "list", "-o", "json")
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatalf("fleet devices list -o json: %v\n%s", err, out)
	}
	for _, d := range after {
		if d.ID == agent && (d.Models["*"] != "ae-edge@1" || d.Models["sensors/#"] != "ae-edge@1") {
			t.Fatalf("after the rollout of ae-edge@1: device %+v", d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "control", "models", "ae-edge@2.pkg")); !os.IsNotExist(err) {
		t.Fatalf("package of ae-edge@2 still kept: %v", err)
	}
}
