package tflwrite

import (
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// Op is a builtin operator code (schema.fbs, enum BuiltinOperator).
type Op int32

// The builtin operators the writer knows the options and versions of.
// Others can be written too (AddOp with an explicit Version and nil
// Options), as long as they take no options.
const (
	OpAdd                        Op = 0
	OpAveragePool2D              Op = 1
	OpConcatenation              Op = 2
	OpConv2D                     Op = 3
	OpDepthwiseConv2D            Op = 4
	OpDequantize                 Op = 6
	OpFullyConnected             Op = 9
	OpLogistic                   Op = 14
	OpMaxPool2D                  Op = 17
	OpMul                        Op = 18
	OpRelu                       Op = 19
	OpRelu6                      Op = 21
	OpReshape                    Op = 22
	OpSoftmax                    Op = 25
	OpTanh                       Op = 28
	OpCustom                     Op = 32
	OpPad                        Op = 34
	OpMean                       Op = 40
	OpSub                        Op = 41
	OpSqueeze                    Op = 43
	OpUnidirectionalSequenceLSTM Op = 44
	OpStridedSlice               Op = 45
	OpTransposeConv              Op = 67
	OpLeakyRelu                  Op = 98
	OpQuantize                   Op = 114
)

var opNames = map[Op]string{
	OpAdd: "ADD", OpAveragePool2D: "AVERAGE_POOL_2D", OpConcatenation: "CONCATENATION",
	OpConv2D: "CONV_2D", OpDepthwiseConv2D: "DEPTHWISE_CONV_2D", OpDequantize: "DEQUANTIZE",
	OpFullyConnected: "FULLY_CONNECTED", OpLogistic: "LOGISTIC", OpMaxPool2D: "MAX_POOL_2D",
	OpMul: "MUL", OpRelu: "RELU", OpRelu6: "RELU6", OpReshape: "RESHAPE", OpSoftmax: "SOFTMAX",
	OpTanh: "TANH", OpCustom: "CUSTOM", OpPad: "PAD", OpMean: "MEAN", OpSub: "SUB",
	OpSqueeze: "SQUEEZE", OpUnidirectionalSequenceLSTM: "UNIDIRECTIONAL_SEQUENCE_LSTM",
	OpStridedSlice: "STRIDED_SLICE", OpTransposeConv: "TRANSPOSE_CONV", OpLeakyRelu: "LEAKY_RELU",
	OpQuantize: "QUANTIZE",
}

// String returns the schema's name of the operator ("CONV_2D").
func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("BUILTIN_%d", int32(o))
}

// Activation is a fused activation function (enum ActivationFunctionType).
type Activation int8

// Fused activation functions.
const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
	ActTanh      Activation = 4
)

// Padding is a convolution or pooling padding mode (enum Padding).
type Padding int8

// Padding modes.
const (
	PaddingSame  Padding = 0
	PaddingValid Padding = 1
)

// Options are an operator's builtin options: one of the *Options types of
// this package, each the table schema.fbs pairs with its operators.
type Options interface {
	unionType() uint8
	validate() error
	build(fb *flatbuffers.Builder) flatbuffers.UOffsetT
}

