package fleet

import (
	"fmt"
	"strings"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/spf13/cobra"
)

func newModelsHistoryCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history [NAME]",
		Short: "List the learning loop's decisions (drift, challengers, promotions), newest first",
		Long: `History lists what outpost-cloud's learning loop decided, newest first: drift
seen on a stream, challengers trained and compared with the champion (with
the numbers), promoted (with the rollout id), rejected, awaiting approval, or
failed. NAME restricts the list to one model name. -o json prints every
field.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := api.ModelHistoryQuery{Limit: limit}
			if len(args) == 1 {
				q.Name = args[0]
				if err := modelpkg.ValidName(q.Name); err != nil {
					return err
				}
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			ds, err := api.NewClient(nc).ModelHistory(ctx, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				if ds == nil {
					ds = []api.ModelDecision{}
				}
				return writeJSON(out, ds)
			}
			t := newTable(out, "TIME", "KIND", "STREAM", "CHAMPION", "CHALLENGER", "ERROR", "FALSE-ALARMS", "ROLLOUT", "REASON")
			for _, d := range ds {
				errs, fa := "-", "-"
				if c := d.Compare; c != nil {
					errs = fmt.Sprintf("%.4f→%.4f", c.ChampionMeanError, c.ChallengerMeanError)
					fa = fmt.Sprintf("%.1f%%→%.1f%%", 100*c.ChampionFalseAlarms, 100*c.ChallengerFalseAlarms)
				}
				reason := d.Reason
				if i := strings.Index(reason, " — "); i > 0 {
					reason = reason[:i] // the numbers are in their columns
				}
				t.row(fmtTime(d.Time), d.Kind, d.Stream, d.Champion, orDash(d.Challenger), errs, fa, orDash(d.Rollout), orDash(reason))
			}
			if len(ds) == 0 {
				cmd.PrintErrln("no learning decisions yet (outpost-cloud serve --learn auto|approve)")
			}
			return t.flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "most decisions listed (0: 100)")
	return cmd
}

func newModelsApproveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approve NAME@VERSION",
		Short: "Roll out a challenger the learning loop keeps awaiting approval",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := api.ParseModelRef(args[0])
			if err != nil {
				return err
			}
			if ref.Version == 0 {
				return fmt.Errorf("name the version to approve, e.g. %s@2 (see `fleet models history %s`)", ref.Name, ref.Name)
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, max(g.timeout, minModelTimeout))
			defer cancel()
			d, err := api.NewClient(nc).ApproveModel(ctx, ref)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s approved: rollout %s started (`fleet rollout status %s`)\n", d.Challenger, d.Rollout, d.Rollout)
			return nil
		},
	}
}
