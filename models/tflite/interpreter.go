package tflite

import (
	"fmt"
)

// Interpreter runs a Model. It owns one arena holding every non-constant
// tensor and scratch buffer, laid out at load time from tensor lifetimes;
// Invoke allocates nothing.
//
// Input tensors keep their contents across Invoke calls (they are live for
// the whole run); output tensors hold the last Invoke's results until the
// next Invoke. Other tensors share memory with each other and are only
// meaningful while the operators using them run.
//
// An Interpreter is not safe for concurrent use: Invoke, Reset and the
// tensor views must be used from one goroutine at a time. Create one
// Interpreter per goroutine; they share the Model.
type Interpreter struct {
	m       *Model
	arena   []byte
	tensors []Tensor // indexed like Model.Tensors
	evals   []evalFunc
	inputs  []*Tensor
	outputs []*Tensor
	vars    []*Tensor
}

// Option configures an Interpreter.
type Option func(*interpreterConfig)

type interpreterConfig struct {
	maxArena int
}

// WithMaxArenaBytes makes NewInterpreter fail if the model needs a larger
// arena than n bytes (default 1 GiB).
func WithMaxArenaBytes(n int) Option {
	return func(c *interpreterConfig) { c.maxArena = n }
}

// NewInterpreter allocates an interpreter's arena and binds every operator
// to it. Variable tensors start at zero (int8 ones at their zero point, as
// TFLite Micro resets them).
func (m *Model) NewInterpreter(opts ...Option) (*Interpreter, error) {
	cfg := interpreterConfig{maxArena: maxArenaBytes}
	for _, o := range opts {
		o(&cfg)
	}
	if m.plan.size > cfg.maxArena {
		return nil, fmt.Errorf("tflite: the model needs a %d-byte arena, more than the %d allowed: %w", m.plan.size, cfg.maxArena, ErrUnsupported)
	}
	ip := &Interpreter{m: m, arena: alignedBytes(m.plan.size)}
	ip.tensors = make([]Tensor, len(m.tensors))
	for i := range m.tensors {
		info := &m.tensors[i]
		t := &ip.tensors[i]
		t.info = info
		switch off := m.plan.tensorOff[i]; {
		case info.Constant:
			t.data = info.Data
		case off >= 0:
			n := info.NumBytes()
			t.data = ip.arena[off : off+n : off+n]
		}
		if info.Variable && t.data != nil {
			ip.vars = append(ip.vars, t)
		}
	}
	for _, i := range m.inputs {
		ip.inputs = append(ip.inputs, &ip.tensors[i])
	}
	for _, i := range m.outputs {
		ip.outputs = append(ip.outputs, &ip.tensors[i])
	}
	ip.evals = make([]evalFunc, len(m.operators))
	for i := range m.operators {
		o := &m.operators[i]
		b := &binding{}
		for _, ti := range o.Inputs {
			if ti < 0 {
				b.in = append(b.in, nil)
			} else {
				b.in = append(b.in, &ip.tensors[ti])
			}
		}
		for _, ti := range o.Outputs {
			b.out = append(b.out, &ip.tensors[ti])
		}
		for k, sz := range m.nodes[i].scratch {
			off := m.plan.scratchOff[i][k]
			b.scratch = append(b.scratch, ip.arena[off:off+sz:off+sz])
		}
		f, err := m.nodes[i].bind(b)
		if err != nil {
			return nil, fmt.Errorf("tflite: operator %d (%s): %w", i, o.Name, err)
		}
		ip.evals[i] = f
	}
	ip.Reset()
	return ip, nil
}

// Model returns the interpreter's model.
func (ip *Interpreter) Model() *Model { return ip.m }

// Invoke runs the model once on the current input tensors. It allocates
// nothing on success.
func (ip *Interpreter) Invoke() error {
	for i, f := range ip.evals {
		if err := f(); err != nil {
			return fmt.Errorf("tflite: operator %d (%s): %w", i, ip.m.operators[i].Name, err)
		}
	}
	return nil
}

// Reset sets the variable tensors (recurrent state) back to zero: the
// stored value 0, or the zero point for int8 tensors, as TFLite Micro's
// ResetVariableTensors does.
func (ip *Interpreter) Reset() {
	for _, t := range ip.vars {
		v := byte(0)
		if t.info.Type == Int8 && t.info.Quantization.Quantized() {
			v = byte(int8(t.info.Quantization.ZeroPoints[0]))
		}
		for i := range t.data {
			t.data[i] = v
		}
	}
}

// ArenaBytes returns the size of the interpreter's arena.
func (ip *Interpreter) ArenaBytes() int { return len(ip.arena) }

// Inputs returns the model's input tensors, in subgraph order.
func (ip *Interpreter) Inputs() []*Tensor { return append([]*Tensor(nil), ip.inputs...) }

// Outputs returns the model's output tensors, in subgraph order.
func (ip *Interpreter) Outputs() []*Tensor { return append([]*Tensor(nil), ip.outputs...) }

// Input returns input i, or nil if out of range.
func (ip *Interpreter) Input(i int) *Tensor {
	if i < 0 || i >= len(ip.inputs) {
		return nil
	}
	return ip.inputs[i]
}

// Output returns output i, or nil if out of range.
func (ip *Interpreter) Output(i int) *Tensor {
	if i < 0 || i >= len(ip.outputs) {
		return nil
	}
	return ip.outputs[i]
}

// InputByName returns the input tensor with the given name, or nil.
func (ip *Interpreter) InputByName(name string) *Tensor {
	for _, t := range ip.inputs {
		if t.info.Name == name {
			return t
		}
	}
	return nil
}

// OutputByName returns the output tensor with the given name, or nil.
func (ip *Interpreter) OutputByName(name string) *Tensor {
	for _, t := range ip.outputs {
		if t.info.Name == name {
			return t
		}
	}
	return nil
}

// Tensor returns tensor i of the model bound to this interpreter (nil if
// out of range). Intermediate tensors share memory with others whose
// lifetimes do not overlap, so their contents are only meaningful while
// the operators using them run.
func (ip *Interpreter) Tensor(i int) *Tensor {
	if i < 0 || i >= len(ip.tensors) {
		return nil
	}
	return &ip.tensors[i]
}
