package fleet

import (
	"fmt"
	"os"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/spf13/cobra"
)

func newModelsPullCmd(g *globals) *cobra.Command {
	var (
		file   string
		tflite bool
	)
	cmd := &cobra.Command{
		Use:   "pull NAME[@VERSION] [-o FILE] [--tflite]",
		Short: "Download a model's signed package (or, with --tflite, its verified .tflite file)",
		Long: `Pull writes the signed package of NAME@VERSION (the latest version without
@VERSION) to FILE, default NAME@VERSION.opkg ("-" is stdout). The package is
verified with the service's public key first. With --tflite the .tflite
bytes alone are written (default NAME@VERSION.tflite). Here -o names the file;
a summary goes to stderr.`,
		Args: cobra.ExactArgs(1),
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
			c := api.NewClient(nc)
			key, err := c.PublicKey(ctx)
			if err != nil {
				return err
			}
			pub, err := modelpkg.ParsePublicKey(key.PublicKey)
			if err != nil {
				return err
			}
			mi, blob, err := c.PullModel(ctx, ref)
			if err != nil {
				return err
			}
			pkg, err := modelpkg.Decode(blob)
			if err != nil {
				return fmt.Errorf("%s: %w", mi.ID(), err)
			}
			if _, err := modelpkg.Verify(pkg, pub); err != nil {
				return fmt.Errorf("%s does not verify with the service's key %s: %w", mi.ID(), key.PublicKey, err)
			}
			data, ext := blob, ".opkg"
			if tflite {
				data, ext = pkg.Model, ".tflite"
			}
			if file == "" {
				file = mi.ID() + ext
			}
			if file == "-" {
				_, err = cmd.OutOrStdout().Write(data)
			} else {
				err = os.WriteFile(file, data, 0o644)
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", file, err)
			}
			cmd.PrintErrf("%s: wrote %d bytes to %s (file sha256 %s; signature ok, key %s)\n", mi.ID(), len(data), file, modelpkg.SumHex(data), key.KeyID)
			return nil
		},
	}
	// -o names the output file here, shadowing the global -o format flag.
	cmd.Flags().StringVarP(&file, "output", "o", "", "file to write (default NAME@VERSION.opkg, or .tflite with --tflite; - for stdout)")
	cmd.Flags().BoolVar(&tflite, "tflite", false, "write only the verified .tflite file")
	return cmd
}