// optionsFor maps each operator to a constructor of its default options,
// or to nil for operators whose options union is empty (LOGISTIC, TANH,
// RELU...). Operators missing from the map accept only nil options.
var optionsFor = map[Op]func() Options{
	OpAdd:                        func() Options { return &AddOptions{} },
	OpAveragePool2D:              func() Options { return &Pool2DOptions{} },
	OpMaxPool2D:                  func() Options { return &Pool2DOptions{} },
	OpConcatenation:              func() Options { return &ConcatenationOptions{} },
	OpConv2D:                     func() Options { return &Conv2DOptions{} },
	OpDepthwiseConv2D:            func() Options { return &DepthwiseConv2DOptions{} },
	OpDequantize:                 func() Options { return &DequantizeOptions{} },
	OpFullyConnected:             func() Options { return &FullyConnectedOptions{} },
	OpMul:                        func() Options { return &MulOptions{} },
	OpReshape:                    func() Options { return &ReshapeOptions{} },
	OpSoftmax:                    func() Options { return &SoftmaxOptions{} },
	OpPad:                        func() Options { return &PadOptions{} },
	OpMean:                       func() Options { return &ReducerOptions{} },
	OpSub:                        func() Options { return &SubOptions{} },
	OpSqueeze:                    func() Options { return &SqueezeOptions{} },
	OpUnidirectionalSequenceLSTM: func() Options { return &UnidirectionalSequenceLSTMOptions{} },
	OpStridedSlice:               func() Options { return &StridedSliceOptions{} },
	OpTransposeConv:              func() Options { return &TransposeConvOptions{} },
	OpLeakyRelu:                  func() Options { return &LeakyReluOptions{} },
	OpQuantize:                   func() Options { return &QuantizeOptions{} },
	OpLogistic:                   nil,
	OpTanh:                       nil,
	OpRelu:                       nil,
	OpRelu6:                      nil,
}

// Union values of BuiltinOptions (the position of each table in the
// union, schema.fbs).
const (
	unionConv2D                     = 1
	unionDepthwiseConv2D            = 2
	unionPool2D                     = 5
	unionFullyConnected             = 8
	unionSoftmax                    = 9
	unionConcatenation              = 10
	unionAdd                        = 11
	unionReshape                    = 17
	unionMul                        = 21
	unionPad                        = 22
	unionReducer                    = 27
	unionSub                        = 28
	unionSqueeze                    = 30
	unionStridedSlice               = 32
	unionDequantize                 = 38
	unionTransposeConv              = 49
	unionUnidirectionalSequenceLSTM = 71
	unionLeakyRelu                  = 75
	unionQuantize                   = 89
)

func checkStrides(w, h int) error {
	if w < 1 || h < 1 {
		return fmt.Errorf("strides %dx%d must be at least 1", w, h)
	}
	return nil
}

func checkAct(a Activation) error {
	if a < ActNone || a > ActTanh {
		return fmt.Errorf("unknown fused activation %d", a)
	}
	return nil
}

func checkPadding(p Padding) error {
	if p != PaddingSame && p != PaddingValid {
		return fmt.Errorf("unknown padding %d", p)
	}
	return nil
}

// dilation maps the zero value to the schema default 1.
func dilation(d int) int32 {
	if d == 0 {
		return 1
	}
	return int32(d)
}

// Conv2DOptions are CONV_2D's options. Dilation 0 means 1.
type Conv2DOptions struct {
	Padding              Padding
	StrideW, StrideH     int
	Activation           Activation
	DilationW, DilationH int
}

func (*Conv2DOptions) unionType() uint8 { return unionConv2D }

func (o *Conv2DOptions) validate() error {
	if err := checkStrides(o.StrideW, o.StrideH); err != nil {
		return err
	}
	if o.DilationW < 0 || o.DilationH < 0 {
		return fmt.Errorf("negative dilation")
	}
	if err := checkPadding(o.Padding); err != nil {
		return err
	}
	return checkAct(o.Activation)
}

func (o *Conv2DOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(7)
	fb.PrependInt8Slot(0, int8(o.Padding), 0)
	fb.PrependInt32Slot(1, int32(o.StrideW), 0)
	fb.PrependInt32Slot(2, int32(o.StrideH), 0)
	fb.PrependInt8Slot(3, int8(o.Activation), 0)
	fb.PrependInt32Slot(4, dilation(o.DilationW), 1)
	fb.PrependInt32Slot(5, dilation(o.DilationH), 1)
	return fb.EndObject()
}

// DepthwiseConv2DOptions are DEPTHWISE_CONV_2D's options. DepthMultiplier
// 0 means 1; dilation 0 means 1.
type DepthwiseConv2DOptions struct {
	Padding              Padding
	StrideW, StrideH     int
	DepthMultiplier      int
	Activation           Activation
	DilationW, DilationH int
}

