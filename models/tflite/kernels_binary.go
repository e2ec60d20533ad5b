package tflite

import (
	"github.com/outpost-iot/outpost/models/tflite/ops"
	"github.com/outpost-iot/outpost/models/tflite/schema"
)

// ADD, SUB and MUL with numpy-style broadcasting: two inputs and one output
// of the same type (float32, int8, int16, or unquantized int32).

func init() {
	register(OpAdd, prepareBinary(ops.OpAdd, schema.OptAdd))
	register(OpSub, prepareBinary(ops.OpSub, schema.OptSub))
	register(OpMul, prepareBinary(ops.OpMul, schema.OptMul))
}

func prepareBinary(op ops.BinaryOp, optType uint8) prepareFunc {
	return func(c *opCtx) (*prepared, error) {
		if err := c.numIO(2, 2, 1); err != nil {
			return nil, err
		}
		in1, err := c.mustIn(0)
		if err != nil {
			return nil, err
		}
		in2, err := c.mustIn(1)
		if err != nil {
			return nil, err
		}
		out := c.out(0)
		if err := c.sameType(in1, in2, out); err != nil {
			return nil, err
		}
		t, err := c.options(optType)
		if err != nil {
			return nil, err
		}
		act, err := t.Int8(0, 0)
		if err != nil {
			return nil, err
		}
		var q *ops.BinaryQuant
		switch in1.Type {
		case Float32, Int32:
		case Int8, Int16:
			bits := 8
			if in1.Type == Int16 {
				bits = 16
			}
			s1, z1, err := c.wantQuant("input 0", in1)
			if err != nil {
				return nil, err
			}
			s2, z2, err := c.wantQuant("input 1", in2)
			if err != nil {
				return nil, err
			}
			so, zo, err := c.wantQuant("output", out)
			if err != nil {
				return nil, err
			}
			q = &ops.BinaryQuant{
				In1Scale: float32(s1), In2Scale: float32(s2), OutScale: float32(so),
				In1ZeroPoint: z1, In2ZeroPoint: z2, OutZeroPoint: zo, ActBits: bits,
			}
		default:
			return nil, c.unsupportedf("input type %s (want float32, int8, int16 or int32)", in1.Type)
		}
		p, err := ops.PrepareBinary(op, ops.Activation(act), in1.Shape, in2.Shape, out.Shape, q)
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		return simple(func(b *binding) (evalFunc, error) {
			switch in1.Type {
			case Float32:
				x1, x2, y := asFloat32s(b.in[0].data), asFloat32s(b.in[1].data), asFloat32s(b.out[0].data)
				return func() error { ops.BinaryFloat(p, x1, x2, y); return nil }, nil
			case Int32:
				x1, x2, y := asInt32s(b.in[0].data), asInt32s(b.in[1].data), asInt32s(b.out[0].data)
				return func() error { ops.BinaryInt32(p, x1, x2, y); return nil }, nil
			case Int8:
				x1, x2, y := asInt8s(b.in[0].data), asInt8s(b.in[1].data), asInt8s(b.out[0].data)
				return func() error { ops.BinaryInt8(p, x1, x2, y); return nil }, nil
			default:
				x1, x2, y := asInt16s(b.in[0].data), asInt16s(b.in[1].data), asInt16s(b.out[0].data)
				return func() error { ops.BinaryInt16(p, x1, x2, y); return nil }, nil
			}
		}), nil
	}
}
