// Package tflwrite builds TensorFlow Lite models in Go and writes them as
// standard .tflite FlatBuffers (schema version 3, file identifier "TFL3"),
// the files the official TFLite runtime and TFLite Micro load, and that
// package tflite runs.
//
// A model is one subgraph: tensors (inputs, activations, constants with
// their data, optional variables), operators in execution order, and the
// subgraph's inputs and outputs:
//
//	b := tflwrite.New("sine regressor")
//	x := b.Input("x", tflwrite.Float32, []int{1, 1}, nil)
//	w := b.ConstFloat32("w", []int{16, 1}, weights)
//	bias := b.ConstFloat32("b", []int{16}, biases)
//	h := b.Tensor("h", tflwrite.Float32, []int{1, 16}, nil)
//	b.Op(tflwrite.OpFullyConnected, []tflwrite.TensorID{x, w, bias}, []tflwrite.TensorID{h},
//		&tflwrite.FullyConnectedOptions{Activation: tflwrite.ActRelu})
//	b.Outputs(h)
//	raw, err := b.Bytes()
//
// What the writer does as TFLite's converter does, so that the files run
// unchanged in the official runtime:
//   - buffer 0 is the empty sentinel buffer; non-constant tensors point at
//     it, every constant gets its own buffer, whose data starts on a
//     16-byte boundary of the file (schema: force_align 16);
//   - each operator code sets both deprecated_builtin_code (min(code, 127))
//     and builtin_code, and the operator version is the lowest one that
//     supports the operator's tensor types and options (TFLite's
//     op_version.cc rules for the operators listed here), unless given;
//   - builtin options go in the BuiltinOptions union, with the table the
//     schema pairs with each operator;
//   - a "min_runtime_version" metadata entry (16-byte, zero-padded string)
//     names the oldest TFLite release that runs every operator version
//     used, and a "serving_default" signature names the inputs and outputs.
//
// The tests run written models in the official runtime (LiteRT.js, TFLite's
// C++ runtime built to WebAssembly, under node) when it is installed in
// testdata/litert, and re-write every model of the conformance corpus.
//
// For int8 models, Int8Params, QuantizeInt8, QuantizeWeightsPerChannel,
// QuantizeWeightsPerTensor and QuantizeBias compute parameters and data as
// TFLite's post-training quantization does (asymmetric activations,
// symmetric weights, int32 biases with scale input_scale*weight_scale).
//
// Builder methods record the first error (a bad shape, a data size that
// does not match, an unknown tensor...) and Bytes returns it, so building
// code can stay linear.
package tflwrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// ErrInvalid is wrapped by every error the Builder reports.
var ErrInvalid = errors.New("tflwrite: invalid model")

// DType is a tensor element type, with the schema's TensorType values.
type DType int8

// The element types the writer supports.
const (
	Float32 DType = 0
	Int32   DType = 2
	Uint8   DType = 3
	Int64   DType = 4
	Bool    DType = 6
	Int16   DType = 7
	Int8    DType = 9
)

// Size returns the size of one element in bytes (0 for an unknown type).
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	case Int16:
		return 2
	case Int8, Uint8, Bool:
		return 1
	}
	return 0
}

// String returns the type's name.
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Uint8:
		return "uint8"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	case Int16:
		return "int16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("dtype(%d)", int8(d))
}

// Quant is a tensor's affine quantization: real = (q - zero_point) * scale.
// One scale and zero point is per-tensor quantization; several are
// per-channel along dimension Dim (whose size must equal their count).
type Quant struct {
	Scales     []float32
	ZeroPoints []int64
	Dim        int
}

// PerTensor returns per-tensor quantization parameters.
func PerTensor(scale float32, zeroPoint int64) *Quant {
	return &Quant{Scales: []float32{scale}, ZeroPoints: []int64{zeroPoint}}
}

// PerChannel returns per-channel quantization along dimension dim. A nil
// zeroPoints means all zero (symmetric, as TFLite requires for int8
// weights).
func PerChannel(scales []float32, zeroPoints []int64, dim int) *Quant {
	if zeroPoints == nil {
		zeroPoints = make([]int64, len(scales))
	}
	return &Quant{Scales: append([]float32(nil), scales...), ZeroPoints: append([]int64(nil), zeroPoints...), Dim: dim}
}

// TensorID identifies a tensor of the model being built (its index in the
// subgraph's tensor list).
type TensorID int

// NoTensor marks an omitted optional operator input (written as -1).
const NoTensor TensorID = -1

type tensorDef struct {
	name     string
	dtype    DType
	shape    []int
	quant    *Quant
	data     []byte // constant data; nil for non-constant tensors
	variable bool
}

type opDef struct {
	code          Op
	version       int
	inputs        []TensorID
	outputs       []TensorID
	intermediates []TensorID
	opts          Options
}

// Builder accumulates a model. Its zero value is not usable; call New.
// A Builder is not safe for concurrent use.
type Builder struct {
	description string
	tensors     []tensorDef
	ops         []opDef
	inputs      []TensorID
	outputs     []TensorID
	err         error
}

