package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/spf13/cobra"
)

// minModelTimeout bounds model pushes and pulls from below: they move whole
// files and the service test-runs pushed models.
const minModelTimeout = time.Minute

func newModelsCmd(g *globals) *cobra.Command {
	models := &cobra.Command{Use: "models", Short: "Signed model packages in the model store"}
	models.AddCommand(newModelsPushCmd(g), newModelsListCmd(g), newModelsShowCmd(g), newModelsPullCmd(g), newModelsVerifyCmd(g), newModelsDeleteCmd(g), newModelsHistoryCmd(g), newModelsApproveCmd(g))
	return models
}

func newModelsPushCmd(g *globals) *cobra.Command {
	var (
		name, role, manifestFile string
		version                  int
		force                    bool
	)
	cmd := &cobra.Command{
		Use:   "push FILE --name N --version V [--role edge|cloud] [--manifest M]",
		Short: "Validate, sign and store a .tflite model",
		Long: `Push uploads a .tflite file; outpost-cloud loads and test-runs it with the
runtime the gateways use, checks it fits its role (edge: integer-quantised;
cloud: float32 in and out), signs it with the fleet's key and stores it as
NAME@VERSION. Files the runtime refuses are refused with the reason.
--manifest adds a JSON object (window, features, normalisation, thresholds...)
to the package's manifest.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" || version < 1 {
				return fmt.Errorf("give --name and --version (an integer ≥ 1)")
			}
			model, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read model file: %w", err)
			}
			req := api.ModelPushRequest{Name: name, Version: version, Role: role, Force: force}
			if manifestFile != "" {
				m, err := os.ReadFile(manifestFile)
				if err != nil {
					return fmt.Errorf("read manifest: %w", err)
				}
				if !json.Valid(m) {
					return fmt.Errorf("manifest %s is not valid JSON", manifestFile)
				}
				req.Manifest = m
			}
			nc, err := g.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := contextTimeout(cmd, max(g.timeout, minModelTimeout))
			defer cancel()
			d, err := api.NewClient(nc).PushModel(ctx, model, req)
			if err != nil {
				return fmt.Errorf("push %s@%d: %w", name, version, err)
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			return writeModelDetail(cmd, d)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "model name (letters, digits, '-', '_', '.')")
	f.IntVar(&version, "version", 0, "model version, an integer ≥ 1")
	f.StringVar(&role, "role", "edge", "edge (int8, for gateways) or cloud (float, second stage)")
	f.StringVar(&manifestFile, "manifest", "", "JSON file whose fields go into the package's manifest")
	f.BoolVar(&force, "force", false, "replace the version if it is stored already")
	return cmd
}

func writeModelDetail(cmd *cobra.Command, d api.ModelDetail) error {
	out := cmd.OutOrStdout()
	sig := "ok"
	if !d.SignatureOK {
		sig = "FAILED: " + d.VerifyError
	}
	t := newTable(out, "FIELD", "VALUE")
	for _, kv := range [][2]string{
		{"model", d.ID()}, {"role", d.Role}, {"sha256", d.SHA256}, {"size", fmt.Sprintf("%d (%s)", d.Size, fmtBytes(uint64(d.Size)))},
		{"package", fmt.Sprintf("%s (%d bytes)", d.Object, d.PackageSize)}, {"created", fmtTime(d.Created)},
		{"key", d.KeyID}, {"signature", sig},
		{"inputs", orDash(joinComma(d.Inputs))}, {"outputs", orDash(joinComma(d.Outputs))}, {"operators", orDash(joinComma(d.Operators))},
	} {
		t.row(kv[0], kv[1])
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(d.Manifest) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, d.Manifest, "", "  ") != nil {
			pretty.Reset()
			pretty.Write(d.Manifest)
		}
		fmt.Fprintf(out, "manifest:\n%s\n", pretty.Bytes())
	}
	return nil
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}
