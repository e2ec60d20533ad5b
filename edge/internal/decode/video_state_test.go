package decode

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// videoInput is a deterministic stream of frames of two cameras sharing a
// topic, at 25 fps each, with moving objects.
func videoInput(n int) [][]byte {
	rng := rand.New(rand.NewPCG(7, 11))
	classes := []string{"person", "car", "dog"}
	var out [][]byte
	for i := 0; i < n; i++ {
		cam := fmt.Sprintf("cam-%d", i%2)
		at := time.Duration(i/2) * 40 * time.Millisecond
		var objs []obj
		for k := rng.IntN(5); k > 0; k-- {
			objs = append(objs, obj{classes[rng.IntN(3)], float64(rng.IntN(100)) / 100,
				[4]float64{float64(rng.IntN(1800)), float64(rng.IntN(1000)), float64(1 + rng.IntN(100)), float64(1 + rng.IntN(200))}})
		}
		out = append(out, frame(cam, at, i, objs...))
	}
	return out
}

// TestVideoStateRestore: a decoder restored from the checkpointed state of
// its changed cameras, cut at every frame of a bucket, emits exactly what
// an uninterrupted decoder emits; a frame redelivered after the restore
// (the state holds it) is skipped, not counted twice.
func TestVideoStateRestore(t *testing.T) {
	opts := VideoOptions{Classes: []string{"person", "car"}, FrameWidth: 1920, FrameHeight: 1080}
	const topic = "cameras/all"
	in := videoInput(400) // 8 s of two cameras
	ref := mustVideo(t, "cameras/{camera}", opts)
	var want []Reading
	for _, p := range in {
		want = append(want, decodeOK(t, ref, topic, p)...)
		if !ref.Holds() {
			t.Fatalf("frame %s not held", p)
		}
	}
	for _, cut := range []int{1, 2, 49, 50, 51, 137, 250, 399} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			v := mustVideo(t, "cameras/{camera}", opts)
			var got []Reading
			saved := map[string][]byte{}
			for i, p := range in[:cut] {
				got = append(got, decodeOK(t, v, topic, p)...)
				if i%7 == 0 || i == cut-1 { // checkpoints now and then
					for _, prefix := range v.TakeDirty(nil) {
						saved[prefix] = v.AppendCameraState(nil, prefix)
					}
				}
			}
			if d := v.TakeDirty(nil); len(d) != 0 {
				t.Fatalf("dirty after a checkpoint: %v", d)
			}
			r := mustVideo(t, "cameras/{camera}", opts)
			for prefix, b := range saved {
				if err := r.RestoreCamera(prefix, b); err != nil {
					t.Fatal(err)
				}
				if again := r.AppendCameraState(nil, prefix); !slices.Equal(again, b) {
					t.Fatalf("%s: restored state saves differently", prefix)
				}
			}
			// The broker redelivers the last two messages (committed, ack
			// lost): duplicates, held, not counted.
			for _, p := range in[max(0, cut-2):cut] {
				skipped := r.Skipped()
				if rs := decodeOK(t, r, topic, p); len(rs) != 0 || r.Skipped() != skipped+1 || !r.Holds() {
					t.Fatalf("redelivered frame: %v, skipped %d -> %d, holds %v", rs, skipped, r.Skipped(), r.Holds())
				}
			}
			for _, p := range in[cut:] {
				got = append(got, decodeOK(t, r, topic, p)...)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("restored at frame %d: %d readings differ from the uninterrupted run's %d", cut, len(got), len(want))
			}
		})
	}
}

// TestVideoStateRefused: a state of another bucket length or class list,
// or a corrupt one, is refused and leaves the decoder unchanged.
func TestVideoStateRefused(t *testing.T) {
	v := mustVideo(t, "{camera}", VideoOptions{})
	decodeOK(t, v, "t", frame("c", 0, 1, obj{"person", 0.5, [4]float64{1, 2, 3, 4}}))
	b := v.AppendCameraState(nil, "c")
	if len(b) == 0 || len(v.AppendCameraState(nil, "nope")) != 0 {
		t.Fatal("state of a known / unknown camera")
	}
	for name, r := range map[string]*Video{
		"bucket":  mustVideo(t, "{camera}", VideoOptions{Bucket: 2 * time.Second}),
		"classes": mustVideo(t, "{camera}", VideoOptions{Classes: []string{"person"}}),
	} {
		if err := r.RestoreCamera("c", b); err == nil || len(r.cams) != 0 {
			t.Errorf("%s: restored (%v)", name, err)
		}
	}
	r := mustVideo(t, "{camera}", VideoOptions{})
	for i := 0; i < len(b); i++ {
		if err := r.RestoreCamera("c", b[:i]); err == nil {
			t.Fatalf("truncated at %d: restored", i)
		}
	}
	if err := r.RestoreCamera("c", append(slices.Clone(b), 0)); err == nil {
		t.Fatal("trailing byte: restored")
	}
	if len(r.cams) != 0 {
		t.Fatal("a refused state left a camera")
	}
	full := mustVideo(t, "{camera}", VideoOptions{MaxCameras: 1})
	if err := full.RestoreCamera("c", b); err != nil {
		t.Fatal(err)
	}
	if err := full.RestoreCamera("d", b); err == nil {
		t.Fatal("restored beyond MaxCameras")
	}
}

// FuzzVideoRestore: RestoreCamera never panics, and a state it accepts
// saves as bytes that restore to the same state.
func FuzzVideoRestore(f *testing.F) {
	v, err := NewVideo("{camera}", VideoOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for i, p := range videoInput(60) {
		v.Decode("t", p)
		if i%20 == 0 {
			f.Add(v.AppendCameraState(nil, "cam-0"))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := mustVideo(t, "{camera}", VideoOptions{})
		if r.RestoreCamera("cam-0", b) != nil {
			return
		}
		saved := r.AppendCameraState(nil, "cam-0")
		r2 := mustVideo(t, "{camera}", VideoOptions{})
		if err := r2.RestoreCamera("cam-0", saved); err != nil {
			t.Fatalf("state %x saves as %x, refused: %v", b, saved, err)
		}
		if again := r2.AppendCameraState(nil, "cam-0"); !slices.Equal(again, saved) {
			t.Fatalf("state %x saves as %x, then as %x", b, saved, again)
		}
	})
}
