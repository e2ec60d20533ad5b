package ops

import (
	"math"
	"testing"
)

// fuzzBytes hands out bytes of a fuzz input, then zeros.
type fuzzBytes struct {
	b []byte
	i int
}

func (f *fuzzBytes) next() byte {
	if f.i >= len(f.b) {
		return 0
	}
	f.i++
	return f.b[f.i-1]
}

// FuzzLSTMPrepare builds arbitrary specs (shapes, optional inputs, scales,
// zero points, options): Prepare must never panic, and whenever it accepts a
// spec, Eval over slices of the sizes the spec declares must not panic.
func FuzzLSTMPrepare(f *testing.F) {
	f.Add([]byte{1, 3, 4, 5, 0, 0, 0, 0, 0, 12})
	f.Add([]byte{2, 2, 3, 2, 1, 0xff, 0, 3, 9, 7, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{b: data}
		dim := func() int { return int(int8(fb.next())) % 9 }
		batch, time, nIn, nState := dim(), dim(), dim(), dim()
		flags := fb.next()
		q := lstmTestQuant{
			inScale:  float64(fb.next()) / 256,
			inZP:     int(int8(fb.next())),
			wZP:      int(int8(fb.next())) % 4,
			hScale:   float64(fb.next()) / 128,
			hZP:      int(int8(fb.next())),
			cScale:   math.Ldexp(1, -int(fb.next()%30)),
			cellClip: float32(fb.next()) / 16,
		}
		for k := range q.wScale {
			q.wScale[k] = float64(fb.next()) / 1024
		}
		spec := lstmTestSpec(max(batch, 1), max(time, 1), max(nIn, 1), max(nState, 1), flags&1 != 0, q)
		// Corrupt the spec in ways driven by the input.
		if flags&2 != 0 {
			k := int(fb.next()) % LSTMNumInputs
			spec.Inputs[k].Present = !spec.Inputs[k].Present
			spec.Inputs[k].Shape = []int{dim(), dim()}
		}
		if flags&4 != 0 {
			spec.Inputs[LSTMInput].Shape = []int{batch, time, nIn}
		}
		if flags&8 != 0 {
			spec.Inputs[LSTMOutputState].Shape = []int{batch, nState}
			spec.Inputs[LSTMCellState].Shape = []int{dim()}
		}
		if flags&16 != 0 {
			spec.Output.Shape = []int{dim(), dim(), dim()}
		}
		if flags&32 != 0 {
			spec.Options.Activation = Activation(fb.next() % 7)
		}
		if fp, err := PrepareLSTMFloat(spec); err == nil {
			sz := fp.Size
			tt := &LSTMFloatTensors{
				Input:               make([]float32, sz.Batch*sz.Time*sz.Input),
				InputToInputWeights: make([]float32, sz.State*sz.Input), InputToForgetWeights: make([]float32, sz.State*sz.Input),
				InputToCellWeights: make([]float32, sz.State*sz.Input), InputToOutputWeights: make([]float32, sz.State*sz.Input),
				RecurrentToInputWeights: make([]float32, sz.State*sz.State), RecurrentToForgetWeights: make([]float32, sz.State*sz.State),
				RecurrentToCellWeights: make([]float32, sz.State*sz.State), RecurrentToOutputWeights: make([]float32, sz.State*sz.State),
				InputGateBias: make([]float32, sz.State), ForgetGateBias: make([]float32, sz.State),
				CellGateBias: make([]float32, sz.State), OutputGateBias: make([]float32, sz.State),
				OutputState: make([]float32, sz.Batch*sz.State), CellState: make([]float32, sz.Batch*sz.State),
				Output:  make([]float32, sz.Batch*sz.Time*sz.State),
				Scratch: make([]float32, fp.ScratchFloat32),
			}
			LSTMFloat(fp, tt)
		}
		if ip, err := PrepareLSTMInt8(spec); err == nil {
			sz := ip.Size
			tt := &LSTMInt8Tensors{
				Input:               make([]int8, sz.Batch*sz.Time*sz.Input),
				InputToInputWeights: make([]int8, sz.State*sz.Input), InputToForgetWeights: make([]int8, sz.State*sz.Input),
				InputToCellWeights: make([]int8, sz.State*sz.Input), InputToOutputWeights: make([]int8, sz.State*sz.Input),
				RecurrentToInputWeights: make([]int8, sz.State*sz.State), RecurrentToForgetWeights: make([]int8, sz.State*sz.State),
				RecurrentToCellWeights: make([]int8, sz.State*sz.State), RecurrentToOutputWeights: make([]int8, sz.State*sz.State),
				InputGateBias: make([]int32, sz.State), ForgetGateBias: make([]int32, sz.State),
				CellGateBias: make([]int32, sz.State), OutputGateBias: make([]int32, sz.State),
				OutputState: make([]int8, sz.Batch*sz.State), CellState: make([]int16, sz.Batch*sz.State),
				Output:  make([]int8, sz.Batch*sz.Time*sz.State),
				Scratch: make([]int16, ip.ScratchInt16),
			}
			LSTMInt8(ip, tt)
		}
	})
}

