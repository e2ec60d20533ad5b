package fleet

import (
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/spf13/cobra"
)

func newVerdictsListCmd(g *globals) *cobra.Command {
	var q api.EventsQuery
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stored verdicts (oldest first; the newest --limit)",
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
			vs, err := api.NewClient(nc).Verdicts(ctx, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				if vs == nil {
					vs = []wire.Verdict{}
				}
				return writeJSON(out, vs)
			}
			t := newTable(out, "DECIDED", "AGENT", "SEQ", "STREAM", "EDGE KIND", "DECISION", "SCORE", "MODEL", "LATENCY", "REASON")
			for _, v := range vs {
				t.row(fmtTime(v.Decided), v.Agent, strconv.FormatUint(v.Seq, 10), v.Stream, string(v.EdgeKind), string(v.Decision),
					fmtFloat(v.Score), v.Model, strconv.FormatFloat(v.LatencyMS, 'f', 1, 64)+"ms", orDash(v.Reason))
			}
			if len(vs) == 0 {
				cmd.PrintErrln("no verdicts")
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Agent, "agent", "", "only verdicts for this agent id")
	f.StringVar(&q.Since, "since", "", "only verdicts stored since this long ago (e.g. 15m) or since an RFC 3339 time")
	f.IntVar(&q.Limit, "limit", api.DefaultEventsLimit, "at most this many verdicts (the newest)")
	return cmd
}
