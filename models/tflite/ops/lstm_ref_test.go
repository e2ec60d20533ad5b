package ops

import "math"

// A slow, literal transcription of TFLM's int8 LSTM (EvalLstm<int8_t,
// int8_t, int16_t, int32_t> with its Prepare), written independently of
// lstm_int8.go to cross-check it: TFLM's structures (FullyConnectedParams,
// ArithmeticParams, LstmStepManager) and its reference functions with all
// their parameters, computed per call.

type refFCParams struct {
	inputOffset, weightsOffset, outputOffset int32
	outputMultiplier                         int32
	outputShift                              int
	actMin, actMax                           int32
}

type refArithParams struct {
	input1Offset, input2Offset, outputOffset int32
	outputMultiplier                         int32
	outputShift                              int
	actMin, actMax                           int32
}

type refGateParams struct{ inputFC, recurrentFC refFCParams }

type refOpData struct {
	timeMajor                       bool
	batch, timeSteps, nIn, nState   int
	cellClip                        float32
	quantizedCellClip               int16
	cellScalePower                  int32
	forget, input, cell, output     refGateParams
	forgetCellMul, inputMul, outMul refArithParams
}

func refCreateGateParams(in, w, hidden, hw LSTMTensorInfo) refGateParams {
	mk := func(x, wt LSTMTensorInfo) refFCParams {
		// GetQuantizedConvolutionMultipler: double(in)*double(filter)/double(out).
		real := float64(float32(x.Scale)) * float64(float32(wt.Scale)) / float64(float32(0.00024414062))
		m, s := QuantizeMultiplier(real)
		return refFCParams{
			inputOffset: -int32(x.ZeroPoint), weightsOffset: -int32(wt.ZeroPoint), outputOffset: 0,
			outputMultiplier: m, outputShift: s, actMin: -32768, actMax: 32767,
		}
	}
	return refGateParams{inputFC: mk(in, w), recurrentFC: mk(hidden, hw)}
}

func refCreateInterGateMulParams(s1, s2, sOut float32, outInt8 bool, zp int) refArithParams {
	p := refArithParams{outputOffset: int32(zp), actMin: -32768, actMax: 32767}
	if outInt8 {
		p.actMin, p.actMax = -128, 127
	}
	eff := float64(s1) * float64(s2) / float64(sOut)
	p.outputMultiplier, p.outputShift = QuantizeMultiplier(eff)
	return p
}

func refPrepare(spec *LSTMSpec) *refOpData {
	in := spec.Inputs
	d := &refOpData{timeMajor: spec.Options.TimeMajor}
	is := in[LSTMInput].Shape
	if d.timeMajor {
		d.batch, d.timeSteps = is[1], is[0]
	} else {
		d.batch, d.timeSteps = is[0], is[1]
	}
	d.nIn = is[2]
	d.nState = in[LSTMOutputState].Shape[1]
	cs := float32(in[LSTMCellState].Scale)
	// CheckedLog2.
	l := float32(math.Log(float64(cs))) * (1 / float32(math.Log(2)))
	d.cellScalePower = int32(math.Round(float64(l)))
	d.cellClip = spec.Options.CellClip
	d.quantizedCellClip = int16(math.Min(math.Max(float64(spec.Options.CellClip)/float64(cs), -32768), 32767))
	d.forget = refCreateGateParams(in[LSTMInput], in[LSTMInputToForgetWeights], in[LSTMOutputState], in[LSTMRecurrentToForgetWeights])
	d.input = refCreateGateParams(in[LSTMInput], in[LSTMInputToInputWeights], in[LSTMOutputState], in[LSTMRecurrentToInputWeights])
	d.cell = refCreateGateParams(in[LSTMInput], in[LSTMInputToCellWeights], in[LSTMOutputState], in[LSTMRecurrentToCellWeights])
	d.output = refCreateGateParams(in[LSTMInput], in[LSTMInputToOutputWeights], in[LSTMOutputState], in[LSTMRecurrentToOutputWeights])
	nonlinOut := float32(0.00003051757)
	d.forgetCellMul = refCreateInterGateMulParams(nonlinOut, cs, cs, false, 0)
	d.inputMul = refCreateInterGateMulParams(nonlinOut, nonlinOut, cs, false, 0)
	d.outMul = refCreateInterGateMulParams(nonlinOut, nonlinOut, float32(in[LSTMOutputState].Scale), true, in[LSTMOutputState].ZeroPoint)
	return d
}

