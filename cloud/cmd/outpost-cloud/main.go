// Command outpost-cloud is Outpost's cloud service: it receives edge events
// from JetStream, keeps the fleet registry and serves the fleet API, a
// dashboard and metrics.
//
//	outpost-cloud serve [--data DIR] [--nats-listen HOST:PORT | --nats URL] [--http HOST:PORT]
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
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
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
