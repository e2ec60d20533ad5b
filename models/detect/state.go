package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

const stateVersion = 1

// ErrState: a checkpointed state does not fit this detector (other window
// size, other format); the caller starts the stream afresh.
var ErrState = errors.New("detect: bad state")

// MarshalBinary returns the detector's state: the window, the scorer's
// statistics, the warm-up count and the incident (hysteresis and
// cool-down), so that a restarted agent resumes detection at once.
func (d *Detector) MarshalBinary() ([]byte, error) {
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(len(d.raw)))
	b = binary.AppendUvarint(b, uint64(d.next))
	b = binary.AppendUvarint(b, uint64(d.count))
	b = binary.AppendUvarint(b, uint64(d.seen))
	b = binary.AppendUvarint(b, uint64(d.incident))
	b = binary.AppendUvarint(b, uint64(d.quiet))
	var qs int64
	if !d.quietSince.IsZero() {
		qs = d.quietSince.UnixNano()
	}
	b = binary.AppendVarint(b, qs)
	for _, v := range d.raw {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return d.scorer.AppendBinary(b)
}

// UnmarshalBinary restores a state written by MarshalBinary into a detector
// of the same window size. On error the detector is unchanged.
func (d *Detector) UnmarshalBinary(b []byte) error {
	if len(b) < 1 || b[0] != stateVersion {
		return fmt.Errorf("%w: version", ErrState)
	}
	b = b[1:]
	var f [6]uint64
	for i := range f {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return fmt.Errorf("%w: truncated", ErrState)
		}
		f[i], b = v, b[n:]
	}
	qs, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("%w: truncated", ErrState)
	}
	b = b[n:]
	size, next, count, seen, incident, quiet := f[0], f[1], f[2], f[3], f[4], f[5]
	if size != uint64(len(d.raw)) || next >= size || count > size || incident > uint64(Anomaly) || uint64(len(b)) < 8*size {
		return fmt.Errorf("%w: window %d (here %d)", ErrState, size, len(d.raw))
	}
	raw := make([]float64, size)
	for i := range raw {
		raw[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	sc := *d.scorer
	sc2 := &sc
	// Decode into a copy so that a bad scorer state leaves d unchanged.
	sc2.ResetBuffer()
	if _, err := sc2.DecodeFrom(b[8*size:]); err != nil {
		return fmt.Errorf("%w: %v", ErrState, err)
	}
	d.scorer = sc2
	d.raw, d.next, d.count, d.seen = raw, int(next), int(count), int(seen)
	d.incident, d.quiet = Level(incident), int(quiet)
	d.quietSince = time.Time{}
	if qs != 0 {
		d.quietSince = time.Unix(0, qs).UTC()
	}
	return nil
}

// ResetIncident forgets the incident in progress (hysteresis and
// cool-down), keeping the window and statistics. A restored checkpoint may
// be older than the last readings judged, and those readings (acknowledged
// to the broker) are not redelivered: keeping the old incident could then
// swallow the first reading of a new one. After a reset a restart in the
// middle of an incident may raise one more event for it, never fewer.
func (d *Detector) ResetIncident() {
	d.incident = Normal
	d.quiet, d.quietSince = 0, time.Time{}
}
