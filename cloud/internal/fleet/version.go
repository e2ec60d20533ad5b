package fleet

import (
	"fmt"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd(g *globals) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the fleet CLI's version and the service's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res := struct {
				Client  string `json:"client"`
				Service string `json:"service,omitempty"`
			}{Client: buildinfo.String()}
			if !clientOnly {
				nc, err := g.connect()
				if err != nil {
					return err
				}
				defer nc.Close()
				ctx, cancel := contextTimeout(cmd, g.timeout)
				defer cancel()
				v, err := api.NewClient(nc).Version(ctx)
				if err != nil {
					return err
				}
				res.Service = v.Version
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				return writeJSON(out, res)
			}
			fmt.Fprintf(out, "fleet %s\n", res.Client)
			if res.Service != "" {
				fmt.Fprintf(out, "outpost-cloud %s\n", res.Service)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the CLI's version, without asking the service")
	return cmd
}
