package fleet

import (
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func newDevicesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List devices with online status and last seen time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			devs, err := api.NewClient(nc).Devices(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				if devs == nil {
					devs = []api.Device{}
				}
				return writeJSON(out, devs)
			}
			t := newTable(out, "ID", "STATUS", "AGO", "VERSION", "PROFILE", "REV", "MODELS", "OUTBOX", "DROPS", "RAW", "UPLINK", "LAST ERROR")
			now := time.Now()
			for _, d := range devs {
				status := "offline"
				if d.Online {
					status = "online"
				}
				ago := "-"
				if !d.LastSeen.IsZero() {
					ago = now.Sub(d.LastSeen).Round(time.Second).String()
				}
				t.row(d.ID, status, ago,
					orDash(d.Version), orDash(d.Profile), strconv.FormatInt(d.Revision, 10), orDash(fmtModels(d.Models)),
					strconv.FormatUint(d.OutboxDepth, 10), strconv.FormatUint(d.Drops, 10),
					fmtBytes(d.RawBytes), fmtBytes(d.UplinkBytes), orDash(d.LastError))
			}
			if len(devs) == 0 {
				cmd.PrintErrln("no devices yet")
			}
			return t.flush()
		},
	}
}
