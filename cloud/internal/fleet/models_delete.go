package fleet

import (
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func newModelsDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME@VERSION",
		Short: "Delete a model version from the store",
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
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			mi, err := api.NewClient(nc).DeleteModel(ctx, ref)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), mi)
			}
			cmd.Printf("deleted %s (sha256 %s)\n", mi.ID(), mi.SHA256)
			return nil
		},
	}
}