// reference_integer_ops::FullyConnected (general form) to int16.
func refFullyConnected(p refFCParams, batches, accumDepth, outputDepth int, input, filter []int8, bias []int32, out []int16) {
	for b := 0; b < batches; b++ {
		for oc := 0; oc < outputDepth; oc++ {
			var acc int32
			for dd := 0; dd < accumDepth; dd++ {
				iv := int32(input[b*accumDepth+dd])
				fv := int32(filter[oc*accumDepth+dd])
				acc += (fv + p.weightsOffset) * (iv + p.inputOffset)
			}
			if bias != nil {
				acc += bias[oc]
			}
			s := MultiplyByQuantizedMultiplier(acc, p.outputMultiplier, p.outputShift)
			s += p.outputOffset
			s = max(s, p.actMin)
			s = min(s, p.actMax)
			out[oc+outputDepth*b] = int16(s)
		}
	}
}

// reference_integer_ops::Logistic (int16) with its parameters.
func refLogistic16(inputMultiplier, inputLeftShift int32, data []int16) {
	if inputMultiplier == 0 {
		inputMultiplier = 3 << inputLeftShift
		inputLeftShift = 0
	}
	var round int32
	if inputLeftShift > 0 {
		round = 1 << (inputLeftShift - 1)
	}
	for i := range data {
		inputData := (int32(data[i])*inputMultiplier + round) >> inputLeftShift
		absInput := uint32(inputData)
		if inputData < 0 {
			absInput = uint32(-inputData)
		}
		uh := absInput >> 9
		var result uint32
		if uh >= 255 {
			result = 0x7FFF << 10
		} else {
			ua := uint32(sigmoidTableUint16[uh])
			ub := uint32(sigmoidTableUint16[uh+1])
			ut := absInput & 0x1ff
			result = (ua << 9) + ut*(ub-ua)
		}
		if inputData >= 0 {
			result = result + (1 << 9)
		} else {
			result = (1 << (16 + 9)) - result + (1 << 9) - 1
		}
		result >>= 10
		data[i] = int16(result)
	}
}

// reference_integer_ops::Tanh (int16) with its parameters.
func refTanh16(inputMultiplier, inputLeftShift int32, in, out []int16) {
	if inputMultiplier == 0 {
		inputMultiplier = 3 << inputLeftShift
		inputLeftShift = 0
	}
	var round int32
	if inputLeftShift > 0 {
		round = 1 << (inputLeftShift - 1)
	}
	for i := range in {
		inputData := (int32(in[i])*inputMultiplier + round) >> inputLeftShift
		absInput := uint32(inputData)
		if inputData < 0 {
			absInput = uint32(-inputData)
		}
		uh := absInput >> 8
		var result int32
		if uh >= 255 {
			result = 0xFFFF << 8
		} else {
			ua := uint32(sigmoidTableUint16[uh])
			ub := uint32(sigmoidTableUint16[uh+1])
			ut := uint8(absInput & 0xFF)
			result = int32((ua << 8) + uint32(ut)*(ub-ua))
		}
		if inputData >= 0 {
			result = result - (1 << (14 + 9)) + (1 << (9 - 2))
		} else {
			result = -result + (1 << (14 + 9)) + (1 << (9 - 2)) - 1
		}
		result >>= 9 - 1
		out[i] = int16(result)
	}
}

// lstm_internal::Tanh: derive the reference Tanh parameters from the scale power.
func refLstmTanh(cellStateScalePower int32, in, out []int16) {
	leftShift := (15 + cellStateScalePower) - 3
	var mult int32
	if leftShift < 0 {
		leftShift = -leftShift
		mult = 3
	}
	refTanh16(mult, leftShift, in, out)
}

