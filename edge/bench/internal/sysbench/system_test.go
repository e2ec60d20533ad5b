package sysbench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs the whole benchmark at a tiny scale against real
// mosquitto, nats-server, outpost-edge and sensorsim, so that the tool keeps
// working: every reading is accounted for and every figure is measured. It
// asserts no speed.
func TestRunSmall(t *testing.T) {
	if _, err := mosquittoPath(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	bins := map[string]string{}
	for _, name := range []string{"outpost-edge", "sensorsim"} {
		bins[name] = filepath.Join(dir, name)
		if b, err := exec.Command("go", "build", "-o", bins[name], "github.com/outpost-iot/outpost/edge/cmd/"+name).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, b)
		}
	}
	c := Config{Edge: bins["outpost-edge"], Sensorsim: bins["sensorsim"], Arm64: bins["outpost-edge"],
		Profile: "../../../../firmware-configs/generic-sensor-model.yaml", Data: "../../../../datasets/nab/data/realKnownCause",
		Devices: 10, Warm: 100, RateReadings: 3000, RateRuns: 1, SteadyRate: 2000, SteadyFor: 2 * time.Second, SpikeEvery: 50,
		Dir: filepath.Join(dir, "run")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rate) != 1 || res.Rate[0].Mosquitto <= 0 || res.Rate[0].Agent <= 0 {
		t.Fatalf("rate runs %+v", res.Rate)
	}
	if len(res.Steady) != 1 {
		t.Fatalf("steady runs %+v", res.Steady)
	}
	s := res.Steady[0]
	if s.Lost != 0 || s.DecodeErrs != 0 || s.Readings <= 0 || s.CPUPerRead <= 0 || s.Mem.RSS == 0 || s.HistMissing {
		t.Fatalf("steady run %+v", s)
	}
	if res.Arm64Bytes <= 0 {
		t.Fatalf("binary size %d", res.Arm64Bytes)
	}
	var b strings.Builder
	res.Write(&b, c)
	for _, want := range []string{"end-to-end / mosquitto's own rate", "CPU time", "VmRSS", "receipt → outbox commit"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table without %q:\n%s", want, b.String())
		}
	}
}
