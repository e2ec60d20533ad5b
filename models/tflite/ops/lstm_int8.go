package ops

import (
	"fmt"
	"math"
)

// The int8 LSTM ("8x8->16"): int8 input, hidden state and weights, int32
// biases, int16 cell state, gates in int16. The arithmetic is TFLM's
// EvalLstm<int8_t, int8_t, int16_t, int32_t>:
//
//   - each gate is FC(input) + FC(hidden), each FC a reference int8 fully
//     connected with an int16 output of scale 2^-12 (Q3.12), saturated to
//     int16, summed with int16 saturation, then the int16 sigmoid (or tanh for
//     the cell gate) of reference_integer_ops, giving Q0.15;
//   - cell = sat16(MulElementwise(forget, cell) + MulElementwise(input, cellGate))
//     then clipped to ±quantized cell clip when cell_clip > 0;
//   - hidden = MulElementwise(tanh(cell), output gate) requantized to the
//     hidden state's scale and zero point, saturated to int8; the output at
//     each step is a copy of the hidden state.

// LSTMMul are the parameters of one element-wise int16 x int16
// multiplication (TFLM's CreateInterGateMulParams): out =
// clamp(ZeroPoint + MultiplyByQuantizedMultiplier(a*b, Multiplier, Shift)).
type LSTMMul struct {
	Multiplier int32
	Shift      int
	ZeroPoint  int32
	Min, Max   int32
	rq         lstmRequant
}

// LSTMFC are the parameters of one of a gate's two fully connected parts
// (TFLM's FullyConnectedParams from CalculateOpDataFullyConnected):
// out = clamp16(MultiplyByQuantizedMultiplier(Σ (w+WeightOffset)(x+offset) + bias))
// where offset is LSTMInt8Params.InputOffset or HiddenOffset.
type LSTMFC struct {
	WeightOffset int32 // -zero point of the weights
	Multiplier   int32 // of input_scale*weight_scale/2^-12
	Shift        int
	rq           lstmRequant
}

// lstmRequant is MultiplyByQuantizedMultiplier(x, multiplier, shift) with
// the shift split and the rounding constants computed once (the LSTM calls
// it for every gate unit of every step).
type lstmRequant struct {
	mult        int32
	left, right uint8
	mask, half  int32
}

func newLSTMRequant(multiplier int32, shift int) lstmRequant {
	q := lstmRequant{mult: multiplier}
	if shift > 0 {
		q.left = uint8(shift)
	} else {
		q.right = uint8(-shift)
	}
	q.mask = int32(uint32(1)<<q.right - 1)
	q.half = q.mask >> 1
	return q
}

// apply returns exactly MultiplyByQuantizedMultiplier(x, multiplier, shift)
// for the multipliers QuantizeMultiplier produces (never MinInt32) and
// shifts in [-31, 30]: a wrapping left shift, SaturatingRoundingDoublingHighMul,
// then RoundingDivideByPOT. TestLSTMRequant checks the equivalence.
func (q *lstmRequant) apply(x int32) int32 {
	x <<= q.left & 31
	ab := int64(x) * int64(q.mult)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	h := int32((ab + nudge) / (1 << 31))
	th := q.half
	if h < 0 {
		th++
	}
	r := h >> (q.right & 31)
	if h&q.mask > th {
		r++
	}
	return r
}

// LSTMGateInt8 are the parameters of one gate: FC over the input (with the
// gate's bias) plus FC over the hidden state (no bias).
type LSTMGateInt8 struct {
	Input, Recurrent LSTMFC
}

