package fleet

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/spf13/cobra"
)

func newRolloutCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "rollout", Short: "Roll models out to agents: canaries first, health gate, automatic rollback"}
	c.AddCommand(newRolloutStartCmd(g), newRolloutStatusCmd(g), newRolloutAbortCmd(g), newRolloutRollbackCmd(g))
	return c
}

func newRolloutStartCmd(g *globals) *cobra.Command {
	var (
		req          api.RolloutStartRequest
		bake, swapTO time.Duration
		wait         bool
	)
	cmd := &cobra.Command{
		Use:   "start NAME@VERSION --to all|group=G|device=D [--canary COUNT|PCT] [--bake DURATION] [--stream PATTERN] [--wait]",
		Short: "Start rolling a stored model out to agents",
		Long: `Start writes the model into the desired state of the selected online agents:
the canaries first (--canary 2 or 10%; default 1, 0 for none), which must report
running it within --swap-timeout without a new error and, for --bake, keep their
anomaly and decode-error rates within 3x their rates before + 0.01; then the rest,
--batch at a time (default a quarter). Any failure rolls every agent back to its
previous desired model. With --wait it follows the rollout to its end (a progress
bar on a terminal) and exits 1 unless it succeeded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Model = args[0]
			req.Bake, req.SwapTimeout = wire.Duration(bake), wire.Duration(swapTO)
			if _, _, err := wire.ParseModelID(req.Model); err != nil {
				return fmt.Errorf("rollout start: %w", err)
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			c := api.NewClient(nc)
			ctx, cancel := contextTimeout(cmd, max(g.timeout, 30*time.Second))
			r, err := c.StartRollout(ctx, req)
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
	f.StringVar(&req.Stream, "stream", "", "stream or stream pattern the model is for (default *, every stream)")
	f.DurationVar(&swapTO, "swap-timeout", 0, "how long an agent has to report the new model (default 2m)")
	f.IntVar(&req.BatchSize, "batch", 0, "agents given the model at once after the canaries (default a quarter)")
	f.BoolVar(&wait, "wait", false, "follow the rollout until it ends; exit 1 unless it succeeded")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// waitRollout polls the rollout until it ends, drawing progress on stderr:
// a bar redrawn in place on a terminal, a line per change otherwise.
func waitRollout(cmd *cobra.Command, g *globals, c *api.Client, r api.Rollout) (api.Rollout, error) {
	errw := cmd.ErrOrStderr()
	tty := isTerminal(errw)
	last := ""
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		line := progressLine(r)
		if line != last {
			if tty {
				fmt.Fprintf(errw, "\r%s\033[K", line)
			} else {
				fmt.Fprintln(errw, line)
			}
			last = line
		}
		if r.Terminal() && r.Request == "" {
			if tty {
				fmt.Fprintln(errw)
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		qctx, cancel := context.WithTimeout(ctx, g.timeout)
		next, err := c.RolloutStatus(qctx, r.ID)
		cancel()
		if err != nil {
			return r, fmt.Errorf("follow rollout %s: %w", r.ID, err)
		}
		r = next
	}
}

// progressLine is e.g. "[########------------] 20/50 running  state canary  1 failed".
func progressLine(r api.Rollout) string {
	const width = 30
	total := 0
	for phase, n := range r.Counts {
		if phase != api.PhaseSkipped {
			total += n
		}
	}
	done := r.Counts[api.PhaseRunning]
	if r.State == api.RolloutRollingBack || r.State == api.RolloutRolledBack {
		done = r.Counts[api.PhaseRolledBack]
	}
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	var b strings.Builder
	b.WriteString("[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "] ")
	b.WriteString(strconv.Itoa(done) + "/" + strconv.Itoa(total))
	if r.State == api.RolloutRollingBack || r.State == api.RolloutRolledBack {
		b.WriteString(" rolled back")
	} else {
		b.WriteString(" running " + r.What())
	}
	b.WriteString("  " + r.State)
	if n := r.Counts[api.PhaseFailed]; n > 0 {
		b.WriteString("  " + strconv.Itoa(n) + " failed")
	}
	if r.State == api.RolloutBaking && !r.BakeUntil.IsZero() {
		b.WriteString("  bake ends " + r.BakeUntil.UTC().Format(time.TimeOnly))
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
