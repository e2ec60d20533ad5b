package tflite

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// ErrInvalidModel is wrapped by every error Load returns for a file that is
// not a well-formed TFLite model.
var ErrInvalidModel = errors.New("invalid model")

// ErrUnsupported is wrapped by errors for well-formed models that use
// something this runtime does not implement (an operator, a tensor type,
// sparsity, custom quantization...).
var ErrUnsupported = errors.New("unsupported")

// maxTensorBytes bounds a single tensor's size (and so the element count
// products) so that shape arithmetic cannot overflow on 32-bit platforms.
const maxTensorBytes = 1 << 30

// Model is a loaded, verified TFLite model. It is immutable and safe to
// share between goroutines; each goroutine runs it through its own
// Interpreter (see NewInterpreter). Only subgraph 0 is run; other subgraphs
// are verified but ignored (no supported operator calls them).
type Model struct {
	raw         []byte // aligned private copy of the file
	description string
	version     uint32
	tensors     []TensorInfo
	operators   []OperatorInfo
	inputs      []int
	outputs     []int
	nodes       []*prepared // one per operator, computed at load
	plan        *plan
}

// OperatorInfo describes one operator of subgraph 0, in execution order.
type OperatorInfo struct {
	Index   int
	Builtin int32  // builtin operator code
	Name    string // "CONV_2D"
	Version int32
	// Inputs and Outputs are tensor indices; -1 marks an omitted optional
	// input.
	Inputs        []int
	Outputs       []int
	Intermediates []int

	op *schema.Operator
}

// LoadFile reads and loads a .tflite file.
func LoadFile(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tflite: %w", err)
	}
	m, err := Load(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}

// Load verifies and loads a model from its flatbuffer bytes. b is copied;
// the caller may reuse it. Every offset, index, shape and buffer size is
// checked, every operator is resolved against the runtime's kernels and
// prepared (quantization parameters computed), so a model that loads can be
// run. Errors say what is wrong and where.
func Load(b []byte) (*Model, error) {
	raw := alignedBytes(len(b))
	copy(raw, b)
	sm, err := schema.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("tflite: %w: %w", err, ErrInvalidModel)
	}
	m := &Model{raw: raw, description: sm.Description, version: sm.Version}
	if err := m.build(sm); err != nil {
		return nil, err
	}
	return m, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("tflite: %s: %w", fmt.Sprintf(format, args...), ErrInvalidModel)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("tflite: %s: %w", fmt.Sprintf(format, args...), ErrUnsupported)
}

func (m *Model) build(sm *schema.Model) error {
	if len(sm.Subgraphs) == 0 {
		return invalid("model has no subgraphs")
	}
	sg := &sm.Subgraphs[0]
	m.tensors = make([]TensorInfo, len(sg.Tensors))
	for i := range sg.Tensors {
		if err := m.buildTensor(sm, i, &sg.Tensors[i]); err != nil {
			return err
		}
	}
	idx := func(what string, list []int32) ([]int, error) {
		out := make([]int, len(list))
		for i, v := range list {
			if v < 0 || int(v) >= len(m.tensors) {
				return nil, invalid("subgraph 0 %s %d: tensor index %d out of range (%d tensors)", what, i, v, len(m.tensors))
			}
			out[i] = int(v)
		}
		return out, nil
	}
	var err error
	if m.inputs, err = idx("input", sg.Inputs); err != nil {
		return err
	}
	if m.outputs, err = idx("output", sg.Outputs); err != nil {
		return err
	}
	for _, ti := range m.inputs {
		if m.tensors[ti].Constant {
			return invalid("subgraph 0 input tensor %d %q is a constant", ti, m.tensors[ti].Name)
		}
	}
	m.operators = make([]OperatorInfo, len(sg.Operators))
	for i := range sg.Operators {
		if err := m.buildOperator(sm, i, &sg.Operators[i]); err != nil {
			return err
		}
	}
	if err := m.checkDataflow(); err != nil {
		return err
	}
	m.nodes = make([]*prepared, len(m.operators))
	for i := range m.operators {
		p, err := prepareOperator(m, &m.operators[i])
		if err != nil {
			return err
		}
		m.nodes[i] = p
	}
	m.plan, err = makePlan(m)
	return err
}

