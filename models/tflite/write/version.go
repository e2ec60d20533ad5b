package tflwrite

import (
	"strconv"
	"strings"
)

// opVersion returns o's explicit version, or the lowest version that
// supports its tensor types and options, following the rules of TFLite's
// tools/versioning/op_version.cc for the operators this package knows
// (other operators get version 1).
func (b *Builder) opVersion(o *opDef) int {
	if o.version > 0 {
		return o.version
	}
	typ := func(ids []TensorID, i int) DType {
		if i >= len(ids) || ids[i] == NoTensor || !b.valid(ids[i]) {
			return -1
		}
		return b.tensors[ids[i]].dtype
	}
	in0, in1, out0 := typ(o.inputs, 0), typ(o.inputs, 1), typ(o.outputs, 0)
	rank0 := 0
	if len(o.inputs) > 0 && b.valid(o.inputs[0]) {
		rank0 = len(b.tensors[o.inputs[0]].shape)
	}
	perChannel := func(id TensorID) bool {
		return id != NoTensor && b.valid(id) && b.tensors[id].quant != nil && len(b.tensors[id].quant.Scales) > 1
	}
	switch o.code {
	case OpConv2D:
		switch {
		case in0 == Int16 && in1 == Int16 && out0 == Int16:
			return 4
		case in0 == Int8 && in1 == Int8 && out0 == Int8:
			return 3
		case in0 == Float32 && in1 == Int8 && out0 == Float32:
			if perChannel(o.inputs[1]) {
				return 5
			}
			return 2
		}
		return 1
	case OpDepthwiseConv2D:
		switch {
		case in0 == Int16 && in1 == Int16 && out0 == Int16:
			return 5
		case in0 == Float32 && in1 == Int8 && out0 == Float32:
			if perChannel(o.inputs[1]) {
				return 6
			}
			return 4
		case in0 == Int8 && in1 == Int8 && out0 == Int8:
			return 3
		}
		if opt, ok := o.opts.(*DepthwiseConv2DOptions); ok && (dilation(opt.DilationW) != 1 || dilation(opt.DilationH) != 1) {
			return 2
		}
		return 1
	case OpFullyConnected:
		opt, _ := o.opts.(*FullyConnectedOptions)
		switch {
		case in0 == Int16 && in1 == Int16 && out0 == Int16:
			return 7
		case len(o.inputs) == 2:
			return 6
		case opt != nil && opt.KeepNumDims:
			return 5
		case in0 == Int8 && in1 == Int8 && out0 == Int8:
			return 4
		case in0 == Float32 && in1 == Int8 && out0 == Float32:
			return 3
		}
		return 1
	case OpMul:
		if in0 == Int16 {
			return 4
		}
		if in0 == Int8 && len(o.inputs) >= 2 {
			s1, s2, so := b.scale(o.inputs[0]), b.scale(o.inputs[1]), b.scale(o.outputs[0])
			if s1 != 0 && s2 != 0 && so != 0 && float64(s1)*float64(s2)/float64(so) >= 1 {
				return 3
			}
			return 2
		}
		return 1
	case OpMaxPool2D, OpAveragePool2D:
		switch {
		case in0 == Int16 && out0 == Int16:
			return 3
		case in0 == Int8:
			return 2
		}
		return 1
	case OpTransposeConv:
		opt, _ := o.opts.(*TransposeConvOptions)
		switch {
		case opt != nil && opt.Activation != ActNone:
			return 4
		case len(o.inputs) == 4 && o.inputs[3] != NoTensor:
			return 3
		case typ(o.inputs, 1) == Int8:
			return 2
		}
		return 1
	case OpDequantize:
		switch {
		case in0 == Int16:
			return 3
		case in0 == Int8 && perChannel(o.inputs[0]):
			return 5
		case in0 == Int8:
			return 2
		}
		return 1
	case OpQuantize:
		switch {
		case perChannel(o.outputs[0]):
			return 3
		case out0 == Int16:
			return 2
		}
		return 1
	case OpRelu:
		switch in0 {
		case Int16:
			return 3
		case Int8, Uint8:
			return 2
		}
		return 1
	case OpStridedSlice:
		opt, _ := o.opts.(*StridedSliceOptions)
		switch {
		case opt != nil && opt.Offset:
			return 8
		case opt != nil && (opt.EllipsisMask != 0 || opt.NewAxisMask != 0):
			return 6
		case rank0 > 4:
			return 4
		case in0 == Bool:
			return 3
		case in0 == Int8:
			return 2
		}
		return 1
	case OpAdd:
		opt, _ := o.opts.(*AddOptions)
		switch {
		case in0 == Int16 && !b.quantized(o.inputs[0]):
			return 5
		case in0 == Int64:
			return 4
		case in0 == Int16 && out0 == Int16 && opt != nil && !opt.PotScaleInt16:
			return 3
		case in0 == Int8:
			return 2
		}
		return 1
	case OpSub:
		opt, _ := o.opts.(*SubOptions)
		switch {
		case in0 == Int16 && out0 == Int16 && opt != nil && !opt.PotScaleInt16:
			return 5
		case in0 == Int64:
			return 4
		case b.broadcast(o.inputs) && b.maxRank(o.inputs) > 4:
			return 3
		case in0 == Int8:
			return 2
		}
		return 1
	case OpTanh, OpLogistic:
		switch {
		case in0 == Int16 && out0 == Int16:
			return 3
		case in0 == Int8:
			return 2
		}
		return 1
	case OpLeakyRelu:
		if in0 == Int16 {
			return 2
		}
		return 1
	case OpPad:
		switch {
		case rank0 > 4:
			return 4
		case in0 == Int16:
			return 3
		case in0 == Int8:
			return 2
		}
		return 1
	case OpConcatenation, OpSoftmax, OpMean, OpRelu6:
		switch in0 {
		case Int16:
			return 3
		case Int8:
			return 2
		}
		return 1
	case OpUnidirectionalSequenceLSTM:
		in2 := typ(o.inputs, 2)
		switch {
		case in0 == Int16 && in2 == Int8 && out0 == Int16:
			return 5
		case in0 == Float32 && in2 == Int8 && out0 == Float32:
			if opt, ok := o.opts.(*UnidirectionalSequenceLSTMOptions); ok && opt.AsymmetricQuantizeInputs {
				return 3
			}
			return 2
		}
		return 1
	}
	return 1
}

