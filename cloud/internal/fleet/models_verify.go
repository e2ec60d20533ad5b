package fleet

import (
	"fmt"
	"os"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/spf13/cobra"
)

func newModelsVerifyCmd(g *globals) *cobra.Command {
	var keyText string
	cmd := &cobra.Command{
		Use:   "verify FILE [--key ed25519:...]",
		Short: "Verify a pulled model package as a gateway would (signature, then sha256)",
		Long: `Verify checks a package file with a public key: --key (the form
` + "`fleet keys public`" + ` prints), or without it the service's key. It prints the
manifest's header and exits 1 if any check fails, saying which.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			blob, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read package: %w", err)
			}
			if keyText == "" {
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
				keyText = k.PublicKey
			}
			pub, err := modelpkg.ParsePublicKey(keyText)
			if err != nil {
				return err
			}
			pkg, err := modelpkg.Decode(blob)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			h, err := modelpkg.Verify(pkg, pub)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			res := struct {
				modelpkg.Header
				OK  bool   `json:"ok"`
				Key string `json:"key"`
			}{h, true, keyText}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s, sha256 %s, %d bytes, signed %s by %s)\n", h.ID(), h.Role, h.SHA256, h.Size, fmtTime(h.Created), keyText)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyText, "key", "", "public key ed25519:<base64> (default: ask the service)")
	return cmd
}
