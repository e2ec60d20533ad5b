package ops

// UNIDIRECTIONAL_SEQUENCE_LSTM (builtin 44), float32 and int8 ("8x8->16":
// int8 activations and weights, int32 biases, int16 cell state and gates),
// following TFLite Micro's kernel (micro/kernels/unidirectional_sequence_lstm.cc,
// lstm_eval.h, lstm_eval.cc, lstm_eval_common.cc). Like TFLM, only the
// standard (Keras) LSTM is supported: no CIFG, no peephole, no projection, no
// layer normalization; the cell-gate activation must be TANH.
//
// # Wiring (for the interpreter)
//
// The operator has 24 inputs (an optional one is index -1) and 1 output.
// Input k of the operator is spec.Inputs[k] (the LSTM* index constants below
// name them):
//
//	 0 LSTMInput                       [batch, time, in] (or [time, batch, in] if TimeMajor)
//	 1 LSTMInputToInputWeights         [state, in]
//	 2 LSTMInputToForgetWeights        [state, in]
//	 3 LSTMInputToCellWeights          [state, in]
//	 4 LSTMInputToOutputWeights        [state, in]
//	 5 LSTMRecurrentToInputWeights     [state, state]
//	 6 LSTMRecurrentToForgetWeights    [state, state]
//	 7 LSTMRecurrentToCellWeights      [state, state]
//	 8 LSTMRecurrentToOutputWeights    [state, state]
//	 9..11 peephole weights            must be absent (-1)
//	12 LSTMInputGateBias               [state]
//	13 LSTMForgetGateBias              [state]
//	14 LSTMCellGateBias                [state]
//	15 LSTMOutputGateBias              [state]
//	16..17 projection weights, bias    must be absent (-1)
//	18 LSTMOutputState (variable)      [batch, state]: the hidden state
//	19 LSTMCellState (variable)        [batch, state]
//	20..23 layer-norm coefficients     must be absent (-1)
//
// Output 0 is [batch, time, state] (or [time, batch, state]). The operator's
// intermediates (the int8 model has five) are not used by TFLM's current
// kernel and need not be read.
//
// Dtypes (the interpreter checks them, then picks the float or int8 path by
// the dtype of input 0):
//
//	float path: every present tensor float32.
//	int8 path:  input, weights (1..8), output state (18) and output int8;
//	            biases (12..15) int32; cell state (19) int16.
//
// Prepare: fill an LSTMSpec — Options from UnidirectionalSequenceLSTMOptions
// (fused_activation_function, cell_clip, proj_clip, time_major,
// asymmetric_quantize_inputs), and for each present input k (and the output)
// an LSTMTensorInfo{Present: true, Shape: dims, Scale: first scale as
// float64, ZeroPoint: first zero point} — and call PrepareLSTMFloat or
// PrepareLSTMInt8 once at load time. It reads no tensor data. The params
// report the scratch size (ScratchFloat32 / ScratchInt16 elements, i.e.
// 4*ScratchFloat32 / 2*ScratchInt16 bytes) to reserve in the arena; scratch
// is dead outside the call and need not be zeroed.
//
// Eval: build an LSTMFloatTensors / LSTMInt8Tensors whose slices point at the
// tensors' memory (constants from the model's buffers, the rest from the
// arena; the struct can be built once per interpreter and reused), then call
// LSTMFloat / LSTMInt8 for each Invoke. They allocate nothing. The output
// state and cell state slices are read and written: they are the variable
// tensors, which must persist across Invokes and start at zero — the stored
// value 0, or the zero point for the int8 output state, as TFLM's
// ResetVariableTensors does. Slices shorter than the shapes given to Prepare
// make Eval panic.
//
// Quantization (int8 path): the hidden state and the output use the output
// state's (input 18) scale and zero point; the output tensor's own
// quantization is not consulted (TFLM does the same). The cell state's scale
// must be a power of two. The results are bit-exact with TFLM's reference
// kernel (the corpus's mnist_lstm_int8 golden cases match byte for byte).

import (
	"fmt"
	"math"
)