// reference_integer_ops::MulElementwise.
func refMulElementwise(p refArithParams, a, b []int16, out func(i int, v int32)) {
	for i := range a {
		v1 := p.input1Offset + int32(a[i])
		v2 := p.input2Offset + int32(b[i])
		u := p.outputOffset + MultiplyByQuantizedMultiplier(v1*v2, p.outputMultiplier, p.outputShift)
		out(i, min(p.actMax, max(p.actMin, u)))
	}
}

func refAddElementWise(a, b, out []int16) {
	for i := range a {
		s := int32(a[i]) + int32(b[i])
		out[i] = int16(min(int32(32767), max(int32(-32768), s)))
	}
}

// lstmSlowInt8 runs the whole sequence as TFLM's EvalLstm does.
func lstmSlowInt8(spec *LSTMSpec, t *LSTMInt8Tensors) {
	d := refPrepare(spec)
	rows := 1
	if d.timeMajor {
		rows = d.batch
	}
	n := rows * d.nState
	buffers := [4][]int16{make([]int16, n), make([]int16, n), make([]int16, n), make([]int16, n)}
	inputOffset, outputOffset, hiddenOffset, cellOffset := 0, 0, 0, 0

	gate := func(gp refGateParams, wIn []int8, bias []int32, wRec []int8, out []int16, sigmoid bool) {
		refFullyConnected(gp.inputFC, rows, d.nIn, d.nState, t.Input[inputOffset:], wIn, bias, out)
		refFullyConnected(gp.recurrentFC, rows, d.nState, d.nState, t.OutputState[hiddenOffset:], wRec, nil, buffers[3])
		refAddElementWise(out, buffers[3], out)
		if sigmoid {
			refLogistic16(0, 0, out)
		} else {
			refLstmTanh(-12, out, out)
		}
	}
	step := func() {
		forget := buffers[0]
		gate(d.forget, t.InputToForgetWeights, t.ForgetGateBias, t.RecurrentToForgetWeights, forget, true)
		inGate := buffers[1]
		gate(d.input, t.InputToInputWeights, t.InputGateBias, t.RecurrentToInputWeights, inGate, true)
		cellGate := buffers[2]
		gate(d.cell, t.InputToCellWeights, t.CellGateBias, t.RecurrentToCellWeights, cellGate, false)

		cell := t.CellState[cellOffset : cellOffset+n]
		refMulElementwise(d.forgetCellMul, forget, cell, func(i int, v int32) { cell[i] = int16(v) })
		upd := buffers[1]
		refMulElementwise(d.inputMul, inGate, cellGate, func(i int, v int32) { upd[i] = int16(v) })
		refAddElementWise(cell, upd, cell)
		if d.cellClip > 0 {
			for i := range cell {
				cell[i] = max(min(d.quantizedCellClip, cell[i]), -d.quantizedCellClip)
			}
		}

		outGate := buffers[1]
		gate(d.output, t.InputToOutputWeights, t.OutputGateBias, t.RecurrentToOutputWeights, outGate, true)
		tanhBuf := buffers[0]
		refLstmTanh(d.cellScalePower, cell, tanhBuf)
		hidden := t.OutputState[hiddenOffset : hiddenOffset+n]
		refMulElementwise(d.outMul, tanhBuf, outGate, func(i int, v int32) { hidden[i] = int8(v) })
		copy(t.Output[outputOffset:outputOffset+n], hidden)
	}
	// LstmStepManager.
	updateTime := func() {
		inStep, outStep := d.nIn, d.nState
		if d.timeMajor {
			inStep *= d.batch
			outStep *= d.batch
		}
		inputOffset += inStep
		outputOffset += outStep
	}
	if d.timeMajor {
		for i := 0; i < d.timeSteps; i++ {
			step()
			updateTime()
		}
		return
	}
	for b := 0; b < d.batch; b++ {
		for i := 0; i < d.timeSteps; i++ {
			step()
			updateTime()
		}
		hiddenOffset += d.nState
		cellOffset += d.nState
	}
}
