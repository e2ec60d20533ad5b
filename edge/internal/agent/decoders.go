package agent

import (
	"path/filepath"

	"github.com/outpost-iot/outpost/edge/internal/deadletter"
	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/shared/profile"
)

// decodeOptions turns a profile topic's decoder options (defaults filled)
// into the decoder's.
func decodeOptions(t profile.Topic) decode.Options {
	o := decode.Options{StreamPrefix: t.StreamPrefix}
	if v := t.Video; v != nil {
		o.Video = decode.VideoOptions{Bucket: v.Bucket, Classes: v.Classes,
			FrameWidth: float64(v.FrameWidth), FrameHeight: float64(v.FrameHeight)}
	}
	return o
}

// openDeadLetter opens the dead-letter store (deadletter.db in the data
// dir) and registers its metrics. A store that cannot be opened is logged
// and left out: dead letters are a diagnostic, never a reason to stop.
func (a *Agent) openDeadLetter() {
	path := filepath.Join(a.p.DataDir, "deadletter.db")
	s, err := deadletter.Open(path, deadletter.Options{Logger: a.log})
	if err != nil {
		a.log.Error("dead-letter store not available; bad payloads are only counted", "err", err)
	}
	a.dead = s
	a.met.GaugeFunc("outpost_edge_deadletter_entries", "Bad payload samples held in the dead-letter store.",
		func() float64 { return float64(a.dead.Stats().Entries) })
	a.met.CounterFunc("outpost_edge_deadletter_written_total", "Bad payload samples written to the dead-letter store.",
		func() float64 { return float64(a.dead.Stats().Written) })
	a.met.CounterFunc("outpost_edge_deadletter_skipped_total", "Bad payloads not sampled (rate limit or full write queue).",
		func() float64 { st := a.dead.Stats(); return float64(st.RateLimited + st.QueueFull) })
	a.met.CounterFunc("outpost_edge_deadletter_errors_total", "Failed dead-letter store writes.",
		func() float64 { return float64(a.dead.Stats().Errors) })
	a.met.CounterFunc("outpost_edge_decode_skipped_total", "Well-formed input that yields no reading (non-numeric SenML records, late video frames).",
		func() float64 { return float64(a.decodeSkipped()) })
}

func (a *Agent) closeDeadLetter() {
	if err := a.dead.Close(); err != nil {
		a.log.Error("dead-letter store close", "err", err)
	}
}

// DeadLetter returns the agent's dead-letter store; nil before Run or when
// it could not be opened (its methods are safe on nil).
func (a *Agent) DeadLetter() *deadletter.Store { return a.dead }

// decodeSkipped sums the decoders' skipped records and frames.
func (a *Agent) decodeSkipped() uint64 {
	var n uint64
	for _, d := range a.decoders {
		if s, ok := d.dec.(decode.Skipper); ok {
			n += s.Skipped()
		}
	}
	return n
}