// Input indices of UNIDIRECTIONAL_SEQUENCE_LSTM (TFLite's lstm_shared.h).
const (
	LSTMInput                       = 0
	LSTMInputToInputWeights         = 1
	LSTMInputToForgetWeights        = 2
	LSTMInputToCellWeights          = 3
	LSTMInputToOutputWeights        = 4
	LSTMRecurrentToInputWeights     = 5
	LSTMRecurrentToForgetWeights    = 6
	LSTMRecurrentToCellWeights      = 7
	LSTMRecurrentToOutputWeights    = 8
	LSTMCellToInputWeights          = 9
	LSTMCellToForgetWeights         = 10
	LSTMCellToOutputWeights         = 11
	LSTMInputGateBias               = 12
	LSTMForgetGateBias              = 13
	LSTMCellGateBias                = 14
	LSTMOutputGateBias              = 15
	LSTMProjectionWeights           = 16
	LSTMProjectionBias              = 17
	LSTMOutputState                 = 18
	LSTMCellState                   = 19
	LSTMInputLayerNormCoefficients  = 20
	LSTMForgetLayerNormCoefficients = 21
	LSTMCellLayerNormCoefficients   = 22
	LSTMOutputLayerNormCoefficients = 23
	LSTMNumInputs                   = 24
)

const (
	// lstmMaxElements bounds every dimension and size product, so that all
	// size computations fit a 32-bit int (GOARCH=arm).
	lstmMaxElements = 1 << 26
	// The cell state's scale must be 2^p with p in this range, so that the
	// int16 tanh's input rescaling stays within int32.
	lstmMinCellScalePower = -19
	lstmMaxCellScalePower = 2
)

// LSTMOptions are the operator's UnidirectionalSequenceLSTMOptions.
type LSTMOptions struct {
	// Activation is fused_activation_function: the cell gate's activation.
	// TFLM supports only ActTanh (the hidden state always uses tanh).
	Activation Activation
	// CellClip, if > 0, clips the cell state to [-CellClip, CellClip].
	CellClip float32
	// ProjClip applies to the projection, which TFLM does not support; it is
	// accepted and ignored.
	ProjClip float32
	// TimeMajor: input is [time, batch, in] instead of [batch, time, in].
	TimeMajor bool
	// AsymmetricQuantizeInputs concerns hybrid kernels only; ignored.
	AsymmetricQuantizeInputs bool
}

// LSTMTensorInfo is what Prepare needs to know about one tensor of the op.
type LSTMTensorInfo struct {
	// Present is false for an optional input given as index -1.
	Present bool
	// Shape is the tensor's dims, outermost first.
	Shape []int
	// Scale and ZeroPoint are the tensor's (first) quantization scale and zero
	// point, as TFLM's TfLiteTensor.params holds them. Zero for float tensors.
	Scale     float64
	ZeroPoint int
}

// LSTMSpec describes one UNIDIRECTIONAL_SEQUENCE_LSTM operator for Prepare.
type LSTMSpec struct {
	Options LSTMOptions
	// Inputs is indexed by the operator's input position (LSTMInput...).
	Inputs [LSTMNumInputs]LSTMTensorInfo
	// Output is the operator's only output.
	Output LSTMTensorInfo
}

// LSTMSize is the geometry of an LSTM (TFLM's LstmSizeInfo).
type LSTMSize struct {
	TimeMajor bool
	Batch     int // batch size
	Time      int // time steps
	Input     int // input dimension
	State     int // state (hidden and cell) dimension
}

// stepRows is the number of rows (batches) processed per step: all of them
// when time-major, one otherwise (TFLM's LstmStepManager).
func (s LSTMSize) stepRows() int {
	if s.TimeMajor {
		return s.Batch
	}
	return 1
}

// LSTMFloatParams are the prepared parameters of a float32 LSTM.
type LSTMFloatParams struct {
	Size LSTMSize
	// CellClip > 0 clips the cell state to [-CellClip, CellClip].
	CellClip float32
	// ScratchFloat32 is the number of float32 scratch elements LSTMFloat needs.
	ScratchFloat32 int
}

