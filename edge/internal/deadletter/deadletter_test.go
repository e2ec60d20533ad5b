package deadletter

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, path string, o Options) *Store {
	t.Helper()
	o.Logger = quiet
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestBoundAndEviction: the store keeps the newest MaxEntries, oldest
// evicted, across a reopen with a smaller bound too.
func TestBoundAndEviction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deadletter.db")
	s := open(t, path, Options{MaxEntries: 10, Rate: -1})
	for i := 1; i <= 25; i++ {
		if !s.Add(fmt.Sprintf("t/%d", i), "syntax", errors.New("bad"), []byte("x")) {
			t.Fatalf("entry %d refused", i)
		}
		if i%7 == 0 {
			s.Flush() // several transactions, not one
		}
	}
	s.Flush()
	es, err := s.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 10 {
		t.Fatalf("%d entries, want 10", len(es))
	}
	for i, e := range es {
		if want := uint64(16 + i); e.Seq != want || e.Topic != fmt.Sprintf("t/%d", want) {
			t.Errorf("entry %d: seq %d topic %s, want seq %d", i, e.Seq, e.Topic, want)
		}
	}
	st := s.Stats()
	if st.Written != 25 || st.Evicted != 15 || st.Entries != 10 || st.Offered != 25 {
		t.Errorf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, Options{MaxEntries: 4, Rate: -1})
	if st := s.Stats(); st.Entries != 4 {
		t.Fatalf("reopened with bound 4: %d entries", st.Entries)
	}
	s.Add("t/new", "bad_ts", nil, nil)
	s.Flush()
	es, _ = s.Entries()
	if len(es) != 4 || es[0].Seq != 23 || es[3].Seq != 26 || es[3].Topic != "t/new" {
		t.Fatalf("after reopen: %+v", es)
	}
}

func TestEntryContents(t *testing.T) {
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	s := open(t, filepath.Join(t.TempDir(), "d.db"), Options{MaxPayload: 4, Now: func() time.Time { return now }})
	long := string(make([]byte, 2000))
	s.Add("sensors/a/b", "bad_value", errors.New("decode: bad_value: "+long), []byte("abcdefgh"))
	s.Flush()
	es, err := s.Entries()
	if err != nil || len(es) != 1 {
		t.Fatalf("%v %v", es, err)
	}
	e := es[0]
	if e.Topic != "sensors/a/b" || e.Reason != "bad_value" || string(e.Payload) != "abcd" || e.Size != 8 ||
		!e.Time.Equal(now) || len(e.Error) != maxErrorText || e.Seq != 1 {
		t.Fatalf("entry %+v", e)
	}
}

// TestRateLimit: with a fixed clock, one second's worth is accepted, then
// entries are refused until time passes.
func TestRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := open(t, filepath.Join(t.TempDir(), "d.db"), Options{Rate: 100, Queue: 1000, Now: clock})
	n := 0
	for i := 0; i < 500; i++ {
		if s.Add("t", "syntax", nil, []byte("x")) {
			n++
		}
	}
	if n != 100 {
		t.Fatalf("accepted %d of a burst, want 100", n)
	}
	mu.Lock()
	now = now.Add(50 * time.Millisecond)
	mu.Unlock()
	n = 0
	for i := 0; i < 100; i++ {
		if s.Add("t", "syntax", nil, nil) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("accepted %d after 50 ms at 100/s, want 5", n)
	}
	s.Flush()
	st := s.Stats()
	if st.RateLimited != 495 || st.Written != 105 || st.Offered != 600 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStoreErrorsAreCounted: a failing store loses entries, counts and
// logs the failure, and keeps accepting calls.
func TestStoreErrorsAreCounted(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "d.db"), Options{Rate: -1})
	s.db.Close() // the file goes away under the store
	for i := 0; i < 3; i++ {
		s.Add("t", "syntax", nil, []byte("x"))
		s.Flush()
	}
	if st := s.Stats(); st.Errors != 3 || st.Written != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := s.Entries(); err == nil {
		t.Fatal("Entries on a closed file succeeded")
	}
}

func TestNilAndClosed(t *testing.T) {
	var s *Store
	if s.Add("t", "r", nil, nil) || s.Stats() != (Stats{}) || s.Close() != nil {
		t.Fatal("nil store")
	}
	s.Flush()
	if es, err := s.Entries(); es != nil || err != nil {
		t.Fatal("nil store entries")
	}
	s = open(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	s.Add("t", "r", nil, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Add("t", "r", nil, nil) {
		t.Fatal("closed store accepted an entry")
	}
	s.Flush()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "d.db"), Options{}); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
}

// TestCloseWritesQueued: what Add accepted before Close is on disk.
func TestCloseWritesQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := Open(path, Options{Rate: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := 0; i < 200; i++ {
		if s.Add("t", "r", nil, nil) {
			accepted++
		}
	}
	if accepted != 200 { // the queue holds 256
		t.Fatalf("accepted %d, queue full %d", accepted, s.Stats().QueueFull)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{})
	if st := s.Stats(); st.Entries != accepted {
		t.Fatalf("entries after close and reopen: %d, want %d", st.Entries, accepted)
	}
}

func BenchmarkAddRateLimited(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "d.db"), Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := make([]byte, 300)
	err2 := errors.New("decode: syntax: invalid character")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Add("junk/a", "syntax", err2, p)
	}
}