// FuzzLSTMInt8 compares LSTMInt8 with the slow transcription of TFLM
// (lstmSlowInt8) on fuzzed quantization parameters and data, bit for bit.
func FuzzLSTMInt8(f *testing.F) {
	f.Add([]byte{0, 2, 3, 4, 0, 100, 3, 0, 60, 12, 40, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{1, 1, 5, 2, 1, 255, 128, 1, 255, 2, 0, 200, 100, 50, 25, 12, 6, 3, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{b: data}
		batch := 1 + int(fb.next()%3)
		time := 1 + int(fb.next()%4)
		nIn := 1 + int(fb.next()%6)
		nState := 1 + int(fb.next()%6)
		tm := fb.next()&1 != 0
		q := lstmTestQuant{
			inScale:  (1 + float64(fb.next())) / 256,
			inZP:     int(int8(fb.next())),
			wZP:      int(int8(fb.next())) % 3,
			hScale:   (1 + float64(fb.next())) / 2048,
			hZP:      int(int8(fb.next())),
			cScale:   math.Ldexp(1, -8-int(fb.next()%10)),
			cellClip: float32(fb.next()) / 32,
		}
		for k := range q.wScale {
			q.wScale[k] = (1 + float64(fb.next())) / 4096
		}
		spec := lstmTestSpec(batch, time, nIn, nState, tm, q)
		p, err := PrepareLSTMInt8(spec)
		if err != nil {
			t.Skip(err)
		}
		i8 := func(n int) []int8 {
			v := make([]int8, n)
			for i := range v {
				v[i] = int8(fb.next())
			}
			return v
		}
		i32 := func(n int) []int32 {
			v := make([]int32, n)
			for i := range v {
				v[i] = int32(int16(uint16(fb.next())<<8|uint16(fb.next()))) * 4
			}
			return v
		}
		mk := func() *LSTMInt8Tensors {
			return &LSTMInt8Tensors{
				OutputState: make([]int8, batch*nState), CellState: make([]int16, batch*nState),
				Output: make([]int8, batch*time*nState), Scratch: make([]int16, p.ScratchInt16),
			}
		}
		a, b := mk(), mk()
		a.Input = i8(batch * time * nIn)
		a.InputToInputWeights, a.InputToForgetWeights = i8(nState*nIn), i8(nState*nIn)
		a.InputToCellWeights, a.InputToOutputWeights = i8(nState*nIn), i8(nState*nIn)
		a.RecurrentToInputWeights, a.RecurrentToForgetWeights = i8(nState*nState), i8(nState*nState)
		a.RecurrentToCellWeights, a.RecurrentToOutputWeights = i8(nState*nState), i8(nState*nState)
		a.InputGateBias, a.ForgetGateBias, a.CellGateBias, a.OutputGateBias = i32(nState), i32(nState), i32(nState), i32(nState)
		for i := range a.CellState {
			a.OutputState[i] = int8(fb.next())
			a.CellState[i] = int16(uint16(fb.next())<<8 | uint16(fb.next()))
		}
		*b = *a
		b.OutputState = append([]int8(nil), a.OutputState...)
		b.CellState = append([]int16(nil), a.CellState...)
		b.Output = make([]int8, len(a.Output))
		b.Scratch = make([]int16, len(a.Scratch))
		LSTMInt8(p, a)
		lstmSlowInt8(spec, b)
		for i := range a.Output {
			if a.Output[i] != b.Output[i] {
				t.Fatalf("output[%d] = %d, reference %d", i, a.Output[i], b.Output[i])
			}
		}
		for i := range a.CellState {
			if a.CellState[i] != b.CellState[i] || a.OutputState[i] != b.OutputState[i] {
				t.Fatalf("state[%d] differs", i)
			}
		}
	})
}
