package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

func init() {
	register(OpUnidirectionalSequenceLSTM, prepareLSTM)
}

func prepareLSTM(c *opCtx) (*prepared, error) {
	if err := c.numIO(ops.LSTMNumInputs, ops.LSTMNumInputs, 1); err != nil {
		return nil, err
	}
	opts, err := c.options(schema.OptUnidirectionalSequenceLSTM)
	if err != nil {
		return nil, err
	}
	var spec ops.LSTMSpec
	act, err := opts.Int8(0, 0)
	if err != nil {
		return nil, err
	}
	spec.Options.Activation = ops.Activation(act)
	if spec.Options.CellClip, err = opts.Float32(1, 0); err != nil {
		return nil, err
	}
	if spec.Options.ProjClip, err = opts.Float32(2, 0); err != nil {
		return nil, err
	}
	if spec.Options.TimeMajor, err = opts.Bool(3, false); err != nil {
		return nil, err
	}
	if spec.Options.AsymmetricQuantizeInputs, err = opts.Bool(4, false); err != nil {
		return nil, err
	}
	info := func(t *TensorInfo) ops.LSTMTensorInfo {
		if t == nil {
			return ops.LSTMTensorInfo{}
		}
		li := ops.LSTMTensorInfo{Present: true, Shape: t.Shape}
		if t.Quantization.Quantized() {
			li.Scale = float64(t.Quantization.Scales[0])
			li.ZeroPoint = int(t.Quantization.ZeroPoints[0])
		}
		return li
	}
	for k := 0; k < ops.LSTMNumInputs; k++ {
		spec.Inputs[k] = info(c.in(k))
	}
	out := c.out(0)
	spec.Output = info(out)
	in, err := c.mustIn(ops.LSTMInput)
	if err != nil {
		return nil, err
	}
	for _, k := range []int{ops.LSTMOutputState, ops.LSTMCellState} {
		if t := c.in(k); t != nil && t.Constant {
			return nil, c.errorf("state input %d (tensor %d %q) is a constant; it must be a variable tensor", k, t.Index, t.Name)
		}
	}
	// Types: every present tensor float32 on the float path; on the int8
	// path weights and hidden state int8, biases int32, cell state int16.
	wantAll := func(ty TensorType, ks ...int) error {
		for _, k := range ks {
			if t := c.in(k); t != nil {
				if err := c.wantType("input", t, ty); err != nil {
					return err
				}
			}
		}
		return nil
	}
	weights := []int{1, 2, 3, 4, 5, 6, 7, 8}
	biases := []int{12, 13, 14, 15}
	switch in.Type {
	case Float32:
		all := []int{0, ops.LSTMOutputState, ops.LSTMCellState}
		all = append(append(all, weights...), biases...)
		if err := wantAll(Float32, all...); err != nil {
			return nil, err
		}
		if err := c.wantType("output", out, Float32); err != nil {
			return nil, err
		}
		p, err := ops.PrepareLSTMFloat(&spec)
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		return &prepared{scratch: []int{4 * p.ScratchFloat32}, bind: func(b *binding) (evalFunc, error) {
			f := func(k int) []float32 { return asFloat32s(b.in[k].data) }
			ts := &ops.LSTMFloatTensors{
				Input:                    f(0),
				InputToInputWeights:      f(1),
				InputToForgetWeights:     f(2),
				InputToCellWeights:       f(3),
				InputToOutputWeights:     f(4),
				RecurrentToInputWeights:  f(5),
				RecurrentToForgetWeights: f(6),
				RecurrentToCellWeights:   f(7),
				RecurrentToOutputWeights: f(8),
				InputGateBias:            f(12),
				ForgetGateBias:           f(13),
				CellGateBias:             f(14),
				OutputGateBias:           f(15),
				OutputState:              f(ops.LSTMOutputState),
				CellState:                f(ops.LSTMCellState),
				Output:                   asFloat32s(b.out[0].data),
				Scratch:                  asFloat32s(b.scratch[0]),
			}
			return func() error {
				ops.LSTMFloat(p, ts)
				return nil
			}, nil
		}}, nil
	case Int8:
		if err := wantAll(Int8, append([]int{0, ops.LSTMOutputState}, weights...)...); err != nil {
			return nil, err
		}
		if err := wantAll(Int32, biases...); err != nil {
			return nil, err
		}
		if err := wantAll(Int16, ops.LSTMCellState); err != nil {
			return nil, err
		}
		if err := c.wantType("output", out, Int8); err != nil {
			return nil, err
		}
		p, err := ops.PrepareLSTMInt8(&spec)
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		return &prepared{scratch: []int{2 * p.ScratchInt16}, bind: func(b *binding) (evalFunc, error) {
			i8 := func(k int) []int8 { return asInt8s(b.in[k].data) }
			i32 := func(k int) []int32 { return asInt32s(b.in[k].data) }
			ts := &ops.LSTMInt8Tensors{
				Input:                    i8(0),
				InputToInputWeights:      i8(1),
				InputToForgetWeights:     i8(2),
				InputToCellWeights:       i8(3),
				InputToOutputWeights:     i8(4),
				RecurrentToInputWeights:  i8(5),
				RecurrentToForgetWeights: i8(6),
				RecurrentToCellWeights:   i8(7),
				RecurrentToOutputWeights: i8(8),
				InputGateBias:            i32(12),
				ForgetGateBias:           i32(13),
				CellGateBias:             i32(14),
				OutputGateBias:           i32(15),
				OutputState:              i8(ops.LSTMOutputState),
				CellState:                asInt16s(b.in[ops.LSTMCellState].data),
				Output:                   asInt8s(b.out[0].data),
				Scratch:                  asInt16s(b.scratch[0]),
			}
			return func() error {
				ops.LSTMInt8(p, ts)
				return nil
			}, nil
		}}, nil
	}
	return nil, c.unsupportedf("input type %s (want float32 or int8)", in.Type)
}
