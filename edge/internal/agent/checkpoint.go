package agent

import (
	"strings"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/decode"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/models/detect/modelscore"
	"github.com/outpost-iot/outpost/shared/profile"
)

// Checkpoints of stream state. Every profile checkpoint_interval
// (Profile.CheckpointInterval, default 1s) the detectors of the
// streams that saw readings are saved in the outbox file, queued behind the
// events appended before: a checkpoint that includes a reading's judgement
// is never committed before that reading's event. So a restarted agent
// resumes detection at once (no warm-up gap), and a reading redelivered
// after a crash is either judged again from a state before it, or, if the
// state already holds it, its event was committed (and the outbox's
// idempotence key catches a second one). Restored detectors restart their
// hysteresis (detect.Detector.ResetIncident): a restart in the middle of an
// incident may raise one more event for it, never fewer.

// cpPrefix prefixes the checkpoint keys of detectors.
const cpPrefix = "detect/"

// cpVideoPrefix prefixes the checkpoint keys of the video decoders' open
// buckets: video/<topic filter>\x00<stream prefix> (an MQTT filter has no
// NUL).
const cpVideoPrefix = "video/"

// outboxKind is the outbox kind (drop class) of an event of level l.
func outboxKind(l detect.Level) outbox.Kind {
	if l == detect.Uncertain {
		return outbox.KindUncertain
	}
	return outbox.KindEvent
}