func (b *Builder) scale(id TensorID) float32 {
	if id == NoTensor || !b.valid(id) || b.tensors[id].quant == nil {
		return 0
	}
	return b.tensors[id].quant.Scales[0]
}

func (b *Builder) quantized(id TensorID) bool { return b.scale(id) != 0 }

func (b *Builder) broadcast(ids []TensorID) bool {
	if len(ids) < 2 || !b.valid(ids[0]) || !b.valid(ids[1]) {
		return false
	}
	s0, s1 := b.tensors[ids[0]].shape, b.tensors[ids[1]].shape
	if len(s0) != len(s1) {
		return true
	}
	for i := range s0 {
		if s0[i] != s1[i] {
			return true
		}
	}
	return false
}

func (b *Builder) maxRank(ids []TensorID) int {
	r := 0
	for _, id := range ids {
		if b.valid(id) {
			r = max(r, len(b.tensors[id].shape))
		}
	}
	return r
}

// runtimeVersions holds, for each (operator, version) the writer
// produces, the first TFLite release that runs it (TFLite's
// tools/versioning/runtime_version.cc).
var runtimeVersions = map[Op][]string{
	// index = version - 1
	OpAdd:                        {"1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.13.0"},
	OpAveragePool2D:              {"1.5.0", "1.14.0", "2.3.0"},
	OpConcatenation:              {"1.5.0", "1.14.0", "2.3.0"},
	OpConv2D:                     {"1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0"},
	OpDepthwiseConv2D:            {"1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0"},
	OpDequantize:                 {"1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0"},
	OpFullyConnected:             {"1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0"},
	OpLogistic:                   {"1.14.0", "1.14.0", "2.3.0"},
	OpMaxPool2D:                  {"1.5.0", "1.14.0", "2.3.0"},
	OpMul:                        {"1.5.0", "1.14.0", "1.15.0", "2.3.0"},
	OpRelu:                       {"1.5.0", "2.1.0", "2.5.0"},
	OpRelu6:                      {"1.5.0", "1.14.0", "2.5.0"},
	OpReshape:                    {"1.5.0"},
	OpSoftmax:                    {"1.5.0", "1.14.0", "2.3.0"},
	OpTanh:                       {"1.14.0", "1.14.0", "2.3.0"},
	OpPad:                        {"1.5.0", "1.14.0", "2.4.0", "2.6.0"},
	OpMean:                       {"1.6.0", "1.14.0", "2.4.0"},
	OpSub:                        {"1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"},
	OpSqueeze:                    {"1.6.0"},
	OpUnidirectionalSequenceLSTM: {"1.13.1", "1.14.0", "2.3.0", "2.12.0"},
	OpStridedSlice:               {"1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0", "2.14.0", "2.14.0"},
	OpTransposeConv:              {"1.9.0", "2.2.0", "2.3.0", "2.13.0"},
	OpLeakyRelu:                  {"1.13.1", "2.3.0"},
	OpQuantize:                   {"1.14.0", "1.15.0", "2.7.0"},
}

// minRuntimeVersion returns the oldest TFLite release that runs every
// operator version of the model ("" if an operator version is unknown
// to the table above, or the model has no operators: no claim is better
// than a wrong one).
func (b *Builder) minRuntimeVersion() string {
	best := ""
	for k := range b.ops {
		o := &b.ops[k]
		vs := runtimeVersions[o.code]
		v := b.opVersion(o)
		if v < 1 || v > len(vs) {
			return ""
		}
		if best == "" || versionLess(best, vs[v-1]) {
			best = vs[v-1]
		}
	}
	return best
}

// versionLess compares dotted release numbers numerically.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// MinRuntimeVersion returns the "min_runtime_version" the model will carry
// ("" if it carries none).
func (b *Builder) MinRuntimeVersion() string { return b.minRuntimeVersion() }
