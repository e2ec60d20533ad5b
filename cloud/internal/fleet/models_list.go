package fleet

import (
	"strconv"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func newModelsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List stored model versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			ms, err := api.NewClient(nc).Models(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				if ms == nil {
					ms = []api.ModelInfo{}
				}
				return writeJSON(out, ms)
			}
			t := newTable(out, "MODEL", "ROLE", "SIZE", "SHA256", "CREATED", "KEY")
			for _, m := range ms {
				sum := m.SHA256
				if len(sum) > 12 {
					sum = sum[:12]
				}
				t.row(m.ID(), m.Role, strconv.FormatInt(m.Size, 10), sum, fmtTime(m.Created), m.KeyID)
			}
			if len(ms) == 0 {
				cmd.PrintErrln("no models yet (push one with `fleet models push FILE --name N --version V`)")
			}
			return t.flush()
		},
	}
}