// LSTMFloatTensors holds the float32 data of an LSTM's tensors for LSTMFloat.
// Field names follow the input index constants.
type LSTMFloatTensors struct {
	Input                                                                               []float32
	InputToInputWeights, InputToForgetWeights, InputToCellWeights, InputToOutputWeights []float32
	RecurrentToInputWeights, RecurrentToForgetWeights                                   []float32
	RecurrentToCellWeights, RecurrentToOutputWeights                                    []float32
	InputGateBias, ForgetGateBias, CellGateBias, OutputGateBias                         []float32
	OutputState, CellState                                                              []float32 // variable tensors: read and written
	Output                                                                              []float32
	Scratch                                                                             []float32 // ScratchFloat32 elements
}

// lstmCheckSpec validates the spec as TFLM's LstmTensors::ValidateTensorStatus
// and ValidateTensorSize do, and derives the size.
func lstmCheckSpec(spec *LSTMSpec) (LSTMSize, error) {
	var sz LSTMSize
	in := &spec.Inputs
	if spec.Options.Activation != ActTanh {
		return sz, fmt.Errorf("lstm: cell activation %d not supported (only TANH)", spec.Options.Activation)
	}
	names := [LSTMNumInputs]string{
		"input", "input_to_input_weights", "input_to_forget_weights", "input_to_cell_weights",
		"input_to_output_weights", "recurrent_to_input_weights", "recurrent_to_forget_weights",
		"recurrent_to_cell_weights", "recurrent_to_output_weights", "cell_to_input_weights",
		"cell_to_forget_weights", "cell_to_output_weights", "input_gate_bias", "forget_gate_bias",
		"cell_gate_bias", "output_gate_bias", "projection_weights", "projection_bias",
		"output_state", "cell_state", "input_layer_norm_coefficients",
		"forget_layer_norm_coefficients", "cell_layer_norm_coefficients",
		"output_layer_norm_coefficients",
	}
	for k := 0; k < LSTMNumInputs; k++ {
		required := k <= LSTMRecurrentToOutputWeights ||
			(k >= LSTMInputGateBias && k <= LSTMOutputGateBias) ||
			k == LSTMOutputState || k == LSTMCellState
		if required && !in[k].Present {
			return sz, fmt.Errorf("lstm: input %d (%s) is missing; CIFG LSTMs are not supported", k, names[k])
		}
		if !required && in[k].Present {
			return sz, fmt.Errorf("lstm: input %d (%s) is present; peephole, projection and layer-norm LSTMs are not supported", k, names[k])
		}
		if in[k].Present {
			for _, d := range in[k].Shape {
				if d <= 0 || d > lstmMaxElements {
					return sz, fmt.Errorf("lstm: input %d (%s) has invalid shape %v", k, names[k], in[k].Shape)
				}
			}
		}
	}
	if !spec.Output.Present {
		return sz, fmt.Errorf("lstm: output is missing")
	}
	for _, d := range spec.Output.Shape {
		if d <= 0 || d > lstmMaxElements {
			return sz, fmt.Errorf("lstm: output has invalid shape %v", spec.Output.Shape)
		}
	}
	is := in[LSTMInput].Shape
	if len(is) != 3 {
		return sz, fmt.Errorf("lstm: input must have rank 3, has shape %v", is)
	}
	hs := in[LSTMOutputState].Shape
	if len(hs) < 2 {
		return sz, fmt.Errorf("lstm: output state must have rank >= 2, has shape %v", hs)
	}
	sz.TimeMajor = spec.Options.TimeMajor
	if sz.TimeMajor {
		sz.Batch, sz.Time = is[1], is[0]
	} else {
		sz.Batch, sz.Time = is[0], is[1]
	}
	sz.Input = is[2]
	sz.State = hs[1]
	if int64(sz.Batch)*int64(sz.Time)*int64(sz.Input) > lstmMaxElements ||
		int64(sz.Batch)*int64(sz.Time)*int64(sz.State) > lstmMaxElements ||
		int64(sz.State)*int64(sz.Input) > lstmMaxElements ||
		int64(sz.State)*int64(sz.State) > lstmMaxElements {
		return sz, fmt.Errorf("lstm: sizes too large (batch %d, time %d, input %d, state %d)", sz.Batch, sz.Time, sz.Input, sz.State)
	}
	for k := LSTMInputToInputWeights; k <= LSTMRecurrentToOutputWeights; k++ {
		cols := sz.Input
		if k >= LSTMRecurrentToInputWeights {
			cols = sz.State
		}
		s := in[k].Shape
		if len(s) != 2 || s[0] != sz.State || s[1] != cols {
			return sz, fmt.Errorf("lstm: input %d (%s) has shape %v, want [%d %d]", k, names[k], s, sz.State, cols)
		}
	}
	for k := LSTMInputGateBias; k <= LSTMOutputGateBias; k++ {
		s := in[k].Shape
		if len(s) != 1 || s[0] != sz.State {
			return sz, fmt.Errorf("lstm: input %d (%s) has shape %v, want [%d]", k, names[k], s, sz.State)
		}
	}
	for _, k := range []int{LSTMOutputState, LSTMCellState} {
		n := 1
		for _, d := range in[k].Shape {
			n *= d
			if n > lstmMaxElements {
				break
			}
		}
		if n != sz.Batch*sz.State {
			return sz, fmt.Errorf("lstm: input %d (%s) has shape %v, want %d elements", k, names[k], in[k].Shape, sz.Batch*sz.State)
		}
	}
	os := spec.Output.Shape
	if len(os) != 3 || os[0] != is[0] || os[1] != is[1] || os[2] != sz.State {
		return sz, fmt.Errorf("lstm: output has shape %v, want [%d %d %d]", os, is[0], is[1], sz.State)
	}
	return sz, nil
}