// LSTMInt8Params are the prepared parameters of an int8 LSTM.
type LSTMInt8Params struct {
	Size LSTMSize
	// InputOffset and HiddenOffset are minus the zero points of the input
	// and of the output (hidden) state: the input offsets of the gates'
	// input and recurrent fully connected parts.
	InputOffset, HiddenOffset int32
	// Gates, as TFLM's OpDataLSTM.{forget,input,cell,output}_gate_parameters.
	ForgetGate, InputGate, CellGate, OutputGate LSTMGateInt8
	// ForgetCellMul: forget gate (2^-15) x cell state -> cell state.
	ForgetCellMul LSTMMul
	// InputMul: input gate (2^-15) x cell gate (2^-15) -> cell state.
	InputMul LSTMMul
	// OutputMul: tanh(cell) (2^-15) x output gate (2^-15) -> hidden state
	// (int8, with the hidden state's zero point).
	OutputMul LSTMMul
	// CellScalePower: the cell state's scale is 2^CellScalePower.
	CellScalePower int
	// CellClip > 0 enables clipping to ±QuantizedCellClip.
	CellClip          float32
	QuantizedCellClip int16
	// TanhMultiplier and TanhShift rescale the cell state for the int16 tanh
	// of the hidden-state update (derived from CellScalePower as TFLM's
	// lstm_internal::Tanh and reference_integer_ops::Tanh do).
	TanhMultiplier int32
	TanhShift      int
	// ScratchInt16 is the number of int16 scratch elements LSTMInt8 needs:
	// TFLM's four gate buffers plus room for the step's offset input and
	// hidden state.
	ScratchInt16 int
}

// LSTMInt8Tensors holds the data of an int8 LSTM's tensors for LSTMInt8.
// Field names follow the input index constants.
type LSTMInt8Tensors struct {
	Input                                                                               []int8
	InputToInputWeights, InputToForgetWeights, InputToCellWeights, InputToOutputWeights []int8
	RecurrentToInputWeights, RecurrentToForgetWeights                                   []int8
	RecurrentToCellWeights, RecurrentToOutputWeights                                    []int8
	InputGateBias, ForgetGateBias, CellGateBias, OutputGateBias                         []int32
	OutputState                                                                         []int8  // variable: read and written
	CellState                                                                           []int16 // variable: read and written
	Output                                                                              []int8
	Scratch                                                                             []int16 // ScratchInt16 elements
}

// lstmGateScale is the scale of the gates' pre-activation values (Q3.12):
// TFLM's float32 constant 0.00024414062f, which is exactly 2^-12.
const lstmGateScale = 1.0 / 4096

// lstmGateOutScale is the scale TFLM gives the activations' outputs (Q0.15)
// when it derives the inter-gate multipliers: the float32 constant
// 0.00003051757f, which is NOT exactly 2^-15 (it is 2^-15 * (1 - 2^-22)).
// Using it, as TFLM does, changes the multipliers and so the results.
var lstmGateOutScale = float64(float32(0.00003051757))

