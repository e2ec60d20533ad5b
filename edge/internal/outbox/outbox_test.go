package outbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// mustOpen opens an outbox in dir and, at cleanup, checks its invariants:
// pending records are in strictly increasing seq order, and the stats match
// what is stored.
func mustOpen(t *testing.T, path string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.closeMu.RLock()
		closed := o.closed
		o.closeMu.RUnlock()
		if closed {
			return
		}
		checkInvariants(t, o)
		if err := o.Close(); err != nil {
			t.Error(err)
		}
	})
	return o
}

func checkInvariants(t *testing.T, o *Outbox) {
	t.Helper()
	recs, err := o.Pending(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var bytes uint64
	for i, r := range recs {
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Errorf("seq %d after %d", r.Seq, recs[i-1].Seq)
		}
		bytes += uint64(len(r.Data) + 1)
	}
	st := o.Stats()
	if st.Depth != uint64(len(recs)) || st.Bytes != bytes {
		t.Errorf("stats %+v, stored %d records of %d bytes", st, len(recs), bytes)
	}
	var depth [numKinds]uint64
	for _, r := range recs {
		depth[r.Kind]++
	}
	for _, k := range Kinds {
		ks := st.ByKind[k]
		if ks.Depth != depth[k] {
			t.Errorf("%s: depth %d, stored %d", k, ks.Depth, depth[k])
		}
		if ks.Appended != ks.Delivered+ks.Evicted+ks.Depth {
			t.Errorf("%s: appended %d != delivered %d + evicted %d + queued %d", k, ks.Appended, ks.Delivered, ks.Evicted, ks.Depth)
		}
	}
	if len(recs) > 0 && recs[len(recs)-1].Seq > st.LastSeq {
		t.Errorf("record seq %d beyond LastSeq %d", recs[len(recs)-1].Seq, st.LastSeq)
	}
}

func data(seq uint64) ([]byte, error) { return []byte(fmt.Sprintf(`{"seq":%d}`, seq)), nil }

func TestOrderingConcurrent(t *testing.T) {
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"), Options{FirstSeq: 1})
	var wg sync.WaitGroup
	seqs := make(chan uint64, 1000)
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				o.Append(Request{Kind: KindEvent, Build: data, Done: func(seq uint64, err error) {
					if err != nil {
						t.Error(err)
					}
					seqs <- seq
				}})
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := 0; i < 1000; i++ {
		s := <-seqs
		if seen[s] {
			t.Fatalf("seq %d given twice", s)
		}
		seen[s] = true
	}
	for s := uint64(1); s <= 1000; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing: seqs must have no gaps", s)
		}
	}
	recs, err := o.Pending(0, 2000)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || string(r.Data) != fmt.Sprintf(`{"seq":%d}`, r.Seq) || r.Kind != KindEvent {
			t.Fatalf("record %d = %d %q", i, r.Seq, r.Data)
		}
	}
	// Pending pages from a cursor.
	page, _ := o.Pending(500, 10)
	if len(page) != 10 || page[0].Seq != 501 || page[9].Seq != 510 {
		t.Fatalf("page after 500: %v", page)
	}
}

func TestRestartContinuesSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o, err := Open(path, Options{FirstSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := o.AppendWait(KindEvent, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Delete(1, 2, 5); err != nil { // acked by the uplink
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = mustOpen(t, path, Options{FirstSeq: 1})
	if st := o.Stats(); st.Depth != 2 || st.LastSeq != 5 {
		t.Fatalf("after restart: %+v", st)
	}
	recs, _ := o.Pending(0, 10)
	if len(recs) != 2 || recs[0].Seq != 3 || recs[1].Seq != 4 {
		t.Fatalf("unsent after restart: %+v", recs)
	}
	seq, err := o.AppendWait(KindSummary, data)
	if err != nil || seq != 6 {
		t.Fatalf("append after restart: seq %d err %v, want 6", seq, err)
	}
}

func TestClosed(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "o.db"), Options{FirstSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Queued appends are committed by Close.
	var wg sync.WaitGroup
	var committed sync.Map
	for i := 0; i < 50; i++ {
		wg.Add(1)
		o.Append(Request{Kind: KindEvent, Build: data, Done: func(seq uint64, err error) {
			defer wg.Done()
			if err == nil {
				committed.Store(seq, true)
			}
		}})
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	n := 0
	committed.Range(func(any, any) bool { n++; return true })
	if n != 50 {
		t.Fatalf("%d of 50 queued appends committed", n)
	}
	if _, err := o.AppendWait(KindEvent, data); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
}
