package tflwrite

import (
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// SchemaVersion is the TFLite schema version the writer produces.
const SchemaVersion = 3

// fileIdentifier is the FlatBuffers file identifier of TFLite models.
var fileIdentifier = []byte("TFL3")

// minRuntimeVersionLen is the size of the "min_runtime_version" metadata
// buffer: the version string, zero padded (TFLite's runtime_version.cc).
const minRuntimeVersionLen = 16

// Bytes verifies the model and returns it as a .tflite flatbuffer.
func (b *Builder) Bytes() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	// Buffers: 0 is the empty sentinel; then one per constant tensor, in
	// tensor order; then the min_runtime_version metadata.
	bufIndex := make([]uint32, len(b.tensors))
	datas := [][]byte{nil}
	for i, t := range b.tensors {
		if t.data != nil {
			bufIndex[i] = uint32(len(datas))
			datas = append(datas, t.data)
		}
	}
	minVersion := b.minRuntimeVersion()
	metaBuf := -1
	if minVersion != "" {
		v := make([]byte, minRuntimeVersionLen)
		copy(v, minVersion)
		metaBuf = len(datas)
		datas = append(datas, v)
	}

	fb := flatbuffers.NewBuilder(1024 + totalLen(datas))

	// Buffer data first, each vector's first byte on a 16-byte boundary:
	// Prep(16, n) pads so that the n bytes written next end (and, the
	// file's size being a multiple of the largest alignment, start) at a
	// multiple of 16 from the file's start.
	dataVecs := make([]flatbuffers.UOffsetT, len(datas))
	for i := len(datas) - 1; i >= 0; i-- {
		if len(datas[i]) == 0 {
			continue
		}
		fb.Prep(16, len(datas[i]))
		dataVecs[i] = fb.CreateByteVector(datas[i])
	}
	bufTables := make([]flatbuffers.UOffsetT, len(datas))
	for i := range datas {
		fb.StartObject(3)
		if len(datas[i]) > 0 {
			fb.PrependUOffsetTSlot(0, dataVecs[i], 0)
		}
		bufTables[i] = fb.EndObject()
	}
	buffers := tableVector(fb, bufTables)

	// Tensors.
	tensorTables := make([]flatbuffers.UOffsetT, len(b.tensors))
	for i, t := range b.tensors {
		shape := int32Vector(fb, t.shape)
		name := fb.CreateString(t.name)
		var quant flatbuffers.UOffsetT
		if q := t.quant; q != nil {
			fb.StartVector(4, len(q.Scales), 4)
			for k := len(q.Scales) - 1; k >= 0; k-- {
				fb.PrependFloat32(q.Scales[k])
			}
			scales := fb.EndVector(len(q.Scales))
			fb.StartVector(8, len(q.ZeroPoints), 8)
			for k := len(q.ZeroPoints) - 1; k >= 0; k-- {
				fb.PrependInt64(q.ZeroPoints[k])
			}
			zps := fb.EndVector(len(q.ZeroPoints))
			fb.StartObject(7)
			fb.PrependUOffsetTSlot(2, scales, 0)
			fb.PrependUOffsetTSlot(3, zps, 0)
			fb.PrependInt32Slot(6, int32(q.Dim), 0)
			quant = fb.EndObject()
		}
		fb.StartObject(9)
		fb.PrependUOffsetTSlot(0, shape, 0)
		fb.PrependInt8Slot(1, int8(t.dtype), 0)
		fb.PrependUint32Slot(2, bufIndex[i], 0)
		fb.PrependUOffsetTSlot(3, name, 0)
		if quant != 0 {
			fb.PrependUOffsetTSlot(4, quant, 0)
		}
		fb.PrependBoolSlot(5, t.variable, false)
		fb.PrependBoolSlot(8, true, false) // has_rank: shapes are known
		tensorTables[i] = fb.EndObject()
	}
	tensors := tableVector(fb, tensorTables)

	// Operator codes: one per distinct (code, version), in order of first
	// use.
	type codeKey struct {
		code    Op
		version int
	}
	codeIndex := map[codeKey]uint32{}
	var codes []codeKey
	opCode := make([]uint32, len(b.ops))
	for k := range b.ops {
		key := codeKey{b.ops[k].code, b.opVersion(&b.ops[k])}
		idx, ok := codeIndex[key]
		if !ok {
			idx = uint32(len(codes))
			codeIndex[key] = idx
			codes = append(codes, key)
		}
		opCode[k] = idx
	}

	opTables := make([]flatbuffers.UOffsetT, len(b.ops))
	for k, o := range b.ops {
		ins := idVector(fb, o.inputs)
		outs := idVector(fb, o.outputs)
		var inter flatbuffers.UOffsetT
		if len(o.intermediates) > 0 {
			inter = idVector(fb, o.intermediates)
		}
		var opts flatbuffers.UOffsetT
		if o.opts != nil {
			opts = o.opts.build(fb)
		}
		fb.StartObject(9)
		fb.PrependUint32Slot(0, opCode[k], 0)
		fb.PrependUOffsetTSlot(1, ins, 0)
		fb.PrependUOffsetTSlot(2, outs, 0)
		if o.opts != nil {
			fb.PrependUint8Slot(3, o.opts.unionType(), 0)
			fb.PrependUOffsetTSlot(4, opts, 0)
		}
		if inter != 0 {
			fb.PrependUOffsetTSlot(8, inter, 0)
		}
		opTables[k] = fb.EndObject()
	}
	operators := tableVector(fb, opTables)

	sgInputs := idVector(fb, b.inputs)
	sgOutputs := idVector(fb, b.outputs)
	sgName := fb.CreateString("main")
	fb.StartObject(5)
	fb.PrependUOffsetTSlot(0, tensors, 0)
	fb.PrependUOffsetTSlot(1, sgInputs, 0)
	fb.PrependUOffsetTSlot(2, sgOutputs, 0)
	fb.PrependUOffsetTSlot(3, operators, 0)
	fb.PrependUOffsetTSlot(4, sgName, 0)
	subgraphs := tableVector(fb, []flatbuffers.UOffsetT{fb.EndObject()})

	codeTables := make([]flatbuffers.UOffsetT, len(codes))
	for i, c := range codes {
		dep := int8(min(int32(c.code), 127))
		fb.StartObject(4)
		fb.PrependInt8Slot(0, dep, 0)
		fb.PrependInt32Slot(2, int32(c.version), 1)
		fb.PrependInt32Slot(3, int32(c.code), 0)
		codeTables[i] = fb.EndObject()
	}
	operatorCodes := tableVector(fb, codeTables)

	var metadata flatbuffers.UOffsetT
	if metaBuf >= 0 {
		name := fb.CreateString("min_runtime_version")
		fb.StartObject(2)
		fb.PrependUOffsetTSlot(0, name, 0)
		fb.PrependUint32Slot(1, uint32(metaBuf), 0)
		metadata = tableVector(fb, []flatbuffers.UOffsetT{fb.EndObject()})
	}

	signatures := b.signature(fb)

	var desc flatbuffers.UOffsetT
	if b.description != "" {
		desc = fb.CreateString(b.description)
	}
	fb.StartObject(8)
	fb.PrependUint32Slot(0, SchemaVersion, 0)
	fb.PrependUOffsetTSlot(1, operatorCodes, 0)
	fb.PrependUOffsetTSlot(2, subgraphs, 0)
	if desc != 0 {
		fb.PrependUOffsetTSlot(3, desc, 0)
	}
	fb.PrependUOffsetTSlot(4, buffers, 0)
	if metadata != 0 {
		fb.PrependUOffsetTSlot(6, metadata, 0)
	}
	fb.PrependUOffsetTSlot(7, signatures, 0)
	model := fb.EndObject()
	fb.FinishWithFileIdentifier(model, fileIdentifier)
	out := fb.FinishedBytes()
	if len(out) > 1<<31-1 {
		return nil, fmt.Errorf("%w: the model is %d bytes, larger than a flatbuffer can hold", ErrInvalid, len(out))
	}
	return out, nil
}

