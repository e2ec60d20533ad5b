package outbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// rec100 builds a record of 100 stored bytes (kind byte + 99) naming its seq.
func rec100(seq uint64) ([]byte, error) {
	b := []byte(fmt.Sprintf("%-99d", seq))
	return b, nil
}

// seqsOf returns the held seqs of kind k.
func seqsOf(t *testing.T, o *Outbox, k Kind) []uint64 {
	t.Helper()
	recs, err := o.Pending(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range recs {
		if r.Kind == k {
			out = append(out, r.Seq)
		}
	}
	return out
}

func eq(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestOutboxFullPolicy fills a 1000-byte outbox (ten 100-byte records) and
// checks which records survive each further append: summaries go first,
// oldest first; then the oldest uncertain windows; anomalies are never
// pushed out, and a new anomaly is refused once only anomalies are left.
// The per-kind counts add up: appended = delivered + dropped + queued.
func TestOutboxFullPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, Options{MaxBytes: 1000, FirstSeq: 1})
	app := func(k Kind) (uint64, error) { return o.AppendWait(k, rec100) }
	must := func(k Kind) uint64 {
		t.Helper()
		s, err := app(k)
		if err != nil {
			t.Fatalf("append %s: %v", k, err)
		}
		return s
	}
	// 1..10: S A U S A U S A U U (full: 1000 bytes).
	pattern := []Kind{KindSummary, KindEvent, KindUncertain, KindSummary, KindEvent, KindUncertain, KindSummary, KindEvent, KindUncertain, KindUncertain}
	for _, k := range pattern {
		must(k)
	}
	want := func(k Kind, seqs ...uint64) {
		t.Helper()
		if got := seqsOf(t, o, k); !eq(got, seqs) {
			t.Fatalf("%s records %v, want %v", k, got, seqs)
		}
	}
	want(KindSummary, 1, 4, 7)
	want(KindUncertain, 3, 6, 9, 10)
	want(KindEvent, 2, 5, 8)

	// A new summary pushes out the oldest summary.
	if s := must(KindSummary); s != 11 {
		t.Fatalf("seq %d", s)
	}
	want(KindSummary, 4, 7, 11)
	// A new anomaly pushes out the oldest summary, then the next ones.
	must(KindEvent) // 12, evicts 4
	must(KindEvent) // 13, evicts 7
	must(KindEvent) // 14, evicts 11
	want(KindSummary)
	want(KindEvent, 2, 5, 8, 12, 13, 14)
	// No summaries left: a new summary is refused, it may not push out an
	// uncertain window.
	if _, err := app(KindSummary); !errors.Is(err, ErrFull) {
		t.Fatalf("summary with only uncertain and anomalies held: %v, want ErrFull", err)
	}
	// A new uncertain window pushes out the oldest uncertain window.
	must(KindUncertain) // 15, evicts 3
	want(KindUncertain, 6, 9, 10, 15)
	// Anomalies push out uncertain windows, oldest first, until none is left.
	for i := 0; i < 4; i++ {
		must(KindEvent) // 16..19 evict 6, 9, 10, 15
	}
	want(KindUncertain)
	want(KindEvent, 2, 5, 8, 12, 13, 14, 16, 17, 18, 19)
	// Only anomalies left: the new anomaly is refused, the old ones stay;
	// so are new uncertain windows and summaries.
	for _, k := range []Kind{KindEvent, KindUncertain, KindSummary} {
		if _, err := app(k); !errors.Is(err, ErrFull) {
			t.Fatalf("%s into a full outbox of anomalies: %v, want ErrFull", k, err)
		}
	}
	want(KindEvent, 2, 5, 8, 12, 13, 14, 16, 17, 18, 19)
	// Delivering frees room.
	if err := o.Delete(2, 5); err != nil {
		t.Fatal(err)
	}
	if s := must(KindSummary); s != 20 {
		t.Fatalf("seq %d after delete, want 20", s)
	}

	st := o.Stats()
	wantKind := map[Kind]KindStats{
		KindSummary:   {Appended: 5, Evicted: 4, Refused: 2, Depth: 1, Bytes: 100},
		KindUncertain: {Appended: 5, Evicted: 5, Refused: 1},
		KindEvent:     {Appended: 10, Delivered: 2, Refused: 1, Depth: 8, Bytes: 800},
	}
	for k, w := range wantKind {
		if st.ByKind[k] != w {
			t.Errorf("%s: %+v, want %+v", k, st.ByKind[k], w)
		}
	}
	if st.Drops != 4+2+5+1+1 || st.Depth != 9 || st.Bytes != 900 || st.LastSeq != 20 {
		t.Fatalf("stats %+v", st)
	}
	checkInvariants(t, o)
	o.Close()
	// Counts survive a restart.
	o2 := mustOpen(t, path, Options{MaxBytes: 1000, FirstSeq: 1})
	st2 := o2.Stats()
	for k, w := range wantKind {
		if st2.ByKind[k] != w {
			t.Errorf("after restart %s: %+v, want %+v", k, st2.ByKind[k], w)
		}
	}
}

