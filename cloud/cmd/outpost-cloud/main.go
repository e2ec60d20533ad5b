// Command outpost-cloud is Outpost's cloud service: it receives edge events
// and summaries from JetStream, re-scores them into verdicts, sends
// confirmed anomalies to a webhook, keeps the fleet registry and serves the
// fleet API, a dashboard and metrics.
//
//	outpost-cloud serve [--data DIR] [--nats-listen HOST:PORT | --nats URL] [--http HOST:PORT]
//	                    [--webhook URL] [--second-stage forecast-cloud|robust-zscore|MODEL[@V]]
//	                    [--score-threshold X] [--batch N]
//	                    [--learn auto|approve|off] [--learn-interval 1h] [--learn-to auto] [--learn-bake 1m] [--learn-lease 15s]
//	outpost-cloud version
//
// serve logs "ready" (slog text on stderr) once it accepts requests.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/learn"
	"github.com/outpost-iot/outpost/cloud/internal/service"
	"github.com/outpost-iot/outpost/shared/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage:\n  outpost-cloud serve [flags]\n  outpost-cloud version\n\nRun 'outpost-cloud serve -h' for the flags.\n")
}

func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Println(buildinfo.String())
		return 0
	case "serve":
		return serve(args[1:])
	case "-h", "--help", "help":
		usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "outpost-cloud: unknown command %q\n", args[0])
	usage()
	return 2
}

func serve(args []string) int {
	var cfg service.Config
	var level slog.Level
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", "./outpost-data", "directory of the embedded NATS server's JetStream store")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server (port 0: any free port)")
	fs.StringVar(&cfg.NATSURL, "nats", "", "URL of an external NATS server to use instead of the embedded one")
	fs.StringVar(&cfg.HTTPListen, "http", "127.0.0.1:8080", "address of the HTTP dashboard, API and /metrics (port 0: any free port)")
	fs.IntVar(&cfg.RingSize, "ring", 0, "how many latest events to keep in memory for the dashboard (0: default)")
	fs.IntVar(&cfg.Batch, "batch", 0, "most messages each durable consumer processes as one batch (0: default 4000 for events, 1000 for summaries and verdicts)")
	fs.StringVar(&cfg.Scorer, "second-stage", "forecast-cloud", "second-stage scorer: forecast-cloud (the stock float model), robust-zscore, or a cloud model in the model store (name or name@version)")
	fs.StringVar(&cfg.Scorer, "scorer", "forecast-cloud", "the same as --second-stage (older name)")
	fs.Float64Var(&cfg.ScoreThreshold, "score-threshold", 0, "second-stage confirm threshold (0: the scorer's default)")
	fs.StringVar(&cfg.Webhook.URL, "webhook", "", "URL that receives confirmed anomalies as JSON POSTs (empty: no webhook)")
	fs.IntVar(&cfg.Webhook.MaxAttempts, "webhook-attempts", 5, "webhook POST attempts before an alert is dead-lettered")
	fs.DurationVar(&cfg.Webhook.Backoff, "webhook-backoff", 500*time.Millisecond, "wait after the first failed webhook POST, doubled after each further failure")
	fs.StringVar(&cfg.SigningKey, "signing-key", "", "model-signing key file (ed25519, PEM), created if missing; replicas on one NATS must share it (default <data>/keys/model-signing.key)")
	fs.Int64Var(&cfg.MaxModelBytes, "max-model-bytes", 0, "largest model file `fleet models push` accepts (0: 32 MiB)")
	fs.StringVar(&cfg.Learn.Mode, "learn", "off", "learning loop: auto (roll out better challengers at once), approve (wait for `fleet models approve NAME@VERSION`) or off")
	fs.DurationVar(&cfg.Learn.Interval, "learn-interval", learn.DefaultInterval, "learning schedule: a challenger per stream this often, besides on drift")
	fs.StringVar(&cfg.Learn.RolloutTo, "learn-to", learn.AutoTargets, "agents a promoted challenger is rolled out to: auto (those running the champion: all, their group or the one device), all, group=G or device=D")
	fs.StringVar(&cfg.Learn.Canary, "learn-canary", "", "canaries of a learning rollout: a count or a share (empty: 1 when there are two agents or more)")
	fs.DurationVar(&cfg.Learn.Bake, "learn-bake", time.Minute, "how long a learning rollout's canaries must stay healthy before the rest follow")
	fs.DurationVar(&cfg.Learn.Lease, "learn-lease", learn.DefaultLease, "leader lease of the learning loop: the longest a dead replica keeps the loop stopped (set by the replica that creates the lease bucket)")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if _, err := learn.ParseMode(cfg.Learn.Mode); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-cloud:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc, err := service.Start(ctx, cfg)
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	<-ctx.Done()
	logger.Info("shutting down")
	svc.Stop()
	return 0
}
