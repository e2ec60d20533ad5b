// Package schema reads the subset of the TensorFlow Lite flatbuffer schema
// (tensorflow/lite/schema/schema.fbs, file identifier "TFL3") that the
// outpost runtime needs, checking every offset, length and size against the
// file as it goes.
//
// Decode walks the whole file once and returns plain Go values (Model,
// SubGraph, Tensor, Operator, ...). Byte payloads (buffer data, custom
// options) are sub-slices of the input; nothing else aliases it. Builtin
// options stay as a verified Table, read with typed getters that check each
// field against the table's bounds, so no accessor can read outside the file.
//
// A truncated, corrupt or hostile file yields an error naming the table and
// field where decoding failed; Decode never panics, and the memory it
// allocates is bounded by a small multiple of the file size.
//
// The field ids used here are those of schema.fbs; subset.fbs beside this
// file lists them.
package schema

import (
	"errors"
	"fmt"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"
)

// ErrCorrupt is wrapped by every error Decode returns for a malformed file.
var ErrCorrupt = errors.New("corrupt flatbuffer")

// Table is a verified flatbuffer table: its vtable and object lie inside
// the buffer, so field getters only need to check a field against the
// object size the vtable declares. The zero Table is an absent table: every
// getter returns the field's default.
type Table struct {
	buf    []byte
	pos    uint32 // start of the table object (its soffset to the vtable)
	vt     uint32 // start of the vtable
	vtLen  uint32 // vtable size in bytes
	objLen uint32 // object size in bytes
	what   string // for error messages, e.g. "subgraph 0 operator 3 options"
}

// Present reports whether the table exists in the file.
func (t Table) Present() bool { return t.buf != nil }

func corrupt(what string, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", what, fmt.Sprintf(format, args...), ErrCorrupt)
}

// tableAt verifies the table whose object starts at pos.
func tableAt(buf []byte, pos uint64, what string) (Table, error) {
	n := uint64(len(buf))
	if pos%4 != 0 || pos+4 > n {
		return Table{}, corrupt(what, "table offset %d outside the file (%d bytes) or misaligned", pos, n)
	}
	so := int64(flatbuffers.GetInt32(buf[pos:]))
	vt := int64(pos) - so
	if vt < 0 || vt%2 != 0 || uint64(vt)+4 > n {
		return Table{}, corrupt(what, "vtable offset %d outside the file (%d bytes)", vt, n)
	}
	vtLen := uint64(flatbuffers.GetUint16(buf[vt:]))
	objLen := uint64(flatbuffers.GetUint16(buf[vt+2:]))
	if vtLen < 4 || vtLen%2 != 0 || uint64(vt)+vtLen > n {
		return Table{}, corrupt(what, "vtable at %d has bad size %d", vt, vtLen)
	}
	if objLen < 4 || pos+objLen > n {
		return Table{}, corrupt(what, "table at %d has size %d, past the end of the file (%d bytes)", pos, objLen, n)
	}
	if pos+objLen > math.MaxUint32 || uint64(vt)+vtLen > math.MaxUint32 {
		return Table{}, corrupt(what, "table at %d lies beyond 4 GiB", pos)
	}
	return Table{buf: buf, pos: uint32(pos), vt: uint32(vt), vtLen: uint32(vtLen), objLen: uint32(objLen), what: what}, nil
}

// field returns the absolute position of field id, or 0 if absent. size is
// the number of bytes the caller will read there.
func (t Table) field(id int, size uint32) (uint32, error) {
	if t.buf == nil {
		return 0, nil
	}
	vo := uint32(4 + 2*id)
	if vo+2 > t.vtLen {
		return 0, nil
	}
	off := uint32(flatbuffers.GetUint16(t.buf[t.vt+vo:]))
	if off == 0 {
		return 0, nil
	}
	if off < 4 || off+size > t.objLen {
		return 0, corrupt(t.what, "field %d at offset %d (+%d bytes) outside its table (%d bytes)", id, off, size, t.objLen)
	}
	return t.pos + off, nil
}

// Uint8 reads a 1-byte field (ubyte, byte, bool, enums of byte).
func (t Table) Uint8(id int, def uint8) (uint8, error) {
	p, err := t.field(id, 1)
	if err != nil || p == 0 {
		return def, err
	}
	return t.buf[p], nil
}

// Int8 reads a byte field.
func (t Table) Int8(id int, def int8) (int8, error) {
	v, err := t.Uint8(id, uint8(def))
	return int8(v), err
}

// Bool reads a bool field.
func (t Table) Bool(id int, def bool) (bool, error) {
	d := uint8(0)
	if def {
		d = 1
	}
	v, err := t.Uint8(id, d)
	return v != 0, err
}

// Int32 reads an int field.
func (t Table) Int32(id int, def int32) (int32, error) {
	p, err := t.field(id, 4)
	if err != nil || p == 0 {
		return def, err
	}
	return flatbuffers.GetInt32(t.buf[p:]), nil
}

// Uint32 reads a uint field.
func (t Table) Uint32(id int, def uint32) (uint32, error) {
	v, err := t.Int32(id, int32(def))
	return uint32(v), err
}

