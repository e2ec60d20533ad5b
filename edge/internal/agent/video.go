package agent

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
	"github.com/outpost-iot/outpost/shared/profile"
)

// Vector models (manifest features > 1, e.g. the stock ae-video) read one
// vector of features per time step: a camera's per-bucket video features,
// which the video decoder emits as one reading per feature on
// <prefix>/<feature>. A stream rule with scorer model whose model is a
// vector model is a video rule:
//
//   - the rule's readings of the model's features do not get a detector
//     each: an Assembler (one per rule) groups each camera's (prefix's)
//     readings of a bucket into one vector, in the model's feature order
//     (a feature the decoder omitted is missing), and the camera's
//     VectorScorer scores it. The rule's other readings (the decoder's
//     "frames") are not the model's: they are counted in the summaries and
//     not judged (give them a rule of their own, before the video rule, to
//     judge them);
//   - each score is the reading of a stream of its own, <prefix>/<model
//     name> (cameras/cam-1/ae-video), judged by an ordinary detector whose
//     scorer passes the score through (modelscore.Passthrough) against the
//     manifest's thresholds (or the rule's), with the rule's window and
//     cool-down. Its events name that stream and the model; Value is the
//     score of the bucket, Window the scores of the last buckets (one per
//     bucket, oldest first, ending with Value): the model's judgement over
//     time; Features the raw feature vectors the model read for the
//     model's window of buckets ending with the event's (manifest feature
//     order, flattened; missing ones in FeaturesMissing), so the cloud can
//     re-score the bucket (the vectors are checkpointed with the camera's
//     VectorScorer; a checkpoint from before they were kept restores
//     none, so the first events have fewer rows). The detector's
//     Config().Scorer is "vector", so the sampler does not take these
//     windows for the cloud's learning loop;
//   - the camera's VectorScorer (its last Window normalised vectors, its
//     baseline and residual scale) lives inside that detector's scorer
//     (vectorScore), so it is checkpointed, restored and counted dirty with
//     the detector, through the same checkpoint code as every stream;
//   - a message's vectors are complete once its readings are in
//     (Assembler.Flush after each message): a bucket is scored at once;
//   - a message whose buckets only warmed a camera's scorer up (no score
//     yet) is acknowledged once a checkpoint holding it is committed, as
//     for the warm-up of other streams (checkpoint.go).
//
// Hot swap (control.go, setModel): a video rule takes only a vector model
// with the same feature names, and a rule of single-value streams only a
// single-value model; anything else is refused, naming the rule. A swap
// starts every camera of the rule with a fresh VectorScorer on the new
// model (the old model's state does not carry over); the score detector
// keeps its window and incident.

// newRunner loads a model's runner: a vector runner for a vector model
// (features > 1), else a single-value one.
func newRunner(m *manifest.Manifest, model *tflite.Model) (*modelscore.Runner, error) {
	if m.Features > 1 {
		return modelscore.NewVectorRunner(m, model)
	}
	return modelscore.NewRunner(m, model)
}

// vectorScorerName is detect.Config.Scorer of the detectors of vector
// scores.
const vectorScorerName = "vector"

// camCell holds a camera's VectorScorer. The detector of the camera's
// scores owns the cell through its scorer (vectorScore); the agent finds
// it by the detector (videoState.cells).
type camCell struct {
	vs *modelscore.VectorScorer
	// raw are the raw vectors of the camera's last buckets (up to the
	// model's window), oldest first, flattened, and ts their times: an
	// event's Features. Checkpointed with the VectorScorer.
	raw []float64
	ts  []time.Time
}

// keep remembers the raw vector v of the bucket at ts, for the model's
// window of w buckets.
func (c *camCell) keep(ts time.Time, v []float64, w int) {
	f := len(v)
	if w < 1 {
		w = 1
	}
	if len(c.ts) > 0 && len(c.raw)/len(c.ts) != f { // another model's features
		c.raw, c.ts = c.raw[:0], c.ts[:0]
	}
	if len(c.ts) >= w {
		n := len(c.ts) - w + 1
		c.raw = append(c.raw[:0], c.raw[n*f:]...)
		c.ts = append(c.ts[:0], c.ts[n:]...)
	}
	c.raw = append(c.raw, v...)
	c.ts = append(c.ts, ts)
}

