package fleet

import (
	"fmt"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

func newKeysCmd(g *globals) *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "The fleet's model-signing key"}
	keys.AddCommand(&cobra.Command{
		Use:   "public",
		Short: "Print the model-signing public key (ed25519:<base64>) for gateway profiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, g.timeout)
			defer cancel()
			k, err := api.NewClient(nc).PublicKey(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.PublicKey)
			return nil
		},
	})
	return keys
}
