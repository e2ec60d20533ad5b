// Package e2e runs Outpost's three programs as real processes against a real
// mosquitto and the cloud's embedded nats-server, the way an operator runs
// them: readings go in over MQTT, anomalies come out of JetStream, and the
// fleet CLI sees the gateway online.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

var (
	binDir   string
	repoRoot string
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	root, err := findRoot()
	if err != nil {
		return 0, err
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "outpost-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"./cloud/cmd/outpost-cloud", "./cloud/cmd/fleet", "./edge/cmd/outpost-edge")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build programs: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// findRoot walks up from the working directory to the folder holding go.work.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.work not found above the test directory")
		}
		dir = parent
	}
}

// proc is a child process whose combined output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  testenv.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) { return p.out.Write(b) }

func (p *proc) output() string { return p.out.String() }

func start(t *testing.T, name string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
		}
	})
	return p
}

func waitListen(t *testing.T, addr string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %s:\n%s", p.name, addr, p.output())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not listen on %s within 60s:\n%s", p.name, addr, p.output())
}

// cloud starts outpost-cloud on its embedded NATS and returns the NATS URL.
func cloud(t *testing.T) string {
	t.Helper()
	natsURL, _ := cloudHTTP(t)
	return natsURL
}

// cloudHTTP is cloud that also returns the HTTP address (host:port).
func cloudHTTP(t *testing.T) (natsURL, httpAddr string) {
	t.Helper()
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	httpAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := start(t, "outpost-cloud", filepath.Join(binDir, "outpost-cloud"), "serve",
		"--data", t.TempDir(), "--nats-listen", natsAddr, "--http", httpAddr)
	waitListen(t, natsAddr, p)
	waitListen(t, httpAddr, p)
	return "nats://" + natsAddr, httpAddr
}

// runScenario drives one edge agent (started by argv prefix edge, e.g. the
// binary or qemu plus the binary) through a spike and checks what reaches the
// cloud.
func runScenario(t *testing.T, agent string, edge []string) {
	mq := testenv.StartMosquitto(t)
	natsURL := cloud(t)

	argv := append(append([]string{}, edge...), "run",
		"--config", filepath.Join(repoRoot, "firmware-configs", "external-mosquitto.yaml"),
		"--agent-id", agent, "--nats", natsURL, "--mqtt", mq.URL(), "--data", t.TempDir())
	ep := start(t, "outpost-edge", argv...)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Wait until the agent has said it is alive, so it has subscribed.
	waitFor(t, ctx, ep, "agent state on "+names.StateSubject(agent), func() bool {
		m, err := js.Stream(ctx, names.StreamState)
		if err != nil {
			return false
		}
		_, err = m.GetLastMsgForSubject(ctx, names.StateSubject(agent))
		return err == nil
	})

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("e2e-pub-" + agent))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)

	const topic = "sensors/press-7/temp"
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var spikeTS time.Time
	for i := 0; i < 400; i++ {
		ts := base.Add(time.Duration(i) * time.Second)
		v := 20 + math.Sin(float64(i)/10) + 0.05*math.Sin(float64(i)*7.3)
		if i == 320 {
			v = 20 + 10*math.Sqrt(0.5) // 10 standard deviations of the sine above its mean
			spikeTS = ts
		}
		payload := fmt.Sprintf(`{"ts":%q,"value":%g}`, ts.Format(time.RFC3339Nano), v)
		tok := pub.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}

	// The event reaches OUTPOST_EVENTS with the right agent, stream and time.
	var events []wire.Event
	waitFor(t, ctx, ep, "an anomaly event in "+names.StreamEvents, func() bool {
		events = readEvents(t, ctx, js, agent)
		for _, e := range events {
			if e.Kind == wire.KindAnomaly {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second) // let any burst arrive before counting
	events = readEvents(t, ctx, js, agent)
	var anomalies []wire.Event
	for _, e := range events {
		if e.Kind == wire.KindAnomaly {
			anomalies = append(anomalies, e)
		}
	}
	if len(anomalies) != 1 {
		t.Fatalf("want exactly one anomaly, got %d: %+v", len(anomalies), anomalies)
	}
	e := anomalies[0]
	if e.Agent != agent || e.Stream != topic || !e.TS.Equal(spikeTS) {
		t.Fatalf("anomaly = agent %q stream %q ts %s; want %q %q %s", e.Agent, e.Stream, e.TS, agent, topic, spikeTS)
	}

	// The fleet CLI lists the agent online.
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fleet"), "--nats", natsURL,
		"devices", "list", "-o", "json").Output()
	if err != nil {
		t.Fatalf("fleet devices list: %v", err)
	}
	var devices []struct {
		ID       string    `json:"id"`
		Online   bool      `json:"online"`
		LastSeen time.Time `json:"last_seen"`
	}
	if err := json.Unmarshal(out, &devices); err != nil {
		t.Fatalf("fleet devices list -o json: %v\n%s", err, out)
	}
	found := false
	for _, d := range devices {
		if d.ID == agent {
			found = true
			if !d.Online || d.LastSeen.IsZero() {
				t.Fatalf("device %s: online=%v last_seen=%s; want online", agent, d.Online, d.LastSeen)
			}
		}
	}
	if !found {
		t.Fatalf("fleet devices list has no %s: %s", agent, out)
	}

	// And fleet events list shows the same event.
	out, err = exec.CommandContext(ctx, filepath.Join(binDir, "fleet"), "--nats", natsURL,
		"events", "list", "--agent", agent, "-o", "json").Output()
	if err != nil {
		t.Fatalf("fleet events list: %v", err)
	}
	var listed []struct {
		Agent  string    `json:"agent"`
		Stream string    `json:"stream"`
		Seq    uint64    `json:"seq"`
		TS     time.Time `json:"ts"`
		Kind   string    `json:"kind"`
		Score  float64   `json:"score"`
	}
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatalf("fleet events list -o json: %v\n%s", err, out)
	}
	ok := false
	for _, l := range listed {
		if l.Kind == "anomaly" && l.Agent == agent && l.Stream == topic && l.TS.Equal(spikeTS) && l.Seq == e.Seq {
			ok = true
		}
	}
	if !ok {
		t.Fatalf("fleet events list does not show the anomaly (seq %d): %s", e.Seq, out)
	}

	// The cloud's second stage decides on it: fleet events list carries the
	// verdict, and the agent's verdict subject has it.
	var verdict struct {
		Seq          uint64   `json:"seq"`
		Verdict      string   `json:"verdict"`
		VerdictScore *float64 `json:"verdict_score"`
		VerdictModel string   `json:"verdict_model"`
	}
	waitFor(t, ctx, ep, "a verdict on the anomaly in fleet events list", func() bool {
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fleet"), "--nats", natsURL,
			"events", "list", "--agent", agent, "-o", "json").Output()
		if err != nil {
			return false
		}
		var evs []json.RawMessage
		if json.Unmarshal(out, &evs) != nil {
			return false
		}
		for _, raw := range evs {
			if json.Unmarshal(raw, &verdict) == nil && verdict.Seq == e.Seq && verdict.Verdict != "" {
				return true
			}
		}
		return false
	})
	if (verdict.Verdict != "confirmed" && verdict.Verdict != "rejected") || verdict.VerdictScore == nil || verdict.VerdictModel == "" {
		t.Fatalf("verdict on the anomaly = %+v", verdict)
	}
	vs, err := js.Stream(ctx, names.StreamVerdicts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vs.GetLastMsgForSubject(ctx, names.VerdictSubject(agent))
	if err != nil {
		t.Fatalf("no verdict on %s: %v", names.VerdictSubject(agent), err)
	}
	var v wire.Verdict
	if err := json.Unmarshal(raw.Data, &v); err != nil || v.Agent != agent || v.Decision == "" {
		t.Fatalf("verdict on %s = %s (%v)", names.VerdictSubject(agent), raw.Data, err)
	}
}

