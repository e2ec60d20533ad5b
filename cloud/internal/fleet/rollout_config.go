package fleet

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Firmware profiles: push and roll out, revisioned"}
	c.AddCommand(newConfigPushCmd(g))
	return c
}

func newConfigPushCmd(g *globals) *cobra.Command {
	var (
		req          api.ConfigPushRequest
		bake, swapTO time.Duration
		wait         bool
	)
	cmd := &cobra.Command{
		Use:   "push FILE --to all|group=G|device=D [--canary COUNT|PCT] [--bake DURATION] [--wait]",
		Short: "Validate, store and roll out a firmware profile",
		Long: `Push validates the profile as ` + "`outpost-edge validate`" + ` does (here, then again in
outpost-cloud), stores it as <name>.<revision> and rolls it out like a model
(` + "`fleet rollout start`" + `): canaries first, which must report the profile's name and
revision in their state; automatic rollback on failure. The profile needs a name and
a revision greater than any pushed before for that name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if err := profile.Check(text); err != nil {
				ps := profile.AsProblems(err)
				if ps == nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				for _, p := range ps {
					cmd.PrintErrf("%s: %s\n", args[0], p)
				}
				return fmt.Errorf("%s: %d problem(s); nothing pushed", args[0], len(ps))
			}
			req.Profile = string(text)
			req.Bake, req.SwapTimeout = wire.Duration(bake), wire.Duration(swapTO)
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			c := api.NewClient(nc)
			ctx, cancel := contextTimeout(cmd, max(g.timeout, 30*time.Second))
			r, err := c.PushConfig(ctx, req)
			cancel()
			if err != nil {
				return err
			}
			cmd.PrintErrf("rollout %s started: %s to %d agents (%d canaries)\n", r.ID, r.What(), len(r.Agents), r.Canaries)
			if wait {
				if r, err = waitRollout(cmd, g, c, r); err != nil {
					return err
				}
			}
			if err := writeRollout(cmd, g, r, false); err != nil {
				return err
			}
			if wait && r.State != api.RolloutSucceeded {
				return fmt.Errorf("rollout %s %s: %s", r.ID, strings.ReplaceAll(r.State, "_", " "), r.Reason)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.To, "to", "", "agents: all, group=G or device=D (required)")
	f.StringVar(&req.Canary, "canary", "", "canaries: a count (2) or a share (10%); default 1, 0 for none")
	f.DurationVar(&bake, "bake", 30*time.Second, "how long the canaries must stay healthy before the rest follow")
	f.DurationVar(&swapTO, "swap-timeout", 0, "how long an agent has to report the profile (default 2m)")
	f.IntVar(&req.BatchSize, "batch", 0, "agents given the profile at once after the canaries (default a quarter)")
	f.BoolVar(&wait, "wait", false, "follow the rollout until it ends; exit 1 unless it succeeded")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
