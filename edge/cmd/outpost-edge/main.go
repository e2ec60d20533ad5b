// Command outpost-edge is the Outpost edge agent: it reads MQTT sensor
// readings, scores them on the gateway and forwards anomalies and summaries
// to the cloud over NATS JetStream.
//
//	outpost-edge run --config profile.yaml [--agent-id ID] [--nats URL] [--mqtt URL | --mqtt-listen ADDR] [--data DIR]
//	outpost-edge validate --config profile.yaml
//	outpost-edge version
//
// The version is stamped with
// -ldflags "-X github.com/outpost-iot/outpost/shared/buildinfo.Version=v1.2.3".
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-iot/outpost/edge/internal/agent"
	"github.com/outpost-iot/outpost/shared/buildinfo"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot(os.Stderr).Execute(); err != nil {
		os.Exit(1)
	}
}

func newRoot(stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "outpost-edge",
		Short:         "Outpost edge agent",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.SetErr(stderr)
	root.AddCommand(newRun(), newValidate(), newVersion())
	return root
}

func newRun() *cobra.Command {
	var config string
	var o agent.Overrides
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			slog.SetDefault(log)
			p, err := profile.Load(config)
			if err != nil {
				return fmt.Errorf("%s:\n%w", config, err)
			}
			a, err := agent.New(agent.Options{Profile: o.Apply(p), Version: buildinfo.String(), Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "firmware profile (YAML)")
	f.StringVar(&o.AgentID, "agent-id", "", "agent id (overrides agent.id)")
	f.StringVar(&o.NATS, "nats", "", "NATS URL (overrides nats.url)")
	f.StringVar(&o.MQTT, "mqtt", "", "external MQTT broker URL (overrides mqtt, disables the embedded broker)")
	f.StringVar(&o.MQTTListen, "mqtt-listen", "", "embedded MQTT broker address (overrides mqtt, enables the embedded broker)")
	f.StringVar(&o.DataDir, "data", "", "data directory for the outbox (overrides data_dir)")
	f.StringVar(&o.MetricsListen, "metrics-listen", "", "address to serve /metrics on (overrides metrics.listen)")
	cmd.MarkFlagRequired("config")
	cmd.MarkFlagsMutuallyExclusive("mqtt", "mqtt-listen")
	return cmd
}

func newValidate() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "validate --config FILE",
		Short: "Check a firmware profile and print every problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(config)
			if err != nil {
				return err
			}
			if err := profile.Check(b); err != nil {
				ps := profile.AsProblems(err)
				if ps == nil {
					return fmt.Errorf("%s: %w", config, err)
				}
				for _, pr := range ps {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", config, pr)
				}
				return fmt.Errorf("%s: %d problem(s)", config, len(ps))
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "firmware profile (YAML)")
	cmd.MarkFlagRequired("config")
	return cmd
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String())
		},
	}
}
