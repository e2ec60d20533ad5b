package tflite

import (
	"errors"
	"fmt"

	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// A kernel is wired in two steps, as in TFLite Micro:
//
//   - prepare runs once per Model at Load: it checks the operator's
//     tensors (count, types, shapes), reads its builtin options, computes
//     the kernel parameters with the ops package's Prepare helpers, and
//     returns a prepared value that says how much scratch memory the kernel
//     needs.
//   - bind runs once per Interpreter: given the operator's tensors bound to
//     the interpreter's arena (and its scratch buffers), it returns the eval
//     closure that Invoke calls. The closure captures typed slices, so
//     Invoke allocates nothing.
type prepareFunc func(c *opCtx) (*prepared, error)

// prepared is the load-time result of preparing one operator.
type prepared struct {
	// scratch lists the byte sizes of the scratch buffers the kernel needs
	// during its eval; the planner gives each one arena memory live only
	// during that operator.
	scratch []int
	// bind returns the eval closure for one interpreter.
	bind func(b *binding) (evalFunc, error)
}

// opt returns input k, or nil if it is omitted (-1) or beyond the
// operator's input list.
func (b *binding) opt(k int) *Tensor {
	if k >= len(b.in) {
		return nil
	}
	return b.in[k]
}

// evalFunc runs one operator.
type evalFunc func() error

// binding is what bind sees: the operator's tensors in one interpreter.
type binding struct {
	in      []*Tensor // nil for omitted optional inputs
	out     []*Tensor
	scratch [][]byte // aligned to 16
}

// registry maps builtin operator codes to their prepare functions. It is
// read-only after package initialisation.
var registry = map[int32]prepareFunc{}

func register(code int32, f prepareFunc) {
	if _, dup := registry[code]; dup {
		panic(fmt.Sprintf("tflite: builtin %s registered twice", BuiltinName(code)))
	}
	registry[code] = f
}

func prepareOperator(m *Model, o *OperatorInfo) (*prepared, error) {
	c := &opCtx{m: m, o: o}
	p, err := registry[o.Builtin](c)
	if err != nil {
		if errors.Is(err, schema.ErrCorrupt) && !errors.Is(err, ErrInvalidModel) {
			// A bounds error while reading the builtin options.
			return nil, fmt.Errorf("tflite: operator %d (%s): %w: %w", o.Index, o.Name, err, ErrInvalidModel)
		}
		return nil, err
	}
	return p, nil
}

// opCtx gives a prepare function access to its operator.
type opCtx struct {
	m *Model
	o *OperatorInfo
}

// errorf returns an error that names the operator.
func (c *opCtx) errorf(format string, args ...any) error {
	return fmt.Errorf("tflite: operator %d (%s): %s: %w", c.o.Index, c.o.Name, fmt.Sprintf(format, args...), ErrInvalidModel)
}

// unsupportedf returns an error for a valid model this runtime cannot run.
func (c *opCtx) unsupportedf(format string, args ...any) error {
	return fmt.Errorf("tflite: operator %d (%s): %s: %w", c.o.Index, c.o.Name, fmt.Sprintf(format, args...), ErrUnsupported)
}

// numIO checks the operator's input and output counts. maxIn < 0 means
// no upper bound.
func (c *opCtx) numIO(minIn, maxIn, outs int) error {
	n := len(c.o.Inputs)
	if n < minIn || (maxIn >= 0 && n > maxIn) {
		switch {
		case maxIn < 0:
			return c.errorf("has %d inputs, want at least %d", n, minIn)
		case minIn == maxIn:
			return c.errorf("has %d inputs, want %d", n, minIn)
		}
		return c.errorf("has %d inputs, want %d to %d", n, minIn, maxIn)
	}
	if len(c.o.Outputs) != outs {
		return c.errorf("has %d outputs, want %d", len(c.o.Outputs), outs)
	}
	return nil
}

// in returns input k, or nil if it is omitted (-1) or beyond the list.
func (c *opCtx) in(k int) *TensorInfo {
	if k >= len(c.o.Inputs) || c.o.Inputs[k] < 0 {
		return nil
	}
	return &c.m.tensors[c.o.Inputs[k]]
}

// mustIn returns input k or an error if it is omitted.
func (c *opCtx) mustIn(k int) (*TensorInfo, error) {
	t := c.in(k)
	if t == nil {
		return nil, c.errorf("required input %d is missing", k)
	}
	return t, nil
}

// out returns output k (numIO has checked the count).
func (c *opCtx) out(k int) *TensorInfo { return &c.m.tensors[c.o.Outputs[k]] }

// intermediate returns intermediate tensor k or nil.
func (c *opCtx) intermediate(k int) *TensorInfo {
	if k >= len(c.o.Intermediates) || c.o.Intermediates[k] < 0 {
		return nil
	}
	return &c.m.tensors[c.o.Intermediates[k]]
}

// options returns the builtin options table, checking its union type. A
// missing table is returned as the zero Table (all defaults).
func (c *opCtx) options(want uint8) (schema.Table, error) {
	op := c.o.op
	if op.OptionsType != 0 && op.OptionsType != want {
		return schema.Table{}, c.errorf("builtin options have union type %d, want %d", op.OptionsType, want)
	}
	if op.OptionsType == 0 {
		return schema.Table{}, nil
	}
	return op.Options, nil
}

// wantType checks a tensor's element type.
func (c *opCtx) wantType(what string, t *TensorInfo, types ...TensorType) error {
	for _, ty := range types {
		if t.Type == ty {
			return nil
		}
	}
	return c.unsupportedf("%s tensor %d %q has type %s, want one of %v", what, t.Index, t.Name, t.Type, types)
}

// sameType checks that tensors share the element type of the first.
func (c *opCtx) sameType(ts ...*TensorInfo) error {
	for _, t := range ts[1:] {
		if t.Type != ts[0].Type {
			return c.errorf("tensor %d %q is %s but tensor %d %q is %s", t.Index, t.Name, t.Type, ts[0].Index, ts[0].Name, ts[0].Type)
		}
	}
	return nil
}

// wantConst checks that a tensor holds model data.
func (c *opCtx) wantConst(what string, t *TensorInfo) error {
	if !t.Constant {
		return c.unsupportedf("%s tensor %d %q must be a constant", what, t.Index, t.Name)
	}
	return nil
}

// wantRank checks a tensor's rank.
func (c *opCtx) wantRank(what string, t *TensorInfo, ranks ...int) error {
	for _, r := range ranks {
		if len(t.Shape) == r {
			return nil
		}
	}
	return c.errorf("%s tensor %d %q has shape %v, want rank %v", what, t.Index, t.Name, t.Shape, ranks)
}

// wantQuant checks that a tensor is quantized per tensor and returns its
// scale (as float64, converted from the file's float32) and zero point.
func (c *opCtx) wantQuant(what string, t *TensorInfo) (float64, int, error) {
	q := t.Quantization
	if len(q.Scales) != 1 {
		return 0, 0, c.errorf("%s tensor %d %q needs per-tensor quantization, has %d scales", what, t.Index, t.Name, len(q.Scales))
	}
	zp := q.ZeroPoints[0]
	if zp < -1<<31 || zp > 1<<31-1 {
		return 0, 0, c.errorf("%s tensor %d %q zero point %d out of range", what, t.Index, t.Name, zp)
	}
	return float64(q.Scales[0]), int(zp), nil
}

// scalesF64 returns a tensor's scales as float64.
func scalesF64(t *TensorInfo) []float64 {
	out := make([]float64, len(t.Quantization.Scales))
	for i, s := range t.Quantization.Scales {
		out[i] = float64(s)
	}
	return out
}

// zeroPoints returns a tensor's zero points as int.
func zeroPoints(t *TensorInfo) []int {
	out := make([]int, len(t.Quantization.ZeroPoints))
	for i, z := range t.Quantization.ZeroPoints {
		out[i] = int(z)
	}
	return out
}

// sameShape reports whether two shapes are equal.
func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// simple returns a prepared op with no scratch whose bind is f.
func simple(f func(b *binding) (evalFunc, error)) *prepared {
	return &prepared{bind: f}
}