// Uint64 reads a ulong field.
func (t Table) Uint64(id int, def uint64) (uint64, error) {
	p, err := t.field(id, 8)
	if err != nil || p == 0 {
		return def, err
	}
	return flatbuffers.GetUint64(t.buf[p:]), nil
}

// Float32 reads a float field.
func (t Table) Float32(id int, def float32) (float32, error) {
	p, err := t.field(id, 4)
	if err != nil || p == 0 {
		return def, err
	}
	return flatbuffers.GetFloat32(t.buf[p:]), nil
}

// indirect follows the uoffset stored in field id; it returns 0 if absent.
func (t Table) indirect(id int) (uint64, error) {
	p, err := t.field(id, 4)
	if err != nil || p == 0 {
		return 0, err
	}
	target := uint64(p) + uint64(flatbuffers.GetUint32(t.buf[p:]))
	if target+4 > uint64(len(t.buf)) {
		return 0, corrupt(t.what, "field %d points to %d, outside the file (%d bytes)", id, target, len(t.buf))
	}
	return target, nil
}

// Table reads a sub-table field. An absent field gives the zero Table.
func (t Table) Table(id int, what string) (Table, error) {
	p, err := t.indirect(id)
	if err != nil || p == 0 {
		return Table{}, err
	}
	return tableAt(t.buf, p, what)
}

// vector returns the element count and start of the vector in field id,
// after checking that count*elem bytes fit in the file.
func (t Table) vector(id int, elem uint64) (n uint64, start uint64, err error) {
	p, err := t.indirect(id)
	if err != nil || p == 0 {
		return 0, 0, err
	}
	n = uint64(flatbuffers.GetUint32(t.buf[p:]))
	start = p + 4
	if n*elem > uint64(len(t.buf))-start {
		return 0, 0, corrupt(t.what, "field %d: vector of %d x %d bytes at %d runs past the end of the file (%d bytes)", id, n, elem, start, len(t.buf))
	}
	return n, start, nil
}

// Bytes reads a [ubyte] field as a sub-slice of the file (nil if absent).
func (t Table) Bytes(id int) ([]byte, error) {
	n, s, err := t.vector(id, 1)
	if err != nil || s == 0 {
		return nil, err
	}
	return t.buf[s : s+n : s+n], nil
}

// String reads a string field ("" if absent).
func (t Table) String(id int) (string, error) {
	b, err := t.Bytes(id)
	return string(b), err
}

// VectorLen returns the length of the vector in field id (0 if absent),
// checked against the file for elements of elem bytes.
func (t Table) VectorLen(id int, elem uint64) (int, error) {
	n, _, err := t.vector(id, elem)
	return int(n), err
}

// Int32s reads an [int] field (nil if absent). The caller accounts for
// the allocation through a budget.
func (t Table) Int32s(id int, b *Budget) ([]int32, error) {
	n, s, err := t.vector(id, 4)
	if err != nil || s == 0 {
		return nil, err
	}
	if err := b.take(n*4, t.what); err != nil {
		return nil, err
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = flatbuffers.GetInt32(t.buf[s+uint64(i)*4:])
	}
	return out, nil
}

// Int64s reads a [long] field.
func (t Table) Int64s(id int, b *Budget) ([]int64, error) {
	n, s, err := t.vector(id, 8)
	if err != nil || s == 0 {
		return nil, err
	}
	if err := b.take(n*8, t.what); err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = flatbuffers.GetInt64(t.buf[s+uint64(i)*8:])
	}
	return out, nil
}

// Float32s reads a [float] field.
func (t Table) Float32s(id int, b *Budget) ([]float32, error) {
	n, s, err := t.vector(id, 4)
	if err != nil || s == 0 {
		return nil, err
	}
	if err := b.take(n*4, t.what); err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = flatbuffers.GetFloat32(t.buf[s+uint64(i)*4:])
	}
	return out, nil
}

// Tables reads a vector of tables, calling fn for each verified element.
func (t Table) Tables(id int, name string, fn func(i int, e Table) error) error {
	n, s, err := t.vector(id, 4)
	if err != nil || s == 0 {
		return err
	}
	for i := uint64(0); i < n; i++ {
		p := s + i*4
		target := p + uint64(flatbuffers.GetUint32(t.buf[p:]))
		what := fmt.Sprintf("%s %d", name, i)
		e, err := tableAt(t.buf, target, what)
		if err != nil {
			return err
		}
		if err := fn(int(i), e); err != nil {
			return err
		}
	}
	return nil
}

// Budget bounds what Decode allocates, in bytes, so that a small file whose
// vectors all point at the same large table cannot make Decode allocate
// far more than the file's size justifies.
type Budget struct {
	left uint64
}

// NewBudget returns a budget of n bytes.
func NewBudget(n uint64) *Budget { return &Budget{left: n} }

func (b *Budget) take(n uint64, what string) error {
	if b == nil {
		return nil
	}
	if n > b.left {
		return corrupt(what, "decoding would allocate more than the file's size justifies")
	}
	b.left -= n
	return nil
}
