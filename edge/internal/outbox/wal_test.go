package outbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lazy keeps logged records in the write-ahead log only: the applier
// waits an hour for a quiet moment (nothing asks it to hurry).
var lazy = Options{FirstSeq: 1, ApplyQuiet: time.Hour, ApplyDelay: time.Hour, DeleteDelay: time.Hour}

// crashCopy copies the outbox file and its log at path into a new
// directory, as a process killed now would leave them (everything written
// is in the files: no writer is between its write and its sync here), and
// returns the copy's path.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	for _, suffix := range []string{"", ".wal"} {
		src, err := os.Open(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(dir, "o.db"+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
	return filepath.Join(dir, "o.db")
}

func appendKeyed(t *testing.T, o *Outbox, key string) (uint64, error) {
	t.Helper()
	type res struct {
		seq uint64
		err error
	}
	ch := make(chan res, 1)
	o.Append(Request{Kind: KindEvent, Key: []byte(key), Build: func(seq uint64) ([]byte, error) {
		return []byte(key), nil
	}, Done: func(seq uint64, err error) { ch <- res{seq, err} }})
	r := <-ch
	return r.seq, r.err
}

// pendingKeys returns the records' data (their keys here) in seq order.
func pendingKeys(t *testing.T, o *Outbox) []string {
	t.Helper()
	recs, err := o.Pending(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Data))
	}
	return out
}