func (*DepthwiseConv2DOptions) unionType() uint8 { return unionDepthwiseConv2D }

func (o *DepthwiseConv2DOptions) validate() error {
	if err := checkStrides(o.StrideW, o.StrideH); err != nil {
		return err
	}
	if o.DilationW < 0 || o.DilationH < 0 || o.DepthMultiplier < 0 {
		return fmt.Errorf("negative dilation or depth multiplier")
	}
	if err := checkPadding(o.Padding); err != nil {
		return err
	}
	return checkAct(o.Activation)
}

func (o *DepthwiseConv2DOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	dm := o.DepthMultiplier
	if dm == 0 {
		dm = 1
	}
	fb.StartObject(7)
	fb.PrependInt8Slot(0, int8(o.Padding), 0)
	fb.PrependInt32Slot(1, int32(o.StrideW), 0)
	fb.PrependInt32Slot(2, int32(o.StrideH), 0)
	fb.PrependInt32Slot(3, int32(dm), 0)
	fb.PrependInt8Slot(4, int8(o.Activation), 0)
	fb.PrependInt32Slot(5, dilation(o.DilationW), 1)
	fb.PrependInt32Slot(6, dilation(o.DilationH), 1)
	return fb.EndObject()
}

// Pool2DOptions are AVERAGE_POOL_2D's and MAX_POOL_2D's options.
type Pool2DOptions struct {
	Padding          Padding
	StrideW, StrideH int
	FilterW, FilterH int
	Activation       Activation
}

func (*Pool2DOptions) unionType() uint8 { return unionPool2D }

func (o *Pool2DOptions) validate() error {
	if err := checkStrides(o.StrideW, o.StrideH); err != nil {
		return err
	}
	if o.FilterW < 1 || o.FilterH < 1 {
		return fmt.Errorf("filter %dx%d must be at least 1x1", o.FilterW, o.FilterH)
	}
	if err := checkPadding(o.Padding); err != nil {
		return err
	}
	return checkAct(o.Activation)
}

func (o *Pool2DOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(6)
	fb.PrependInt8Slot(0, int8(o.Padding), 0)
	fb.PrependInt32Slot(1, int32(o.StrideW), 0)
	fb.PrependInt32Slot(2, int32(o.StrideH), 0)
	fb.PrependInt32Slot(3, int32(o.FilterW), 0)
	fb.PrependInt32Slot(4, int32(o.FilterH), 0)
	fb.PrependInt8Slot(5, int8(o.Activation), 0)
	return fb.EndObject()
}

// FullyConnectedOptions are FULLY_CONNECTED's options.
type FullyConnectedOptions struct {
	Activation  Activation
	KeepNumDims bool
}

func (*FullyConnectedOptions) unionType() uint8 { return unionFullyConnected }

func (o *FullyConnectedOptions) validate() error { return checkAct(o.Activation) }

func (o *FullyConnectedOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(5)
	fb.PrependInt8Slot(0, int8(o.Activation), 0)
	fb.PrependBoolSlot(2, o.KeepNumDims, false)
	return fb.EndObject()
}

// SoftmaxOptions are SOFTMAX's options. Beta 0 means 1 (the converter
// always writes beta; a softmax with beta 0 is a constant).
type SoftmaxOptions struct {
	Beta float32
}

func (*SoftmaxOptions) unionType() uint8 { return unionSoftmax }

func (o *SoftmaxOptions) validate() error {
	if o.Beta < 0 {
		return fmt.Errorf("softmax beta %v is negative", o.Beta)
	}
	return nil
}

func (o *SoftmaxOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	beta := o.Beta
	if beta == 0 {
		beta = 1
	}
	fb.StartObject(1)
	fb.PrependFloat32Slot(0, beta, 0)
	return fb.EndObject()
}

// ConcatenationOptions are CONCATENATION's options.
type ConcatenationOptions struct {
	Axis       int
	Activation Activation
}

