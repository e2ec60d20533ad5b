package fleet

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/spf13/cobra"
)

func newEventsTailCmd(g *globals) *cobra.Command {
	var agent string
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print new events as they arrive, until Ctrl-C (-o json: one object per line)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := names.EventsAll
			if agent != "" {
				if err := names.ValidAgentID(agent); err != nil {
					return err
				}
				subject = names.EventSubject(agent)
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			octx, cancel := contextTimeout(cmd, g.timeout)
			cons, err := js.OrderedConsumer(octx, names.StreamEvents, jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{subject},
				DeliverPolicy:  jetstream.DeliverNewPolicy,
			})
			cancel()
			if err != nil {
				return fmt.Errorf("follow stream %s: %w (is outpost-cloud running? it creates the stream)", names.StreamEvents, err)
			}
			out := cmd.OutOrStdout()
			if g.output == "table" {
				fmt.Fprintf(out, tailFormat, "TS", "AGENT", "SEQ", "STREAM", "KIND", "SCORE", "VALUE", "MODEL", "SOURCE")
			}
			cmd.PrintErrf("following %s on %s; Ctrl-C to stop\n", subject, g.natsURL)
			msgs, err := cons.Messages()
			if err != nil {
				return err
			}
			go func() {
				<-ctx.Done()
				msgs.Stop()
			}()
			enc := json.NewEncoder(out)
			for {
				msg, err := msgs.Next()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("tail: %w", err)
				}
				var e api.Event
				if err := json.Unmarshal(msg.Data(), &e.Event); err != nil {
					cmd.PrintErrf("skipping undecodable event on %s: %v\n", msg.Subject(), err)
					continue
				}
				if md, err := msg.Metadata(); err == nil {
					e.StreamSeq = md.Sequence.Stream
					e.Received = md.Timestamp.UTC()
				}
				if g.output == "json" {
					if err := enc.Encode(e); err != nil {
						return err
					}
					continue
				}
				r := eventRow(e)
				fmt.Fprintf(out, tailFormat, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
			}
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "only events of this agent id")
	return cmd
}

// tailFormat lays out a followed event as a table row; sequence numbers of
// new outboxes are microseconds since 1970 (16 digits).
const tailFormat = "%-20s  %-16s  %16s  %-28s  %-9s  %7s  %10s  %-16s  %s\n"