// checkDataflow checks that every tensor an operator reads holds data by
// then: a constant, a variable, a model input, or an earlier operator's
// output; and that model outputs are written by some operator (or are
// inputs).
func (m *Model) checkDataflow() error {
	written := make([]bool, len(m.tensors))
	for _, t := range m.inputs {
		written[t] = true
	}
	for i := range m.tensors {
		if m.tensors[i].Constant || m.tensors[i].Variable {
			written[i] = true
		}
	}
	for k := range m.operators {
		o := &m.operators[k]
		for j, t := range o.Inputs {
			if t >= 0 && !written[t] {
				return invalid("operator %d (%s) input %d: tensor %d %q is read before any operator writes it", k, o.Name, j, t, m.tensors[t].Name)
			}
		}
		for _, t := range o.Outputs {
			written[t] = true
		}
	}
	for j, t := range m.outputs {
		if !written[t] {
			return invalid("subgraph 0 output %d: tensor %d %q is never written", j, t, m.tensors[t].Name)
		}
	}
	return nil
}

func (m *Model) buildTensor(sm *schema.Model, i int, st *schema.Tensor) error {
	t := &m.tensors[i]
	t.Index = i
	t.Name = st.Name
	t.Type = TensorType(st.Type)
	t.Variable = st.IsVariable
	where := fmt.Sprintf("subgraph 0 tensor %d %q", i, st.Name)
	if t.Type.Size() == 0 {
		return unsupported("%s: element type %s", where, t.Type)
	}
	if st.HasSparsity {
		return unsupported("%s: sparse tensors", where)
	}
	t.Shape = make([]int, len(st.Shape))
	bytes := int64(t.Type.Size())
	for d, v := range st.Shape {
		if v < 0 {
			return invalid("%s: shape %v has a negative dimension", where, st.Shape)
		}
		t.Shape[d] = int(v)
		bytes *= int64(v)
		if bytes > maxTensorBytes {
			return invalid("%s: shape %v %s is larger than %d bytes", where, st.Shape, t.Type, maxTensorBytes)
		}
	}
	if st.Buffer >= uint32(len(sm.Buffers)) {
		return invalid("%s: buffer index %d out of range (%d buffers)", where, st.Buffer, len(sm.Buffers))
	}
	t.Buffer = int(st.Buffer)
	buf := &sm.Buffers[st.Buffer]
	data := buf.Data
	if buf.Offset > 1 {
		// Data stored after the flatbuffer (the > 2 GB layout).
		if buf.Offset > uint64(len(m.raw)) || buf.Size > uint64(len(m.raw))-buf.Offset {
			return invalid("%s: buffer %d at offset %d size %d lies outside the file (%d bytes)", where, st.Buffer, buf.Offset, buf.Size, len(m.raw))
		}
		data = m.raw[buf.Offset : buf.Offset+buf.Size]
	}
	if len(data) > 0 && !t.Variable {
		if int64(len(data)) != bytes {
			return invalid("%s: buffer %d has %d bytes, shape %v %s needs %d", where, st.Buffer, len(data), st.Shape, t.Type, bytes)
		}
		if !aligned(data, uintptr(t.Type.Size())) {
			c := alignedBytes(len(data))
			copy(c, data)
			data = c
		}
		t.Constant = true
		t.Data = data
	}
	if q := st.Quantization; q != nil {
		if err := buildQuant(t, q, where); err != nil {
			return err
		}
	}
	return nil
}

func buildQuant(t *TensorInfo, q *schema.Quantization, where string) error {
	if q.DetailsType != 0 {
		return unsupported("%s: custom quantization details", where)
	}
	if len(q.Scale) == 0 {
		if len(q.ZeroPoint) > 1 {
			return invalid("%s: %d zero points without scales", where, len(q.ZeroPoint))
		}
		return nil // min/max only: not quantized
	}
	ns := len(q.Scale)
	if len(q.ZeroPoint) != ns {
		return invalid("%s: %d scales but %d zero points", where, ns, len(q.ZeroPoint))
	}
	for k, s := range q.Scale {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return invalid("%s: scale %d is %v; scales must be positive and finite", where, k, s)
		}
	}
	dim := int(q.QuantizedDimension)
	if ns > 1 {
		rank := len(t.Shape)
		switch {
		case dim >= 0 && dim < rank:
		case rank == 1 && dim >= 0:
			// TFLite converters copy the filter's quantized dimension
			// (e.g. 3) to rank-1 bias tensors; TFLM accepts them, and so
			// do we: the only dimension is the channel dimension.
			dim = 0
		default:
			return invalid("%s: quantized_dimension %d out of range for shape %v", where, q.QuantizedDimension, t.Shape)
		}
		if t.Shape[dim] != ns {
			return invalid("%s: %d per-channel scales but dimension %d of shape %v is %d", where, ns, dim, t.Shape, t.Shape[dim])
		}
	} else {
		dim = 0
	}
	t.Quantization = Quantization{Scales: q.Scale, ZeroPoints: q.ZeroPoint, Dim: dim}
	return nil
}

