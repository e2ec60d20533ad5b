package zscore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// State versions: the first byte of MarshalBinary's output. Version 1
// held the folded values; version 2 adds the running sums, so that a
// restored scorer continues bit for bit as the original would have (a
// version 1 state is summed afresh from its values).
const (
	stateV1      = 1
	stateVersion = 2
)

// AppendBinary appends the scorer's state (its folded values) to b.
func (s *Scorer) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(len(s.vals)))
	b = binary.AppendUvarint(b, uint64(s.next))
	b = binary.AppendUvarint(b, uint64(s.count))
	for _, v := range s.vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for _, v := range [...]float64{s.k, s.s1, s.s2, s.s2max} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	b = binary.AppendUvarint(b, uint64(s.upd))
	exact := byte(0)
	if s.exact {
		exact = 1
	}
	return append(b, exact), nil
}

// MarshalBinary returns the scorer's state, for a checkpoint.
func (s *Scorer) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// UnmarshalBinary restores a state written by MarshalBinary. The window
// size must be the scorer's own.
func (s *Scorer) UnmarshalBinary(b []byte) error {
	_, err := s.decode(b)
	return err
}

// ErrState: a checkpointed state does not fit.
var ErrState = errors.New("zscore: bad state")

// decode restores the state from the front of b and returns the rest.
func (s *Scorer) decode(b []byte) ([]byte, error) {
	if len(b) < 1 || b[0] < stateV1 || b[0] > stateVersion {
		return nil, fmt.Errorf("%w: version", ErrState)
	}
	version := b[0]
	b = b[1:]
	var f [3]uint64
	for i := range f {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: truncated", ErrState)
		}
		f[i], b = v, b[n:]
	}
	size, next, count := f[0], f[1], f[2]
	if size != uint64(len(s.vals)) || next >= size || count > size || uint64(len(b)) < 8*size {
		return nil, fmt.Errorf("%w: window %d, next %d, count %d (window %d here)", ErrState, size, next, count, len(s.vals))
	}
	for i := range s.vals {
		s.vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	s.next, s.count = int(next), int(count)
	s.missing = 0
	for i := 0; i < s.count; i++ {
		if k := (s.next - s.count + i + len(s.vals)) % len(s.vals); s.vals[k] != s.vals[k] {
			s.missing++
		}
	}
	b = b[8*size:]
	s.resum() // the running sums, from the restored values
	if version == stateV1 {
		return b, nil
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("%w: truncated", ErrState)
	}
	var f4 [4]float64
	for i := range f4 {
		f4[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	b = b[32:]
	upd, k := binary.Uvarint(b)
	if k <= 0 || len(b) < k+1 || b[k] > 1 || upd > math.MaxInt32 {
		return nil, fmt.Errorf("%w: truncated", ErrState)
	}
	for _, v := range f4 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: running sums %v", ErrState, f4)
		}
	}
	s.k, s.s1, s.s2, s.s2max = f4[0], f4[1], f4[2], f4[3]
	s.upd, s.exact = int(upd), b[k] == 1
	return b[k+1:], nil
}

// DecodeFrom restores the state from the front of b and returns the rest of
// b; for callers that embed the scorer's state in their own.
func (s *Scorer) DecodeFrom(b []byte) ([]byte, error) { return s.decode(b) }

// ResetBuffer gives the scorer its own value buffer (after a struct copy,
// so that the copy and the original do not share it).
func (s *Scorer) ResetBuffer() { s.vals = make([]float64, len(s.vals)) }
