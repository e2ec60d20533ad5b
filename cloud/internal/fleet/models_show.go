package fleet

import (
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func newModelsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME[@VERSION]",
		Short: "Show a model version's manifest, hash, size and whether its signature verifies",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := api.ParseModelRef(args[0])
			if err != nil {
				return err
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, max(g.timeout, minModelTimeout))
			defer cancel()
			d, err := api.NewClient(nc).ShowModel(ctx, ref)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			return writeModelDetail(cmd, d)
		},
	}
}
