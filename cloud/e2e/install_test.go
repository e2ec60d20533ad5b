package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallGatewayStaging installs the agent into a staging root the way
// scripts/install-gateway.sh does on a gateway, and checks what lands where.
func TestInstallGatewayStaging(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "install-gateway.sh"),
		"--root", root,
		"--binary", filepath.Join(binDir, "outpost-edge"),
		"--profile", filepath.Join(repoRoot, "firmware-configs", "generic-sensor.yaml"),
		"--agent-id", "gw-staged", "--nats", "nats://cloud.example:4222")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install-gateway.sh: %v\n%s", err, out)
	}
	for _, f := range []string{
		"usr/local/bin/outpost-edge", "etc/outpost/profile.yaml",
		"etc/outpost/agent.env", "etc/systemd/system/outpost-edge.service",
	} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	env, err := os.ReadFile(filepath.Join(root, "etc/outpost/agent.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"OUTPOST_AGENT_ID=gw-staged", "OUTPOST_EDGE_ARGS=--nats nats://cloud.example:4222"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("agent.env lacks %q:\n%s", want, env)
		}
	}
	// The installed binary validates the installed profile.
	out, err := exec.Command(filepath.Join(root, "usr/local/bin/outpost-edge"), "validate",
		"--config", filepath.Join(root, "etc/outpost/profile.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("installed agent rejects installed profile: %v\n%s", err, out)
	}

	// A broken profile is refused before anything is installed.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("streams:\n  - match: a/#\n    window: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root2 := t.TempDir()
	cmd = exec.Command("bash", filepath.Join(repoRoot, "scripts", "install-gateway.sh"),
		"--root", root2, "--binary", filepath.Join(binDir, "outpost-edge"), "--profile", bad)
	out, err = cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("install-gateway.sh accepted a broken profile:\n%s", out)
	}
	if !strings.Contains(string(out), "streams[0].window") {
		t.Errorf("error does not name streams[0].window:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root2, "usr/local/bin/outpost-edge")); err == nil {
		t.Error("binary installed despite the broken profile")
	}
}
