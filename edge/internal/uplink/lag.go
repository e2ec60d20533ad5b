package uplink

import (
	"sync"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/outbox"
)

// statser is the part of the outbox the lag reads, when the Source has it.
type statser interface {
	Stats() outbox.Stats
}

// lagMaxMarks bounds the marks a lagTracker keeps; lagMinSpacing is the
// time resolution it keeps them at.
const (
	lagMaxMarks   = 1024
	lagMinSpacing = 100 * time.Millisecond
)

// lagMark says that by at, every record up to seq existed.
type lagMark struct {
	seq uint64
	at  time.Time
}

// lagTracker estimates when each record not yet acknowledged was committed,
// as the first time the uplink saw it exist: when it read it from the
// outbox, and from the outbox's last seq whenever the uplink looked (after
// commits, in every retry round while NATS is down, and on every Lag call).
// The estimate is late by at most the time between looks (the retry back-off
// during an outage) plus the marks' resolution (lagMinSpacing, coarsened to
// about the outage's length / (lagMaxMarks/2) when marks would exceed
// lagMaxMarks; merging only makes ages look older). Records already in the
// outbox when the uplink started count from the start.
type lagTracker struct {
	mu      sync.Mutex
	marks   []lagMark     // ascending in seq and time
	spacing time.Duration // the marks' resolution: lagMinSpacing, doubled when there are too many
	acked   uint64        // highest seq acknowledged
	oldest  uint64        // seq of the oldest record read and not acknowledged; 0: unknown
}

// saw records that every record up to seq existed at now.
func (l *lagTracker) saw(seq uint64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.acked {
		return
	}
	if l.spacing == 0 {
		l.spacing = lagMinSpacing
	}
	n := len(l.marks)
	switch {
	case n > 0 && seq <= l.marks[n-1].seq:
		return
	case n > 0 && now.Sub(l.marks[n-1].at) < l.spacing:
		// Within the resolution of the last mark: extend it.
		l.marks[n-1].seq = seq
		return
	}
	if n >= lagMaxMarks {
		// Halve the resolution: merge marks closer than the new spacing
		// into the one before, keeping its (earlier) time.
		l.spacing *= 2
		k := 0
		for _, m := range l.marks {
			if k > 0 && m.at.Sub(l.marks[k-1].at) < l.spacing {
				l.marks[k-1].seq = m.seq
				continue
			}
			l.marks[k] = m
			k++
		}
		l.marks = l.marks[:k]
	}
	l.marks = append(l.marks, lagMark{seq, now})
}

// read records that the uplink read the record seq from the outbox (the
// first of a batch: the oldest not yet acknowledged).
func (l *lagTracker) read(first, last uint64, now time.Time) {
	l.mu.Lock()
	if l.oldest <= l.acked || first < l.oldest {
		l.oldest = first
	}
	l.mu.Unlock()
	l.saw(last, now)
}

// ack records that every record up to seq was acknowledged (the uplink
// acknowledges in seq order).
func (l *lagTracker) ack(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.acked {
		return
	}
	l.acked = seq
	i := 0
	for i < len(l.marks) && l.marks[i].seq <= seq {
		i++
	}
	l.marks = append(l.marks[:0], l.marks[i:]...)
	if len(l.marks) == 0 {
		l.spacing = lagMinSpacing
	}
}

// age is how long the oldest record not acknowledged has existed, given
// that waiting records are not acknowledged.
func (l *lagTracker) age(now time.Time, waiting uint64) time.Duration {
	if waiting == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := l.oldest
	if oldest <= l.acked {
		oldest = l.acked + 1
	}
	for _, m := range l.marks {
		if m.seq >= oldest {
			return max(now.Sub(m.at), 0)
		}
	}
	return 0
}

// Lag reports the uplink's lag: the age of the oldest record in the outbox
// that JetStream has not acknowledged (an estimate; see lagTracker, late by
// at most the retry back-off), and how many records wait. Both are zero
// when nothing waits. Waiting is read from the outbox (its Stats method);
// with a Source that has none, the lag covers only what the uplink read.
func (u *Uplink) Lag() (age time.Duration, waiting uint64) {
	now := time.Now()
	if s, ok := u.src.(statser); ok {
		st := s.Stats()
		u.lag.saw(st.LastSeq, now)
		waiting = st.Depth
	} else {
		u.lag.mu.Lock()
		if u.lag.oldest > u.lag.acked {
			waiting = 1 // at least
		}
		u.lag.mu.Unlock()
	}
	return u.lag.age(now, waiting), waiting
}

// probe marks the records the outbox holds now as seen.
func (u *Uplink) probe() {
	if s, ok := u.src.(statser); ok {
		u.lag.saw(s.Stats().LastSeq, time.Now())
	}
}
