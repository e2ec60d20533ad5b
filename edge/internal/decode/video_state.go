package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Checkpoints of the Video decoder's open buckets. The agent saves the
// state of every camera changed since its last checkpoint (TakeDirty,
// AppendCameraState) in the same outbox transaction as its stream state,
// and acknowledges a frame's message only once a checkpoint holding the
// frame is committed (Holds); a restarted agent restores the cameras
// (RestoreCamera) before it reads a message. So a restart, or a crash,
// loses no frame of an open bucket: a frame is either in the restored
// state or redelivered by the broker (and a redelivered frame the restored
// state holds is skipped as a duplicate).

// videoStateVersion is the first byte of a camera's saved state.
const videoStateVersion = 1

// maxStateObjects bounds the previous frame's box centres a saved state
// may hold (a frame has at most maxVideoObjects objects).
const maxStateObjects = maxVideoObjects

// Holds reports whether the frame of the last Decode is held in its
// camera's open bucket (added to it, or a duplicate of a frame it holds):
// its message should be acknowledged once a checkpoint holding the
// camera's state (AppendCameraState) is durable.
func (v *Video) Holds() bool { return v.holds }

func (v *Video) markDirty(prefix string) {
	if v.dirty == nil {
		v.dirty = map[string]struct{}{}
	}
	v.dirty[prefix] = struct{}{}
}

// TakeDirty appends to dst the stream prefixes (cameras) whose state
// changed since the last call, and forgets them.
func (v *Video) TakeDirty(dst []string) []string {
	for p := range v.dirty {
		dst = append(dst, p)
	}
	clear(v.dirty)
	return dst
}

// AppendCameraState appends the state of the camera of stream prefix
// prefix (its open bucket, its previous frame's boxes and the frames the
// bucket holds) to b; nothing if the decoder has no state for it.
func (v *Video) AppendCameraState(b []byte, prefix string) []byte {
	st := v.cams[prefix]
	if st == nil {
		return b
	}
	le := binary.LittleEndian
	b = append(b, videoStateVersion)
	b = le.AppendUint64(b, uint64(v.opts.Bucket))
	b = binary.AppendUvarint(b, uint64(len(st.counts)))
	b = le.AppendUint64(b, uint64(st.start.UnixNano()))
	b = binary.AppendUvarint(b, uint64(st.frames))
	b = binary.AppendUvarint(b, uint64(st.objects))
	for _, c := range st.counts {
		b = le.AppendUint64(b, math.Float64bits(c))
	}
	b = le.AppendUint64(b, math.Float64bits(st.confSum))
	b = le.AppendUint64(b, math.Float64bits(st.areaSum))
	b = le.AppendUint64(b, math.Float64bits(st.motionSum))
	b = binary.AppendUvarint(b, uint64(st.motionN))
	if st.hasPrev {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = le.AppendUint64(b, uint64(st.prevTS.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(st.prev)))
	for _, p := range st.prev {
		b = le.AppendUint64(b, math.Float64bits(p.x))
		b = le.AppendUint64(b, math.Float64bits(p.y))
	}
	// The seen frames in a stable order (the state's bytes depend only on
	// the state).
	keys := make([]frameKey, 0, len(st.seen))
	for k := range st.seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y frameKey) int {
		if x.ts != y.ts {
			return cmpInt64(x.ts, y.ts)
		}
		return cmpInt64(int64(x.cam), int64(y.cam))
	})
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = le.AppendUint64(b, uint64(k.ts))
		b = le.AppendUint64(b, k.cam)
	}
	return b
}

func cmpInt64(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// errVideoState is a saved camera state that cannot be read.
var errVideoState = errors.New("video: camera state truncated or corrupt")

// stateReader reads a saved camera state.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errVideoState
		return 0
	}
	x := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return x
}

func (r *stateReader) f64() float64 { return math.Float64frombits(r.u64()) }

func (r *stateReader) uvarint(limit uint64) int {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 || x > limit {
		r.err = errVideoState
		return 0
	}
	r.b = r.b[n:]
	return int(x)
}

func (r *stateReader) byte1() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errVideoState
		return 0
	}
	x := r.b[0]
	r.b = r.b[1:]
	return x
}

// RestoreCamera restores the state of the camera of stream prefix prefix
// saved by AppendCameraState. A state saved with another bucket length or
// number of classes is refused (the camera starts afresh), as is one
// beyond MaxCameras.
func (v *Video) RestoreCamera(prefix string, b []byte) error {
	r := &stateReader{b: b}
	if ver := r.byte1(); r.err == nil && ver != videoStateVersion {
		return fmt.Errorf("video: camera state version %d, want %d", ver, videoStateVersion)
	}
	bucket := time.Duration(r.u64())
	nc := r.uvarint(1 << 16)
	if r.err != nil {
		return r.err
	}
	if bucket != v.opts.Bucket || nc != len(v.opts.Classes)+1 {
		return fmt.Errorf("video: camera state of %v buckets and %d classes; the decoder has %v and %d",
			bucket, nc-1, v.opts.Bucket, len(v.opts.Classes))
	}
	if _, ok := v.cams[prefix]; !ok && len(v.cams) >= v.opts.MaxCameras {
		return fmt.Errorf("video: state for %d cameras already; camera %q not restored", len(v.cams), prefix)
	}
	st := v.newCam(prefix, time.Unix(0, int64(r.u64())).UTC())
	st.frames = r.uvarint(math.MaxInt32)
	st.objects = r.uvarint(math.MaxInt32)
	for i := range st.counts {
		st.counts[i] = r.f64()
	}
	st.confSum, st.areaSum, st.motionSum = r.f64(), r.f64(), r.f64()
	st.motionN = r.uvarint(math.MaxInt32)
	switch r.byte1() {
	case 0:
	case 1:
		st.hasPrev = true
	default:
		r.err = errVideoState
	}
	st.prevTS = time.Unix(0, int64(r.u64())).UTC()
	np := r.uvarint(maxStateObjects)
	for i := 0; i < np && r.err == nil; i++ {
		st.prev = append(st.prev, point{r.f64(), r.f64()})
	}
	ns := r.uvarint(math.MaxInt32)
	if r.err == nil && ns > len(r.b)/16 {
		r.err = errVideoState
	}
	if ns > 0 && r.err == nil {
		st.seen = make(map[frameKey]struct{}, ns)
	}
	for i := 0; i < ns && r.err == nil; i++ {
		ts := int64(r.u64())
		st.seen[frameKey{ts, r.u64()}] = struct{}{}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errVideoState
	}
	if r.err != nil {
		return r.err
	}
	v.cams[prefix] = st
	return nil
}

// camHash identifies a camera id in a frameKey.
// (FNV-1a, 64 bits).
func camHash(camera string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(camera); i++ {
		h ^= uint64(camera[i])
		h *= 1099511628211
	}
	return h
}