// PrepareLSTMInt8 validates an int8 UNIDIRECTIONAL_SEQUENCE_LSTM and computes
// its fixed-point parameters as TFLM's UnidirectionalSequenceLstmPrepare
// (CreateLstmCellStateInfo, PrepareGateParametersInteger).
func PrepareLSTMInt8(spec *LSTMSpec) (*LSTMInt8Params, error) {
	sz, err := lstmCheckSpec(spec)
	if err != nil {
		return nil, err
	}
	in := &spec.Inputs
	for _, k := range []int{LSTMInput, LSTMInputToInputWeights, LSTMInputToForgetWeights,
		LSTMInputToCellWeights, LSTMInputToOutputWeights, LSTMRecurrentToInputWeights,
		LSTMRecurrentToForgetWeights, LSTMRecurrentToCellWeights, LSTMRecurrentToOutputWeights,
		LSTMOutputState, LSTMCellState} {
		if !(in[k].Scale > 0) || math.IsInf(in[k].Scale, 0) {
			return nil, fmt.Errorf("lstm: input %d has invalid scale %g", k, in[k].Scale)
		}
	}
	p := &LSTMInt8Params{
		Size:         sz,
		ScratchInt16: 4*sz.stepRows()*sz.State + sz.stepRows()*(sz.Input+sz.State),
		InputOffset:  -int32(in[LSTMInput].ZeroPoint),
		HiddenOffset: -int32(in[LSTMOutputState].ZeroPoint),
	}

	// Cell state info (CreateLstmCellStateInfo): the scale's power of two,
	// as CheckedLog2 computes it in float32, and the quantized clip.
	cellScale := float32(in[LSTMCellState].Scale)
	log2 := float32(math.Log(float64(cellScale))) * float32(1/math.Log(2))
	power := int(math.Round(float64(log2)))
	if math.Abs(float64(log2)-math.Round(float64(log2))) >= 1e-3 {
		return nil, fmt.Errorf("lstm: cell state scale %g is not a power of two", cellScale)
	}
	if power < lstmMinCellScalePower || power > lstmMaxCellScalePower {
		return nil, fmt.Errorf("lstm: cell state scale 2^%d out of the supported range [2^%d, 2^%d]", power, lstmMinCellScalePower, lstmMaxCellScalePower)
	}
	p.CellScalePower = power
	p.CellClip = spec.Options.CellClip
	q := float64(spec.Options.CellClip) / float64(cellScale)
	q = math.Min(math.Max(q, -32768), 32767)
	p.QuantizedCellClip = int16(q) // truncation, as static_cast<int16_t>

	// int16 tanh input rescaling for the hidden-state update (lstm_internal::Tanh).
	shift := (15 + power) - 3
	mult := int32(0)
	if shift < 0 {
		shift = -shift
		mult = 3
	}
	if mult == 0 { // reference_integer_ops::Tanh's power-of-two case
		mult = 3 << uint(shift)
		shift = 0
	}
	p.TanhMultiplier, p.TanhShift = mult, shift

	// Gates (CreateGateParams): input FC with the gate bias, recurrent FC
	// without, both to int16 of scale 2^-12, zero point 0.
	var scaleErr error
	checkShift := func(what string, real float64, s int) {
		if s > 30 && scaleErr == nil {
			scaleErr = fmt.Errorf("lstm: %s rescale factor %g too large", what, real)
		}
	}
	fc := func(x, w int) LSTMFC {
		m, s := QuantizeMultiplier(in[x].Scale * in[w].Scale / lstmGateScale)
		checkShift(fmt.Sprintf("input %d x input %d", x, w), in[x].Scale*in[w].Scale/lstmGateScale, s)
		return LSTMFC{WeightOffset: -int32(in[w].ZeroPoint), Multiplier: m, Shift: s, rq: newLSTMRequant(m, s)}
	}
	gate := func(wIn, wRec int) LSTMGateInt8 {
		return LSTMGateInt8{Input: fc(LSTMInput, wIn), Recurrent: fc(LSTMOutputState, wRec)}
	}
	p.ForgetGate = gate(LSTMInputToForgetWeights, LSTMRecurrentToForgetWeights)
	p.InputGate = gate(LSTMInputToInputWeights, LSTMRecurrentToInputWeights)
	p.CellGate = gate(LSTMInputToCellWeights, LSTMRecurrentToCellWeights)
	p.OutputGate = gate(LSTMInputToOutputWeights, LSTMRecurrentToOutputWeights)

	// Inter-gate multiplications (CreateInterGateMulParams), in double.
	mul := func(s1, s2, sOut float64, zp int32, lo, hi int32) LSTMMul {
		m, s := QuantizeMultiplier(s1 * s2 / sOut)
		checkShift("inter-gate multiplication", s1*s2/sOut, s)
		return LSTMMul{Multiplier: m, Shift: s, ZeroPoint: zp, Min: lo, Max: hi, rq: newLSTMRequant(m, s)}
	}
	cs := float64(cellScale)
	p.ForgetCellMul = mul(lstmGateOutScale, cs, cs, 0, math.MinInt16, math.MaxInt16)
	p.InputMul = mul(lstmGateOutScale, lstmGateOutScale, cs, 0, math.MinInt16, math.MaxInt16)
	hz := in[LSTMOutputState].ZeroPoint
	if hz < math.MinInt8 || hz > math.MaxInt8 {
		return nil, fmt.Errorf("lstm: output state zero point %d out of int8 range", hz)
	}
	p.OutputMul = mul(lstmGateOutScale, lstmGateOutScale, in[LSTMOutputState].Scale, int32(hz), math.MinInt8, math.MaxInt8)
	if scaleErr != nil {
		return nil, scaleErr
	}
	for _, k := range []int{LSTMInput, LSTMInputToInputWeights, LSTMInputToForgetWeights,
		LSTMInputToCellWeights, LSTMInputToOutputWeights, LSTMRecurrentToInputWeights,
		LSTMRecurrentToForgetWeights, LSTMRecurrentToCellWeights, LSTMRecurrentToOutputWeights} {
		if z := in[k].ZeroPoint; z < math.MinInt8 || z > math.MaxInt8 {
			return nil, fmt.Errorf("lstm: input %d zero point %d out of int8 range", k, z)
		}
	}
	return p, nil
}