// features returns the kept vectors of the buckets up to ts (the event's
// Features) and the indices of its missing values, as new slices.
func (c *camCell) features(ts time.Time) ([]float64, []int) {
	n := len(c.ts)
	for n > 0 && c.ts[n-1].After(ts) {
		n--
	}
	if n == 0 {
		return nil, nil
	}
	f := len(c.raw) / len(c.ts)
	out := append([]float64(nil), c.raw[:n*f]...)
	var missing []int
	for i, x := range out {
		if x != x || math.IsInf(x, 0) {
			out[i] = 0
			missing = append(missing, i)
		}
	}
	return out, missing
}

// eventFeatures are the Features of an event of detector d at ts: nil
// unless d judges a camera's scores.
func (a *Agent) eventFeatures(d *detect.Detector, ts time.Time) ([]float64, []int) {
	c := a.cellOf(d)
	if c == nil {
		return nil, nil
	}
	return c.features(ts)
}

// vectorScore is the scorer of a camera's score stream: it passes the
// score through, and carries the camera's VectorScorer state in the
// detector's checkpoint.
type vectorScore struct {
	*modelscore.Passthrough
	cell *camCell
}

var _ detect.Scorer = (*vectorScore)(nil)

// cellStateMarker starts a camera cell's state: its kept raw vectors, then
// the VectorScorer's state. A state without it (a checkpoint of an agent
// before the raw vectors were kept) starts with the VectorScorer's version
// byte, which is never the marker.
const cellStateMarker = 0xfe

// Bounds of a camera cell's kept vectors in a checkpoint.
const (
	maxCellRows     = 4096
	maxCellFeatures = 4096
)

