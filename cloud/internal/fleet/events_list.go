package fleet

import (
	"context"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func contextTimeout(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, d)
}

func newEventsListCmd(g *globals) *cobra.Command {
	var q api.EventsQuery
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stored events (oldest first; the newest --limit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseSince(q.Since, time.Now()); err != nil {
				return err
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			evs, err := api.NewClient(nc).Events(ctx, q)
			if err != nil {
				return err
			}
			return writeEvents(cmd, g, evs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Agent, "agent", "", "only events of this agent id")
	f.StringVar(&q.Since, "since", "", "only events stored since this long ago (e.g. 15m) or since an RFC 3339 time")
	f.IntVar(&q.Limit, "limit", api.DefaultEventsLimit, "at most this many events (the newest)")
	return cmd
}

func writeEvents(cmd *cobra.Command, g *globals, evs []api.Event) error {
	out := cmd.OutOrStdout()
	if g.output == "json" {
		if evs == nil {
			evs = []api.Event{}
		}
		return writeJSON(out, evs)
	}
	t := newTable(out, eventHeader...)
	for _, e := range evs {
		t.row(eventRow(e)...)
	}
	if len(evs) == 0 {
		cmd.PrintErrln("no events")
	}
	return t.flush()
}

var eventHeader = []string{"TS", "AGENT", "SEQ", "STREAM", "KIND", "SCORE", "VALUE", "MODEL", "SOURCE", "VERDICT", "CLOUD SCORE"}

func eventRow(e api.Event) []string {
	cloud := "-"
	if e.VerdictScore != nil {
		cloud = fmtFloat(*e.VerdictScore)
	}
	return []string{fmtTime(e.TS), e.Agent, strconv.FormatUint(e.Seq, 10), e.Stream, string(e.Kind),
		fmtFloat(e.Score), strconv.FormatFloat(e.Value, 'g', -1, 64), orDash(e.Model), orDash(e.Source), orDash(e.Verdict), cloud}
}
