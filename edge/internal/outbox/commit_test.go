package outbox

import (
	"path/filepath"
	"sync"
	"testing"
)

// commitLog collects what Options.OnCommit reports.
type commitLog struct {
	mu    sync.Mutex
	infos []CommitInfo
}

func (l *commitLog) add(c CommitInfo) {
	l.mu.Lock()
	l.infos = append(l.infos, c)
	l.mu.Unlock()
}

func (l *commitLog) all() []CommitInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]CommitInfo(nil), l.infos...)
}

// TestOnCommit: every commit is reported, and the records, checkpoint
// entries and deletions it reports add up to what was appended and
// deleted (records once: in the log's commits, or the bbolt file's with
// NoWAL).
func TestOnCommit(t *testing.T) {
	var log commitLog
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"), Options{FirstSeq: 1, OnCommit: log.add})
	var seqs []uint64
	for i := 0; i < 20; i++ {
		seq, err := o.AppendWait(KindEvent, data)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	cpDone := make(chan error, 1)
	o.Append(Request{Checkpoint: map[string][]byte{"a": []byte("1"), "b": []byte("2")}, Done: func(_ uint64, err error) { cpDone <- err }})
	if err := <-cpDone; err != nil {
		t.Fatal(err)
	}
	if err := o.Delete(seqs[:5]...); err != nil {
		t.Fatal(err)
	}
	o.Flush() // nothing left to commit: reported by no commit
	var recs, cps, dels, reqs int
	for _, c := range log.all() {
		if c.Err != nil {
			t.Fatalf("commit failed: %v", c.Err)
		}
		if c.Wait < 0 || c.Build < 0 || c.Commit <= 0 || c.Writes < 1 || (c.Requests < 1 && !c.Apply) {
			t.Fatalf("commit info %+v", c)
		}
		if !c.Apply {
			recs += c.Records // the applier's transactions report them again
		}
		cps += c.Checkpoints
		dels += c.Deletes
		reqs += c.Requests
	}
	// 20 appends, a checkpoint, the Flush of Delete (with the deletions).
	if recs != 20 || cps != 2 || dels != 5 || reqs != 22 {
		t.Fatalf("reported %d records, %d checkpoint entries, %d deletions, %d requests; want 20, 2, 5, 22", recs, cps, dels, reqs)
	}
}