// dropsByKind names the outbox's drop counts as the wire does.
func dropsByKind(st outbox.Stats) map[string]uint64 {
	out := map[string]uint64{}
	for k, ks := range st.ByKind {
		if n := ks.Dropped(); n > 0 {
			out[k.String()] = n
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// restoreCheckpoint loads the detectors saved by the previous run. A state
// that no longer fits (the profile changed the window) is skipped: that
// stream warms up again.
func (a *Agent) restoreCheckpoint() {
	cp, err := a.box.Checkpoint()
	if err != nil {
		a.log.Error("checkpoint not read; streams warm up again", "err", err)
		return
	}
	n := 0
	for k, v := range cp {
		if rest, ok := strings.CutPrefix(k, cpVideoPrefix); ok {
			a.restoreVideoCamera(rest, v)
			continue
		}
		stream, ok := strings.CutPrefix(k, cpPrefix)
		if !ok {
			continue
		}
		d, err := a.restoreDetector(stream, a.p.StreamFor(stream), v)
		if err != nil {
			a.log.Warn("stream checkpoint skipped", "stream", stream, "err", err)
			continue
		}
		// The checkpoint may be older than the last readings judged (those
		// acknowledged are not redelivered): restart the hysteresis so that
		// no new incident is swallowed. A redelivered reading whose event is
		// already stored is caught by the outbox's idempotence key.
		d.ResetIncident()
		a.detectors[stream] = d
		n++
	}
	a.cpLast = time.Now()
	if n > 0 {
		a.log.Info("stream state restored", "streams", n)
	}
}

// Video frames (decode.Video) wait in their camera's open bucket until a
// frame of a later bucket closes it. Their messages are acknowledged like
// the readings of a reorder buffer, and for the same reason: the open
// buckets are checkpointed (appendVideoState: each camera changed since
// the last checkpoint, in the same outbox transaction as the detectors),
// and a frame's message is acknowledged once a checkpoint holding it is
// committed. Holding the acks until the bucket is closed instead would
// stall the broker: a bucket holds a second of frames (25 or more per
// camera), more than a broker's in-flight window (mosquitto's
// max_inflight_messages is 20), so the frame that closes the bucket would
// never be sent. So a restart or a crash loses no frame of an open bucket:
// it is in the restored state, or the broker redelivers it; a redelivered
// frame the restored state holds is skipped as a duplicate, and the first
// bucket after the restart has the features it would have had without it.
// That is a checkpoint (group-committed with the others) per video
// message.

// videoHolds reports whether the message dec just decoded holds a frame
// in a camera's open bucket: it is acknowledged once a checkpoint holding
// the bucket is committed.
func videoHolds(dec decode.Decoder) bool {
	v, ok := dec.(*decode.Video)
	return ok && v.Holds()
}

// appendVideoState adds the open buckets of the video decoders' cameras
// changed since the last checkpoint to entries (cpMu held).
func (a *Agent) appendVideoState(entries map[string][]byte) {
	for _, d := range a.decoders {
		v, ok := d.dec.(*decode.Video)
		if !ok {
			continue
		}
		a.vid.dirty = v.TakeDirty(a.vid.dirty[:0])
		for _, prefix := range a.vid.dirty {
			entries[cpVideoPrefix+d.filter+"\x00"+prefix] = v.AppendCameraState(nil, prefix)
		}
	}
}

// restoreVideoCamera restores a camera's open bucket saved under key
// (without cpVideoPrefix) into the video decoder of its topic filter.
// One that no longer fits (the profile changed the filter, the bucket or
// the classes) is skipped: the camera starts a fresh bucket.
func (a *Agent) restoreVideoCamera(key string, b []byte) {
	filter, prefix, ok := strings.Cut(key, "\x00")
	if !ok {
		return
	}
	for _, d := range a.decoders {
		if d.filter != filter {
			continue
		}
		v, ok := d.dec.(*decode.Video)
		if !ok {
			break
		}
		if err := v.RestoreCamera(prefix, b); err != nil {
			a.log.Warn("video checkpoint skipped: the camera starts a fresh bucket", "topic", filter, "stream_prefix", prefix, "err", err)
		}
		return
	}
	a.log.Info("video checkpoint of a topic no longer decoded as video: skipped", "topic", filter, "stream_prefix", prefix)
}

// checkpointDue saves a checkpoint if one is due, then releases cpMu. It
// runs deferred at the end of handle, after the events' appends. One is due
// every checkpoint_interval, and at once when the message held a reading of
// a stream still warming up: such messages are acknowledged only when the
// checkpoint holding them is committed, so that a crash during a warm-up
// (before any checkpoint says the stream is warm) cannot lose readings the
// warm-up needs; the broker redelivers them instead. That costs a commit per
// message only while a stream warms up, once in its life.
//
// Readings held in a stream's reorder buffer (profile streams[].reorder)
// follow the same rule: the buffer is part of the detector's checkpointed
// state, so the message is acknowledged once a checkpoint holding the
// reading is committed, and the restarted agent judges it from there. (Not
// acknowledging until the reading is judged could stall the broker's
// in-flight window: judging waits for newer readings that would not come.)
// With reordering on, that is a checkpoint (group-committed with others)
// per message; a redelivered reading the restored buffer already holds is
// dropped as a duplicate, one judged already as late.
func (a *Agent) checkpointDue() {
	defer a.cpMu.Unlock()
	if now := time.Now(); len(a.cpAck) > 0 || (now.Sub(a.cpLast) >= a.p.CheckpointInterval && len(a.cpDirty) > 0) {
		a.cpLast = now
		a.saveCheckpointLocked()
	}
}

// saveCheckpoint saves the state of every stream changed since the last
// checkpoint.
func (a *Agent) saveCheckpoint() {
	a.cpMu.Lock()
	defer a.cpMu.Unlock()
	a.saveCheckpointLocked()
}

func (a *Agent) saveCheckpointLocked() {
	if len(a.cpDirty) == 0 && len(a.cpAck) == 0 {
		return
	}
	entries := make(map[string][]byte, len(a.cpDirty))
	a.mu.Lock()
	for s := range a.cpDirty {
		d, ok := a.detectors[s]
		if !ok {
			continue
		}
		b, err := d.MarshalBinary()
		if err != nil {
			a.log.Error("stream checkpoint", "stream", s, "err", err)
			continue
		}
		entries[cpPrefix+s] = b
	}
	a.mu.Unlock()
	clear(a.cpDirty)
	a.appendVideoState(entries)
	acks := a.cpAck
	a.cpAck = nil
	// A checkpoint no message waits for may wait for a quiet moment of the
	// disk (outbox.Request.Lazy): its 2 KB or so per stream then does not
	// sit in front of the events' log writes.
	a.box.Append(outbox.Request{Checkpoint: entries, Lazy: len(acks) == 0, Done: func(_ uint64, err error) {
		if err != nil {
			// Not acknowledged: the broker redelivers the messages.
			a.log.Error("checkpoint not committed", "err", err)
			return
		}
		for _, m := range acks {
			m.Ack()
		}
	}})
}

// restoreDetector returns the detector of stream configured by s with
// the checkpointed state b. A state made with another model than the one
// the stream runs now (the agent stopped between a model swap and the next
// checkpoint) is restored with the model it names, if the agent has it,
// and that model is then swapped for the one the stream runs
// (detect.Detector.SwapScorer), so the stream's window is kept.
func (a *Agent) restoreDetector(stream string, s profile.Stream, b []byte) (*detect.Detector, error) {
	d, err := a.newDetector(stream, s)
	if err != nil {
		return nil, err
	}
	err = d.UnmarshalBinary(b)
	want := a.runnerFor(stream, s)
	if err == nil || want == nil {
		return d, err
	}
	a.modelMu.RLock()
	others := make([]*modelscore.Runner, 0, len(a.runners)+len(a.over))
	for _, r := range a.runners {
		others = append(others, r)
	}
	for _, r := range a.over {
		others = append(others, r)
	}
	a.modelMu.RUnlock()
	for _, r := range others {
		if r.Model() == want.Model() {
			continue
		}
		cfg := detectConfig(s)
		cfg.Low, cfg.High = thresholds(s, r)
		old, oerr := detect.NewWithScorer(cfg, modelScorer(s, r))
		if oerr != nil || old.UnmarshalBinary(b) != nil {
			continue
		}
		low, high := thresholds(s, want)
		if old.SwapScorer(modelScorer(s, want), low, high) == nil {
			return old, nil
		}
	}
	return nil, err
}
