package tflite

import (
	"fmt"
	"unsafe"

	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// TensorType is a tensor's element type, with the schema's values.
type TensorType int8

// The element types the runtime supports.
const (
	Float32 TensorType = TensorType(schema.TypeFloat32)
	Int32   TensorType = TensorType(schema.TypeInt32)
	Uint8   TensorType = TensorType(schema.TypeUint8)
	Int64   TensorType = TensorType(schema.TypeInt64)
	Bool    TensorType = TensorType(schema.TypeBool)
	Int16   TensorType = TensorType(schema.TypeInt16)
	Int8    TensorType = TensorType(schema.TypeInt8)
)

var typeNames = map[TensorType]string{
	Float32: "float32", Int32: "int32", Uint8: "uint8", Int64: "int64",
	Bool: "bool", Int16: "int16", Int8: "int8",
	TensorType(schema.TypeFloat16): "float16", TensorType(schema.TypeString): "string",
	TensorType(schema.TypeComplex64): "complex64", TensorType(schema.TypeFloat64): "float64",
}

// String returns the type's name ("float32", "int8", ...).
func (t TensorType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", int8(t))
}

// Size returns the size of one element in bytes, or 0 for types the
// runtime does not support.
func (t TensorType) Size() int {
	switch t {
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	case Int16:
		return 2
	case Int8, Uint8, Bool:
		return 1
	}
	return 0
}

// Quantization holds a tensor's affine quantization: real = (q - zp) * scale.
// Per-tensor quantization has one scale and one zero point; per-channel
// quantization has one of each per index along dimension Dim.
type Quantization struct {
	Scales     []float32
	ZeroPoints []int64
	Dim        int
}

// Quantized reports whether the tensor carries quantization parameters.
func (q Quantization) Quantized() bool { return len(q.Scales) > 0 }

// Scale returns the first (per-tensor) scale, or 0 if unquantized.
func (q Quantization) Scale() float32 {
	if len(q.Scales) == 0 {
		return 0
	}
	return q.Scales[0]
}

// ZeroPoint returns the first (per-tensor) zero point, or 0.
func (q Quantization) ZeroPoint() int64 {
	if len(q.ZeroPoints) == 0 {
		return 0
	}
	return q.ZeroPoints[0]
}

// TensorInfo describes a tensor of a loaded model: what the file says about
// it, after verification.
type TensorInfo struct {
	Index        int
	Name         string
	Type         TensorType
	Shape        []int
	Quantization Quantization
	// Buffer is the model buffer index (0 = none).
	Buffer int
	// Constant tensors have their data in the model; Data holds it
	// (aligned for the element type, read-only).
	Constant bool
	Data     []byte
	// Variable tensors (e.g. LSTM state) keep their value between Invoke
	// calls; Reset zeroes them.
	Variable bool
}

// NumElements returns the product of the shape.
func (t *TensorInfo) NumElements() int { return numElements(t.Shape) }

// NumBytes returns the size of the tensor's data.
func (t *TensorInfo) NumBytes() int { return t.NumElements() * t.Type.Size() }

func numElements(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Tensor is a tensor bound to an interpreter's memory. Its typed views
// alias that memory: write inputs through them before Invoke, read outputs
// after. Constant tensors alias the model and must not be written.
type Tensor struct {
	info *TensorInfo
	data []byte
}

// Info returns the tensor's description.
func (t *Tensor) Info() *TensorInfo { return t.info }

// Name returns the tensor's name in the model.
func (t *Tensor) Name() string { return t.info.Name }

// Type returns the element type.
func (t *Tensor) Type() TensorType { return t.info.Type }

// Shape returns a copy of the dims, outermost first.
func (t *Tensor) Shape() []int { return append([]int(nil), t.info.Shape...) }

// Quantization returns the quantization parameters (shared; do not modify).
func (t *Tensor) Quantization() Quantization { return t.info.Quantization }

// NumElements returns the number of elements.
func (t *Tensor) NumElements() int { return t.info.NumElements() }

// Bytes returns the tensor's memory as raw little-endian bytes.
func (t *Tensor) Bytes() []byte { return t.data }

// Float32s returns the data as []float32, or nil if the tensor is not float32.
func (t *Tensor) Float32s() []float32 {
	if t.info.Type != Float32 {
		return nil
	}
	return asFloat32s(t.data)
}

// Int8s returns the data as []int8, or nil if the tensor is not int8.
func (t *Tensor) Int8s() []int8 {
	if t.info.Type != Int8 {
		return nil
	}
	return asInt8s(t.data)
}

// Uint8s returns the data as []uint8, or nil if the tensor is not uint8 or bool.
func (t *Tensor) Uint8s() []uint8 {
	if t.info.Type != Uint8 && t.info.Type != Bool {
		return nil
	}
	return t.data
}

// Int16s returns the data as []int16, or nil if the tensor is not int16.
func (t *Tensor) Int16s() []int16 {
	if t.info.Type != Int16 {
		return nil
	}
	return asInt16s(t.data)
}

// Int32s returns the data as []int32, or nil if the tensor is not int32.
func (t *Tensor) Int32s() []int32 {
	if t.info.Type != Int32 {
		return nil
	}
	return asInt32s(t.data)
}

// Int64s returns the data as []int64, or nil if the tensor is not int64.
func (t *Tensor) Int64s() []int64 {
	if t.info.Type != Int64 {
		return nil
	}
	return asInt64s(t.data)
}

// The views below require b to be aligned for the element type: the
// planner aligns every arena offset to 16 and Load copies unaligned
// constants, so they are safe on arm and arm64.

func asFloat32s(b []byte) []float32 {
	if len(b) < 4 {
		return []float32{}
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func asInt8s(b []byte) []int8 {
	if len(b) == 0 {
		return []int8{}
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

func asInt16s(b []byte) []int16 {
	if len(b) < 2 {
		return []int16{}
	}
	return unsafe.Slice((*int16)(unsafe.Pointer(&b[0])), len(b)/2)
}

func asInt32s(b []byte) []int32 {
	if len(b) < 4 {
		return []int32{}
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func asInt64s(b []byte) []int64 {
	if len(b) < 8 {
		return []int64{}
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(&b[0])), len(b)/8)
}

// alignedBytes returns a zeroed []byte of n bytes whose first byte is
// aligned to 16.
func alignedBytes(n int) []byte {
	raw := make([]byte, n+16)
	off := 0
	if r := uintptr(unsafe.Pointer(&raw[0])) % 16; r != 0 {
		off = int(16 - r)
	}
	return raw[off : off+n : off+n]
}

func aligned(b []byte, to uintptr) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%to == 0
}