// PrepareLSTMFloat validates a float32 UNIDIRECTIONAL_SEQUENCE_LSTM and
// returns its parameters.
func PrepareLSTMFloat(spec *LSTMSpec) (*LSTMFloatParams, error) {
	sz, err := lstmCheckSpec(spec)
	if err != nil {
		return nil, err
	}
	return &LSTMFloatParams{
		Size:           sz,
		CellClip:       spec.Options.CellClip,
		ScratchFloat32: 4 * sz.stepRows() * sz.State,
	}, nil
}

// LSTMFloat runs a float32 LSTM over the whole sequence, updating the output
// state and cell state in place and writing every step's hidden state to
// t.Output. It allocates nothing.
func LSTMFloat(p *LSTMFloatParams, t *LSTMFloatTensors) {
	sz := p.Size
	rows := sz.stepRows()
	n := rows * sz.State
	_ = t.Input[sz.Batch*sz.Time*sz.Input-1]
	_ = t.Output[sz.Batch*sz.Time*sz.State-1]
	_ = t.OutputState[sz.Batch*sz.State-1]
	_ = t.CellState[sz.Batch*sz.State-1]
	forget := t.Scratch[0*n : 1*n]
	inGate := t.Scratch[1*n : 2*n]
	cellGate := t.Scratch[2*n : 3*n]
	tmp := t.Scratch[3*n : 4*n]

	inOff, outOff, stateOff := 0, 0, 0
	step := func() {
		x := t.Input[inOff : inOff+rows*sz.Input]
		h := t.OutputState[stateOff : stateOff+n]
		c := t.CellState[stateOff : stateOff+n]
		lstmGateFloat(x, t.InputToForgetWeights, t.ForgetGateBias, h, t.RecurrentToForgetWeights, rows, sz.Input, sz.State, forget, tmp)
		lstmSigmoidFloat(forget)
		lstmGateFloat(x, t.InputToInputWeights, t.InputGateBias, h, t.RecurrentToInputWeights, rows, sz.Input, sz.State, inGate, tmp)
		lstmSigmoidFloat(inGate)
		lstmGateFloat(x, t.InputToCellWeights, t.CellGateBias, h, t.RecurrentToCellWeights, rows, sz.Input, sz.State, cellGate, tmp)
		lstmTanhFloat(cellGate, cellGate)
		// Cell state: c = forget*c + input*cellGate, then clip.
		for i := range c {
			c[i] = forget[i] * c[i]
		}
		for i := range c {
			inGate[i] = inGate[i] * cellGate[i]
		}
		for i := range c {
			c[i] = c[i] + inGate[i]
		}
		if p.CellClip > 0 {
			clip := p.CellClip
			for i, v := range c {
				c[i] = max(min(clip, v), -clip)
			}
		}
		// Output gate (with the previous hidden state), then h = tanh(c)*o.
		outGate := inGate
		lstmGateFloat(x, t.InputToOutputWeights, t.OutputGateBias, h, t.RecurrentToOutputWeights, rows, sz.Input, sz.State, outGate, tmp)
		lstmSigmoidFloat(outGate)
		lstmTanhFloat(forget, c)
		for i := range h {
			h[i] = forget[i] * outGate[i]
		}
		copy(t.Output[outOff:outOff+n], h)
	}
	lstmRun(sz, step, &inOff, &outOff, &stateOff)
}