// TestOutboxFullRandom appends a random mix into a small outbox, delivering
// now and then, and checks the accounting and that anomalies are dropped
// only when no summary and no uncertain window is held.
func TestOutboxFullRandom(t *testing.T) {
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"), Options{MaxBytes: 5000, FirstSeq: 1})
	var appended [numKinds]uint64
	for i := 0; i < 2000; i++ {
		k := Kinds[(i*7+i/3)%3]
		before := o.Stats()
		_, err := o.AppendWait(k, rec100)
		appended[k]++
		if errors.Is(err, ErrFull) && k == KindEvent {
			if n := before.ByKind[KindSummary].Depth + before.ByKind[KindUncertain].Depth; n != 0 {
				t.Fatalf("anomaly refused with %d lower records held", n)
			}
		} else if err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		if i%97 == 0 {
			recs, _ := o.Pending(0, 5)
			var seqs []uint64
			for _, r := range recs {
				seqs = append(seqs, r.Seq)
			}
			if err := o.Delete(seqs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := o.Stats()
	for _, k := range Kinds {
		ks := st.ByKind[k]
		if appended[k] != ks.Delivered+ks.Dropped()+ks.Depth {
			t.Errorf("%s: appended %d != delivered %d + dropped %d + queued %d", k, appended[k], ks.Delivered, ks.Dropped(), ks.Depth)
		}
	}
	if st.Bytes > 5000 {
		t.Fatalf("bytes %d over the bound", st.Bytes)
	}
}

// TestDuplicateKey: an append whose key is already stored is not stored
// again, within one batch, across a delivery and across a restart.
func TestDuplicateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, Options{FirstSeq: 1})
	appendKey := func(o *Outbox, key string) (uint64, error) {
		ch := make(chan result, 1)
		o.Append(Request{Kind: KindEvent, Key: []byte(key), Build: data, Done: func(s uint64, err error) { ch <- result{s, err} }})
		r := <-ch
		return r.seq, r.err
	}
	s1, err := appendKey(o, "a")
	if err != nil || s1 != 1 {
		t.Fatal(s1, err)
	}
	if s, err := appendKey(o, "a"); !errors.Is(err, ErrDuplicate) || s != 1 {
		t.Fatalf("duplicate: seq %d err %v", s, err)
	}
	// Many concurrent appends of a few keys, most in the same batches.
	var wg sync.WaitGroup
	var stored, dups atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(1)
		o.Append(Request{Kind: KindEvent, Key: []byte(fmt.Sprint("k", i%10)), Build: data, Done: func(_ uint64, err error) {
			defer wg.Done()
			switch {
			case err == nil:
				stored.Add(1)
			case errors.Is(err, ErrDuplicate):
				dups.Add(1)
			default:
				t.Error(err)
			}
		}})
	}
	wg.Wait()
	if stored.Load() != 10 || dups.Load() != 190 {
		t.Fatalf("stored %d, duplicates %d; want 10, 190", stored.Load(), dups.Load())
	}
	// Delivered, then redelivered by the broker: still a duplicate.
	if err := o.Delete(1); err != nil {
		t.Fatal(err)
	}
	if s, err := appendKey(o, "a"); !errors.Is(err, ErrDuplicate) || s != 1 {
		t.Fatalf("after delivery: seq %d err %v", s, err)
	}
	o.Close()
	o = mustOpen(t, path, Options{FirstSeq: 1})
	if s, err := appendKey(o, "a"); !errors.Is(err, ErrDuplicate) || s != 1 {
		t.Fatalf("after restart: seq %d err %v", s, err)
	}
	if st := o.Stats().ByKind[KindEvent]; st.Duplicates != 193 || st.Appended != 11 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKeysPruned: only the keys of the last KeepKeys records are kept.
func TestKeysPruned(t *testing.T) {
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"), Options{KeepKeys: 5, FirstSeq: 1})
	appendKey := func(key string) error {
		ch := make(chan error, 1)
		o.Append(Request{Kind: KindEvent, Key: []byte(key), Build: data, Done: func(_ uint64, err error) { ch <- err }})
		return <-ch
	}
	for i := 0; i < 20; i++ {
		if err := appendKey(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := appendKey("19"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("recent key: %v", err)
	}
	if err := appendKey("3"); err != nil {
		t.Fatalf("old key, pruned: %v", err)
	}
	var n int
	o.Flush() // the applier's commit prunes them in the bbolt file
	o.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketKeys).Stats().KeyN
		return nil
	})
	if n > 6 {
		t.Fatalf("%d keys kept, want <= 6", n)
	}
}

// TestCheckpointOrdered: checkpoint entries are stored in append order with
// records, and survive a restart.
func TestCheckpointOrdered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o := mustOpen(t, path, Options{FirstSeq: 1})
	for i := 0; i < 100; i++ {
		o.Append(Request{Kind: KindEvent, Build: data})
		o.SaveCheckpoint(map[string][]byte{"s": []byte(fmt.Sprint(i)), "gone": nil})
	}
	o.SaveCheckpoint(map[string][]byte{"t": []byte("x")})
	o.Close()
	o = mustOpen(t, path, Options{FirstSeq: 1})
	cp, err := o.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(cp))
	for k := range cp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if string(cp["s"]) != "99" || string(cp["t"]) != "x" || len(cp) != 2 {
		t.Fatalf("checkpoint %v", cp)
	}
	if st := o.Stats(); st.Depth != 100 {
		t.Fatalf("depth %d", st.Depth)
	}
}