// LSTMInt8 runs an int8 LSTM over the whole sequence, updating the output
// state and cell state in place and writing every step's hidden state to
// t.Output. It allocates nothing.
func LSTMInt8(p *LSTMInt8Params, t *LSTMInt8Tensors) {
	sz := p.Size
	rows := sz.stepRows()
	n := rows * sz.State
	_ = t.Input[sz.Batch*sz.Time*sz.Input-1]
	_ = t.Output[sz.Batch*sz.Time*sz.State-1]
	_ = t.OutputState[sz.Batch*sz.State-1]
	_ = t.CellState[sz.Batch*sz.State-1]
	buf0 := t.Scratch[0*n : 1*n]
	buf1 := t.Scratch[1*n : 2*n]
	buf2 := t.Scratch[2*n : 3*n]
	buf3 := t.Scratch[3*n : 4*n]
	xs := t.Scratch[4*n : 4*n+rows*sz.Input]
	hs := t.Scratch[4*n+rows*sz.Input : 4*n+rows*(sz.Input+sz.State)]

	inOff, outOff, stateOff := 0, 0, 0
	step := func() {
		x := t.Input[inOff : inOff+rows*sz.Input]
		h := t.OutputState[stateOff : stateOff+n]
		c := t.CellState[stateOff : stateOff+n]
		// The FCs' inputs with their offsets added (|v| <= 255), shared by
		// the four gates: the hidden state changes only at the end of the step.
		for i, v := range x {
			xs[i] = int16(int32(v) + p.InputOffset)
		}
		for i, v := range h {
			hs[i] = int16(int32(v) + p.HiddenOffset)
		}
		// Forget, input and cell gates (buffers 0, 1, 2; 3 is the FC scratch).
		forget := buf0
		lstmGateInt8(&p.ForgetGate, xs, t.InputToForgetWeights, t.ForgetGateBias, hs, t.RecurrentToForgetWeights, rows, sz.Input, sz.State, forget, buf3)
		lstmSigmoidInt16(forget)
		inGate := buf1
		lstmGateInt8(&p.InputGate, xs, t.InputToInputWeights, t.InputGateBias, hs, t.RecurrentToInputWeights, rows, sz.Input, sz.State, inGate, buf3)
		lstmSigmoidInt16(inGate)
		cellGate := buf2
		lstmGateInt8(&p.CellGate, xs, t.InputToCellWeights, t.CellGateBias, hs, t.RecurrentToCellWeights, rows, sz.Input, sz.State, cellGate, buf3)
		lstmTanhInt16(3, 0, cellGate, cellGate) // Tanh(-12, ...): multiplier 3, no shift

		// Cell state update (UpdateLstmCell).
		fm := &p.ForgetCellMul
		for i, cv := range c {
			c[i] = int16(lstmMulElem(int32(forget[i])*int32(cv), fm))
		}
		im := &p.InputMul
		upd := buf1 // reuses the input gate's buffer element by element
		for i, g := range cellGate {
			upd[i] = int16(lstmMulElem(int32(inGate[i])*int32(g), im))
		}
		for i, cv := range c {
			c[i] = int16(clamp32(int32(cv)+int32(upd[i]), math.MinInt16, math.MaxInt16))
		}
		if p.CellClip > 0 {
			qc := p.QuantizedCellClip
			for i, cv := range c {
				c[i] = max(min(qc, cv), -qc)
			}
		}

		// Output gate (with the previous hidden state), then the hidden state.
		outGate := buf1
		lstmGateInt8(&p.OutputGate, xs, t.InputToOutputWeights, t.OutputGateBias, hs, t.RecurrentToOutputWeights, rows, sz.Input, sz.State, outGate, buf3)
		lstmSigmoidInt16(outGate)
		tanhC := buf0
		lstmTanhInt16(p.TanhMultiplier, p.TanhShift, tanhC, c)
		om := &p.OutputMul
		for i, tv := range tanhC {
			h[i] = int8(lstmMulElem(int32(tv)*int32(outGate[i]), om))
		}
		copy(t.Output[outOff:outOff+n], h)
	}
	lstmRun(sz, step, &inOff, &outOff, &stateOff)
}

