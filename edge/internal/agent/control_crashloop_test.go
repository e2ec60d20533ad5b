package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/control"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestControlConfigCrashLoop: a pushed profile on probation that keeps
// the agent from stopping cleanly is refused. The agent runs as a child
// process on one data directory. Stopped with SIGTERM and started again
// three times while the pushed profile is on probation, it keeps running
// that profile (a clean stop does not count). Killed with SIGKILL three
// times, the fourth start goes back to the installed profile, state.json
// records the refusal, and the agent's state names the config, the
// reason and why; the desired state still naming it does not make the
// agent try it again.
func TestControlConfigCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child agent seven times")
	}
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	const agentID = "gw-crashloop"
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	profPath := filepath.Join(dir, "profile.yaml")
	if err := os.WriteFile(profPath, []byte(deliveryYAML(agentID, env.srv.URL(), mq.URL(), dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, logf, logPath := childSetup(t, dir)
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, logPath)
		}
	})
	var child *exec.Cmd
	var launched time.Time
	start := func() {
		t.Helper()
		launched = time.Now()
		child = exec.Command(exe, "-test.run=^TestCrashChildProcess$", "-test.count=1")
		child.Env = append(os.Environ(), crashChildEnv+"="+profPath)
		child.Stdout, child.Stderr = logf, logf
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stop := func(sig syscall.Signal) {
		t.Helper()
		if err := child.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		child = nil
	}
	t.Cleanup(func() {
		if child != nil {
			child.Process.Kill()
			child.Wait()
		}
	})
	applied := func() map[string]any {
		var m map[string]any
		b, err := os.ReadFile(filepath.Join(dataDir, "control", "state.json"))
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return m
	}
	// running waits until the child just started reports the profile
	// revision on probation, and state.json its count of starts.
	running := func(what string, rev int64, starts float64) {
		t.Helper()
		waitFor(t, what, func() bool {
			st := lastState(env.js, agentID)
			m := applied()
			return st.Started.After(launched) && st.Revision == rev && st.ConfigStatus == control.StatusApplying && m["starts"] == starts
		})
	}

	start()
	waitFor(t, "the installed profile running", func() bool { return lastState(env.js, agentID).Profile == "delivery" })
	key := names.ConfigKey("plant-b", 2)
	if _, err := env.configs.Put(t.Context(), key, []byte(pushedYAML("plant-b", 2, mq.URL(), "50"))); err != nil {
		t.Fatal(err)
	}
	env.setDesired(t, agentID, wire.Desired{Revision: 1, Config: key, ConfigRevision: 2})
	running("plant-b.2 on probation", 2, 1)

	// Clean stops: the start count goes back to zero each time.
	for i := 0; i < 3; i++ {
		stop(syscall.SIGTERM)
		if m := applied(); m["starts"] != nil || m["pending"] != true {
			t.Fatalf("after a clean stop: state.json %v", m)
		}
		start()
		running("plant-b.2 on probation after a clean restart", 2, 1)
	}

	// Crashes: three starts count, the fourth refuses the profile.
	for n := 2.0; n <= 3; n++ {
		stop(syscall.SIGKILL)
		start()
		running("plant-b.2 on probation after a crash", 2, n)
	}
	stop(syscall.SIGKILL)
	start()
	waitFor(t, "plant-b.2 refused, back to the installed profile", func() bool {
		st := lastState(env.js, agentID)
		return st.Started.After(launched) && st.Profile == "delivery" && st.Config == "" && st.ConfigStatus == control.StatusApplied &&
			strings.Contains(st.LastError, "config plant-b.2 refused (unhealthy)") &&
			strings.Contains(st.LastError, "without a clean shutdown")
	})
	m := applied()
	if m["refused"] != key || m["reason"] != control.ReasonUnhealthy || m["config"] != nil || m["pending"] != nil || m["starts"] != nil {
		t.Fatalf("state.json after the refusal: %v", m)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "control", "profile.yaml")); !os.IsNotExist(err) {
		t.Fatalf("the refused profile is still stored: %v", err)
	}
	t.Logf("refused: %s", lastState(env.js, agentID).LastError)

	// Started again, it stays on the installed profile.
	stop(syscall.SIGTERM)
	start()
	waitFor(t, "the installed profile after a restart", func() bool {
		st := lastState(env.js, agentID)
		return st.Started.After(launched) && st.Profile == "delivery" && strings.Contains(st.LastError, "plant-b.2")
	})
	if m := applied(); m["refused"] != key || m["config"] != nil {
		t.Fatalf("state.json after a restart: %v", m)
	}
}
