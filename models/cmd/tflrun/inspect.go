package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/spf13/cobra"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Print a model's operators, tensors, inputs and outputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := tflite.LoadFile(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeInspectJSON(cmd.OutOrStdout(), m)
			}
			return writeInspect(cmd.OutOrStdout(), m)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	return cmd
}

// tensorDesc is one tensor in inspect's JSON output.
type tensorDesc struct {
	Index      int       `json:"index"`
	Name       string    `json:"name"`
	Dtype      string    `json:"dtype"`
	Shape      []int     `json:"shape"`
	Scales     []float32 `json:"scales,omitempty"`
	ZeroPoints []int64   `json:"zero_points,omitempty"`
	// QuantizedDimension is set for quantized tensors.
	QuantizedDimension *int `json:"quantized_dimension,omitempty"`
	Constant           bool `json:"constant,omitempty"`
	Variable           bool `json:"variable,omitempty"`
	Buffer             int  `json:"buffer,omitempty"`
}

// opDesc is one operator in inspect's JSON output.
type opDesc struct {
	Index   int    `json:"index"`
	Op      string `json:"op"`
	Builtin int32  `json:"builtin_code"`
	Version int32  `json:"version"`
	Inputs  []int  `json:"inputs"`
	Outputs []int  `json:"outputs"`
}

type inspectDesc struct {
	Description string       `json:"description,omitempty"`
	ArenaBytes  int          `json:"arena_bytes"`
	Inputs      []int        `json:"inputs"`
	Outputs     []int        `json:"outputs"`
	Operators   []opDesc     `json:"operators"`
	Tensors     []tensorDesc `json:"tensors"`
}

func describeTensor(t *tflite.TensorInfo) tensorDesc {
	d := tensorDesc{Index: t.Index, Name: t.Name, Dtype: t.Type.String(), Shape: t.Shape,
		Constant: t.Constant, Variable: t.Variable, Buffer: t.Buffer}
	if d.Shape == nil {
		d.Shape = []int{}
	}
	if q := t.Quantization; q.Quantized() {
		d.Scales, d.ZeroPoints = q.Scales, q.ZeroPoints
		dim := q.Dim
		d.QuantizedDimension = &dim
	}
	return d
}

func writeInspectJSON(w io.Writer, m *tflite.Model) error {
	d := inspectDesc{Description: m.Description(), ArenaBytes: m.ArenaBytes(),
		Inputs: m.InputIndices(), Outputs: m.OutputIndices()}
	for _, o := range m.Operators() {
		d.Operators = append(d.Operators, opDesc{Index: o.Index, Op: o.Name, Builtin: o.Builtin,
			Version: o.Version, Inputs: o.Inputs, Outputs: o.Outputs})
	}
	ts := m.Tensors()
	for i := range ts {
		d.Tensors = append(d.Tensors, describeTensor(&ts[i]))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// tensorLine formats a tensor on one line:
// `3 "conv/w" int8 [8 1 3 2] scales=[...] zero_points=[...] dim=0 const`.
func tensorLine(t *tflite.TensorInfo) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d %q %s %v", t.Index, t.Name, t.Type, t.Shape)
	if q := t.Quantization; q.Quantized() {
		if len(q.Scales) == 1 {
			fmt.Fprintf(&sb, " scale=%g zero_point=%d", q.Scales[0], q.ZeroPoints[0])
		} else {
			fmt.Fprintf(&sb, " scales=%v zero_points=%v quantized_dimension=%d", q.Scales, q.ZeroPoints, q.Dim)
		}
	}
	switch {
	case t.Constant:
		fmt.Fprintf(&sb, " const(buffer %d, %d bytes)", t.Buffer, len(t.Data))
	case t.Variable:
		sb.WriteString(" variable")
	}
	return sb.String()
}

func writeInspect(w io.Writer, m *tflite.Model) error {
	var sb strings.Builder
	ts := m.Tensors()
	if m.Description() != "" {
		fmt.Fprintf(&sb, "description: %s\n", m.Description())
	}
	fmt.Fprintf(&sb, "arena: %d bytes\n", m.ArenaBytes())
	fmt.Fprintf(&sb, "inputs:\n")
	for k, i := range m.InputIndices() {
		fmt.Fprintf(&sb, "  input%d: %s\n", k, tensorLine(&ts[i]))
	}
	fmt.Fprintf(&sb, "outputs:\n")
	for k, i := range m.OutputIndices() {
		fmt.Fprintf(&sb, "  output%d: %s\n", k, tensorLine(&ts[i]))
	}
	fmt.Fprintf(&sb, "operators (%d):\n", len(m.Operators()))
	for _, o := range m.Operators() {
		fmt.Fprintf(&sb, "  %d %s v%d inputs=%v outputs=%v\n", o.Index, o.Name, o.Version, o.Inputs, o.Outputs)
	}
	fmt.Fprintf(&sb, "tensors (%d):\n", len(ts))
	for i := range ts {
		fmt.Fprintf(&sb, "  %s\n", tensorLine(&ts[i]))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