// signature writes the "serving_default" SignatureDef naming the model's
// inputs and outputs by tensor name, as the converter does.
func (b *Builder) signature(fb *flatbuffers.Builder) flatbuffers.UOffsetT {
	tmap := func(ids []TensorID) flatbuffers.UOffsetT {
		ts := make([]flatbuffers.UOffsetT, len(ids))
		for i, id := range ids {
			name := fb.CreateString(b.tensors[id].name)
			fb.StartObject(2)
			fb.PrependUOffsetTSlot(0, name, 0)
			fb.PrependUint32Slot(1, uint32(id), 0)
			ts[i] = fb.EndObject()
		}
		return tableVector(fb, ts)
	}
	ins := tmap(b.inputs)
	outs := tmap(b.outputs)
	key := fb.CreateString("serving_default")
	fb.StartObject(5)
	fb.PrependUOffsetTSlot(0, ins, 0)
	fb.PrependUOffsetTSlot(1, outs, 0)
	fb.PrependUOffsetTSlot(2, key, 0)
	fb.PrependUint32Slot(4, 0, 0)
	return tableVector(fb, []flatbuffers.UOffsetT{fb.EndObject()})
}

func tableVector(fb *flatbuffers.Builder, ts []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	fb.StartVector(4, len(ts), 4)
	for i := len(ts) - 1; i >= 0; i-- {
		fb.PrependUOffsetT(ts[i])
	}
	return fb.EndVector(len(ts))
}

func idVector(fb *flatbuffers.Builder, ids []TensorID) flatbuffers.UOffsetT {
	fb.StartVector(4, len(ids), 4)
	for i := len(ids) - 1; i >= 0; i-- {
		fb.PrependInt32(int32(ids[i]))
	}
	return fb.EndVector(len(ids))
}

func totalLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b) + 16
	}
	return n
}
