package schema

import (
	"fmt"
	"unsafe"

	flatbuffers "github.com/google/flatbuffers/go"
)

// TensorType is the schema's TensorType enum.
type TensorType int8

// TensorType values (schema.fbs).
const (
	TypeFloat32   TensorType = 0
	TypeFloat16   TensorType = 1
	TypeInt32     TensorType = 2
	TypeUint8     TensorType = 3
	TypeInt64     TensorType = 4
	TypeString    TensorType = 5
	TypeBool      TensorType = 6
	TypeInt16     TensorType = 7
	TypeComplex64 TensorType = 8
	TypeInt8      TensorType = 9
	TypeFloat64   TensorType = 10
)

// Model is the decoded root table.
type Model struct {
	Version       uint32
	OperatorCodes []OperatorCode
	Subgraphs     []SubGraph
	Description   string
	Buffers       []Buffer
}

// OperatorCode is one entry of Model.operator_codes.
type OperatorCode struct {
	DeprecatedBuiltinCode int8
	CustomCode            string
	Version               int32
	BuiltinCode           int32
}

// Builtin returns the operator's builtin code: the larger of builtin_code
// and deprecated_builtin_code, as TFLite resolves it (older files set only
// the deprecated byte field).
func (c OperatorCode) Builtin() int32 {
	if int32(c.DeprecatedBuiltinCode) > c.BuiltinCode {
		return int32(c.DeprecatedBuiltinCode)
	}
	return c.BuiltinCode
}

// SubGraph is one entry of Model.subgraphs.
type SubGraph struct {
	Tensors   []Tensor
	Inputs    []int32
	Outputs   []int32
	Operators []Operator
	Name      string
}

// Tensor is one entry of SubGraph.tensors.
type Tensor struct {
	Shape          []int32
	Type           TensorType
	Buffer         uint32
	Name           string
	Quantization   *Quantization // nil if absent
	IsVariable     bool
	HasSparsity    bool
	ShapeSignature []int32
}

// Quantization is a tensor's QuantizationParameters.
type Quantization struct {
	Min, Max           []float32
	Scale              []float32
	ZeroPoint          []int64
	DetailsType        uint8 // non-zero: custom quantization, unsupported
	QuantizedDimension int32
}

// Buffer is one entry of Model.buffers. Data aliases the file. Offset and
// Size locate data stored after the flatbuffer (the > 2 GB layout); they are
// 0 otherwise.
type Buffer struct {
	Data   []byte
	Offset uint64
	Size   uint64
}

// Operator is one entry of SubGraph.operators.
type Operator struct {
	OpcodeIndex    uint32
	Inputs         []int32
	Outputs        []int32
	OptionsType    uint8 // BuiltinOptions union type
	Options        Table // zero Table if absent
	OptionsType2   uint8 // BuiltinOptions2 union type
	CustomOptions  []byte
	Intermediates  []int32
	LargeCustomOff uint64
}

