package sim

import (
	"sort"
	"time"
)

// DataOffsets returns, for each row, its data time since the first row,
// accumulated from the difference to the previous row clamped at zero. NAB
// files repeat timestamps and step backwards now and then; this keeps file
// order and never schedules a row before the one above it.
func DataOffsets(rows []Row) []time.Duration {
	off := make([]time.Duration, len(rows))
	for i := 1; i < len(rows); i++ {
		d := rows[i].T.Sub(rows[i-1].T)
		if d < 0 {
			d = 0
		}
		off[i] = off[i-1] + d
	}
	return off
}

// TypicalStep is the median of the positive differences between consecutive
// rows, or one second when there are none. A looping replay leaves this gap
// between the last row of one pass and the first of the next.
func TypicalStep(rows []Row) time.Duration {
	var steps []time.Duration
	for i := 1; i < len(rows); i++ {
		if d := rows[i].T.Sub(rows[i-1].T); d > 0 {
			steps = append(steps, d)
		}
	}
	if len(steps) == 0 {
		return time.Second
	}
	sort.Slice(steps, func(a, b int) bool { return steps[a] < steps[b] })
	return steps[len(steps)/2]
}

// WallOffset converts a data offset into wall time at a speed-up (data
// seconds per wall second). A speed-up of zero or less means as fast as
// possible: every offset is zero.
func WallOffset(data time.Duration, speedup float64) time.Duration {
	if speedup <= 0 {
		return 0
	}
	return time.Duration(float64(data) / speedup)
}

// Schedule returns the wall-time offset from the start of the replay at which
// each row is published, at the given speed-up.
func Schedule(rows []Row, speedup float64) []time.Duration {
	off := DataOffsets(rows)
	for i, d := range off {
		off[i] = WallOffset(d, speedup)
	}
	return off
}
