// Command edgebench benchmarks the whole edge system: the real
// outpost-edge binary between a real mosquitto and an embedded nats-server,
// fed by sensorsim (see package sysbench for what is measured and how), and
// prints a Markdown table. `make bench-system` runs it on the binaries
// `make build` and `make build-arm` made.
//
//	edgebench [--edge bin/outpost-edge] [--sensorsim bin/sensorsim] [--arm64 dist/outpost-edge-linux-arm64]
//
// Binaries not given are built into a temporary directory with the release
// flags (-trimpath -ldflags "-s -w"; CGO_ENABLED=0 for arm64). Run it from
// inside the repository.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/outpost-iot/outpost/edge/bench/internal/sysbench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c sysbench.Config
	var keep string
	fs.StringVar(&c.Edge, "edge", "", "outpost-edge binary for this machine (default: build one)")
	fs.StringVar(&c.Sensorsim, "sensorsim", "", "sensorsim binary (default: build one)")
	fs.StringVar(&c.Arm64, "arm64", "", "stripped linux/arm64 outpost-edge whose size is reported (default: build one)")
	fs.StringVar(&c.Profile, "profile", "", "agent profile (default firmware-configs/generic-sensor-model.yaml: the stock int8 model on every reading)")
	fs.StringVar(&c.Data, "data", "", "sensorsim --data (default datasets/nab/data/realKnownCause)")
	fs.IntVar(&c.Devices, "devices", 0, "publishing devices, one stream each (default 100)")
	fs.IntVar(&c.Warm, "warm", 0, "readings per device before measuring (default 200)")
	fs.Int64Var(&c.RateReadings, "rate-readings", 0, "readings counted per rate run (default 100000)")
	fs.IntVar(&c.RateRuns, "rate-runs", 0, "rate runs, each measuring mosquitto and the agent (default 3; -1: none)")
	fs.Float64Var(&c.SteadyRate, "steady-rate", 0, "publish rate of the steady runs, readings/s (default 10000)")
	fs.DurationVar(&c.SteadyFor, "steady-for", 0, "measured time of a steady run (default 20s)")
	fs.IntVar(&c.SteadyRuns, "steady-runs", 0, "steady runs (default 1; -1: none)")
	fs.IntVar(&c.SpikeEvery, "spike-every", 0, "readings per device between injected spikes in steady runs (default 200)")
	fs.BoolVar(&c.SpikeStagger, "spike-stagger", false, "give each device its own spike phase in steady runs (default: every device spikes at the same reading, a burst of events: the worst case)")
	fs.Func("agent-env", "`KEY=VALUE` in the agent's environment (repeatable), e.g. GOMAXPROCS=1", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("%q is not KEY=VALUE", v)
		}
		c.AgentEnv = append(c.AgentEnv, v)
		return nil
	})
	fs.StringVar(&c.NATSDir, "nats-dir", "", "put the embedded NATS server's JetStream store (the cloud's, not the gateway's) in a temporary directory under `DIR`, e.g. /dev/shm (default: with the other files)")
	fs.StringVar(&keep, "dir", "", "keep the brokers' and agents' files (logs, outboxes) in `DIR` (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "edgebench:", err)
		return 2
	}
	if c.Profile == "" {
		c.Profile = filepath.Join(root, "firmware-configs", "generic-sensor-model.yaml")
	}
	if c.Data == "" {
		c.Data = filepath.Join(root, "datasets", "nab", "data", "realKnownCause")
	}
	c.Dir = keep
	c.Log = stderr
	tmp, err := os.MkdirTemp("", "edgebench-bin-")
	if err != nil {
		fmt.Fprintln(stderr, "edgebench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	for _, b := range []struct {
		path      *string
		pkg, name string
		arch      string
	}{
		{&c.Edge, "./edge/cmd/outpost-edge", "outpost-edge", ""},
		{&c.Sensorsim, "./edge/cmd/sensorsim", "sensorsim", ""},
		{&c.Arm64, "./edge/cmd/outpost-edge", "outpost-edge-linux-arm64", "arm64"},
	} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(tmp, b.name)
		fmt.Fprintf(stderr, "building %s\n", *b.path)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", *b.path, b.pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, stderr, stderr
		if b.arch != "" {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.arch)
		}
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(stderr, "edgebench: build %s: %v\n", b.pkg, err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := sysbench.Run(ctx, c)
	if res != nil {
		res.Write(stdout, c)
	}
	if err != nil {
		fmt.Fprintln(stderr, "edgebench:", err)
		return 1
	}
	return 0
}

// repoRoot is the directory of go.work above the working directory.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOWORK: %w", err)
	}
	w := string(out)
	for len(w) > 0 && (w[len(w)-1] == '\n' || w[len(w)-1] == '\r') {
		w = w[:len(w)-1]
	}
	if w == "" || w == "off" {
		return "", fmt.Errorf("run edgebench inside the Outpost repository (no go.work found)")
	}
	return filepath.Dir(w), nil
}
