package tflite

import (
	"fmt"
	"io"
	"strings"
)

// ArenaBytes returns the size of the arena each interpreter of this model
// allocates (non-constant tensors and scratch, after lifetime sharing).
func (m *Model) ArenaBytes() int { return m.plan.size }

// TensorLifetime returns the first and last operator index during which a
// non-constant tensor's memory is live (-1 = before the first operator,
// len(Operators()) = after the last), and its arena offset; ok is false
// for tensors that take no arena memory (constants, unused tensors).
func (m *Model) TensorLifetime(i int) (first, last, offset int, ok bool) {
	if i < 0 || i >= len(m.tensors) || m.plan.tensorOff[i] < 0 {
		return 0, 0, 0, false
	}
	first, last = m.lifetime(i)
	return first, last, m.plan.tensorOff[i], true
}

// lifetime recomputes tensor i's live range as makePlan does.
func (m *Model) lifetime(i int) (first, last int) {
	first, last = len(m.operators)+1, -2
	use := func(op int) {
		first = min(first, op)
		last = max(last, op)
	}
	for _, t := range m.inputs {
		if t == i {
			use(-1)
			use(len(m.operators))
		}
	}
	for k := range m.operators {
		o := &m.operators[k]
		for _, t := range o.Inputs {
			if t == i {
				use(k)
			}
		}
		for _, t := range o.Outputs {
			if t == i {
				use(k)
			}
		}
	}
	for _, t := range m.outputs {
		if t == i {
			use(len(m.operators))
		}
	}
	if m.tensors[i].Variable {
		first, last = -1, len(m.operators)
	}
	return first, last
}

// WriteSummary writes a human-readable description of the model: inputs,
// outputs, operators in execution order with their tensors, and every
// tensor with its type, shape and quantization. It is what `tflrun
// inspect` prints.
func (m *Model) WriteSummary(w io.Writer) error {
	var sb strings.Builder
	if m.description != "" {
		fmt.Fprintf(&sb, "description: %s\n", m.description)
	}
	fmt.Fprintf(&sb, "schema version: %d\n", m.version)
	fmt.Fprintf(&sb, "arena: %d bytes\n", m.plan.size)
	fmt.Fprintf(&sb, "inputs:\n")
	for _, i := range m.inputs {
		fmt.Fprintf(&sb, "  %s\n", m.tensors[i].String())
	}
	fmt.Fprintf(&sb, "outputs:\n")
	for _, i := range m.outputs {
		fmt.Fprintf(&sb, "  %s\n", m.tensors[i].String())
	}
	fmt.Fprintf(&sb, "operators:\n")
	for k := range m.operators {
		o := &m.operators[k]
		fmt.Fprintf(&sb, "  %d %s (builtin %d, version %d)\n", o.Index, o.Name, o.Builtin, o.Version)
		for j, t := range o.Inputs {
			if t < 0 {
				fmt.Fprintf(&sb, "    in%d: (omitted)\n", j)
				continue
			}
			fmt.Fprintf(&sb, "    in%d: %s\n", j, m.tensors[t].String())
		}
		for j, t := range o.Outputs {
			fmt.Fprintf(&sb, "    out%d: %s\n", j, m.tensors[t].String())
		}
	}
	fmt.Fprintf(&sb, "tensors:\n")
	for i := range m.tensors {
		fmt.Fprintf(&sb, "  %s\n", m.tensors[i].String())
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
