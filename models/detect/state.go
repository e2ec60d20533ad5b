package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// State format versions. Version 1 (before windows by time, reordering,
// gaps and normalisation) held the window's values but not their times;
// it still loads into a detector without a time-span window (a span window
// refuses it with ErrState: the stream warms up again). Version 2 ended
// with the z-score scorer's state; version 3 names the scorer's model
// before its state, so that any Scorer's running state is kept and a
// state is never restored into another model's scorer. Versions 1 and 2
// load into z-score detectors only. Version 4 appends, after the scorer's
// state, the likelihood stage's state (Config.Likelihood) and the stream's
// range (Config.RangeMargin); a version 3 state loads with both starting
// afresh. Version 5 appends the readings since the last anomalous one (the
// novelty channel's hold-off); a version 4 state loads without a hold-off
// in progress. Version 6 appends the volatility and seasonal channels
// (flag, state each; Config.Volatility, Config.Seasonal); a version 5
// state loads with them starting afresh. Version 7 appends the stuck-value
// rule's runs (Config.StuckRun); a version 6 state loads with no run seen.
const (
	stateV1      = 1
	stateV2      = 2
	stateV3      = 3
	stateV4      = 4
	stateV5      = 5
	stateV6      = 6
	stateVersion = 7
)

// ErrState: a checkpointed state does not fit this detector (other window
// size, other format); the caller starts the stream afresh.
var ErrState = errors.New("detect: bad state")

// MarshalBinary returns the detector's state: the window (values and
// reading times), the scorer's model and running state (statistics, a
// model's history and residual scale), the warm-up count, the incident
// (hysteresis and cool-down), the reorder buffer, the gap state (last
// sample, recent spacings), the online normalisation and the counters, so
// that a restarted agent resumes detection at once.
func (d *Detector) MarshalBinary() ([]byte, error) { return d.appendState(nil, stateVersion) }

// appendState appends the state in format version (2 to 7) to b.
func (d *Detector) appendState(b []byte, version byte) ([]byte, error) {
	if b == nil {
		b = make([]byte, 0, 128+17*len(d.raw)+16*len(d.buf))
	}
	b = append(b, version)
	b = d.appendV1Head(b)
	// Version 2 fields.
	var flags uint64
	if d.hasLast {
		flags |= 1
	}
	if d.hasNewest {
		flags |= 2
	}
	if d.hasReleased {
		flags |= 4
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, d.lastTS)
	b = appendFloat(b, d.lastV)
	b = binary.AppendVarint(b, d.newest)
	b = binary.AppendVarint(b, d.lastReleased)
	b = binary.AppendUvarint(b, uint64(len(d.buf)))
	for _, h := range d.buf {
		b = binary.AppendVarint(b, h.ts)
		b = appendFloat(b, h.v)
	}
	b = binary.AppendUvarint(b, uint64(d.spCount))
	for i := 0; i < d.spCount; i++ { // oldest first
		b = binary.AppendVarint(b, d.spacing[(d.spNext-d.spCount+i+2*spacings)%spacings])
	}
	b = binary.AppendUvarint(b, d.onN)
	b = appendFloat(b, d.onMean)
	b = appendFloat(b, d.onVar)
	c := d.counters
	for _, n := range []uint64{c.Late, c.Duplicate, c.Filled, c.GapResets} {
		b = binary.AppendUvarint(b, n)
	}
	for _, t := range d.ts {
		b = binary.AppendVarint(b, t)
	}
	for _, v := range d.raw {
		b = appendFloat(b, v)
	}
	if version >= 3 {
		m := d.scorer.Model()
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	b, err := d.scorer.AppendState(b)
	if err != nil || version < 4 {
		return b, err
	}
	// Version 4: the likelihood stage (flag, state) and the range.
	if d.lik == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = d.lik.AppendState(b)
	}
	b = binary.AppendUvarint(b, d.rangeN)
	b = appendFloat(b, d.lo)
	b = appendFloat(b, d.hi)
	if d.nov == nil {
		b = append(b, 0)
	} else {
		b = d.nov.appendState(append(b, 1))
	}
	if version < 5 {
		return b, nil
	}
	// Version 5: readings since the last anomalous one, plus one (0: none).
	b = binary.AppendUvarint(b, uint64(d.sinceAnomaly+1))
	if version < 6 {
		return b, nil
	}
	// Version 6: the volatility and seasonal channels.
	if d.vol == nil {
		b = append(b, 0)
	} else {
		b = d.vol.appendState(append(b, 1))
	}
	if d.sea == nil {
		b = append(b, 0)
	} else {
		b = d.sea.appendState(append(b, 1))
	}
	if version < 7 {
		return b, nil
	}
	// Version 7: the stuck-value rule (1 when it has a last reading, else
	// 0), the last reading, the run and the longest run before it.
	var has byte
	if d.stuckHas {
		has = 1
	}
	b = append(b, has)
	b = appendFloat(b, d.stuckLast)
	b = binary.AppendUvarint(b, d.stuckRun)
	return binary.AppendUvarint(b, d.stuckLongest), nil
}

