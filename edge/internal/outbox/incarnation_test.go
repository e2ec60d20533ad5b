package outbox

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestIncarnation: a new outbox file gets a random incarnation and starts
// its seqs at the wall clock in microseconds; reopening keeps both; a
// wiped and recreated file gets a new incarnation, and its seqs continue
// above the old ones when the clock moved on.
func TestIncarnation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	before := uint64(time.Now().UnixMicro())
	o, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	after := uint64(time.Now().UnixMicro())
	inc := o.Incarnation()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(inc) {
		t.Fatalf("incarnation %q", inc)
	}
	first, err := o.AppendWait(KindEvent, data)
	if err != nil {
		t.Fatal(err)
	}
	if first < before+1 || first > after+1 {
		t.Fatalf("first seq %d, want the wall clock in µs (%d..%d) + 1", first, before, after)
	}
	second, _ := o.AppendWait(KindEvent, data)
	if second != first+1 {
		t.Fatalf("second seq %d after %d", second, first)
	}
	checkInvariants(t, o)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened: same incarnation, seqs continue (FirstSeq is for new files).
	o = mustOpen(t, path, Options{FirstSeq: 1})
	if o.Incarnation() != inc {
		t.Fatalf("incarnation after reopen %q, was %q", o.Incarnation(), inc)
	}
	if s, _ := o.AppendWait(KindEvent, data); s != second+1 {
		t.Fatalf("seq after reopen %d, want %d", s, second+1)
	}
	o.Close()

	// Wiped and recreated: a new incarnation and seqs from the clock.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	o = mustOpen(t, path, Options{})
	if o.Incarnation() == inc || o.Incarnation() == "" {
		t.Fatalf("incarnation after wipe %q, was %q", o.Incarnation(), inc)
	}
	if s, _ := o.AppendWait(KindEvent, data); s <= second+1 {
		t.Fatalf("seq after wipe %d, not above the old outbox's %d", s, second+1)
	}
}

// TestIncarnationLegacyFile: an outbox file made before incarnations (no
// incarnation, seqs from 1) keeps working: no incarnation, its seqs go on.
func TestIncarnationLegacyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o, err := Open(path, Options{FirstSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := o.AppendWait(KindEvent, data); err != nil {
			t.Fatal(err)
		}
	}
	o.Close()
	// Make it look like an old file: no incarnation key.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyIncarnation) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	o = mustOpen(t, path, Options{})
	if o.Incarnation() != "" {
		t.Fatalf("legacy file got incarnation %q", o.Incarnation())
	}
	if s, _ := o.AppendWait(KindEvent, data); s != 4 {
		t.Fatalf("legacy file: seq %d, want 4", s)
	}
}
