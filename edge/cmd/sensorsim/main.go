// Command sensorsim replays NAB-style CSV series (timestamp,value[,value...])
// as MQTT sensor readings for many devices at once, at a chosen speed-up, and
// can inject spikes whose details it logs to stderr as JSON.
//
// Each reading goes to <topic-prefix>/<device>/<sensor> as
// {"ts": "<RFC 3339 UTC>", "value": <number>}, or with several value columns
// {"ts": ..., "values": {"<column>": <number>, ...}}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/outpost-iot/outpost/edge/cmd/sensorsim/internal/sim"
)

// nabDir is the default data, looked up from the working directory upwards.
const nabDir = "datasets/nab/data/realKnownCause"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses args, replays, prints the summary and returns the exit code:
// 0 done (or stopped by a signal), 1 replay failed, 2 bad usage.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sensorsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        sim.Config
		data       string
		spikeEvery string
		qos        int
		timeMode   string
	)
	fs.StringVar(&cfg.MQTTURL, "mqtt", sim.DefaultMQTTURL, "MQTT broker `URL`")
	fs.StringVar(&cfg.Username, "username", "", "MQTT user name")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password")
	fs.StringVar(&cfg.ClientID, "client-id", "", "MQTT client id (default sensorsim-<random>)")
	fs.StringVar(&data, "data", "", "CSV `PATH`s, comma-separated: files, or directories searched recursively for *.csv\n(default: "+nabDir+" under the repository root, looked up from the working directory)")
	fs.BoolVar(&cfg.Strict, "strict", false, "fail on the first bad CSV line (default: skip it with a warning naming file and line)")
	fs.IntVar(&cfg.Devices, "devices", 0, "number of devices `N`; device i (id dev-<i>) replays file i mod the number of files (default one device per file)")
	fs.StringVar(&cfg.Sensor, "sensor", "", "sensor `NAME` in every topic (default the file's base name without .csv, as a topic token)")
	fs.StringVar(&cfg.TopicPrefix, "topic-prefix", sim.DefaultTopicPrefix, "first topic level; topics are <prefix>/<device>/<sensor>")
	fs.Float64Var(&cfg.Speedup, "speedup", 0, "data seconds per wall second `X` (3600 plays an hour of readings per second); 0 = as fast as possible")
	fs.Float64Var(&cfg.Rate, "rate", 0, "cap on total messages per second `N` across devices; 0 = none")
	fs.StringVar(&timeMode, "time", sim.TimeNow, "reading timestamps: original (the file's, repeated on every loop) or now (each series shifted to start now and\nadvancing at data pace: with --speedup above 1 they run ahead of the wall clock; never backwards)")
	fs.StringVar(&spikeEvery, "spike-every", "", "inject a spike into each device's series every `N` readings, or every DURATION of wall time (e.g. 30s); 0 = never")
	fs.BoolVar(&cfg.SpikeStagger, "spike-stagger", false, "give each device its own spike phase (a fixed pseudo-random offset within --spike-every) instead of all devices spiking at the same reading")
	fs.Float64Var(&cfg.SpikeSigma, "spike-sigma", sim.DefaultSpikeSigma, "spike value = mean + `S` x stddev of the recent readings of that series")
	fs.IntVar(&cfg.SpikeWindow, "spike-window", sim.DefaultSpikeWindow, "recent readings the spike statistics use")
	fs.IntVar(&qos, "qos", 1, "MQTT QoS, 0 or 1")
	fs.IntVar(&cfg.Inflight, "inflight", sim.DefaultInflight, "publishes awaiting acknowledgement, across devices (bounded window per device)")
	fs.Int64Var(&cfg.Count, "count", 0, "stop after `N` readings in total; 0 = the whole files")
	fs.BoolVar(&cfg.Loop, "loop", false, "restart each file at its end (until --count or a signal)")
	fs.DurationVar(&cfg.Timeout, "timeout", sim.DefaultTimeout, "connect timeout, and how long to wait for acknowledgements when stopping")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: sensorsim [flags]

Replays CSV time series (NAB layout: header "timestamp,value", timestamps
"YYYY-MM-DD HH:MM:SS" UTC; several value columns allowed, their names made
topic tokens) as MQTT readings:
topic <prefix>/<device>/<sensor>, payload {"ts":"<RFC 3339>","value":<n>}
or {"ts":...,"values":{"<column>":<n>,...}}. Readings are paced by the
difference to the previous row (clamped at >= 0) divided by --speedup.
Injected spikes, warnings and the final summary go to stderr as JSON lines.
SIGINT/SIGTERM stop cleanly.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, `
Example (demo: the realKnownCause series for 3 devices, 30 min of data per
second, a spike in each device every 30 s):
  sensorsim --mqtt tcp://127.0.0.1:1883 --devices 3 --speedup 1800 --spike-every 30s --loop
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sensorsim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	usage := func(err error) int {
		fmt.Fprintf(stderr, "sensorsim: %v\n", err)
		return 2
	}
	if qos != 0 && qos != 1 {
		return usage(fmt.Errorf("qos: %d must be 0 or 1", qos))
	}
	cfg.QoS0 = qos == 0
	cfg.Time = timeMode
	var err error
	if cfg.Spike, err = sim.ParseSpikeEvery(spikeEvery); err != nil {
		return usage(err)
	}
	if data == "" {
		data = defaultData()
	}
	if data == "" {
		return usage(fmt.Errorf("data: no --data given and no %s found above the working directory", nabDir))
	}
	if cfg.Files, err = sim.FindCSV(data); err != nil {
		return usage(err)
	}
	if err := cfg.Validate(); err != nil {
		return usage(err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg.Log = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := sim.Run(ctx, cfg)
	log.Info("summary",
		"devices", res.Devices,
		"published", res.Published,
		"failed", res.Failed,
		"spikes", res.Spikes,
		"skipped_lines", res.Skipped,
		"elapsed", res.Elapsed.Round(1e6).String(),
		"elapsed_seconds", res.Elapsed.Seconds(),
		"msgs_per_second", res.PerSecond(),
		"stopped_by_signal", ctx.Err() != nil,
	)
	if err != nil {
		log.Error("replay failed", "error", err.Error())
		return 1
	}
	return 0
}

// defaultData finds nabDir in the working directory or one of its parents
// (the repository root); "" if there is none.
func defaultData() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, nabDir)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			if rel, err := filepath.Rel(mustGetwd(), p); err == nil {
				return rel
			}
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
