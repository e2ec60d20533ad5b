package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/nab"
)

// HybridRule says which forwarded events become detections in hybrid mode.
type HybridRule string

// Hybrid rules.
const (
	// AnomalyOrConfirmed: the edge's anomaly events are detections as they
	// are; its uncertain events are detections when the cloud confirms them.
	AnomalyOrConfirmed HybridRule = "anomaly-or-confirmed"
	// ConfirmedOnly: every forwarded event (anomaly or uncertain) is a
	// detection only when the cloud confirms it.
	ConfirmedOnly HybridRule = "confirmed-only"
)

// Config is one configuration for the whole corpus. Its zero value is the
// default.
type Config struct {
	// Edge configures the edge detector.
	Edge ZScoreConfig `json:"edge"`
	// Cloud configures the cloud's detector and second stage.
	Cloud RobustConfig `json:"cloud"`
	// Hybrid is the hybrid rule. Default AnomalyOrConfirmed.
	Hybrid HybridRule `json:"hybrid_rule"`
	// Detectors, when set, replaces the default detectors (see
	// StockDetectors); Edge and Cloud then configure only those it keeps.
	Detectors *Detectors `json:"detectors,omitempty"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Edge = c.Edge.WithDefaults()
	c.Cloud = c.Cloud.WithDefaults()
	if c.Hybrid == "" {
		c.Hybrid = AnomalyOrConfirmed
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c Config) Validate() error {
	if err := c.Edge.Validate(); err != nil {
		return err
	}
	if err := c.Cloud.Validate(); err != nil {
		return err
	}
	if c.Hybrid != AnomalyOrConfirmed && c.Hybrid != ConfirmedOnly {
		return fmt.Errorf("hybrid_rule: %q is neither %q nor %q", c.Hybrid, AnomalyOrConfirmed, ConfirmedOnly)
	}
	return nil
}

// Modes, in report order.
var Modes = []string{"edge", "cloud", "hybrid"}

// Replay is what the three modes detected in one series.
type Replay struct {
	// Series is the replayed series.
	Series *nab.Series
	// Detections maps a mode to the rows it detected, increasing.
	Detections map[string][]int
	// Sources maps a mode to the source of each of its detections (the
	// stage of the detector that raised it), parallel to Detections.
	Sources map[string][]detect.Source
	// RawBytes is the bytes of every reading as the JSON payload the edge
	// receives; Uplink maps a mode to the bytes it sent to the cloud.
	RawBytes int64
	Uplink   map[string]int64
	// Events maps a mode to the number of events it uplinked.
	Events map[string]int
	// Forwarded counts the hybrid mode's events by edge kind, and Confirmed
	// those the cloud confirmed.
	Forwarded, Confirmed map[Level]int
}

// ReplaySeries streams s, once, in file order, through a new edge detector
// and a new cloud detector built from cfg (defaults filled, valid).
func ReplaySeries(s *nab.Series, cfg Config) (*Replay, error) {
	cols := len(s.Columns)
	edge, cloud, second, err := cfg.detectors(cols)
	if err != nil {
		return nil, err
	}
	low, high := cfg.Edge.Low, cfg.Edge.High
	if d := cfg.Detectors; d != nil && d.Edge != nil {
		low, high = d.EdgeLow, d.EdgeHigh
	}
	rp := &Replay{
		Series:     s,
		Detections: map[string][]int{},
		Sources:    map[string][]detect.Source{},
		Uplink:     map[string]int64{},
		Events:     map[string]int{},
		Forwarded:  map[Level]int{},
		Confirmed:  map[Level]int{},
	}
	stream := strings.TrimSuffix(s.Key, ".csv")
	var seq uint64
	for i, ts := range s.Times {
		vals := s.Values[i]
		raw, err := rawPayloadBytes(ts, s.Columns, vals)
		if err != nil {
			return nil, fmt.Errorf("eval: %s row %d: %w", s.Key, i, err)
		}
		rp.RawBytes += int64(raw)

		if j := edge.Judge(ts, vals); j.Emit {
			seq++
			kind := "anomaly"
			if j.Level == Uncertain {
				kind = "uncertain"
			}
			// The window ends with the reading's value in the column that scored.
			ev := event{Agent: "eval", Seq: seq, Stream: stream, TS: ts, Kind: kind, Score: finite(j.Score),
				Low: low, High: high, Value: j.Window[len(j.Window)-1], Model: edge.Model(), Window: j.Window, Created: ts}
			b, err := json.Marshal(ev)
			if err != nil {
				return nil, fmt.Errorf("eval: %s row %d: encoding event: %w", s.Key, i, err)
			}
			if j.Level == Anomaly {
				rp.detect("edge", i, j.Source)
				rp.Uplink["edge"] += int64(len(b))
				rp.Events["edge"]++
			}
			rp.Uplink["hybrid"] += int64(len(b))
			rp.Events["hybrid"]++
			rp.Forwarded[j.Level]++
			_, ok := second.Confirm(j.Window)
			if ok {
				rp.Confirmed[j.Level]++
			}
			if ok || (j.Level == Anomaly && cfg.Hybrid == AnomalyOrConfirmed) {
				rp.detect("hybrid", i, j.Source)
			}
		}
		if j := cloud.Judge(ts, vals); j.Emit && j.Level == Anomaly {
			rp.detect("cloud", i, j.Source)
		}
	}
	for _, d := range []Detector{edge, cloud} {
		if e, ok := d.(interface{ Err() error }); ok && e.Err() != nil {
			return nil, fmt.Errorf("eval: %s: %s: %w", s.Key, d.Model(), e.Err())
		}
	}
	// Cloud-only: every reading's payload is uplinked as it came.
	rp.Uplink["cloud"] = rp.RawBytes
	rp.Events["cloud"] = len(s.Times)
	return rp, nil
}

// detect records a detection of mode at row i, raised by src.
func (rp *Replay) detect(mode string, i int, src detect.Source) {
	rp.Detections[mode] = append(rp.Detections[mode], i)
	rp.Sources[mode] = append(rp.Sources[mode], src)
}

// detectors makes the edge detector, the cloud's streaming detector and its
// second stage for a series with cols value columns.
func (c Config) detectors(cols int) (edge, cloud Detector, second Confirmer, err error) {
	d := c.Detectors
	if d == nil {
		d = &Detectors{}
	}
	if d.Edge != nil {
		edge, err = d.Edge(cols)
	} else {
		edge, err = NewZScore(c.Edge, cols)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if d.Cloud != nil {
		cloud, err = d.Cloud(cols)
	} else {
		cloud, err = NewRobust(c.Cloud, cols)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if d.Confirmer != nil {
		second, err = d.Confirmer()
	} else {
		second, err = NewRobust(c.Cloud, cols)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return edge, cloud, second, nil
}

// event has the fields and JSON names of shared/wire.Event (models may not
// import shared), so its encoding has the size of the event the agent
// uplinks.
type event struct {
	Agent   string    `json:"agent"`
	Seq     uint64    `json:"seq"`
	Stream  string    `json:"stream"`
	TS      time.Time `json:"ts"`
	Kind    string    `json:"kind"`
	Score   float64   `json:"score"`
	Low     float64   `json:"low"`
	High    float64   `json:"high"`
	Value   float64   `json:"value"`
	Model   string    `json:"model"`
	Window  []float64 `json:"window,omitempty"`
	Created time.Time `json:"created"`
}

// finite is the agent's mapping of an infinite score into JSON.
func finite(f float64) float64 {
	if math.IsInf(f, 1) || math.IsNaN(f) {
		return math.MaxFloat64
	}
	return f
}

// rawPayloadBytes is the size of a reading as the JSON payload the edge
// receives over MQTT: {"ts":"<RFC 3339>","value":<n>}, or with several value
// columns {"ts":...,"values":{"<column>":<n>,...}} (the sensor simulator's
// formats).
func rawPayloadBytes(ts time.Time, cols []string, vals []float64) (int, error) {
	var b []byte
	var err error
	if len(vals) == 1 {
		b, err = json.Marshal(struct {
			TS    time.Time `json:"ts"`
			Value float64   `json:"value"`
		}{ts, vals[0]})
	} else {
		m := make(map[string]float64, len(vals))
		for i, c := range cols {
			m[c] = vals[i]
		}
		b, err = json.Marshal(struct {
			TS     time.Time          `json:"ts"`
			Values map[string]float64 `json:"values"`
		}{ts, m})
	}
	return len(b), err
}

// Run replays every series of c and scores the three modes. cfg's defaults
// are filled. It stops between series when ctx is done.
func Run(ctx context.Context, c *nab.Corpus, cfg Config) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var replays []*Replay
	for _, s := range c.Series {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rp, err := ReplaySeries(s, cfg)
		if err != nil {
			return nil, err
		}
		replays = append(replays, rp)
	}
	return NewReport(c, cfg, replays), nil
}
