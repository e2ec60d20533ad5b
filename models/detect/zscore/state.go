package zscore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// stateVersion is the first byte of MarshalBinary's output.
const stateVersion = 1

// AppendBinary appends the scorer's state (its folded values) to b.
func (s *Scorer) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(len(s.vals)))
	b = binary.AppendUvarint(b, uint64(s.next))
	b = binary.AppendUvarint(b, uint64(s.count))
	for _, v := range s.vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b, nil
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
	if len(b) < 1 || b[0] != stateVersion {
		return nil, fmt.Errorf("%w: version", ErrState)
	}
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
	s.next, s.count, s.dirty = int(next), int(count), true
	s.missing = 0
	for i := 0; i < s.count; i++ {
		if k := (s.next - s.count + i + len(s.vals)) % len(s.vals); s.vals[k] != s.vals[k] {
			s.missing++
		}
	}
	return b[8*size:], nil
}

// DecodeFrom restores the state from the front of b and returns the rest of
// b; for callers that embed the scorer's state in their own.
func (s *Scorer) DecodeFrom(b []byte) ([]byte, error) { return s.decode(b) }

// ResetBuffer gives the scorer its own value buffer (after a struct copy,
// so that the copy and the original do not share it).
func (s *Scorer) ResetBuffer() { s.vals = make([]float64, len(s.vals)) }
