package sysbench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/agent"
	"github.com/outpost-iot/outpost/shared/profile"
)

// TestProfileAgent runs the agent in-process at a steady 10k readings/s
// through mosquitto, as the steady run does, and writes a CPU profile of the
// measured 10 s to $EDGEBENCH_CPUPROFILE (skipped when unset): where the
// agent's CPU time per reading goes.
//
//	EDGEBENCH_CPUPROFILE=/tmp/edge.pprof go test -run TestProfileAgent -v ./edge/bench/internal/sysbench
//	go tool pprof -top /tmp/edge.pprof
func TestProfileAgent(t *testing.T) {
	out := os.Getenv("EDGEBENCH_CPUPROFILE")
	if out == "" {
		t.Skip("EDGEBENCH_CPUPROFILE not set")
	}
	dir := t.TempDir()
	sim := filepath.Join(dir, "sensorsim")
	if b, err := exec.Command("go", "build", "-o", sim, "github.com/outpost-iot/outpost/edge/cmd/sensorsim").CombinedOutput(); err != nil {
		t.Fatalf("build sensorsim: %v\n%s", err, b)
	}
	ns, err := startNATS(filepath.Join(dir, "nats"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()
	mq, err := startMosquitto(filepath.Join(dir, "mq"))
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Stop()
	p, err := profile.Load("../../../../firmware-configs/generic-sensor-model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p = agent.Overrides{AgentID: "bench-prof", NATS: ns.url, MQTT: mq.url, DataDir: filepath.Join(dir, "data")}.Apply(p)
	ready := make(chan *agent.Agent, 1)
	a, err := agent.New(agent.Options{Profile: p, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Ready: func(a *agent.Agent) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-ready
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	const devices, warm, rate, measure = 100, 200, 10000, 10 * time.Second
	pub, err := startPublisher(pubConfig{bin: sim, data: "../../../../datasets/nab/data/realKnownCause", mqttURL: mq.url,
		devices: devices, count: devices*warm + rate*(int64(measure/time.Second)+2), rate: rate, spikeEvery: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(ctx, 60*time.Second, func() bool { return a.State().Readings >= devices*warm }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n0 := a.State().Readings
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	time.Sleep(measure)
	pprof.StopCPUProfile()
	t.Logf("%d readings in the profile", a.State().Readings-n0)
	if _, err := pub.wait(ctx); err != nil {
		t.Fatal(err)
	}
}
