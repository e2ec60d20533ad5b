// Package fleet is the fleet CLI: one cobra command per noun-verb, built by
// constructors so tests run the root command in-process. Results go to
// the command's stdout, information to its stderr; -o json output is stable.
package fleet

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

// DefaultNATSURL is used when neither --nats nor $OUTPOST_NATS is given.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// EnvNATS names the environment variable that sets the NATS URL.
const EnvNATS = "OUTPOST_NATS"

// globals are the persistent flags.
type globals struct {
	natsURL string
	output  string
	timeout time.Duration
}

// connect dials NATS with an error that says what to check.
func (g *globals) connect() (*nats.Conn, error) {
	nc, err := nats.Connect(g.natsURL, nats.Name("fleet"), nats.Timeout(g.timeout))
	if err != nil {
		return nil, fmt.Errorf("cannot reach NATS at %s: %w (is outpost-cloud running? set --nats or $%s)", g.natsURL, err, EnvNATS)
	}
	return nc, nil
}

func (g *globals) checkOutput() error {
	switch g.output {
	case "table", "json":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o table or -o json", g.output)
}

// NewRoot returns the fleet root command with all subcommands.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "fleet",
		Short:         "Manage an Outpost fleet: devices, events, verdicts, models, keys",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.checkOutput()
		},
	}
	def := DefaultNATSURL
	if v := os.Getenv(EnvNATS); v != "" {
		def = v
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.natsURL, "nats", def, "NATS server URL (env "+EnvNATS+")")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "timeout for connecting and for each request")
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp
	})

	devices := &cobra.Command{Use: "devices", Short: "Devices in the fleet registry"}
	devices.AddCommand(newDevicesListCmd(g))
	events := &cobra.Command{Use: "events", Short: "Anomalies and uncertain readings from the edge"}
	events.AddCommand(newEventsListCmd(g), newEventsTailCmd(g))
	verdicts := &cobra.Command{Use: "verdicts", Short: "The cloud's second-stage decisions on forwarded events"}
	verdicts.AddCommand(newVerdictsListCmd(g))
	root.AddCommand(devices, events, verdicts, newVersionCmd(g))
	root.AddCommand(newModelsCmd(g), newKeysCmd(g))
	root.AddCommand(newRolloutCmd(g), newConfigCmd(g))
	return root
}