func readEvents(t *testing.T, ctx context.Context, js jetstream.JetStream, agent string) []wire.Event {
	t.Helper()
	c, err := js.OrderedConsumer(ctx, names.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.EventSubject(agent)},
	})
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	n := int(info.NumPending)
	var out []wire.Event
	if n == 0 {
		return out
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return nil
	}
	for m := range batch.Messages() {
		var e wire.Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatalf("event payload: %v: %s", err, m.Data())
		}
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != names.MsgID(agent, e.Seq) {
			t.Fatalf("event seq %d has Nats-Msg-Id %q, want %q", e.Seq, got, names.MsgID(agent, e.Seq))
		}
		out = append(out, e)
	}
	return out
}

func waitFor(t *testing.T, ctx context.Context, p *proc, what string, cond func() bool) {
	t.Helper()
	for {
		if cond() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-p.done:
			t.Fatalf("%s exited while waiting for %s", p.name, what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestEndToEnd: mosquitto -> outpost-edge -> JetStream -> outpost-cloud -> fleet.
func TestEndToEnd(t *testing.T) {
	runScenario(t, "e2e-gw-1", []string{filepath.Join(binDir, "outpost-edge")})
}

// TestARM64EdgeUnderQEMU runs the same path with the static linux/arm64
// outpost-edge under qemu-user, as it would run on a gateway.
func TestARM64EdgeUnderQEMU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("qemu-user needs linux")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-aarch64-static not installed; `make test` installs qemu-user-static")
		}
		t.Skip("qemu-aarch64-static not installed; `make test` installs qemu-user-static")
	}
	bin := filepath.Join(t.TempDir(), "outpost-edge-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./edge/cmd/outpost-edge")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build arm64 agent: %v\n%s", err, out)
	}
	if out, err := exec.Command("file", bin).Output(); err == nil && !strings.Contains(string(out), "aarch64") {
		t.Fatalf("not an arm64 binary: %s", out)
	}
	ver, err := exec.Command(qemu, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("arm64 outpost-edge version under qemu: %v\n%s", err, ver)
	}
	sc := bufio.NewScanner(bytes.NewReader(ver))
	if !sc.Scan() {
		t.Fatal("arm64 outpost-edge version printed nothing")
	}
	runScenario(t, "e2e-arm64", []string{qemu, bin})
}
