package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/shared/buildinfo"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
)

func runCmd(args ...string) (string, error) {
	var out, errb bytes.Buffer
	root := newRoot(&errb)
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String() + errb.String(), err
}

// TestShippedProfilesValidate: every profile in firmware-configs passes
// `outpost-edge validate`.
func TestShippedProfilesValidate(t *testing.T) {
	files, err := filepath.Glob("../../../firmware-configs/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("profiles: %v %v", files, err)
	}
	for _, f := range files {
		out, err := runCmd("validate", "--config", f)
		if err != nil || strings.TrimSpace(out) != "ok" {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("agent:\n  id: \"a b\"\nstreams:\n  - window: -1\ncolour: red\n"), 0o644)
	out, err := runCmd("validate", "--config", path)
	if err == nil {
		t.Fatal("bad profile validated")
	}
	for _, want := range []string{"agent.id:", "streams[0].window: must be > 0", "colour: unknown key", "mqtt: set exactly one of url or embedded"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := runCmd("version")
	if err != nil || strings.TrimSpace(out) != buildinfo.String() {
		t.Fatalf("version: %q %v", out, err)
	}
}

// TestBinaryRunAndSignal builds the binary with a stamped version, runs it
// as the lead's end-to-end test will (generic-sensor profile, embedded broker
// on a free port), sends a spike, checks the event reaches JetStream, then
// stops it with SIGTERM and expects a clean exit and JSON logs.
func TestBinaryRunAndSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "outpost-edge")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/outpost-iot/outpost/shared/buildinfo.Version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || strings.TrimSpace(string(out)) != "v9.9.9-test" {
		t.Fatalf("stamped version: %q %v", out, err)
	}

	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(bin, "run", "--config", "../../../firmware-configs/generic-sensor.yaml",
		"--agent-id", "gw-1", "--nats", srv.URL(), "--mqtt-listen", addr, "--data", t.TempDir())
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	logs := make(chan map[string]any, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			select {
			case logs <- m:
			default:
			}
		}
		close(logs)
	}()

	var c paho.Client
	deadline := time.Now().Add(20 * time.Second)
	for {
		c = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("sim"))
		if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("embedded broker never accepted a connection")
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Disconnect(100)
	// Wait until the agent is subscribed: a retained-free probe cannot tell,
	// so wait for its "mqtt connected and subscribed" log line.
	waitLog(t, logs, "mqtt connected and subscribed")
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 260; i++ {
		v := 20 + 2*float64(i%10)/10
		if i == 250 {
			v = 1000
		}
		c.Publish("sensors/dev/temp", 1, false, fmt.Sprintf(`{"ts":%d,"value":%g}`, t0.Add(time.Duration(i)*time.Second).UnixMilli(), v)).Wait()
	}
	deadline = time.Now().Add(20 * time.Second)
	for len(edgetest.Messages(t, js, names.StreamEvents)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event from the binary")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "stopped")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func waitLog(t *testing.T, logs <-chan map[string]any, msg string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-logs:
			if !ok {
				t.Fatalf("process exited before logging %q", msg)
			}
			if m["msg"] == msg {
				return
			}
		case <-timeout:
			t.Fatalf("no %q log line", msg)
		}
	}
}

// TestRunTrustKeyFlag: --trust-key must name a readable file holding an
// ed25519 public key; anything else stops run before it starts.
func TestRunTrustKeyFlag(t *testing.T) {
	cfg := "../../../firmware-configs/generic-sensor.yaml"
	dir := t.TempDir()
	out, err := runCmd("run", "--config", cfg, "--agent-id", "gw-key", "--data", dir, "--trust-key", filepath.Join(dir, "missing.pub"))
	if err == nil || !strings.Contains(err.Error(), "--trust-key") {
		t.Fatalf("missing key file: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.pub")
	os.WriteFile(bad, []byte("ssh-ed25519 AAAA\n"), 0o600)
	out, err = runCmd("run", "--config", cfg, "--agent-id", "gw-key", "--data", dir, "--trust-key", bad)
	if err == nil || !strings.Contains(err.Error(), "--trust-key") || !strings.Contains(err.Error(), "ed25519:") {
		t.Fatalf("bad key file: %v\n%s", err, out)
	}
}