// AppendState implements detect.Scorer: the camera's kept raw vectors and
// its VectorScorer state.
func (w *vectorScore) AppendState(b []byte) ([]byte, error) {
	c := w.cell
	b = append(b, cellStateMarker)
	f := 0
	if len(c.ts) > 0 {
		f = len(c.raw) / len(c.ts)
	}
	b = binary.AppendUvarint(b, uint64(len(c.ts)))
	b = binary.AppendUvarint(b, uint64(f))
	for i, ts := range c.ts {
		b = binary.AppendVarint(b, ts.UnixNano())
		for _, x := range c.raw[i*f : (i+1)*f] {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	}
	return c.vs.AppendState(b), nil
}

// RestoreState implements detect.Scorer. The restored VectorScorer and
// vectors go into the receiver's cell: the receiver is the fresh scorer of
// a detector being restored (restoreDetector), which is the only user of
// its cell.
func (w *vectorScore) RestoreState(b []byte, _ int) (detect.Scorer, []byte, error) {
	var raw []float64
	var ts []time.Time
	if len(b) > 0 && b[0] == cellStateMarker {
		b = b[1:]
		rows, n := binary.Uvarint(b)
		if n <= 0 || rows > maxCellRows {
			return nil, nil, fmt.Errorf("camera state: bad row count")
		}
		b = b[n:]
		f, n := binary.Uvarint(b)
		if n <= 0 || f > maxCellFeatures || (rows > 0 && f == 0) {
			return nil, nil, fmt.Errorf("camera state: bad feature count")
		}
		b = b[n:]
		for range rows {
			t, n := binary.Varint(b)
			if n <= 0 || uint64(len(b)-n) < 8*f {
				return nil, nil, fmt.Errorf("camera state: truncated")
			}
			b = b[n:]
			ts = append(ts, time.Unix(0, t).UTC())
			for range f {
				raw = append(raw, math.Float64frombits(binary.LittleEndian.Uint64(b)))
				b = b[8:]
			}
		}
	}
	vs, rest, err := w.cell.vs.RestoreState(b)
	if err != nil {
		return nil, nil, err
	}
	w.cell.vs, w.cell.raw, w.cell.ts = vs, raw, ts
	return &vectorScore{Passthrough: modelscore.NewPassthrough(vs.Model()), cell: w.cell}, rest, nil
}

// newVectorDetector is the detector of a camera's scores on vector model
// r, with cfg (thresholds set): no warm-up of its own (the VectorScorer
// warms up before it scores).
func (a *Agent) newVectorDetector(cfg detect.Config, r *modelscore.Runner) (*detect.Detector, error) {
	cfg.Scorer, cfg.Warmup = vectorScorerName, 0
	cell := &camCell{vs: modelscore.NewVector(r)}
	d, err := detect.NewWithScorer(cfg, &vectorScore{Passthrough: modelscore.NewPassthrough(r.Model()), cell: cell})
	if err != nil {
		return nil, err
	}
	if a.vid.cells == nil {
		a.vid.cells = map[*detect.Detector]*camCell{}
	}
	a.vid.cells[d] = cell
	return d, nil
}

// cellOf is the camera cell of a detector made by newVectorDetector, nil
// for another.
func (a *Agent) cellOf(d *detect.Detector) *camCell { return a.vid.cells[d] }

// videoRule is a stream rule scored by a vector model.
type videoRule struct {
	s profile.Stream
	// name is the installed model's name: a camera's scores are the
	// stream <prefix>/<name>, the same across model swaps.
	name string
	asm  *modelscore.Assembler
	emit func(prefix string, ts time.Time, v []float64)
}

// videoState is the agent's state for video rules. It is used by handle,
// by swaps and by the checkpoint's restore, which cpMu (or running before
// ingest starts) keeps apart.
type videoState struct {
	// cells are the camera cells of the detectors of camera scores.
	cells  map[*detect.Detector]*camCell
	init   bool
	rules  []*videoRule
	route  map[string]*videoRule // stream -> its video rule, nil for none
	out    []decode.Reading      // scratch: the readings to judge
	warm   bool                  // a camera scorer warmed up in this message
	warned map[string]bool       // streams of video rules not judged, logged once
	dirty  []string              // checkpoint's scratch: cameras changed (checkpoint.go)
}

// videoInit finds the profile's video rules.
func (a *Agent) videoInit() {
	v := &a.vid
	v.init = true
	v.route = map[string]*videoRule{}
	for _, s := range a.p.Streams {
		s = s.Defaults()
		if s.Scorer != profile.ScorerModel {
			continue
		}
		r := a.runners[s.Model]
		if r == nil || !r.IsVector() {
			continue
		}
		vr := &videoRule{s: s, name: r.Manifest().Name, asm: modelscore.NewAssembler(r.Manifest())}
		vr.emit = func(prefix string, ts time.Time, vec []float64) { a.stepCamera(vr, prefix, ts, vec) }
		v.rules = append(v.rules, vr)
		if missing := a.videoMissing(r.Manifest().FeatureNames); len(missing) > 0 {
			a.log.Warn("no video topic of the profile gives features the video model reads: they are always missing",
				"rule", s.Match, "model", r.Model(), "missing", missing)
		}
	}
}

// videoMissing are the features of names that no video topic of the
// profile emits (count_<class> for its classes, count_other,
// confidence_mean, area_mean, motion_mean).
func (a *Agent) videoMissing(names []string) []string {
	have := map[string]bool{"count_other": true, "confidence_mean": true, "area_mean": true, "motion_mean": true}
	video := false
	for _, t := range a.p.MQTT.Topics {
		if t.Decoder != "video" {
			continue
		}
		video = true
		classes := decode.DefaultVideoClasses
		if t.Video != nil && len(t.Video.Classes) > 0 {
			classes = t.Video.Classes
		}
		for _, c := range classes {
			have["count_"+c] = true
		}
	}
	var missing []string
	for _, n := range names {
		if !video || !have[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

// videoRuleOf is the video rule of stream, nil when its rule is not one.
func (a *Agent) videoRuleOf(stream string) *videoRule {
	v := &a.vid
	if vr, ok := v.route[stream]; ok {
		return vr
	}
	var vr *videoRule
	s := a.p.StreamFor(stream)
	for _, r := range v.rules {
		if r.s.Match == s.Match {
			vr = r
			break
		}
	}
	if len(v.route) >= maxDecoderCache {
		v.route = map[string]*videoRule{} // bounded: stream names are the publishers' to choose
	}
	v.route[stream] = vr
	return vr
}

// vectorReadings takes a message's readings of video rules out of rs: their
// features go to the rules' assemblers and the cameras' scorers. It
// returns the readings handle judges (the others, then the cameras'
// scores), and whether a camera scorer warmed up on the message. Called by
// handle with a.mu held.
func (a *Agent) vectorReadings(rs []decode.Reading) ([]decode.Reading, bool) {
	v := &a.vid
	if !v.init {
		a.videoInit()
	}
	if len(v.rules) == 0 {
		return rs, false
	}
	v.out, v.warm = v.out[:0], false
	for _, r := range rs {
		vr := a.videoRuleOf(r.Stream)
		if vr == nil {
			v.out = append(v.out, r)
			continue
		}
		a.countUnjudged(r)
		if !vr.asm.Add(r.Stream, r.TS, r.Value, vr.emit) && !v.warned[r.Stream] && len(v.warned) < 1000 {
			if v.warned == nil {
				v.warned = map[string]bool{}
			}
			v.warned[r.Stream] = true
			a.log.Warn("stream matches a video rule but is not a feature of its model: counted, not judged",
				"stream", r.Stream, "rule", vr.s.Match, "model", vr.name)
		}
	}
	for _, vr := range v.rules {
		vr.asm.Flush(vr.emit)
	}
	return v.out, v.warm
}

// stepCamera scores a camera's vector and queues the score for judging.
func (a *Agent) stepCamera(vr *videoRule, prefix string, ts time.Time, vec []float64) {
	stream := prefix + "/" + vr.name
	d := a.detectors[stream]
	cell := a.cellOf(d)
	if cell == nil {
		// New camera, or a checkpoint restored it under another rule.
		nd, err := a.newDetector(stream, vr.s)
		if err != nil {
			a.setErr(err)
			return
		}
		if cell = a.cellOf(nd); cell == nil {
			return // the rule's model is no longer a vector model
		}
		a.detectors[stream] = nd
	}
	a.cpDirty[stream] = struct{}{}
	cell.keep(ts, vec, cell.vs.Runner().Manifest().Window)
	score, ok := cell.vs.StepVector(vec)
	if !ok {
		a.vid.warm = true
		return
	}
	a.vid.out = append(a.vid.out, decode.Reading{Stream: stream, TS: ts, Value: score})
}

// countUnjudged counts a reading of a video rule in the summary of its
// stream (a.mu held).
func (a *Agent) countUnjudged(r decode.Reading) {
	if r.Value != r.Value {
		return
	}
	s := a.stats(r.Stream)
	if s.Count == 0 || r.Value < s.Min {
		s.Min = r.Value
	}
	if s.Count == 0 || r.Value > s.Max {
		s.Max = r.Value
	}
	s.Count++
	s.sum += r.Value
}

// checkSwap refuses to swap r (nil: the installed models) in for the
// streams of key when a rule would change kind: a video rule takes only a
// vector model with its installed model's features, in order; a rule of
// single-value streams only a single-value model.
func (a *Agent) checkSwap(key string, r *modelscore.Runner) error {
	if r == nil {
		return nil
	}
	for _, s := range a.modelStreams(key) {
		inst := a.runnerFor("", s) // of the installed model's kind and features, as swaps keep them
		if inst == nil {
			continue
		}
		im, rm := inst.Manifest(), r.Manifest()
		switch {
		case inst.IsVector() && !r.IsVector():
			return fmt.Errorf("stream rule %s runs the video model %s (%d features per bucket); %s reads one value per reading: a video rule takes only a video model with the same features",
				s.Match, inst.Model(), im.Features, r.Model())
		case !inst.IsVector() && r.IsVector():
			return fmt.Errorf("stream rule %s runs %s (one value per reading); %s reads %d features per bucket: a video model runs only on a video rule",
				s.Match, inst.Model(), r.Model(), rm.Features)
		case inst.IsVector() && !slices.Equal(im.FeatureNames, rm.FeatureNames):
			return fmt.Errorf("stream rule %s runs the video model %s with features %v; %s reads %v: a swap must keep the features",
				s.Match, inst.Model(), im.FeatureNames, r.Model(), rm.FeatureNames)
		}
	}
	return nil
}

// swapScorer makes detector d of a stream configured by s run the model
// of r, with thresholds low and high. A camera's score detector gets a
// fresh VectorScorer on r (the old model's state does not carry over).
func (a *Agent) swapScorer(d *detect.Detector, s profile.Stream, r *modelscore.Runner, low, high float64) error {
	if !r.IsVector() {
		if a.cellOf(d) != nil {
			return fmt.Errorf("a video stream cannot run %s, which reads one value per reading", r.Model())
		}
		return d.SwapScorer(modelScorer(s, r), low, high)
	}
	cell := a.cellOf(d)
	if cell == nil {
		return fmt.Errorf("%s reads %d features per bucket: it runs only on the score streams of a video rule", r.Model(), r.Manifest().Features)
	}
	if err := d.SwapScorer(&vectorScore{Passthrough: modelscore.NewPassthrough(r.Model()), cell: cell}, low, high); err != nil {
		return err
	}
	cell.vs = modelscore.NewVector(r)
	return nil
}
