// Command tflrun inspects and runs TensorFlow Lite models with Outpost's
// pure-Go runtime (package tflite).
//
//	tflrun inspect [--json] MODEL
//	tflrun run --model MODEL [--input FILE]... [--seed N] --output-dir DIR [--bench N]
//
// inspect prints the model's inputs, outputs, operators (index, name,
// version, input and output tensors) and tensors (index, name, dtype,
// shape, quantization, constant or variable).
//
// run feeds one raw little-endian file per model input, in the order of
// the model's inputs (each must hold exactly the tensor's bytes), or, with
// no --input, seeded pseudo-random inputs (uniform over the type's range
// for integers, [0, 1) for floats; saved as DIR/input0.bin, ...); it
// writes each output as raw little-endian bytes of its dtype to
// DIR/output0.bin, DIR/output1.bin, ... and prints a JSON summary of the
// inputs and outputs to stdout. With --bench N it then times N Invoke
// calls after a warm-up of max(10, N/10) and adds "median_us" and
// "p99_us" to the summary.
package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot(os.Stdout, os.Stderr).Execute(); err != nil {
		os.Exit(1)
	}
}

// newRoot builds the command tree; results go to stdout, errors and
// information to stderr.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "tflrun",
		Short:         "Inspect and run TensorFlow Lite models with the pure-Go runtime",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newInspectCmd(), newRunCmd())
	return root
}