// appendV1Head appends the fields version 1 began with.
func (d *Detector) appendV1Head(b []byte) []byte {
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
	return binary.AppendVarint(b, qs)
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// reader decodes a state, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: truncated", ErrState)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: truncated", ErrState)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = fmt.Errorf("%w: truncated", ErrState)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// UnmarshalBinary restores a state written by MarshalBinary (this version,
// version 3, or versions 1 and 2 into a z-score detector) into a detector
// of the same window size and scorer model (and likelihood sizes). On
// error the detector is unchanged.
func (d *Detector) UnmarshalBinary(b []byte) error {
	if len(b) < 1 || b[0] < stateV1 || b[0] > stateVersion {
		v := -1
		if len(b) > 0 {
			v = int(b[0])
		}
		return fmt.Errorf("%w: version %d (this build reads %d to %d)", ErrState, v, stateV1, stateVersion)
	}
	version := b[0]
	if _, z := d.scorer.(zscoreScorer); version < 3 && !z {
		return fmt.Errorf("%w: a version %d state holds a z-score scorer, this stream scores with %s", ErrState, version, d.scorer.Model())
	}
	r := &reader{b: b[1:]}
	size, next, count, seen, incident, quiet := r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
	qs := r.varint()
	if r.err != nil {
		return r.err
	}
	if size != uint64(len(d.raw)) || next >= size || count > size || incident > uint64(Anomaly) {
		return fmt.Errorf("%w: window %d (here %d)", ErrState, size, len(d.raw))
	}
	n := *d // the new state, committed at the end
	n.buf, n.ts, n.raw = nil, make([]int64, size), make([]float64, size)
	n.hasLast, n.hasNewest, n.hasReleased = false, false, false
	n.lastTS, n.lastV, n.newest, n.lastReleased = 0, 0, 0, 0
	n.spNext, n.spCount, n.onN, n.onMean, n.onVar = 0, 0, 0, 0, 0
	n.counters = Counters{}
	if version == stateV1 {
		if d.cfg.Span > 0 {
			return fmt.Errorf("%w: a version 1 state has no reading times, which a time-span window needs", ErrState)
		}
	} else {
		flags := r.uvarint()
		n.hasLast, n.hasNewest, n.hasReleased = flags&1 != 0, flags&2 != 0, flags&4 != 0
		n.lastTS, n.lastV = r.varint(), r.float()
		n.newest, n.lastReleased = r.varint(), r.varint()
		nb := r.uvarint()
		if r.err == nil && nb > uint64(len(r.b)/9) {
			return fmt.Errorf("%w: reorder buffer of %d", ErrState, nb)
		}
		n.buf = make([]held, 0, nb)
		for i := uint64(0); i < nb && r.err == nil; i++ {
			h := held{ts: r.varint(), v: r.float()}
			if len(n.buf) > 0 && h.ts <= n.buf[len(n.buf)-1].ts {
				return fmt.Errorf("%w: reorder buffer out of order", ErrState)
			}
			n.buf = append(n.buf, h)
		}
		sc := r.uvarint()
		if sc > spacings {
			return fmt.Errorf("%w: %d spacings", ErrState, sc)
		}
		for i := uint64(0); i < sc; i++ {
			n.spacing[i] = r.varint()
		}
		n.spCount, n.spNext = int(sc), int(sc)%spacings
		n.onN, n.onMean, n.onVar = r.uvarint(), r.float(), r.float()
		n.counters = Counters{Late: r.uvarint(), Duplicate: r.uvarint(), Filled: r.uvarint(), GapResets: r.uvarint()}
		for i := range n.ts {
			n.ts[i] = r.varint()
		}
	}
	for i := range n.raw {
		n.raw[i] = r.float()
	}
	if version >= 3 {
		ml := r.uvarint()
		if r.err == nil && ml > uint64(len(r.b)) {
			return fmt.Errorf("%w: truncated", ErrState)
		}
		if r.err == nil {
			if m := string(r.b[:ml]); m != d.scorer.Model() {
				return fmt.Errorf("%w: the state's scorer is %s, this stream scores with %s", ErrState, m, d.scorer.Model())
			}
			r.b = r.b[ml:]
		}
	}
	if r.err != nil {
		return r.err
	}
	// Restore the scorer into a copy so that a bad scorer state leaves d
	// unchanged.
	sc, rest, err := d.scorer.RestoreState(r.b, int(count))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrState, err)
	}
	n.scorer = sc
	// The likelihood stage and the range start afresh unless the state
	// holds them (version 4).
	if d.lik != nil {
		n.lik, _ = NewLikelihood(d.cfg.Likelihood)
	}
	if d.nov != nil {
		n.nov, _ = newNovelty(d.cfg.Novelty, d.cfg.Likelihood)
	}
	n.rangeN, n.lo, n.hi = 0, 0, 0
	if version >= 4 {
		r.b = rest
		if len(r.b) < 1 {
			return fmt.Errorf("%w: truncated", ErrState)
		}
		has := r.b[0]
		r.b = r.b[1:]
		switch {
		case has > 1:
			return fmt.Errorf("%w: likelihood flag %d", ErrState, has)
		case has == 1 && d.lik != nil:
			l, err := d.lik.restore(r)
			if err != nil {
				return err
			}
			n.lik = l
		case has == 1:
			// This detector has no likelihood stage: skip the state.
			if err := skipLikelihood(r); err != nil {
				return err
			}
		}
		n.rangeN, n.lo, n.hi = r.uvarint(), r.float(), r.float()
		if r.err != nil {
			return r.err
		}
		if len(r.b) < 1 || r.b[0] > 1 {
			return fmt.Errorf("%w: novelty flag", ErrState)
		}
		hasNov := r.b[0] == 1
		r.b = r.b[1:]
		switch {
		case hasNov && d.nov != nil:
			c, err := d.nov.restore(r)
			if err != nil {
				return err
			}
			n.nov = c
		case hasNov:
			if err := skipNovelty(r); err != nil {
				return err
			}
		}
	}
	n.sinceAnomaly = -1
	if version >= 5 {
		since := r.uvarint()
		if r.err != nil {
			return r.err
		}
		if since > math.MaxInt32 {
			return fmt.Errorf("%w: %d readings since an anomaly", ErrState, since)
		}
		n.sinceAnomaly = int(since) - 1
	}
	if d.vol != nil {
		n.vol, _ = newVolatility(d.cfg.Volatility, d.cfg.Likelihood)
	}
	if d.sea != nil {
		n.sea, _ = newSeasonal(d.cfg.Seasonal, d.cfg.Likelihood)
	}
	if version >= 6 {
		if len(r.b) < 1 || r.b[0] > 1 {
			return fmt.Errorf("%w: volatility flag", ErrState)
		}
		hasVol := r.b[0] == 1
		r.b = r.b[1:]
		switch {
		case hasVol && d.vol != nil:
			c, err := d.vol.restore(r)
			if err != nil {
				return err
			}
			n.vol = c
		case hasVol:
			if err := skipVolatility(r); err != nil {
				return err
			}
		}
		if len(r.b) < 1 || r.b[0] > 1 {
			return fmt.Errorf("%w: seasonal flag", ErrState)
		}
		hasSea := r.b[0] == 1
		r.b = r.b[1:]
		switch {
		case hasSea && d.sea != nil:
			c, err := d.sea.restore(r)
			if err != nil {
				return err
			}
			n.sea = c
		case hasSea:
			if err := skipSeasonal(r); err != nil {
				return err
			}
		}
	}
	n.stuckHas, n.stuckLast, n.stuckRun, n.stuckLongest = false, 0, 0, 0
	if version >= 7 {
		if len(r.b) < 1 || r.b[0] > 1 {
			return fmt.Errorf("%w: stuck-value flag", ErrState)
		}
		n.stuckHas = r.b[0] == 1
		r.b = r.b[1:]
		n.stuckLast, n.stuckRun, n.stuckLongest = r.float(), r.uvarint(), r.uvarint()
		if r.err != nil {
			return r.err
		}
	}
	n.next, n.count, n.seen = int(next), int(count), int(seen)
	n.incident, n.quiet = Level(incident), int(quiet)
	n.quietSince = time.Time{}
	if qs != 0 {
		n.quietSince = time.Unix(0, qs).UTC()
	}
	*d = n
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