// New returns an empty builder for a model with the given description.
func New(description string) *Builder {
	return &Builder{description: description}
}

// Err returns the first error recorded while building, if any.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
}

func (b *Builder) addTensor(t tensorDef) TensorID {
	where := fmt.Sprintf("tensor %d %q", len(b.tensors), t.name)
	if t.dtype.Size() == 0 {
		b.fail("%s: unsupported element type %d", where, int8(t.dtype))
	}
	n := int64(1)
	for _, d := range t.shape {
		if d < 0 || int64(d) > math.MaxInt32 {
			b.fail("%s: bad shape %v", where, t.shape)
			break
		}
		n *= int64(d)
		if n > math.MaxInt32 {
			b.fail("%s: shape %v is too large", where, t.shape)
			break
		}
	}
	if need := n * int64(t.dtype.Size()); t.data != nil && int64(len(t.data)) != need {
		b.fail("%s: %d bytes of data, shape %v %s needs %d", where, len(t.data), t.shape, t.dtype, need)
	}
	if q := t.quant; q != nil {
		switch {
		case len(q.Scales) == 0:
			b.fail("%s: quantization without scales", where)
		case len(q.ZeroPoints) != len(q.Scales):
			b.fail("%s: %d scales but %d zero points", where, len(q.Scales), len(q.ZeroPoints))
		case len(q.Scales) > 1 && (q.Dim < 0 || q.Dim >= len(t.shape) || t.shape[q.Dim] != len(q.Scales)):
			b.fail("%s: %d per-channel scales do not match dimension %d of shape %v", where, len(q.Scales), q.Dim, t.shape)
		}
		for _, s := range q.Scales {
			if !(s > 0) || math.IsInf(float64(s), 0) {
				b.fail("%s: scale %v is not positive and finite", where, s)
				break
			}
		}
		qc := *q
		qc.Scales = append([]float32(nil), q.Scales...)
		qc.ZeroPoints = append([]int64(nil), q.ZeroPoints...)
		t.quant = &qc
	}
	t.shape = append([]int(nil), t.shape...)
	b.tensors = append(b.tensors, t)
	return TensorID(len(b.tensors) - 1)
}

// Tensor adds a non-constant tensor (an activation, or an output), with
// optional quantization (nil for float tensors).
func (b *Builder) Tensor(name string, dtype DType, shape []int, q *Quant) TensorID {
	return b.addTensor(tensorDef{name: name, dtype: dtype, shape: shape, quant: q})
}

// Input adds a non-constant tensor and appends it to the model's inputs.
func (b *Builder) Input(name string, dtype DType, shape []int, q *Quant) TensorID {
	id := b.Tensor(name, dtype, shape, q)
	b.inputs = append(b.inputs, id)
	return id
}

// SetInputs replaces the model's inputs (for tensors added with Tensor,
// when the input order differs from the order of creation).
func (b *Builder) SetInputs(ids ...TensorID) {
	b.inputs = nil
	for _, id := range ids {
		if !b.valid(id) {
			b.fail("input %d: no tensor %d", len(b.inputs), id)
		}
		b.inputs = append(b.inputs, id)
	}
}

// Variable adds a variable tensor (state kept between invocations, such
// as an LSTM's; runtimes start it at zero).
func (b *Builder) Variable(name string, dtype DType, shape []int, q *Quant) TensorID {
	return b.addTensor(tensorDef{name: name, dtype: dtype, shape: shape, quant: q, variable: true})
}

// Const adds a constant tensor whose data is given as raw little-endian
// bytes in row-major order (len(data) must equal the shape's element count
// times the type's size). data is copied.
func (b *Builder) Const(name string, dtype DType, shape []int, q *Quant, data []byte) TensorID {
	if data == nil {
		data = []byte{}
	}
	return b.addTensor(tensorDef{name: name, dtype: dtype, shape: shape, quant: q, data: append([]byte{}, data...)})
}

// ConstFloat32 adds a float32 constant.
func (b *Builder) ConstFloat32(name string, shape []int, v []float32) TensorID {
	d := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
	}
	return b.Const(name, Float32, shape, nil, d)
}

// ConstInt8 adds a quantized int8 constant (weights).
func (b *Builder) ConstInt8(name string, shape []int, q *Quant, v []int8) TensorID {
	d := make([]byte, len(v))
	for i, x := range v {
		d[i] = byte(x)
	}
	return b.Const(name, Int8, shape, q, d)
}

// ConstInt16 adds an int16 constant.
func (b *Builder) ConstInt16(name string, shape []int, q *Quant, v []int16) TensorID {
	d := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(d[2*i:], uint16(x))
	}
	return b.Const(name, Int16, shape, q, d)
}

// ConstInt32 adds an int32 constant: a quantized bias (q with scale
// input_scale*weight_scale, zero point 0, per channel or per tensor), or
// an unquantized shape, axis or padding operand (q nil).
func (b *Builder) ConstInt32(name string, shape []int, q *Quant, v []int32) TensorID {
	d := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(d[4*i:], uint32(x))
	}
	return b.Const(name, Int32, shape, q, d)
}

