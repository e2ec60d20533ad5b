package fleet

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func newRolloutStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status [ID]",
		Short: "List rollouts, or show one with the phase of each agent",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			c := api.NewClient(nc)
			if len(args) == 1 {
				r, err := c.RolloutStatus(ctx, args[0])
				if err != nil {
					return err
				}
				return writeRollout(cmd, g, r, true)
			}
			list, err := c.Rollouts(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if list == nil {
					list = []api.Rollout{}
				}
				return writeJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "GIVES", "TO", "STREAM", "STATE", "AGENTS", "CREATED", "REASON")
			for _, r := range list {
				t.row(r.ID, r.What(), r.To, orDash(r.Stream), r.State, fmtCounts(r.Counts), fmtTime(r.Created), orDash(r.Reason))
			}
			if len(list) == 0 {
				cmd.PrintErrln("no rollouts yet")
			}
			return t.flush()
		},
	}
}

func newRolloutAbortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "abort ID",
		Short: "Stop a rollout and leave every agent where it is",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rolloutAction(cmd, g, args[0], (*api.Client).AbortRollout)
		},
	}
}

func newRolloutRollbackCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback ID",
		Short: "Restore the previous desired model of every agent a rollout touched",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rolloutAction(cmd, g, args[0], (*api.Client).RollbackRollout)
		},
	}
}

func rolloutAction(cmd *cobra.Command, g *globals, id string, fn func(*api.Client, context.Context, string) (api.Rollout, error)) error {
	nc, err := g.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := contextTimeout(cmd, max(g.timeout, 15*time.Second))
	defer cancel()
	r, err := fn(api.NewClient(nc), ctx, id)
	if err != nil {
		return err
	}
	return writeRollout(cmd, g, r, false)
}

// writeRollout prints a rollout: JSON, or a summary (and with agents, a
// table of them).
func writeRollout(cmd *cobra.Command, g *globals, r api.Rollout, agents bool) error {
	out := cmd.OutOrStdout()
	if g.output == "json" {
		return writeJSON(out, r)
	}
	fmt.Fprintf(out, "rollout  %s\ngives    %s (stream %s) to %s\nstate    %s\n", r.ID, r.What(), orDash(r.Stream), r.To, r.State)
	if r.Reason != "" {
		fmt.Fprintf(out, "reason   %s\n", r.Reason)
	}
	fmt.Fprintf(out, "canaries %d, bake %s, swap timeout %s, batch %d\nagents   %s\ncreated  %s\n",
		r.Canaries, time.Duration(r.Bake), time.Duration(r.SwapTimeout), r.BatchSize, fmtCounts(r.Counts), fmtTime(r.Created))
	if !r.Finished.IsZero() {
		fmt.Fprintf(out, "finished %s\n", fmtTime(r.Finished))
	}
	if !agents || len(r.Agents) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	t := newTable(out, "AGENT", "PHASE", "CANARY", "PREVIOUS", "SINCE", "ERROR")
	for _, a := range r.Agents {
		t.row(a.ID, a.Phase, strconv.FormatBool(a.Canary), orDash(a.Previous), fmtTime(a.Since), orDash(a.Error))
	}
	return t.flush()
}

// fmtCounts prints phase counts in phase order, e.g. "running=3,pending=2".
func fmtCounts(m map[string]int) string {
	var parts []string
	for _, p := range []string{api.PhasePending, api.PhaseDesired, api.PhaseRunning, api.PhaseFailed, api.PhaseRolledBack, api.PhaseSkipped} {
		if m[p] > 0 {
			parts = append(parts, p+"="+strconv.Itoa(m[p]))
		}
	}
	return orDash(strings.Join(parts, ","))
}
