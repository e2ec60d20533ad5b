package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// gatedSync is an Options.syncLog that, while held, parks every sync until
// released and then fails it with err (nil: succeeds); otherwise it syncs.
type gatedSync struct {
	mu      sync.Mutex
	held    bool
	err     error
	release chan struct{}
	parked  chan struct{} // one send per parked sync
}

func newGatedSync() *gatedSync {
	return &gatedSync{release: make(chan struct{}), parked: make(chan struct{}, 16)}
}

func (g *gatedSync) sync(f *os.File) error {
	g.mu.Lock()
	held, err, release := g.held, g.err, g.release
	g.mu.Unlock()
	if !held {
		return fdatasync(f)
	}
	g.parked <- struct{}{}
	<-release
	return err
}

func (g *gatedSync) hold(err error) {
	g.mu.Lock()
	g.held, g.err, g.release = true, err, make(chan struct{})
	g.mu.Unlock()
}

// open lets the parked syncs go on and the next ones sync.
func (g *gatedSync) open() {
	g.mu.Lock()
	g.held = false
	close(g.release)
	g.mu.Unlock()
}

// openGated opens an outbox at path with two log syncs in flight at most,
// each going through a gatedSync.
func openGated(t *testing.T, path string) (*Outbox, *gatedSync) {
	t.Helper()
	gate := newGatedSync()
	opts := lazy
	opts.LogSyncs = 2
	opts.syncLog = gate.sync
	return mustOpen(t, path, opts), gate
}

type appendResult struct {
	seq uint64
	err error
}

func appendAsync(o *Outbox, key string) <-chan appendResult { return appendData(o, key, key) }

// appendData appends a record of data with key.
func appendData(o *Outbox, key, data string) <-chan appendResult {
	ch := make(chan appendResult, 1)
	o.Append(Request{Kind: KindEvent, Key: []byte(key), Build: func(seq uint64) ([]byte, error) {
		return []byte(data), nil
	}, Done: func(seq uint64, err error) { ch <- appendResult{seq, err} }})
	return ch
}

// TestLogSyncFailure: when a log sync fails, the group it covers and the
// group written after it (whose sync is in flight) both fail, nothing is
// acknowledged, and the same records appended again (the broker
// redelivers them) are stored once, with the seqs that were never
// acknowledged, in the outbox and after a restart.
func TestLogSyncFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o, gate := openGated(t, path)
	if seq, err := appendKeyed(t, o, "a"); err != nil || seq != 1 {
		t.Fatalf("a: seq %d err %v", seq, err)
	}
	gate.hold(syscall.EIO)
	b := appendAsync(o, "b")
	<-gate.parked // b is written, its sync parked
	c := appendAsync(o, "c")
	<-gate.parked // c is written behind it, its sync parked too
	select {
	case r := <-b:
		t.Fatalf("b done before its sync: %+v", r)
	case r := <-c:
		t.Fatalf("c done before its sync: %+v", r)
	default:
	}
	gate.open()
	for name, ch := range map[string]<-chan appendResult{"b": b, "c": c} {
		if r := <-ch; r.err == nil {
			t.Fatalf("%s acknowledged (seq %d) although its sync failed", name, r.seq)
		}
	}
	if st := o.Stats(); st.Depth != 1 || st.LastSeq != 1 {
		t.Fatalf("after the failure: depth %d last seq %d, want 1 and 1", st.Depth, st.LastSeq)
	}
	// Again, built anew (the records differ from the failed ones: what
	// the log holds must be what was acknowledged).
	for i, key := range []string{"b", "c"} {
		r := <-appendData(o, key, key+"2")
		if r.err != nil || r.seq != uint64(i+2) {
			t.Fatalf("%s again: seq %d err %v, want %d", key, r.seq, r.err, i+2)
		}
	}
	if got := pendingKeys(t, o); fmt.Sprint(got) != "[a b2 c2]" {
		t.Fatalf("pending %v, want [a b2 c2]", got)
	}
	// What a crash now leaves (everything acknowledged was synced).
	c2 := mustOpen(t, crashCopy(t, path), lazy)
	if got := pendingKeys(t, c2); fmt.Sprint(got) != "[a b2 c2]" {
		t.Fatalf("after a crash: %v, want [a b2 c2]", got)
	}
	if st := c2.Stats(); st.LastSeq != 3 {
		t.Fatalf("after a crash: last seq %d, want 3", st.LastSeq)
	}
}

// TestLogSyncCovers: a sync started after a later group was written makes
// the earlier group durable too; the groups complete in log order, the
// earlier first, without waiting for the earlier group's own sync.
func TestLogSyncCovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	o, gate := openGated(t, path)
	var mu sync.Mutex
	var order []string
	done := func(key string, ch chan<- appendResult) func(uint64, error) {
		return func(seq uint64, err error) {
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
			ch <- appendResult{seq, err}
		}
	}
	gate.hold(nil)
	b := make(chan appendResult, 1)
	o.Append(Request{Kind: KindEvent, Key: []byte("b"), Build: func(uint64) ([]byte, error) { return []byte("b"), nil }, Done: done("b", b)})
	<-gate.parked // b's sync parked
	gate.mu.Lock()
	gate.held = false // c's sync goes through
	gate.mu.Unlock()
	c := make(chan appendResult, 1)
	o.Append(Request{Kind: KindEvent, Key: []byte("c"), Build: func(uint64) ([]byte, error) { return []byte("c"), nil }, Done: done("c", c)})
	rb, rc := <-b, <-c
	if rb.err != nil || rc.err != nil || rb.seq != 1 || rc.seq != 2 {
		t.Fatalf("b %+v c %+v, want seqs 1 and 2", rb, rc)
	}
	mu.Lock()
	if fmt.Sprint(order) != "[b c]" {
		t.Fatalf("done in order %v, want [b c]", order)
	}
	mu.Unlock()
	close(gate.release) // b's own sync ends late; nothing changes
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := pendingKeys(t, o); fmt.Sprint(got) != "[b c]" {
		t.Fatalf("pending %v, want [b c]", got)
	}
}