// lstmMulElem is one element of reference_integer_ops::MulElementwise with
// zero input offsets: prod is the product of the two int16 inputs.
func lstmMulElem(prod int32, m *LSTMMul) int32 {
	return clamp32(m.ZeroPoint+m.rq.apply(prod), m.Min, m.Max)
}

// lstmGateInt8 computes a gate's pre-activation (TFLM's CalculateLstmGate
// before the activation): sat16(FC(x) + FC(h)) into gate; tmp is scratch.
// xs and hs are the input and hidden state with their offsets added.
func lstmGateInt8(g *LSTMGateInt8, xs []int16, wIn []int8, bias []int32, hs []int16, wRec []int8, rows, nIn, nState int, gate, tmp []int16) {
	lstmFCInt8(&g.Input, xs, wIn, bias, rows, nIn, nState, gate)
	lstmFCInt8(&g.Recurrent, hs, wRec, nil, rows, nState, nState, tmp)
	gate = gate[:rows*nState]
	tmp = tmp[:len(gate)]
	for i, v := range gate {
		gate[i] = int16(clamp32(int32(v)+int32(tmp[i]), math.MinInt16, math.MaxInt16))
	}
}

// lstmFCInt8 is the reference integer fully connected with int8 weights,
// int32 bias and an int16 output with zero point 0, clamped to the int16
// range. xs holds the input values plus the input offset, so the
// accumulator Σ (w+wo)(x+xo) is computed as Σ w·xs + wo·Σ xs (equal in
// int32 arithmetic).
func lstmFCInt8(f *LSTMFC, xs []int16, w []int8, bias []int32, rows, depth, units int, out []int16) {
	wo := f.WeightOffset
	for r := 0; r < rows; r++ {
		xr := xs[r*depth : r*depth+depth]
		or := out[r*units : r*units+units]
		var xsum int32
		if wo != 0 {
			for _, v := range xr {
				xsum += int32(v)
			}
		}
		finish := func(u int, acc int32) {
			acc += wo * xsum
			if bias != nil {
				acc += bias[u]
			}
			acc = f.rq.apply(acc)
			or[u] = int16(clamp32(acc, math.MinInt16, math.MaxInt16))
		}
		u := 0
		// Four units at a time, sharing the loads of x.
		for ; u+4 <= units; u += 4 {
			w0 := w[u*depth : u*depth+depth]
			w1 := w[(u+1)*depth : (u+2)*depth]
			w2 := w[(u+2)*depth : (u+3)*depth]
			w3 := w[(u+3)*depth : (u+4)*depth]
			w1, w2, w3 = w1[:len(w0)], w2[:len(w0)], w3[:len(w0)]
			x := xr[:len(w0)]
			var a0, a1, a2, a3 int32
			for d, xv := range x {
				v := int32(xv)
				a0 += int32(w0[d]) * v
				a1 += int32(w1[d]) * v
				a2 += int32(w2[d]) * v
				a3 += int32(w3[d]) * v
			}
			finish(u, a0)
			finish(u+1, a1)
			finish(u+2, a2)
			finish(u+3, a3)
		}
		for ; u < units; u++ {
			finish(u, lstmDot(w[u*depth:u*depth+depth], xr))
		}
	}
}