func (m *Model) buildOperator(sm *schema.Model, i int, so *schema.Operator) error {
	o := &m.operators[i]
	o.Index = i
	o.op = so
	if so.OpcodeIndex >= uint32(len(sm.OperatorCodes)) {
		return invalid("operator %d: opcode index %d out of range (%d operator codes)", i, so.OpcodeIndex, len(sm.OperatorCodes))
	}
	oc := sm.OperatorCodes[so.OpcodeIndex]
	o.Builtin = oc.Builtin()
	o.Name = BuiltinName(o.Builtin)
	o.Version = oc.Version
	list := func(what string, l []int32, optional bool) ([]int, error) {
		out := make([]int, len(l))
		for k, v := range l {
			if v == -1 && optional {
				out[k] = -1
				continue
			}
			if v < 0 || int(v) >= len(m.tensors) {
				return nil, invalid("operator %d (%s) %s %d: tensor index %d out of range (%d tensors)", i, o.Name, what, k, v, len(m.tensors))
			}
			out[k] = int(v)
		}
		return out, nil
	}
	var err error
	if o.Inputs, err = list("input", so.Inputs, true); err != nil {
		return err
	}
	if o.Outputs, err = list("output", so.Outputs, false); err != nil {
		return err
	}
	if o.Intermediates, err = list("intermediate", so.Intermediates, true); err != nil {
		return err
	}
	for k, ti := range o.Outputs {
		if m.tensors[ti].Constant {
			return invalid("operator %d (%s) output %d: tensor %d %q is a constant", i, o.Name, k, ti, m.tensors[ti].Name)
		}
		for _, in := range m.inputs {
			if in == ti {
				return invalid("operator %d (%s) output %d: tensor %d %q is a model input", i, o.Name, k, ti, m.tensors[ti].Name)
			}
		}
	}
	if o.Builtin == 32 { // CUSTOM
		return unsupported("operator %d uses custom operator %q, which this runtime does not implement", i, oc.CustomCode)
	}
	if _, ok := registry[o.Builtin]; !ok {
		return unsupported("operator %d uses %s (builtin %d), which this runtime does not implement", i, o.Name, o.Builtin)
	}
	return nil
}

// Description returns the model's description string.
func (m *Model) Description() string { return m.description }

// Tensors returns the descriptions of subgraph 0's tensors (shared; do not
// modify).
func (m *Model) Tensors() []TensorInfo { return m.tensors }

// Operators returns subgraph 0's operators in execution order (shared; do
// not modify).
func (m *Model) Operators() []OperatorInfo { return m.operators }

// InputIndices returns the tensor indices of the model's inputs.
func (m *Model) InputIndices() []int { return append([]int(nil), m.inputs...) }

// OutputIndices returns the tensor indices of the model's outputs.
func (m *Model) OutputIndices() []int { return append([]int(nil), m.outputs...) }

// String formats a tensor description for inspection:
// `12 "conv1/bias" int32 [16] scale=[...] zp=[...] const`.
func (t *TensorInfo) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d %q %s %v", t.Index, t.Name, t.Type, t.Shape)
	if q := t.Quantization; q.Quantized() {
		if len(q.Scales) == 1 {
			fmt.Fprintf(&sb, " scale=%g zp=%d", q.Scales[0], q.ZeroPoints[0])
		} else {
			fmt.Fprintf(&sb, " per-channel(dim %d, %d scales)", q.Dim, len(q.Scales))
		}
	}
	switch {
	case t.Constant:
		sb.WriteString(" const")
	case t.Variable:
		sb.WriteString(" variable")
	}
	return sb.String()
}

// String formats an operator for inspection: `3 CONV_2D v3 in=[0 1 2] out=[4]`.
func (o *OperatorInfo) String() string {
	return fmt.Sprintf("%d %s v%d in=%v out=%v", o.Index, o.Name, o.Version, o.Inputs, o.Outputs)
}
