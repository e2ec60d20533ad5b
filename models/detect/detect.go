// Package detect holds the per-stream detection logic of the edge: a ring
// buffer of recent readings (the window), a scorer, and the decision (normal,
// uncertain, anomaly) with hysteresis and cool-down so that one incident
// raises one event. The edge agent runs it on every stream and the evaluation
// (models/eval) replays corpora through the same code; it imports nothing of
// MQTT or NATS. The scorer is pluggable (Scorer): the z-score scorer (New)
// or a TFLite model with its manifest (package modelscore, NewWithScorer).
// Between the scorer and the decision, optional stages (Config): the
// anomaly likelihood of the raw scores (Likelihood), a novelty channel
// (NoveltyConfig) and a rule that a reading beyond the stream's range is
// an anomaly (Config.RangeMargin); together they are what `make eval`
// measures on NAB.
package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/outpost-iot/outpost/models/detect/zscore"
)

// Level is the judgement of one reading.
type Level int

// Levels, in increasing order of concern.
const (
	Normal Level = iota
	Uncertain
	Anomaly
)

func (l Level) String() string {
	switch l {
	case Normal:
		return "normal"
	case Uncertain:
		return "uncertain"
	case Anomaly:
		return "anomaly"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// GapFill says how a gap in a stream is filled.
type GapFill int

// Gap fills.
const (
	// GapNone leaves gaps alone (and learns no interval).
	GapNone GapFill = iota
	// GapHold repeats the last value.
	GapHold
	// GapLinear interpolates from the last value to the new reading.
	GapLinear
	// GapMissing marks the missing samples: they take their place in the
	// window, recorded as missing (NaN), and the scorer skips them.
	GapMissing
)

// Normalize says how Features normalises the window.
type Normalize int

// Normalisations.
const (
	// NormNone: the raw values.
	NormNone Normalize = iota
	// NormWindow: (x - mean) / std over the window's own readings (std
	// floored at StdFloor·max(1, |mean|)).
	NormWindow
	// NormOnline: (x - mean) / std with a running (exponentially weighted)
	// mean and deviation of the stream's readings, half-life HalfLife
	// readings.
	NormOnline
	// NormManifest: (x - NormMean) / NormScale, fixed (from the profile or
	// the model's manifest).
	NormManifest
)

// Defaults of Config's zero fields.
const (
	DefaultMaxFill      = 100
	DefaultGapIntervals = 1.5
	DefaultStdFloor     = 1e-9
	DefaultRangeWarmup  = 100
	// spacings is how many recent spacings the learnt interval is the
	// median of.
	spacings = 16
	// minSpacings is how many are needed before an interval is learnt.
	minSpacings = 4
)

// Config configures one stream's detector. Its zero value is not usable; the
// agent builds it from a profile.Stream with defaults filled.
type Config struct {
	// Window is the number of readings kept and scored against (>= 2);
	// with Span, the most the window may hold.
	Window int
	// Span, when > 0, makes the window the readings of the last Span of
	// reading time (a reading at t holds those after t - Span), at most
	// Window of them.
	Span time.Duration
	// Reorder is the bounded reordering delay of reading time (Offer): a
	// reading is held until the newest reading is Reorder newer, then
	// judged in timestamp order; readings older than that are dropped and
	// counted as late, readings with a timestamp already seen as
	// duplicates. 0: no reordering, readings are judged as they come.
	Reorder time.Duration
	// Interval is the expected sample interval; 0 learns it as the median
	// of recent spacings. Only used to find gaps (GapFill).
	Interval time.Duration
	// GapFill says how gaps of more than GapIntervals intervals are
	// filled. GapNone (the zero value) leaves them.
	GapFill GapFill
	// GapIntervals is k: a spacing of more than k intervals is a gap.
	// 0 means DefaultGapIntervals.
	GapIntervals float64
	// MaxFill is the most samples one gap is filled with; a longer gap
	// resets the window (and the warm-up). 0 means DefaultMaxFill.
	MaxFill int
	// Normalize, HalfLife, NormMean, NormScale and StdFloor say how
	// Features normalises the window. HalfLife (readings) 0 means Window;
	// StdFloor 0 means DefaultStdFloor.
	Normalize Normalize
	HalfLife  int
	NormMean  float64
	NormScale float64
	StdFloor  float64
	// Scorer names the scorer of New: "zscore" (or empty). Detectors with
	// another scorer are made with NewWithScorer, which ignores it.
	Scorer string
	// Low and High are the thresholds: score < Low normal, Low <= score <
	// High uncertain, score >= High anomaly.
	Low, High float64
	// CooldownReadings or CooldownDuration (of reading time): how long the
	// score must stay below Low before an incident is over and a new one
	// may raise a new event. If both are zero the incident ends at the first
	// normal reading.
	CooldownReadings int
	CooldownDuration time.Duration
	// Warmup is the number of readings folded before any is scored (a
	// scorer may have a warm-up of its own on top: Judgement.Warm).
	Warmup int
	// Clamp is how many standard deviations from the mean a reading may pull
	// the scorer's statistics; 0 means zscore.DefaultClamp.
	Clamp float64
	// Likelihood, when Likelihood.Window > 0, passes the scorer's raw
	// scores through the anomaly likelihood stage (see Likelihood): the
	// score judged against Low and High is then the likelihood score, in
	// [0, 1] (0.5: a tail probability of 1e-5).
	Likelihood LikelihoodConfig
	// ScoreHigh, when > 0, is the scorer's score (with Likelihood, its
	// likelihood score) that counts as High, as a channel's High does: the
	// score is scaled by High / ScoreHigh before the channels and the range
	// rule raise it. Above the largest score the scorer reaches (1 with the
	// likelihood stage) the scorer alone raises no anomaly, and above
	// High / Low times that, not even an uncertain reading; the channels
	// and the range rule still do. 0 means High (no scaling).
	ScoreHigh float64
	// RangeMargin, when > 0, makes a reading outside the range of the
	// stream's readings so far, widened on each side by RangeMargin times
	// the range's width, an anomaly: its score is raised to High. (A
	// stream that has been constant has a range of width 0: any change is
	// outside it.)
	RangeMargin float64
	// Novelty, when Novelty.Bins > 0, adds the novelty channel (see
	// NoveltyConfig); it needs the likelihood stage (Likelihood.Window >
	// 0), whose settings its own likelihood takes.
	Novelty NoveltyConfig
	// Volatility, when Volatility.Average > 0, adds the volatility channel
	// (see VolatilityConfig); it needs the likelihood stage, whose settings
	// its own likelihood takes (but for Average). The novelty channel's
	// hold-off (Novelty.Holdoff) silences it too.
	Volatility VolatilityConfig
	// Seasonal, when Seasonal.Average > 0, adds the seasonal channel (see
	// SeasonalConfig); it needs the likelihood stage, whose settings its
	// own likelihood takes (but for Average). The novelty channel's
	// hold-off silences it too.
	Seasonal SeasonalConfig
	// StuckRun, when > 0, adds the stuck-value rule: a reading equal to
	// the one before it that makes the current run of equal readings
	// longer than any run the stream had before, and at least StuckRun
	// repeats long, is an anomaly (once per run). It is what a sensor
	// that freezes, a gateway or pipeline that repeats the last value, or
	// a stream that goes flat for longer than it ever did, looks like.
	// Runs are counted from the first reading on; the rule judges after
	// Warmup like the rest.
	StuckRun int
	// RangeWarmup is the number of readings the range must have seen
	// before readings out of it are anomalies (whether or not the scorer
	// is warm). 0 means DefaultRangeWarmup.
	RangeWarmup int
}

// Source is the stage of a Detector that gave a judgement its score: the
// scorer (with its likelihood stage), a channel, or the range rule. A
// channel takes the score only when it is higher than the score so far,
// so on a tie the earlier stage keeps it (scorer, novelty, volatility,
// seasonal); the range rule, a rule rather than a score, wins a tie.
type Source uint8

// Sources.
const (
	// FromScorer: the scorer's own score (or its likelihood score).
	FromScorer Source = iota
	// FromNovelty, FromVolatility and FromSeasonal: the channel's
	// likelihood score raised the score (Config.Novelty, Volatility,
	// Seasonal).
	FromNovelty
	FromVolatility
	FromSeasonal
	// FromRange: the reading lay outside the stream's range
	// (Config.RangeMargin); it wins a tie, being a rule, not a score.
	FromRange
	// FromStuck: the reading repeated the one before it for the longest
	// run the stream has had (Config.StuckRun); a rule, like FromRange.
	FromStuck
)

func (s Source) String() string {
	switch s {
	case FromScorer:
		return "score"
	case FromNovelty:
		return "novelty"
	case FromVolatility:
		return "volatility"
	case FromSeasonal:
		return "seasonal"
	case FromRange:
		return "range"
	case FromStuck:
		return "stuck"
	}
	return fmt.Sprintf("source(%d)", int(s))
}

// Judgement is the result of judging one reading.
type Judgement struct {
	// TS and Value are the reading judged (with Offer, not necessarily the
	// one offered: a held reading is judged when the watermark passes it).
	TS    time.Time
	Value float64
	// Level is the reading's level by its score alone.
	Level Level
	// Score is the score judged (0 during warm-up): the scorer's, or with
	// Config.Likelihood the likelihood score, scaled by High / ScoreHigh
	// (Config.ScoreHigh); raised by the channels, and to High for a
	// reading out of range (Config.RangeMargin).
	Score float64
	// Raw is the scorer's own score (0 during the scorer's warm-up).
	Raw float64
	// OutOfRange says the reading lay outside the stream's range
	// (Config.RangeMargin).
	OutOfRange bool
	// Novelty is the novelty channel's likelihood score (Config.Novelty;
	// 0 while it learns), before its scaling to the detector's High; set
	// during the channel's hold-off too, when it does not count.
	Novelty float64
	// Volatility is the volatility channel's likelihood score
	// (Config.Volatility; 0 while it learns), before its scaling; set
	// during the hold-off too, when it does not count.
	Volatility float64
	// Seasonal is the seasonal channel's likelihood score
	// (Config.Seasonal), like Volatility.
	Seasonal float64
	// Stuck says the reading made the longest run of equal readings so
	// far, at least Config.StuckRun repeats long.
	Stuck bool
	// Source is the stage that gave Score (the scorer, a channel that
	// raised it, or the range or stuck-value rule).
	Source Source
	// Emit says this reading starts (or escalates) an incident and must be
	// forwarded as an event of kind Level.
	Emit bool
	// Window is a copy of the raw values of the window, oldest first, ending
	// with this reading; only set when Emit. Missing samples are NaN.
	Window []float64
	// Warm is false while the stream is still warming up.
	Warm bool
	// Filled is the number of samples the gap before this reading was
	// filled with; Reset says the gap was too long and reset the window.
	Filled int
	Reset  bool
}

// Fate is what Offer did with a reading.
type Fate int

// Fates.
const (
	// Judged: the reading was judged (its judgement is among those
	// returned).
	Judged Fate = iota
	// Held: the reading waits in the reorder buffer.
	Held
	// Late: older than the reordering delay allows; dropped and counted.
	Late
	// Duplicate: a reading with the same timestamp was already taken;
	// dropped and counted.
	Duplicate
)

func (f Fate) String() string {
	switch f {
	case Judged:
		return "judged"
	case Held:
		return "held"
	case Late:
		return "late"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("fate(%d)", int(f))
}

// Counters count what a detector did besides judging, since it was made
// (they are part of its checkpointed state).
type Counters struct {
	// Late and Duplicate readings dropped by the reorder stage.
	Late, Duplicate uint64
	// Filled is the samples gaps were filled with (hold, linear or
	// missing); GapResets the gaps too long to fill, which reset the window.
	Filled, GapResets uint64
}

// held is a reading in the reorder buffer.
type held struct {
	ts int64
	v  float64
}

// Detector judges the readings of one stream. Not safe for concurrent use.
type Detector struct {
	cfg    Config
	scorer Scorer
	// The window: a ring of raw values (NaN: missing) and reading times
	// (unix ns), parallel to the scorer's ring.
	raw   []float64
	ts    []int64
	next  int
	count int
	seen  int

	incident   Level
	quiet      int
	quietSince time.Time

	// Last reading processed (for gaps).
	hasLast bool
	lastTS  int64
	lastV   float64
	// Recent spacings (ns), a ring, for the learnt interval.
	spacing  [spacings]int64
	spNext   int
	spCount  int
	spSorted [spacings]int64 // scratch

	// Reorder stage.
	hasNewest    bool
	newest       int64 // newest reading time offered
	lastReleased int64 // time of the last reading released to judging
	hasReleased  bool
	buf          []held // sorted by ts

	// Likelihood stage and novelty channel (nil: off).
	lik *Likelihood
	nov *novelty
	vol *volatility
	sea *seasonal
	// sinceAnomaly counts the readings judged since the last one judged
	// anomalous (-1: none yet), for the novelty channel's hold-off.
	sinceAnomaly int
	// Stuck-value rule (Config.StuckRun): the last reading (when
	// stuckHas), the repeats of it so far and the longest run before this
	// one.
	stuckHas     bool
	stuckLast    float64
	stuckRun     uint64
	stuckLongest uint64
	// Range of the readings so far (Config.RangeMargin, Config.Novelty):
	// rangeN readings, from lo to hi.
	rangeN uint64
	lo, hi float64

	// Online normalisation.
	onN    uint64
	onMean float64
	onVar  float64
	alpha  float64

	counters Counters
}

// New returns a detector for cfg scoring with the z-score scorer.
func New(cfg Config) (*Detector, error) {
	if cfg.Scorer != "" && cfg.Scorer != "zscore" {
		return nil, fmt.Errorf("detect: unknown scorer %q", cfg.Scorer)
	}
	d, err := newDetector(cfg)
	if err != nil {
		return nil, err
	}
	d.scorer = zscoreScorer{zscore.New(d.cfg.Window, d.cfg.Clamp)}
	return d, nil
}

// NewWithScorer returns a detector for cfg scoring with s (cfg.Scorer is
// ignored). The detector owns s from then on.
func NewWithScorer(cfg Config, s Scorer) (*Detector, error) {
	if s == nil {
		return nil, fmt.Errorf("detect: nil scorer")
	}
	d, err := newDetector(cfg)
	if err != nil {
		return nil, err
	}
	d.scorer = s
	return d, nil
}

func newDetector(cfg Config) (*Detector, error) {
	if cfg.Window < 2 {
		return nil, fmt.Errorf("detect: window %d < 2", cfg.Window)
	}
	if cfg.High <= cfg.Low {
		return nil, fmt.Errorf("detect: high %g <= low %g", cfg.High, cfg.Low)
	}
	if cfg.Span < 0 || cfg.Reorder < 0 || cfg.Interval < 0 || cfg.MaxFill < 0 || cfg.GapIntervals < 0 || cfg.HalfLife < 0 || cfg.StdFloor < 0 {
		return nil, fmt.Errorf("detect: negative span, reorder, interval, max fill, gap intervals, half-life or std floor")
	}
	if cfg.GapFill < GapNone || cfg.GapFill > GapMissing {
		return nil, fmt.Errorf("detect: unknown gap fill %d", cfg.GapFill)
	}
	if cfg.Normalize < NormNone || cfg.Normalize > NormManifest {
		return nil, fmt.Errorf("detect: unknown normalisation %d", cfg.Normalize)
	}
	if err := cfg.Likelihood.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Novelty.validate(); err != nil {
		return nil, err
	}
	if cfg.Novelty.Bins > 0 && cfg.Likelihood.Window == 0 {
		return nil, fmt.Errorf("detect: the novelty channel needs the likelihood stage")
	}
	if err := cfg.Volatility.validate(); err != nil {
		return nil, err
	}
	if cfg.Volatility.Average > 0 && cfg.Likelihood.Window == 0 {
		return nil, fmt.Errorf("detect: the volatility channel needs the likelihood stage")
	}
	if err := cfg.Seasonal.validate(); err != nil {
		return nil, err
	}
	if cfg.Seasonal.Average > 0 && cfg.Likelihood.Window == 0 {
		return nil, fmt.Errorf("detect: the seasonal channel needs the likelihood stage")
	}
	if cfg.ScoreHigh < 0 || math.IsNaN(cfg.ScoreHigh) || math.IsInf(cfg.ScoreHigh, 0) {
		return nil, fmt.Errorf("detect: score high %g is negative or not finite", cfg.ScoreHigh)
	}
	if cfg.RangeMargin < 0 || math.IsNaN(cfg.RangeMargin) || cfg.RangeWarmup < 0 {
		return nil, fmt.Errorf("detect: negative range margin %g or range warm-up %d", cfg.RangeMargin, cfg.RangeWarmup)
	}
	if cfg.StuckRun < 0 {
		return nil, fmt.Errorf("detect: negative stuck run %d", cfg.StuckRun)
	}
	if cfg.Normalize == NormManifest && !(cfg.NormScale > 0) {
		return nil, fmt.Errorf("detect: manifest normalisation needs a scale > 0, got %g", cfg.NormScale)
	}
	if cfg.MaxFill == 0 {
		cfg.MaxFill = DefaultMaxFill
	}
	if cfg.GapIntervals == 0 {
		cfg.GapIntervals = DefaultGapIntervals
	}
	if cfg.HalfLife == 0 {
		cfg.HalfLife = cfg.Window
	}
	if cfg.StdFloor == 0 {
		cfg.StdFloor = DefaultStdFloor
	}
	if cfg.RangeWarmup == 0 {
		cfg.RangeWarmup = DefaultRangeWarmup
	}
	d := &Detector{cfg: cfg, raw: make([]float64, cfg.Window), ts: make([]int64, cfg.Window), sinceAnomaly: -1}
	d.alpha = 1 - math.Exp2(-1/float64(cfg.HalfLife))
	if cfg.Likelihood.Window > 0 {
		l, err := NewLikelihood(cfg.Likelihood)
		if err != nil {
			return nil, err
		}
		d.lik = l
		d.cfg.Likelihood = l.Config()
	}
	if cfg.Novelty.Bins > 0 {
		if cfg.Novelty.Length == 0 {
			d.cfg.Novelty.Length = DefaultNoveltyLength
		}
		if cfg.Novelty.High == 0 {
			d.cfg.Novelty.High = cfg.High
		}
		n, err := newNovelty(d.cfg.Novelty, d.cfg.Likelihood)
		if err != nil {
			return nil, err
		}
		d.nov = n
	}
	if cfg.Seasonal.Average > 0 {
		if d.cfg.Seasonal.High == 0 {
			d.cfg.Seasonal.High = cfg.High
		}
		if d.cfg.Seasonal.Period == 0 {
			d.cfg.Seasonal.Period = DefaultSeasonalPeriod
		}
		c, err := newSeasonal(d.cfg.Seasonal, d.cfg.Likelihood)
		if err != nil {
			return nil, err
		}
		d.sea = c
	}
	if cfg.Volatility.Average > 0 {
		if cfg.Volatility.High == 0 {
			d.cfg.Volatility.High = cfg.High
		}
		c, err := newVolatility(d.cfg.Volatility, d.cfg.Likelihood)
		if err != nil {
			return nil, err
		}
		d.vol = c
	}
	return d, nil
}

// Model is the scorer's "name@version".
func (d *Detector) Model() string { return d.scorer.Model() }

// Config returns the detector's configuration, defaults filled.
func (d *Detector) Config() Config { return d.cfg }

// Counters returns what the detector dropped, filled and reset so far.
func (d *Detector) Counters() Counters { return d.counters }

// Pending is the number of readings held in the reorder buffer.
func (d *Detector) Pending() int { return len(d.buf) }

// Len is the number of samples the window holds (missing ones included).
func (d *Detector) Len() int { return d.count }

// maxHeld bounds the reorder buffer: when full, its oldest reading is
// judged early (still in order; a later reading older than it is late).
func (d *Detector) maxHeld() int { return max(d.cfg.Window, 64) }

// Offer passes the reading v taken at ts through the reorder stage (see
// Config.Reorder) and judges the readings it releases, in timestamp order,
// appending their judgements to dst. It returns dst and what became of this
// reading. With Reorder 0 it is Judge.
func (d *Detector) Offer(dst []Judgement, ts time.Time, v float64) ([]Judgement, Fate) {
	if d.cfg.Reorder <= 0 {
		return append(dst, d.Judge(ts, v)), Judged
	}
	t := ts.UnixNano()
	if d.hasNewest && t < d.newest-int64(d.cfg.Reorder) {
		d.counters.Late++
		return dst, Late
	}
	if d.hasReleased && t <= d.lastReleased {
		// Released readings are all at or before the watermark, so only the
		// last can have this time; older ones were caught above.
		if t == d.lastReleased {
			d.counters.Duplicate++
			return dst, Duplicate
		}
		d.counters.Late++
		return dst, Late
	}
	// Insert in order (the buffer is short and mostly in order: from the end).
	i := len(d.buf)
	for i > 0 && d.buf[i-1].ts >= t {
		i--
	}
	if i < len(d.buf) && d.buf[i].ts == t {
		d.counters.Duplicate++
		return dst, Duplicate
	}
	d.buf = append(d.buf, held{})
	copy(d.buf[i+1:], d.buf[i:])
	d.buf[i] = held{t, v}
	if !d.hasNewest || t > d.newest {
		d.newest, d.hasNewest = t, true
	}
	fate := Held
	wm := d.newest - int64(d.cfg.Reorder)
	n := 0
	for n < len(d.buf) && (d.buf[n].ts <= wm || len(d.buf)-n > d.maxHeld()) {
		h := d.buf[n]
		if h.ts == t {
			fate = Judged
		}
		dst = append(dst, d.Judge(time.Unix(0, h.ts).UTC(), h.v))
		d.lastReleased, d.hasReleased = h.ts, true
		n++
	}
	if n > 0 {
		k := copy(d.buf, d.buf[n:])
		d.buf = d.buf[:k]
	}
	return dst, fate
}

// Judge judges the reading v taken at ts at once, in the order given (no
// reordering): it fills the gap before it (Config.GapFill), evicts what
// fell out of a time-span window, scores v against the window, decides,
// then folds v into the window. A NaN v is a missing sample: recorded,
// not scored.
func (d *Detector) Judge(ts time.Time, v float64) Judgement {
	j := Judgement{TS: ts, Value: v}
	t := ts.UnixNano()
	if d.cfg.GapFill != GapNone {
		d.fillGap(&j, t, v)
	}
	if d.cfg.Span > 0 {
		d.evictBefore(t - int64(d.cfg.Span))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.push(t, math.NaN())
		return j
	}
	d.seen++
	stuck := d.stuckStep(v)
	var nov float64
	novOK := false
	if d.nov != nil {
		lo, hi := v, v
		if d.rangeN > 0 {
			lo, hi = math.Min(d.lo, v), math.Max(d.hi, v)
		}
		nov, novOK = d.nov.step(v, lo, hi)
	}
	var vol float64
	volOK := false
	if d.vol != nil {
		vol, volOK = d.vol.step(v)
	}
	var sea float64
	seaOK := false
	if d.sea != nil {
		sea, seaOK = d.sea.step(t, v)
	}
	if d.seen > d.cfg.Warmup {
		j.Raw, j.Warm = d.scorer.Step(v)
		if !j.Warm {
			j.Raw = 0
		}
		j.Score = j.Raw
		if d.lik != nil && j.Warm {
			j.Score, j.Warm = d.lik.Step(j.Raw)
		}
		if !j.Warm {
			j.Score = 0
		}
		if d.cfg.ScoreHigh > 0 {
			j.Score *= d.cfg.High / d.cfg.ScoreHigh
		}
		if d.sinceAnomaly >= 0 && d.sinceAnomaly < math.MaxInt32 {
			d.sinceAnomaly++
		}
		held := d.novelHeld()
		if novOK && j.Warm {
			j.Novelty = nov
			d.lift(&j, nov, d.cfg.Novelty.High, held, FromNovelty)
		}
		if volOK && j.Warm {
			j.Volatility = vol
			d.lift(&j, vol, d.cfg.Volatility.High, held, FromVolatility)
		}
		if seaOK && j.Warm {
			j.Seasonal = sea
			d.lift(&j, sea, d.cfg.Seasonal.High, held, FromSeasonal)
		}
		if d.cfg.RangeMargin > 0 && d.rangeN >= uint64(d.cfg.RangeWarmup) && d.outOfRange(v) {
			j.OutOfRange = true
			if j.Score <= d.cfg.High {
				j.Score, j.Source = d.cfg.High, FromRange
			}
		}
		if stuck {
			j.Stuck = true
			if j.Score <= d.cfg.High {
				j.Score, j.Source = d.cfg.High, FromStuck
			}
		}
		switch {
		case j.Score >= d.cfg.High:
			j.Level = Anomaly
			d.sinceAnomaly = 0
		case j.Score >= d.cfg.Low:
			j.Level = Uncertain
		}
		d.pushRaw(t, v)
	} else {
		d.push(t, v)
	}
	if d.cfg.Normalize == NormOnline {
		d.online(v)
	}
	if d.cfg.RangeMargin > 0 || d.nov != nil {
		d.foldRange(v)
	}

	switch {
	case j.Level > d.incident:
		j.Emit = true
		d.incident = j.Level
		d.quiet, d.quietSince = 0, time.Time{}
	case j.Level == Normal && d.incident != Normal:
		d.quiet++
		if d.quietSince.IsZero() {
			d.quietSince = ts
		}
		over := d.quiet > d.cfg.CooldownReadings
		if d.cfg.CooldownDuration > 0 {
			over = ts.Sub(d.quietSince) >= d.cfg.CooldownDuration
		}
		if over {
			d.incident = Normal
			d.quiet, d.quietSince = 0, time.Time{}
		}
	case j.Level != Normal:
		d.quiet, d.quietSince = 0, time.Time{}
	}
	if j.Emit {
		j.Window = d.window()
	}
	return j
}

// lift raises j's score to a channel's likelihood score ch, scaled so that
// the channel's high counts as the detector's High, and names the channel
// src as its source when it does; during the hold-off (held) the channel
// does not count.
func (d *Detector) lift(j *Judgement, ch, high float64, held bool, src Source) {
	if held {
		return
	}
	if s := ch * d.cfg.High / high; s > j.Score {
		j.Score, j.Source = s, src
	}
}

// stuckStep folds v into the stuck-value rule's runs and reports whether it
// breaks the record: the current run of equal readings reaches StuckRun
// repeats and is longer than every run before it (once per run).
func (d *Detector) stuckStep(v float64) bool {
	if d.cfg.StuckRun <= 0 {
		return false
	}
	if d.stuckHas && v == d.stuckLast {
		d.stuckRun++
	} else {
		d.stuckLongest = max(d.stuckLongest, d.stuckRun)
		d.stuckRun = 0
	}
	d.stuckHas, d.stuckLast = true, v
	// The run grows by one repeat at a time and the record stays put
	// during it, so the run meets both conditions first (and only) when
	// it is exactly this long.
	return d.stuckRun == max(uint64(d.cfg.StuckRun), d.stuckLongest+1)
}

// novelHeld reports whether the novelty channel is in its hold-off
// (NoveltyConfig.Holdoff readings after an anomalous reading).
func (d *Detector) novelHeld() bool {
	return d.sinceAnomaly >= 0 && d.sinceAnomaly <= d.cfg.Novelty.Holdoff
}

// push adds a sample to the window and folds it into the scorer.
func (d *Detector) push(t int64, v float64) {
	d.scorer.Fold(v)
	d.pushRaw(t, v)
}

// pushRaw adds a sample to the window (the scorer has it already).
func (d *Detector) pushRaw(t int64, v float64) {
	d.raw[d.next] = v
	d.ts[d.next] = t
	d.next = (d.next + 1) % len(d.raw)
	if d.count < len(d.raw) {
		d.count++
	}
	d.lastTS, d.lastV, d.hasLast = t, v, true
}

// evictBefore drops the window's samples taken at or before t.
func (d *Detector) evictBefore(t int64) {
	for d.count > 0 {
		oldest := d.next - d.count
		if oldest < 0 {
			oldest += len(d.raw)
		}
		if d.ts[oldest] > t {
			return
		}
		d.count--
		d.scorer.Evict()
	}
}

// interval is the expected sample interval in ns, configured or learnt (0:
// not known yet).
func (d *Detector) interval() int64 {
	if d.cfg.Interval > 0 {
		return int64(d.cfg.Interval)
	}
	if d.spCount < minSpacings {
		return 0
	}
	s := d.spSorted[:d.spCount]
	copy(s, d.spacing[:d.spCount])
	for i := 1; i < len(s); i++ { // insertion sort: 16 values, no allocation
		for k := i; k > 0 && s[k] < s[k-1]; k-- {
			s[k], s[k-1] = s[k-1], s[k]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fillGap fills the gap between the last sample and a reading at t.
func (d *Detector) fillGap(j *Judgement, t int64, v float64) {
	if !d.hasLast {
		return
	}
	gap := t - d.lastTS
	if gap <= 0 {
		return
	}
	iv := d.interval()
	if d.cfg.Interval == 0 {
		d.spacing[d.spNext] = gap
		d.spNext = (d.spNext + 1) % spacings
		if d.spCount < spacings {
			d.spCount++
		}
	}
	if iv <= 0 || float64(gap) <= d.cfg.GapIntervals*float64(iv) {
		return
	}
	n := int(math.Round(float64(gap)/float64(iv))) - 1
	if n <= 0 {
		return
	}
	if n > d.cfg.MaxFill {
		d.resetWindow()
		d.counters.GapResets++
		j.Reset = true
		return
	}
	last, from := d.lastV, d.lastTS
	for i := 1; i <= n; i++ {
		f := float64(i) / float64(n+1)
		x := last
		switch d.cfg.GapFill {
		case GapLinear:
			x = last + (v-last)*f
			if math.IsNaN(last) || math.IsNaN(v) {
				x = math.NaN()
			}
		case GapMissing:
			x = math.NaN()
		}
		d.push(from+int64(float64(gap)*f), x)
	}
	d.counters.Filled += uint64(n)
	j.Filled = n
}

// resetWindow empties the window, the scorer and the warm-up, and ends the
// incident: after a gap too long to fill, the stream starts afresh.
func (d *Detector) resetWindow() {
	d.count, d.next, d.seen = 0, 0, 0
	d.scorer.Reset()
	if d.nov != nil {
		d.nov.resetContext()
	}
	if d.vol != nil {
		d.vol.reset()
	}
	if d.sea != nil {
		d.sea.reset()
	}
	d.ResetIncident()
	d.hasLast = false
}

// outOfRange reports whether v lies outside the range of the readings so
// far widened by RangeMargin times its width on each side.
func (d *Detector) outOfRange(v float64) bool {
	if d.rangeN == 0 {
		return false
	}
	m := d.cfg.RangeMargin * (d.hi - d.lo)
	return v > d.hi+m || v < d.lo-m
}

// foldRange widens the range to v.
func (d *Detector) foldRange(v float64) {
	if d.rangeN == 0 {
		d.lo, d.hi = v, v
	} else {
		d.lo, d.hi = math.Min(d.lo, v), math.Max(d.hi, v)
	}
	d.rangeN++
}

// online folds v into the running mean and variance.
func (d *Detector) online(v float64) {
	if d.onN == 0 {
		d.onMean, d.onVar = v, 0
	} else {
		diff := v - d.onMean
		incr := d.alpha * diff
		d.onMean += incr
		d.onVar = (1 - d.alpha) * (d.onVar + diff*incr)
	}
	d.onN++
}

// Features fills dst with the newest min(len(dst), Len()) samples of the
// window, oldest first, normalised per Config.Normalize, and returns how
// many it wrote. A missing sample is written as the normalisation's centre
// (0, or the window mean with NormNone). It does not allocate.
func (d *Detector) Features(dst []float32) int {
	n := min(len(dst), d.count)
	if n == 0 {
		return 0
	}
	var mean, scale float64
	switch d.cfg.Normalize {
	case NormNone:
		mean, _ = d.windowStats()
		scale = 1
	case NormWindow:
		var std float64
		mean, std = d.windowStats()
		scale = math.Max(std, d.cfg.StdFloor*math.Max(1, math.Abs(mean)))
	case NormOnline:
		mean = d.onMean
		scale = math.Max(math.Sqrt(d.onVar), d.cfg.StdFloor*math.Max(1, math.Abs(mean)))
	case NormManifest:
		mean, scale = d.cfg.NormMean, d.cfg.NormScale
	}
	i := d.next - n
	if i < 0 {
		i += len(d.raw)
	}
	for k := 0; k < n; k++ {
		x := d.raw[i]
		switch {
		case x != x: // missing
			dst[k] = 0
			if d.cfg.Normalize == NormNone {
				dst[k] = float32(mean)
			}
		case d.cfg.Normalize == NormNone:
			dst[k] = float32(x)
		default:
			dst[k] = float32((x - mean) / scale)
		}
		if i++; i == len(d.raw) {
			i = 0
		}
	}
	return n
}

// windowStats is the mean and population deviation of the window's raw
// readings (missing ones left out).
func (d *Detector) windowStats() (mean, std float64) {
	var sum float64
	n := 0
	i := d.next - d.count
	if i < 0 {
		i += len(d.raw)
	}
	for k := 0; k < d.count; k++ {
		if x := d.raw[(i+k)%len(d.raw)]; x == x {
			sum += x
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	mean = sum / float64(n)
	var ss float64
	for k := 0; k < d.count; k++ {
		if x := d.raw[(i+k)%len(d.raw)]; x == x {
			ss += (x - mean) * (x - mean)
		}
	}
	return mean, math.Sqrt(ss / float64(n))
}

// AppendWindow appends the raw values of the window, oldest first (missing
// samples are NaN), to dst and returns it.
func (d *Detector) AppendWindow(dst []float64) []float64 {
	start := (d.next - d.count + len(d.raw)) % len(d.raw)
	for i := 0; i < d.count; i++ {
		dst = append(dst, d.raw[(start+i)%len(d.raw)])
	}
	return dst
}

func (d *Detector) window() []float64 {
	out := make([]float64, 0, d.count)
	start := (d.next - d.count + len(d.raw)) % len(d.raw)
	for i := 0; i < d.count; i++ {
		out = append(out, d.raw[(start+i)%len(d.raw)])
	}
	return out
}