func (*ConcatenationOptions) unionType() uint8 { return unionConcatenation }

func (o *ConcatenationOptions) validate() error { return checkAct(o.Activation) }

func (o *ConcatenationOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(2)
	fb.PrependInt32Slot(0, int32(o.Axis), 0)
	fb.PrependInt8Slot(1, int8(o.Activation), 0)
	return fb.EndObject()
}

// AddOptions are ADD's options. PotScaleInt16 only matters for int16
// tensors: TFLite's converter writes false for 16x8 models with general
// scales (the zero value here); true selects the power-of-two-scale
// kernel.
type AddOptions struct {
	Activation    Activation
	PotScaleInt16 bool
}

func (*AddOptions) unionType() uint8 { return unionAdd }

func (o *AddOptions) validate() error { return checkAct(o.Activation) }

func (o *AddOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(2)
	fb.PrependInt8Slot(0, int8(o.Activation), 0)
	fb.PrependBoolSlot(1, o.PotScaleInt16, true)
	return fb.EndObject()
}

// SubOptions are SUB's options (PotScaleInt16 as in AddOptions).
type SubOptions struct {
	Activation    Activation
	PotScaleInt16 bool
}

func (*SubOptions) unionType() uint8 { return unionSub }

func (o *SubOptions) validate() error { return checkAct(o.Activation) }

func (o *SubOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(2)
	fb.PrependInt8Slot(0, int8(o.Activation), 0)
	fb.PrependBoolSlot(1, o.PotScaleInt16, true)
	return fb.EndObject()
}

// MulOptions are MUL's options.
type MulOptions struct {
	Activation Activation
}

func (*MulOptions) unionType() uint8 { return unionMul }

func (o *MulOptions) validate() error { return checkAct(o.Activation) }

func (o *MulOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(1)
	fb.PrependInt8Slot(0, int8(o.Activation), 0)
	return fb.EndObject()
}

func int32Vector(fb *flatbuffers.Builder, v []int) flatbuffers.UOffsetT {
	fb.StartVector(4, len(v), 4)
	for i := len(v) - 1; i >= 0; i-- {
		fb.PrependInt32(int32(v[i]))
	}
	return fb.EndVector(len(v))
}

// ReshapeOptions are RESHAPE's options. NewShape is optional (runtimes
// take the shape from the second input or the output tensor); nil omits
// it.
type ReshapeOptions struct {
	NewShape []int
}

func (*ReshapeOptions) unionType() uint8 { return unionReshape }

func (o *ReshapeOptions) validate() error { return nil }

func (o *ReshapeOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	var v flatbuffers.UOffsetT
	if o.NewShape != nil {
		v = int32Vector(fb, o.NewShape)
	}
	fb.StartObject(1)
	if o.NewShape != nil {
		fb.PrependUOffsetTSlot(0, v, 0)
	}
	return fb.EndObject()
}

// SqueezeOptions are SQUEEZE's options.
type SqueezeOptions struct {
	Dims []int
}

func (*SqueezeOptions) unionType() uint8 { return unionSqueeze }

func (o *SqueezeOptions) validate() error { return nil }

func (o *SqueezeOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	var v flatbuffers.UOffsetT
	if o.Dims != nil {
		v = int32Vector(fb, o.Dims)
	}
	fb.StartObject(1)
	if o.Dims != nil {
		fb.PrependUOffsetTSlot(0, v, 0)
	}
	return fb.EndObject()
}

// ReducerOptions are MEAN's options.
type ReducerOptions struct {
	KeepDims bool
}

func (*ReducerOptions) unionType() uint8 { return unionReducer }

func (o *ReducerOptions) validate() error { return nil }

func (o *ReducerOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(1)
	fb.PrependBoolSlot(0, o.KeepDims, false)
	return fb.EndObject()
}

// StridedSliceOptions are STRIDED_SLICE's options (bit masks over the
// dimensions, as in TensorFlow).
type StridedSliceOptions struct {
	BeginMask, EndMask, EllipsisMask, NewAxisMask, ShrinkAxisMask int
	Offset                                                        bool
}

