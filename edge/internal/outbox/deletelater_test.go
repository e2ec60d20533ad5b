package outbox

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestDeleteLater: deletions queued by DeleteLater are hidden from Pending
// at once, ride on the next commit that happens anyway, are committed on
// their own after DeleteDelay when nothing else comes, and by Close; the
// accounting holds throughout.
func TestDeleteLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o, err := Open(path, Options{FirstSeq: 1, DeleteDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := o.AppendWait(KindEvent, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.DeleteLater(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	recs, _ := o.Pending(0, 100)
	if len(recs) != 7 || recs[0].Seq != 4 {
		t.Fatalf("pending after DeleteLater(1, 2, 3): %d records from %d", len(recs), recs[0].Seq)
	}
	// Not committed yet (the delay is an hour): still counted queued.
	if st := o.Stats(); st.Depth != 10 || st.ByKind[KindEvent].Delivered != 0 {
		t.Fatalf("stats before any commit: %+v", st.ByKind[KindEvent])
	}
	// The next append's commit carries them: with the log, the applier's
	// transaction behind it, which Flush waits for.
	if _, err := o.AppendWait(KindSummary, data); err != nil {
		t.Fatal(err)
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Depth != 8 || st.ByKind[KindEvent].Delivered != 3 {
		t.Fatalf("stats after the next commit: %+v", st.ByKind[KindEvent])
	}
	checkInvariants(t, o)
	// Close commits what is queued.
	if err := o.DeleteLater(4, 11); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteLater(5); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteLater after Close: %v, want ErrClosed", err)
	}
	o = mustOpen(t, path, Options{FirstSeq: 1, DeleteDelay: 20 * time.Millisecond})
	st := o.Stats()
	if st.Depth != 6 || st.ByKind[KindEvent].Delivered != 4 || st.ByKind[KindSummary].Delivered != 1 {
		t.Fatalf("after reopening: %+v", st)
	}
	// With nothing else to commit, the writer commits them after DeleteDelay.
	if err := o.DeleteLater(5, 6, 7); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for o.Stats().Depth != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("deletions not committed on their own: %+v", o.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkInvariants(t, o)
	// Delete waits for its commit.
	if err := o.Delete(8); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Depth != 2 || st.ByKind[KindEvent].Delivered != 8 {
		t.Fatalf("after Delete(8): %+v", st.ByKind[KindEvent])
	}
	recs, _ = o.Pending(0, 100)
	if len(recs) != 2 || recs[0].Seq != 9 || recs[1].Seq != 10 {
		t.Fatalf("left: %+v", recs)
	}
}

// TestDeleteLaterMakesRoom: deletions queued before an append free room for
// it in the same commit, so a full outbox does not refuse it.
func TestDeleteLaterMakesRoom(t *testing.T) {
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"), Options{MaxBytes: 1000, FirstSeq: 1, DeleteDelay: time.Hour})
	for i := 0; i < 10; i++ {
		if _, err := o.AppendWait(KindEvent, rec100); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.AppendWait(KindEvent, rec100); !errors.Is(err, ErrFull) {
		t.Fatalf("append into a full outbox: %v", err)
	}
	if err := o.DeleteLater(1); err != nil {
		t.Fatal(err)
	}
	if seq, err := o.AppendWait(KindEvent, rec100); err != nil || seq != 11 {
		t.Fatalf("append after DeleteLater: seq %d, %v", seq, err)
	}
	st := o.Stats().ByKind[KindEvent]
	if st.Appended != 11 || st.Delivered != 1 || st.Refused != 1 || st.Depth != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDeleteLaterBacklog: a backlog drained with nothing else to commit
// does not pile its deletions up for DeleteDelay.
func TestDeleteLaterBacklog(t *testing.T) {
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"), Options{FirstSeq: 1, DeleteDelay: time.Hour})
	n := maxQueuedDeletes
	var seqs []uint64
	for i := 0; i < n; i++ {
		o.Append(Request{Kind: KindEvent, Build: data})
		seqs = append(seqs, uint64(i+1))
	}
	if _, err := o.AppendWait(KindEvent, data); err != nil { // all committed
		t.Fatal(err)
	}
	if err := o.DeleteLater(seqs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for o.Stats().Depth > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("deletions of a backlog wait for DeleteDelay: %+v", o.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if recs, _ := o.Pending(0, 10); len(recs) != 1 || recs[0].Seq != uint64(n+1) {
		t.Fatalf("pending %+v", recs)
	}
}