// Outputs appends tensors to the model's outputs.
func (b *Builder) Outputs(ids ...TensorID) {
	for _, id := range ids {
		if !b.valid(id) {
			b.fail("output %d: no tensor %d", len(b.outputs), id)
		}
		b.outputs = append(b.outputs, id)
	}
}

func (b *Builder) valid(id TensorID) bool { return id >= 0 && int(id) < len(b.tensors) }

// OpSpec describes one operator for AddOp.
type OpSpec struct {
	Code Op
	// Inputs may hold NoTensor for omitted optional inputs.
	Inputs  []TensorID
	Outputs []TensorID
	// Intermediates are tensors internal to the operator (quantized LSTM).
	Intermediates []TensorID
	// Options must be the options type the schema pairs with Code (see
	// Op), or nil for the operator's defaults.
	Options Options
	// Version is the operator version; 0 computes the lowest version that
	// supports the operator's tensor types and options, as TFLite's
	// converter does.
	Version int
}

// Op appends an operator (after the ones already added: operators run in
// the order they are added) and returns its index.
func (b *Builder) Op(code Op, inputs, outputs []TensorID, opts Options) int {
	return b.AddOp(OpSpec{Code: code, Inputs: inputs, Outputs: outputs, Options: opts})
}

// AddOp appends an operator described by spec and returns its index.
func (b *Builder) AddOp(spec OpSpec) int {
	k := len(b.ops)
	where := fmt.Sprintf("operator %d (%s)", k, spec.Code)
	if spec.Code < 0 || spec.Code == OpCustom {
		b.fail("%s: not a builtin operator", where)
	}
	for j, id := range spec.Inputs {
		if id != NoTensor && !b.valid(id) {
			b.fail("%s input %d: no tensor %d", where, j, id)
		}
	}
	for j, id := range spec.Outputs {
		if !b.valid(id) {
			b.fail("%s output %d: no tensor %d", where, j, id)
		} else if b.tensors[id].data != nil {
			b.fail("%s output %d: tensor %d %q is a constant", where, j, id, b.tensors[id].name)
		}
	}
	for j, id := range spec.Intermediates {
		if !b.valid(id) {
			b.fail("%s intermediate %d: no tensor %d", where, j, id)
		}
	}
	if len(spec.Outputs) == 0 {
		b.fail("%s: no outputs", where)
	}
	opts := spec.Options
	want, known := optionsFor[spec.Code]
	switch {
	case opts == nil && known && want != nil:
		opts = want()
	case opts != nil && (!known || want == nil || opts.unionType() != want().unionType()):
		b.fail("%s: options %T do not belong to this operator", where, opts)
	}
	if opts != nil {
		if err := opts.validate(); err != nil {
			b.fail("%s: %v", where, err)
		}
	}
	if spec.Version < 0 {
		b.fail("%s: version %d", where, spec.Version)
	}
	b.ops = append(b.ops, opDef{
		code:          spec.Code,
		version:       spec.Version,
		inputs:        append([]TensorID(nil), spec.Inputs...),
		outputs:       append([]TensorID(nil), spec.Outputs...),
		intermediates: append([]TensorID(nil), spec.Intermediates...),
		opts:          opts,
	})
	return k
}

// OpVersion returns the version operator k will be written with.
func (b *Builder) OpVersion(k int) int {
	if k < 0 || k >= len(b.ops) {
		return 0
	}
	return b.opVersion(&b.ops[k])
}

// WriteFile writes the model to path.
func (b *Builder) WriteFile(path string) error {
	raw, err := b.Bytes()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("tflwrite: %w", err)
	}
	return nil
}

// check verifies what can only be checked on the whole model.
func (b *Builder) check() error {
	if b.err != nil {
		return b.err
	}
	if len(b.outputs) == 0 {
		return fmt.Errorf("%w: the model has no outputs", ErrInvalid)
	}
	for j, id := range b.inputs {
		if b.tensors[id].data != nil {
			return fmt.Errorf("%w: input %d: tensor %d %q is a constant", ErrInvalid, j, id, b.tensors[id].name)
		}
	}
	// Every tensor an operator reads must hold data by then.
	ready := make([]bool, len(b.tensors))
	for _, id := range b.inputs {
		ready[id] = true
	}
	for i, t := range b.tensors {
		if t.data != nil || t.variable {
			ready[i] = true
		}
	}
	for k, o := range b.ops {
		for j, id := range o.inputs {
			if id != NoTensor && !ready[id] {
				return fmt.Errorf("%w: operator %d (%s) input %d: tensor %d %q is read before any operator writes it", ErrInvalid, k, o.code, j, id, b.tensors[id].name)
			}
		}
		for _, id := range o.outputs {
			ready[id] = true
		}
	}
	for j, id := range b.outputs {
		if !ready[id] {
			return fmt.Errorf("%w: output %d: tensor %d %q is never written", ErrInvalid, j, id, b.tensors[id].name)
		}
	}
	return nil
}