func (*StridedSliceOptions) unionType() uint8 { return unionStridedSlice }

func (o *StridedSliceOptions) validate() error { return nil }

func (o *StridedSliceOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(6)
	fb.PrependInt32Slot(0, int32(o.BeginMask), 0)
	fb.PrependInt32Slot(1, int32(o.EndMask), 0)
	fb.PrependInt32Slot(2, int32(o.EllipsisMask), 0)
	fb.PrependInt32Slot(3, int32(o.NewAxisMask), 0)
	fb.PrependInt32Slot(4, int32(o.ShrinkAxisMask), 0)
	fb.PrependBoolSlot(5, o.Offset, false)
	return fb.EndObject()
}

// TransposeConvOptions are TRANSPOSE_CONV's options.
type TransposeConvOptions struct {
	Padding          Padding
	StrideW, StrideH int
	Activation       Activation
}

func (*TransposeConvOptions) unionType() uint8 { return unionTransposeConv }

func (o *TransposeConvOptions) validate() error {
	if err := checkStrides(o.StrideW, o.StrideH); err != nil {
		return err
	}
	if err := checkPadding(o.Padding); err != nil {
		return err
	}
	return checkAct(o.Activation)
}

func (o *TransposeConvOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(5)
	fb.PrependInt8Slot(0, int8(o.Padding), 0)
	fb.PrependInt32Slot(1, int32(o.StrideW), 0)
	fb.PrependInt32Slot(2, int32(o.StrideH), 0)
	fb.PrependInt8Slot(3, int8(o.Activation), 0)
	return fb.EndObject()
}

// UnidirectionalSequenceLSTMOptions are UNIDIRECTIONAL_SEQUENCE_LSTM's
// options.
type UnidirectionalSequenceLSTMOptions struct {
	Activation               Activation
	CellClip, ProjClip       float32
	TimeMajor                bool
	AsymmetricQuantizeInputs bool
}

func (*UnidirectionalSequenceLSTMOptions) unionType() uint8 {
	return unionUnidirectionalSequenceLSTM
}

func (o *UnidirectionalSequenceLSTMOptions) validate() error { return checkAct(o.Activation) }

func (o *UnidirectionalSequenceLSTMOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(6)
	fb.PrependInt8Slot(0, int8(o.Activation), 0)
	fb.PrependFloat32Slot(1, o.CellClip, 0)
	fb.PrependFloat32Slot(2, o.ProjClip, 0)
	fb.PrependBoolSlot(3, o.TimeMajor, false)
	fb.PrependBoolSlot(4, o.AsymmetricQuantizeInputs, false)
	return fb.EndObject()
}

// LeakyReluOptions are LEAKY_RELU's options.
type LeakyReluOptions struct {
	Alpha float32
}

func (*LeakyReluOptions) unionType() uint8 { return unionLeakyRelu }

func (o *LeakyReluOptions) validate() error { return nil }

func (o *LeakyReluOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(1)
	fb.PrependFloat32Slot(0, o.Alpha, 0)
	return fb.EndObject()
}

// PadOptions are PAD's (empty) options.
type PadOptions struct{}

func (*PadOptions) unionType() uint8 { return unionPad }

func (*PadOptions) validate() error { return nil }

func (*PadOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(0)
	return fb.EndObject()
}

// QuantizeOptions are QUANTIZE's (empty) options.
type QuantizeOptions struct{}

func (*QuantizeOptions) unionType() uint8 { return unionQuantize }

func (*QuantizeOptions) validate() error { return nil }

func (*QuantizeOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(0)
	return fb.EndObject()
}

// DequantizeOptions are DEQUANTIZE's (empty) options.
type DequantizeOptions struct{}

func (*DequantizeOptions) unionType() uint8 { return unionDequantize }

func (*DequantizeOptions) validate() error { return nil }

func (*DequantizeOptions) build(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	fb.StartObject(0)
	return fb.EndObject()
}