// Decode verifies and decodes a TFLite model. It accepts files with or
// without the "TFL3" identifier. Files larger than the flatbuffer (the
// > 2 GB layout, where Buffer.offset locates data after it) are accepted;
// the tables themselves must lie in the first 4 GiB.
func Decode(buf []byte) (*Model, error) {
	if len(buf) < 8 {
		return nil, corrupt("model", "file is %d bytes, too short for a flatbuffer", len(buf))
	}
	if id := string(buf[4:8]); id != "TFL3" && isPrint(id) {
		return nil, corrupt("model", "file identifier is %q, want \"TFL3\"", id)
	}
	// Decoding allocates Go structs per table; a legitimate file never
	// needs more than a few dozen times its size.
	b := NewBudget(64*uint64(len(buf)) + 1<<16)
	root, err := tableAt(buf, uint64(flatbuffers.GetUint32(buf)), "model")
	if err != nil {
		return nil, err
	}
	m := &Model{}
	if m.Version, err = root.Uint32(0, 0); err != nil {
		return nil, err
	}
	if m.Description, err = root.String(3); err != nil {
		return nil, err
	}
	n, err := root.VectorLen(1, 4)
	if err != nil {
		return nil, err
	}
	if err := b.take(uint64(n)*uint64(unsafe.Sizeof(OperatorCode{})), "model operator_codes"); err != nil {
		return nil, err
	}
	m.OperatorCodes = make([]OperatorCode, n)
	err = root.Tables(1, "operator_code", func(i int, t Table) error {
		c := &m.OperatorCodes[i]
		var err error
		if c.DeprecatedBuiltinCode, err = t.Int8(0, 0); err != nil {
			return err
		}
		if c.CustomCode, err = t.String(1); err != nil {
			return err
		}
		if c.Version, err = t.Int32(2, 1); err != nil {
			return err
		}
		c.BuiltinCode, err = t.Int32(3, 0)
		return err
	})
	if err != nil {
		return nil, err
	}

	if n, err = root.VectorLen(4, 4); err != nil {
		return nil, err
	}
	if err := b.take(uint64(n)*uint64(unsafe.Sizeof(Buffer{})), "model buffers"); err != nil {
		return nil, err
	}
	m.Buffers = make([]Buffer, n)
	err = root.Tables(4, "buffer", func(i int, t Table) error {
		bf := &m.Buffers[i]
		var err error
		if bf.Data, err = t.Bytes(0); err != nil {
			return err
		}
		if bf.Offset, err = t.Uint64(1, 0); err != nil {
			return err
		}
		bf.Size, err = t.Uint64(2, 0)
		return err
	})
	if err != nil {
		return nil, err
	}

	if n, err = root.VectorLen(2, 4); err != nil {
		return nil, err
	}
	if err := b.take(uint64(n)*uint64(unsafe.Sizeof(SubGraph{})), "model subgraphs"); err != nil {
		return nil, err
	}
	m.Subgraphs = make([]SubGraph, n)
	err = root.Tables(2, "subgraph", func(i int, t Table) error {
		return decodeSubGraph(&m.Subgraphs[i], i, t, b)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func isPrint(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func decodeSubGraph(sg *SubGraph, si int, t Table, b *Budget) error {
	var err error
	if sg.Name, err = t.String(4); err != nil {
		return err
	}
	if sg.Inputs, err = t.Int32s(1, b); err != nil {
		return err
	}
	if sg.Outputs, err = t.Int32s(2, b); err != nil {
		return err
	}
	n, err := t.VectorLen(0, 4)
	if err != nil {
		return err
	}
	if err := b.take(uint64(n)*uint64(unsafe.Sizeof(Tensor{})), t.what+" tensors"); err != nil {
		return err
	}
	sg.Tensors = make([]Tensor, n)
	err = t.Tables(0, fmt.Sprintf("subgraph %d tensor", si), func(i int, tt Table) error {
		return decodeTensor(&sg.Tensors[i], tt, b)
	})
	if err != nil {
		return err
	}
	if n, err = t.VectorLen(3, 4); err != nil {
		return err
	}
	if err := b.take(uint64(n)*uint64(unsafe.Sizeof(Operator{})), t.what+" operators"); err != nil {
		return err
	}
	sg.Operators = make([]Operator, n)
	return t.Tables(3, fmt.Sprintf("subgraph %d operator", si), func(i int, ot Table) error {
		return decodeOperator(&sg.Operators[i], ot, b)
	})
}

// MaxRank is the largest tensor rank Decode accepts.
const MaxRank = 8

func decodeTensor(x *Tensor, t Table, b *Budget) error {
	var err error
	if n, err := t.VectorLen(0, 4); err != nil {
		return err
	} else if n > MaxRank {
		return corrupt(t.what, "shape has rank %d; at most %d is supported", n, MaxRank)
	}
	if x.Shape, err = t.Int32s(0, b); err != nil {
		return err
	}
	ty, err := t.Int8(1, 0)
	if err != nil {
		return err
	}
	x.Type = TensorType(ty)
	if x.Buffer, err = t.Uint32(2, 0); err != nil {
		return err
	}
	if x.Name, err = t.String(3); err != nil {
		return err
	}
	if err := b.take(uint64(len(x.Name)), t.what); err != nil {
		return err
	}
	q, err := t.Table(4, t.what+" quantization")
	if err != nil {
		return err
	}
	if q.Present() {
		x.Quantization = &Quantization{}
		if err := decodeQuant(x.Quantization, q, b); err != nil {
			return err
		}
	}
	if x.IsVariable, err = t.Bool(5, false); err != nil {
		return err
	}
	sp, err := t.Table(6, t.what+" sparsity")
	if err != nil {
		return err
	}
	x.HasSparsity = sp.Present()
	if n, err := t.VectorLen(7, 4); err != nil {
		return err
	} else if n > MaxRank {
		return corrupt(t.what, "shape_signature has rank %d; at most %d is supported", n, MaxRank)
	}
	x.ShapeSignature, err = t.Int32s(7, b)
	return err
}

func decodeQuant(q *Quantization, t Table, b *Budget) error {
	if err := b.take(uint64(unsafe.Sizeof(Quantization{})), t.what); err != nil {
		return err
	}
	var err error
	if q.Min, err = t.Float32s(0, b); err != nil {
		return err
	}
	if q.Max, err = t.Float32s(1, b); err != nil {
		return err
	}
	if q.Scale, err = t.Float32s(2, b); err != nil {
		return err
	}
	if q.ZeroPoint, err = t.Int64s(3, b); err != nil {
		return err
	}
	if q.DetailsType, err = t.Uint8(4, 0); err != nil {
		return err
	}
	q.QuantizedDimension, err = t.Int32(6, 0)
	return err
}

func decodeOperator(o *Operator, t Table, b *Budget) error {
	var err error
	if o.OpcodeIndex, err = t.Uint32(0, 0); err != nil {
		return err
	}
	if o.Inputs, err = t.Int32s(1, b); err != nil {
		return err
	}
	if o.Outputs, err = t.Int32s(2, b); err != nil {
		return err
	}
	if o.OptionsType, err = t.Uint8(3, 0); err != nil {
		return err
	}
	if o.Options, err = t.Table(4, t.what+" builtin_options"); err != nil {
		return err
	}
	if o.CustomOptions, err = t.Bytes(5); err != nil {
		return err
	}
	if o.Intermediates, err = t.Int32s(8, b); err != nil {
		return err
	}
	if o.LargeCustomOff, err = t.Uint64(9, 0); err != nil {
		return err
	}
	o.OptionsType2, err = t.Uint8(11, 0)
	return err
}

// BuiltinOptions union type values used by the runtime (schema.fbs,
// union BuiltinOptions: the n-th member has value n).
const (
	OptConv2D                     = 1
	OptDepthwiseConv2D            = 2
	OptPool2D                     = 5
	OptFullyConnected             = 8
	OptSoftmax                    = 9
	OptConcatenation              = 10
	OptAdd                        = 11
	OptReshape                    = 17
	OptMul                        = 21
	OptPad                        = 22
	OptReducer                    = 27
	OptSub                        = 28
	OptSqueeze                    = 30
	OptStridedSlice               = 32
	OptDequantize                 = 38
	OptTransposeConv              = 49
	OptUnidirectionalSequenceLSTM = 71
	OptLeakyRelu                  = 75
	OptQuantize                   = 89
)