// TestWALReplay: records acknowledged from the log alone (the bbolt file
// has not got them) are in the outbox after a crash, once, with their
// seqs, counts and idempotence keys; opening the copy again (a second
// replay, and a crash right after the first) changes nothing.
func TestWALReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, lazy)
	for i := 0; i < 5; i++ {
		if _, err := appendKeyed(t, o, fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Flush(); err != nil { // a1..a5 in the bbolt file
		t.Fatal(err)
	}
	if err := o.Delete(1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ { // b0..b4 in the log only
		if _, err := appendKeyed(t, o, fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	var inFile int
	if err := o.db.View(func(tx *bolt.Tx) error { inFile = tx.Bucket(bucketRecords).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if inFile != 4 {
		t.Fatalf("%d records in the bbolt file before the crash, want 4 (the rest only in the log)", inFile)
	}
	want := []string{"a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4"}
	if got := pendingKeys(t, o); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pending before the crash %v, want %v", got, want)
	}
	crashed := crashCopy(t, path)
	for round := 0; round < 2; round++ {
		c, err := Open(crashed, lazy)
		if err != nil {
			t.Fatal(err)
		}
		if got := pendingKeys(t, c); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: pending after the crash %v, want %v", round, got, want)
		}
		st := c.Stats()
		ev := st.ByKind[KindEvent]
		if st.LastSeq != 10 || ev.Appended != 10 || ev.Delivered != 1 || ev.Depth != 9 {
			t.Fatalf("round %d: stats after the crash %+v", round, st)
		}
		checkInvariants(t, c)
		// The keys came back with the records.
		if seq, err := appendKeyed(t, c, "b3"); !errors.Is(err, ErrDuplicate) || seq != 9 {
			t.Fatalf("round %d: b3 again: seq %d err %v, want 9 and ErrDuplicate", round, seq, err)
		}
		if round == 1 {
			if seq, err := appendKeyed(t, c, "c0"); err != nil || seq != 11 {
				t.Fatalf("new record after replay: seq %d err %v, want 11", seq, err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	c := mustOpen(t, crashed, lazy)
	if got := pendingKeys(t, c); fmt.Sprint(got) != fmt.Sprint(append(want, "c0")) {
		t.Fatalf("after a clean close: %v", got)
	}
}

// TestWALTornTail: a log record cut short or damaged by a power loss
// during its write (so never acknowledged) is not replayed, nor anything
// after it; the records before it are. Garbage after the last record is
// ignored too.
func TestWALTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(f *os.File, off, n int64) error
	}{
		{"cut short", func(f *os.File, off, n int64) error { // the second half never reached the disk
			_, err := f.WriteAt(make([]byte, n/2), off+n/2)
			return err
		}},
		{"bit flip", func(f *os.File, off, n int64) error {
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, off+n-3); err != nil {
				return err
			}
			b[0] ^= 0x10
			_, err := f.WriteAt(b, off+n-3)
			return err
		}},
		{"bad length", func(f *os.File, off, n int64) error {
			_, err := f.WriteAt([]byte{0xff, 0xff, 0xff, 0x00}, off+4)
			return err
		}},
		{"file cut", func(f *os.File, off, n int64) error { return f.Truncate(off + n - 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "o.db")
			o := mustOpen(t, path, lazy)
			for i := 0; i < 3; i++ {
				if _, err := appendKeyed(t, o, fmt.Sprint("k", i)); err != nil {
					t.Fatal(err)
				}
			}
			before := o.wal.off
			if _, err := appendKeyed(t, o, "torn"); err != nil {
				t.Fatal(err)
			}
			end := o.wal.off
			crashed := crashCopy(t, path)
			f, err := os.OpenFile(crashed+".wal", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(f, before, end-before); err != nil {
				t.Fatal(err)
			}
			// Left-over bytes beyond the records: a stale record of an
			// earlier round whose seq does not follow, and noise.
			if tc.name != "file cut" {
				stale := wal{f: f, size: walSize, off: end}
				if err := stale.write([]walEntry{{seq: 2, kind: KindEvent, data: []byte("stale")}}, false); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			c := mustOpen(t, crashed, lazy)
			if got := pendingKeys(t, c); fmt.Sprint(got) != "[k0 k1 k2]" {
				t.Fatalf("after the damaged tail: %v, want [k0 k1 k2]", got)
			}
			if st := c.Stats(); st.LastSeq != 3 {
				t.Fatalf("last seq %d, want 3", st.LastSeq)
			}
			// The torn record's reading comes again (never acknowledged):
			// a new record, and the log works as before.
			if seq, err := appendKeyed(t, c, "torn"); err != nil || seq != 4 {
				t.Fatalf("torn again: seq %d err %v", seq, err)
			}
			if fi, err := os.Stat(crashed + ".wal"); err != nil || fi.Size() != walSize {
				t.Fatalf("log after replay: %v %v", fi, err)
			}
		})
	}
}

// TestWALRestartsAtZero: once the bbolt file holds everything logged, the
// next record goes to the start of the log; the longer records left after
// it are not replayed (their seqs are behind), and a crash then loses
// nothing.
func TestWALRestartsAtZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, lazy)
	for i := 0; i < 20; i++ {
		if _, err := appendKeyed(t, o, fmt.Sprintf("long-record-%03d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := appendKeyed(t, o, "s"); err != nil {
		t.Fatal(err)
	}
	if o.wal.off > 100 {
		t.Fatalf("log offset %d after everything was applied, want the start", o.wal.off)
	}
	if _, err := appendKeyed(t, o, "t"); err != nil {
		t.Fatal(err)
	}
	crashed := crashCopy(t, path)
	c := mustOpen(t, crashed, lazy)
	got := pendingKeys(t, c)
	if len(got) != 22 || got[20] != "s" || got[21] != "t" {
		t.Fatalf("after the crash: %d records, last %v", len(got), got[len(got)-2:])
	}
}

// TestWALFull: batches beyond the log's room wait for the applier and
// start the log again; one bigger than the log goes to the bbolt file
// directly. Nothing is lost or reordered.
func TestWALFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, Options{FirstSeq: 1, ApplyQuiet: time.Hour, ApplyDelay: time.Hour, MaxBytes: 64 << 20})
	big := make([]byte, walSize/3)
	for i := 0; i < 7; i++ {
		seq, err := o.AppendWait(KindEvent, func(uint64) ([]byte, error) { return big, nil })
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("append %d: seq %d err %v", i, seq, err)
		}
	}
	huge := make([]byte, walSize+1)
	if seq, err := o.AppendWait(KindEvent, func(uint64) ([]byte, error) { return huge, nil }); err != nil || seq != 8 {
		t.Fatalf("record bigger than the log: seq %d err %v", seq, err)
	}
	if seq, err := o.AppendWait(KindEvent, data); err != nil || seq != 9 {
		t.Fatalf("after it: seq %d err %v", seq, err)
	}
	crashed := crashCopy(t, path)
	c := mustOpen(t, crashed, lazy)
	recs, err := c.Pending(0, 100)
	if err != nil || len(recs) != 9 {
		t.Fatalf("after the crash: %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
}

// TestNoWAL: the bbolt-only path still works (Options.NoWAL).
func TestNoWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, Options{FirstSeq: 1, NoWAL: true})
	for i := 0; i < 3; i++ {
		if _, err := appendKeyed(t, o, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + ".wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("log made with NoWAL: %v", err)
	}
	crashed := filepath.Join(t.TempDir(), "c.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, crashed, Options{FirstSeq: 1, NoWAL: true})
	if got := pendingKeys(t, c); fmt.Sprint(got) != "[k0 k1 k2]" {
		t.Fatalf("%v", got)
	}
}