// lstmRun drives the time/batch loops as TFLM's EvalLstm and LstmStepManager:
// time-major inputs run all batches per step; batch-major inputs run one
// batch at a time, each over all its time steps.
func lstmRun(sz LSTMSize, step func(), inOff, outOff, stateOff *int) {
	rows := sz.stepRows()
	if sz.TimeMajor {
		for range sz.Time {
			step()
			*inOff += rows * sz.Input
			*outOff += rows * sz.State
		}
		return
	}
	for range sz.Batch {
		for range sz.Time {
			step()
			*inOff += sz.Input
			*outOff += sz.State
		}
		*stateOff += sz.State
	}
}

// lstmGateFloat computes gate = FC(x, wIn, bias) + FC(h, wRec) for rows
// rows, as TFLM's CalculateLstmGate (before the activation).
func lstmGateFloat(x, wIn, bias, h, wRec []float32, rows, nIn, nState int, gate, tmp []float32) {
	lstmFCFloat(x, wIn, bias, rows, nIn, nState, gate)
	lstmFCFloat(h, wRec, nil, rows, nState, nState, tmp)
	for i := range gate[:rows*nState] {
		gate[i] = gate[i] + tmp[i]
	}
}

// lstmFCFloat is reference_ops::FullyConnected without activation: each
// unit's dot product is summed in order, then the bias is added. Four units
// are computed at a time (sharing the loads of x; each sum keeps its order).
func lstmFCFloat(x, w, bias []float32, rows, depth, units int, out []float32) {
	for r := 0; r < rows; r++ {
		xr := x[r*depth : r*depth+depth]
		or := out[r*units : r*units+units]
		u := 0
		for ; u+4 <= units; u += 4 {
			w0 := w[u*depth : u*depth+depth]
			w1 := w[(u+1)*depth : (u+2)*depth]
			w2 := w[(u+2)*depth : (u+3)*depth]
			w3 := w[(u+3)*depth : (u+4)*depth]
			w1, w2, w3 = w1[:len(w0)], w2[:len(w0)], w3[:len(w0)]
			xx := xr[:len(w0)]
			var t0, t1, t2, t3 float32
			for d, xv := range xx {
				t0 += xv * w0[d]
				t1 += xv * w1[d]
				t2 += xv * w2[d]
				t3 += xv * w3[d]
			}
			if bias != nil {
				t0 += bias[u]
				t1 += bias[u+1]
				t2 += bias[u+2]
				t3 += bias[u+3]
			}
			or[u], or[u+1], or[u+2], or[u+3] = t0, t1, t2, t3
		}
		for ; u < units; u++ {
			wr := w[u*depth : u*depth+depth]
			var total float32
			for d, xv := range xr {
				total += xv * wr[d]
			}
			if bias != nil {
				total += bias[u]
			}
			or[u] = total
		}
	}
}

// lstmSigmoidFloat is reference_ops::Logistic (float), in place.
func lstmSigmoidFloat(v []float32) {
	const cutoffUpper = 16.619047164916992188
	const cutoffLower = -9.0
	for i, x := range v {
		switch {
		case x > cutoffUpper:
			v[i] = 1
		case x < cutoffLower:
			v[i] = float32(math.Exp(float64(x)))
		default:
			v[i] = 1 / (1 + float32(math.Exp(float64(-x))))
		}
	}
}

// lstmTanhFloat writes tanh(in) to out.
func lstmTanhFloat(out, in []float32) {
	for i, x := range in {
		out[i] = float32(math.Tanh(float64(x)))
	}
}
