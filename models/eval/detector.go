// Package eval replays a corpus in NAB's layout through the edge's decision
// rule and the cloud's second stage, as a stream, and scores what they detect
// with models/nab: NAB scores, precision, recall and F1 over label windows,
// and bytes uplinked against raw reading bytes, for three modes:
//
//   - edge: the edge detector alone; its detections are the readings at which
//     it raises an anomaly event; it uplinks those events (with their window,
//     as the agent does);
//   - cloud: the cloud's robust detector alone, run on every reading, as if
//     the edge forwarded all of them (uplink = raw bytes, ratio 1);
//   - hybrid: the edge decides normal / uncertain / anomaly; every event it
//     raises (anomaly or uncertain, each with its window) is uplinked and
//     re-scored by the cloud's confirmer on that window alone; which events
//     become detections is the HybridRule (by default: edge anomalies stand,
//     uncertain events count when the cloud confirms them).
//
// Detectors see each series once, in file order, with no labels and no
// look-ahead; one Config serves the whole corpus.
//
// The edge detector here (ZScore) is the agent's own decision code,
// models/detect, which the edge agent imports too: the evaluation measures
// what runs on the gateway.
package eval

import (
	"time"

	"github.com/outpost-iot/outpost/models/detect"
)

// Level is the judgement of one reading: the edge's own levels.
type Level = detect.Level

// Levels, in increasing order of concern.
const (
	Normal    = detect.Normal
	Uncertain = detect.Uncertain
	Anomaly   = detect.Anomaly
)

// Judgement is a detector's verdict on one reading.
type Judgement struct {
	// Level is the reading's level by its score alone.
	Level Level
	// Score is the detector's score (0 while warming up).
	Score float64
	// Emit says this reading starts (or escalates) an incident: the edge
	// forwards it as an event of kind Level.
	Emit bool
	// Window holds the raw values the reading was judged with, oldest first,
	// ending with the reading (of the column that scored highest); set only
	// when Emit.
	Window []float64
	// Source is the stage of the emitting column's detector that gave its
	// score (detect.FromScorer for detectors without stages); set only
	// when Emit.
	Source detect.Source
}

// Detector judges the readings of one series, in order. A new Detector is
// made for every series. Not safe for concurrent use.
type Detector interface {
	// Judge scores the reading taken at ts with the given values (one per
	// value column), decides, and folds it into the detector's state.
	Judge(ts time.Time, values []float64) Judgement
	// Model names the detector as "name@version".
	Model() string
}

// Confirmer is the cloud's second stage: it re-scores a forwarded window
// (oldest first, ending with the reading in question) and confirms or
// rejects it.
type Confirmer interface {
	Confirm(window []float64) (score float64, confirmed bool)
}

// incident is the incident and cool-down logic of the edge's decision: a
// reading emits when its level is above the level of the incident in
// progress; an incident is over after more than cooldown consecutive normal
// readings.
type incident struct {
	cooldown int
	level    Level
	quiet    int
}

// step records a reading of level l and reports whether it emits.
func (in *incident) step(l Level) bool {
	switch {
	case l > in.level:
		in.level = l
		in.quiet = 0
		return true
	case l == Normal && in.level != Normal:
		in.quiet++
		if in.quiet > in.cooldown {
			in.level = Normal
			in.quiet = 0
		}
	case l != Normal:
		in.quiet = 0
	}
	return false
}