// lstmDot returns Σ w[i]*x[i] in (wrapping) int32 arithmetic.
func lstmDot(w []int8, x []int16) int32 {
	x = x[:len(w)]
	var a0, a1, a2, a3 int32
	for len(w) >= 4 && len(x) >= 4 {
		a0 += int32(w[0]) * int32(x[0])
		a1 += int32(w[1]) * int32(x[1])
		a2 += int32(w[2]) * int32(x[2])
		a3 += int32(w[3]) * int32(x[3])
		w, x = w[4:], x[4:]
	}
	for i, v := range w {
		a0 += int32(v) * int32(x[i])
	}
	return a0 + a1 + a2 + a3
}

// lstmSigmoidInt16 is reference_integer_ops::Logistic for int16 with
// input_multiplier 0 and input_left_shift 0 (input Q3.12, output Q0.15), in
// place: a 3/4-scaled lookup in sigmoidTableUint16 with linear
// interpolation.
func lstmSigmoidInt16(v []int16) {
	for i, x := range v {
		in := int32(x) * 3
		abs := uint32(in)
		if in < 0 {
			abs = uint32(-in)
		}
		uh := abs >> 9
		var result uint32
		if uh >= 255 {
			result = 0x7FFF << 10
		} else {
			ua := uint32(sigmoidTableUint16[uh])
			ub := uint32(sigmoidTableUint16[uh+1])
			ut := abs & 0x1ff
			result = (ua << 9) + ut*(ub-ua)
		}
		if in >= 0 {
			result += 1 << 9
		} else {
			result = (1 << (16 + 9)) - result + (1 << 9) - 1
		}
		v[i] = int16(result >> 10)
	}
}

// lstmTanhInt16 is reference_integer_ops::Tanh for int16 after its
// power-of-two adjustment: in*multiplier is rounded right by shift, then a
// lookup of tanh(x) = 2*sigmoid(2x) - 1 gives Q0.15. out and in may alias.
func lstmTanhInt16(multiplier int32, shift int, out, in []int16) {
	round := int32(0)
	if shift > 0 {
		round = 1 << uint(shift-1)
	}
	out = out[:len(in)]
	for i, x := range in {
		v := (int32(x)*multiplier + round) >> uint(shift)
		abs := uint32(v)
		if v < 0 {
			abs = uint32(-v)
		}
		uh := abs >> 8
		var result int32
		if uh >= 255 {
			result = 0xFFFF << 8
		} else {
			ua := uint32(sigmoidTableUint16[uh])
			ub := uint32(sigmoidTableUint16[uh+1])
			ut := abs & 0xFF
			result = int32((ua << 8) + ut*(ub-ua))
		}
		if v >= 0 {
			result = result - (1 << (14 + 9)) + (1 << (9 - 2))
		} else {
			result = -result + (1 << (14 + 9)) + (1 << (9 - 2)) - 1
		}
		out[i] = int16(result >> (9 - 1))
	}
}

// sigmoidTableUint16 is TFLite's sigmoid_table_uint16 (kernels/internal/
// common.h), k = 0..255: 65536*sigmoid(k/24) within about two units (the last
// entry is 65535). TestLSTMSigmoidTable checks it against the formula.
var sigmoidTableUint16 = [256]uint16{
	32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
	40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
	46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
	52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
	56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
	59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
	61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
	62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
	63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
	64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
	64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
	65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
	65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
	65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
	65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
	65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
	65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
	65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
	65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
	65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
	65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
	65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
	65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
	65534, 65534, 65535,
}
