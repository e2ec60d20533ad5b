// Package outbox is the agent's durable queue of what must reach the cloud:
// events and summaries, each with a strictly increasing per-agent sequence
// number, kept in a bbolt file until the uplink's publish is acknowledged.
//
// Group commit. Appends go to one writer goroutine, which takes everything
// queued (up to Options.MaxBatch records), gives the records their seqs,
// writes them as one record of the write-ahead log (wal.go: one write,
// one fdatasync) and then calls each record's Done. The writer does not
// wait for the sync before it writes the next group: up to
// Options.LogSyncs syncs are in flight, and groups complete in log order
// (logsync.go). The MQTT message a record came from is acknowledged from
// Done, after that sync, so a record whose Done reported success survives
// kill -9 and power loss. Another goroutine, the applier (apply.go), then
// commits the logged records, with the checkpoints and deletions behind
// them, in the bbolt file (where a commit writes every page it touched,
// syncs, writes the meta page and syncs again), at a quiet moment of the
// log (Options.ApplyQuiet, at most ApplyDelay later); the log's space is
// reused once the file has them, and Open replays into the file what the
// log holds beyond it. Pending and Stats include logged records once they
// are durable. A batch the drop policy has to make room for, or one too
// big for the log, is committed in the bbolt file directly once the
// groups before it are durable and the applier has caught up
// (Options.NoWAL: every batch, as before the log).
//
// Deletions. The uplink deletes acknowledged records with DeleteLater: the
// deletions ride on the next commit the writer makes anyway instead of a
// synced transaction each (two fdatasyncs) that event commits would queue
// behind. Records whose deletion is queued are no longer returned by
// Pending. A crash before that commit only means that they are sent again
// after the restart, with the same message ids, and the cloud drops them as
// duplicates: nothing committed is lost and the cloud sees each record
// once. Delete is the synchronous form.
//
// Idempotence. A request may carry a Key (the agent uses stream and reading
// time). The keys of the last Options.KeepKeys records are stored in the
// same transaction as the records; an append whose key is known is not
// stored again: its Done gets the first record's seq and ErrDuplicate. So a
// reading that the broker redelivers after a crash does not make a second
// event. KeepKeys bounds the index; a broker redelivers at most its
// in-flight window of unacknowledged messages, far fewer.
//
// Bound and drop policy. The record bytes held never exceed
// Options.MaxBytes. When a new record does not fit, room is made by dropping
// queued records, lowest class first and oldest first within a class:
// summaries, then uncertain windows. A record may only push out records of
// its own class or lower: a summary only older summaries, an uncertain
// window summaries and older uncertain windows, an anomaly summaries and
// uncertain windows. Anomalies are never pushed out: when only anomalies
// (or records of a higher class) are left, the NEW record is refused
// (ErrFull) and the anomalies already queued are kept, oldest first in line
// for the uplink. Nothing is dropped unless dropping makes room. Every
// dropped record (pushed out or refused) is counted per kind; the counts are
// stored in the outbox file, survive restarts, and the agent reports them in
// its state. Accounting, per kind and in total (KindStats):
//
//	appended + refused = delivered + dropped + queued
//
// where appended counts records stored with a seq, refused those refused
// on arrival, dropped = evicted + refused, and queued = Depth. Appends
// recognised as duplicates are counted apart and stored nowhere.
//
// A record pushed out while the uplink has it in flight may still reach
// the cloud; it is counted as dropped all the same.
//
// Checkpoints. A request may instead carry Checkpoint entries, stored in the
// same commit order as records: a checkpoint appended after a record is
// never committed before it. Its Done is called once the bbolt file holds
// it.
//
// Incarnation. A new outbox file gets a random incarnation id (Incarnation)
// and starts its sequence numbers at the wall clock in microseconds
// (Options.FirstSeq), both stored in the file. The agent sends the id with
// every record, and the cloud keeps its duplicate high-water mark per agent
// and incarnation: when a gateway's data directory is wiped, the new
// outbox's records are not mistaken for duplicates of the old one's, and
// their seqs (so their Nats-Msg-Ids) usually continue above the old ones,
// clear of JetStream's duplicate window. A file made before incarnations
// existed keeps its seqs and has no incarnation ("").
package outbox

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors.
var (
	// ErrFull: the record was refused by the full-outbox policy and counted.
	ErrFull = errors.New("outbox: full, record dropped")
	// ErrClosed: the outbox is closed.
	ErrClosed = errors.New("outbox: closed")
	// ErrDuplicate: a record with the request's key is already stored (or
	// was, and was delivered or dropped); the seq passed with it is that
	// record's.
	ErrDuplicate = errors.New("outbox: duplicate key, already stored")
)

// Kind is what a record holds; it is also its class in the drop policy.
type Kind byte

// Kinds, from the first dropped to the last.
const (
	// KindSummary: a periodic summary. Dropped first.
	KindSummary Kind = 2
	// KindUncertain: an uncertain window, forwarded for the cloud to decide.
	KindUncertain Kind = 3
	// KindEvent: an anomaly. Never pushed out by another record.
	KindEvent Kind = 1
)

// Kinds lists the kinds in drop order.
var Kinds = []Kind{KindSummary, KindUncertain, KindEvent}

// String names the kind as the wire does ("summary", "uncertain",
// "anomaly").
func (k Kind) String() string {
	switch k {
	case KindSummary:
		return "summary"
	case KindUncertain:
		return "uncertain"
	case KindEvent:
		return "anomaly"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// rank orders kinds for the drop policy (lowest dropped first).
func (k Kind) rank() int {
	switch k {
	case KindSummary:
		return 0
	case KindUncertain:
		return 1
	}
	return 2
}

func (k Kind) valid() bool { return k == KindSummary || k == KindUncertain || k == KindEvent }

const numKinds = 4 // indexed by Kind

var (
	bucketRecords    = []byte("records")
	bucketMeta       = []byte("meta")
	bucketKeys       = []byte("keys")    // key -> seq
	bucketKeySeqs    = []byte("keyseqs") // seq -> key, for pruning
	bucketCheckpoint = []byte("checkpoint")
	keySeq           = []byte("seq")
	keyCounts        = []byte("counts")
	keyIncarnation   = []byte("incarnation")
)

// idxBucket is the bucket indexing the records of an evictable kind by seq.
func idxBucket(k Kind) []byte { return []byte{'i', 'd', 'x', byte(k)} }

// Options configure an outbox. The zero value is the default.
type Options struct {
	// MaxBytes bounds the record bytes held. Default 64 MiB.
	MaxBytes int64
	// MaxBatch bounds the records committed in one transaction. Default 1024.
	MaxBatch int
	// QueueLen is how many appends may wait for the writer before Append
	// blocks. Default 4096.
	QueueLen int
	// KeepKeys is how many of the latest records' keys are kept for
	// recognising duplicates. Default 100000.
	KeepKeys uint64
	// NoSync turns off fsync on commit (bbolt NoSync): for benchmarks and
	// tests only; a crash of the machine may then lose commits.
	NoSync bool
	// FirstSeq is the sequence number of the first record of a new outbox
	// file (an existing file continues its own). Default: the wall clock
	// in microseconds since the Unix epoch.
	FirstSeq uint64
	// DeleteDelay is how long deletions queued by DeleteLater may wait for
	// a commit that happens anyway (appends, checkpoints) before the writer
	// commits them on their own. Default 500ms.
	DeleteDelay time.Duration
	// OnCommit, if set, is called after every commit (or failed one),
	// before the requests' Done: what it held and where its time went. It
	// must not block. Commits of the log are reported on the writer
	// goroutine, the transactions that apply them to the bbolt file
	// (CommitInfo.Apply) on the applier's.
	OnCommit func(CommitInfo)
	// NoWAL commits every batch in the bbolt file before its Done, as
	// before the write-ahead log (wal.go): every page the transaction
	// touched written, fdatasync, the meta page, fdatasync. For
	// comparisons.
	NoWAL bool
	// ApplyQuiet, ApplyEvery and ApplyDelay pace the applier, which moves
	// what the write-ahead log holds (and checkpoints) into the bbolt file:
	// it gathers for ApplyEvery, then waits until no log write has ended
	// for ApplyQuiet, so that its page writes and fdatasyncs do not sit in
	// the device's queue in front of the log's during a burst of events,
	// but lets nothing wait more than ApplyDelay. Flushes and requests
	// that are not Lazy do not wait. Defaults 5ms, 100ms and 250ms.
	ApplyQuiet, ApplyEvery, ApplyDelay time.Duration
	// LogSyncs bounds the write-ahead log's syncs in flight at once
	// (logsync.go): the writer writes the next group while earlier ones
	// sync. Default 4; 1 syncs one group at a time, as before the
	// pipeline.
	LogSyncs int

	syncLog func(*os.File) error // tests: fdatasync
}

// CommitInfo describes one transaction of the writer, for
// Options.OnCommit.
type CommitInfo struct {
	// Requests committed; Records stored among them; Checkpoints the
	// checkpoint entries stored; Deletes the deletions applied.
	Requests, Records, Checkpoints, Deletes int
	// Wait is how long the oldest request of the transaction waited
	// between Append and the start of the transaction: behind the
	// previous commit, or for the writer to be scheduled.
	Wait time.Duration
	// Build is the time in the transaction before bbolt's commit:
	// building and placing records, keys, checkpoints, deletions.
	Build time.Duration
	// Commit is bbolt's commit: balancing and spilling pages, writing
	// them, fdatasync, writing the meta page, fdatasync (and growing the
	// file, when it must).
	Commit time.Duration
	// Writes is how many writes the commit made (each a page with its
	// overflow pages; the meta page included).
	Writes int
	// Err is the commit's error, if it failed.
	Err error
	// Apply marks a transaction of the applier: records already in the
	// write-ahead log (their Done called), checkpoints and deletions moved
	// into the bbolt file, on no append's path. Otherwise the commit is the
	// one appends wait for: with the log, Build is the time before the log
	// write, Commit the time from the log's write until the group is
	// durable (its fdatasync, or a later one that covers it, has
	// returned), Writes 1.
	Apply bool
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	if o.KeepKeys == 0 {
		o.KeepKeys = 100000
	}
	if o.DeleteDelay <= 0 {
		o.DeleteDelay = 500 * time.Millisecond
	}
	if o.ApplyQuiet <= 0 {
		o.ApplyQuiet = 5 * time.Millisecond
	}
	if o.ApplyDelay <= 0 {
		o.ApplyDelay = 250 * time.Millisecond
	}
	if o.ApplyEvery <= 0 {
		o.ApplyEvery = 100 * time.Millisecond
	}
	if o.LogSyncs <= 0 {
		o.LogSyncs = 4
	}
	if o.syncLog == nil {
		o.syncLog = fdatasync
	}
	return o
}

// Record is one stored record.
type Record struct {
	Seq  uint64
	Kind Kind
	Data []byte
}

// Request asks for one record to be appended, or for checkpoint entries to
// be stored.
type Request struct {
	// Kind of the record. Zero for a checkpoint-only request.
	Kind Kind
	// Key, if set, makes the append idempotent: see the package doc.
	Key []byte
	// Build returns the record's bytes given its sequence number (so that the
	// number can be written into the record). Called on the writer goroutine.
	Build func(seq uint64) ([]byte, error)
	// Checkpoint entries are stored (nil value: deleted) in the transaction
	// that commits this request, in append order.
	Checkpoint map[string][]byte
	// Lazy lets a request without a record (checkpoint entries) wait for
	// a quiet moment of the disk (Options.ApplyQuiet, at most ApplyDelay)
	// before its commit: for checkpoints nothing waits for.
	Lazy bool
	// Done, if set, is called on the writer goroutine once the record is
	// committed (err nil), recognised as a duplicate (ErrDuplicate, with the
	// stored record's seq) or refused (ErrFull, ErrClosed, a Build or storage
	// error). It must not block for long.
	Done func(seq uint64, err error)

	queued time.Time // set by Append, for CommitInfo.Wait
}

// KindStats account for the records of one kind since the outbox file was
// created (Depth and Bytes: now).
type KindStats struct {
	// Appended counts records stored with a seq.
	Appended uint64
	// Delivered counts records deleted after the uplink's acknowledgement.
	Delivered uint64
	// Evicted counts stored records pushed out by the drop policy.
	Evicted uint64
	// Refused counts records refused by the drop policy (never stored).
	Refused uint64
	// Duplicates counts appends recognised by their key (never stored).
	// With the write-ahead log it is stored with the applier's next
	// commit: a crash before that loses the few counted since.
	Duplicates uint64
	// Depth and Bytes are the records of this kind held now.
	Depth, Bytes uint64
}

// Dropped is Evicted + Refused.
func (k KindStats) Dropped() uint64 { return k.Evicted + k.Refused }

// Stats describe the outbox.
type Stats struct {
	// Depth and Bytes are the records held and their bytes.
	Depth, Bytes uint64
	// Drops counts records dropped by the full-outbox policy, ever.
	Drops uint64
	// LastSeq is the last sequence number given out.
	LastSeq uint64
	// ByKind accounts per kind.
	ByKind map[Kind]KindStats
}

// Outbox is a durable record queue. Its methods are safe for concurrent use.
type Outbox struct {
	db    *bolt.DB
	opts  Options
	queue chan Request

	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}

	wmu sync.Mutex // held by the writer's commits

	mu      sync.Mutex
	lastSeq uint64
	kinds   [numKinds]KindStats
	notify  chan struct{}
	// dels are the seqs queued by DeleteLater for the next commit;
	// deleting holds them and those of a commit in progress, which Pending
	// skips. kick wakes the writer to arm its DeleteDelay timer.
	dels     []uint64
	deleting map[uint64]struct{}
	kick     chan struct{}

	// The write-ahead log (wal.go); nil with Options.NoWAL. The writer
	// logs records and hands them, with the checkpoints and flushes behind
	// them, to the applier (applyQ), which commits them in the bbolt file.
	// bkinds are the counts the bbolt file holds (mu); applied is the last
	// seq it holds; logKeys are the keys of logged records not yet applied
	// (the writer's), by seq.
	wal        *wal
	applyMu    sync.Mutex
	applyQ     []applyItem
	applyAt    time.Time    // when the oldest item of applyQ was queued
	urgent     bool         // applyQ holds an item that must not wait
	lastLog    atomic.Int64 // unix ns at the end of the last log write
	applyKick  chan struct{}
	applyDone  chan struct{}
	bkinds     [numKinds]KindStats
	applied    atomic.Uint64
	logKeys    map[string]uint64
	keysPruned uint64 // applied when logKeys was last pruned (the writer's)
	// logged are the logged records not yet in the bbolt file, in seq
	// order (mu): Pending returns them after the file's.
	logged []walEntry
	// The writer's log pipeline (logsync.go): groups written and not yet
	// complete, in log order; finished syncs; the files free for a sync.
	inflight  []*logGroup
	nextGroup uint64
	logFails  uint64
	synced    chan logSync
	syncFiles []*os.File

	incarnation string
}

// applyItem is what the writer hands the applier: the entries of one log
// record, the duplicates found beside them, and the requests without a
// record (checkpoints, flushes) behind them, whose Done is called after
// the applier's commit. stop ends the applier after its commit.
type applyItem struct {
	ents []walEntry
	dups [numKinds]uint64
	reqs []Request
	stop bool
}

// urgent reports whether the item must be applied without waiting for a
// quiet disk: it stops the applier, or holds a flush or a request that is
// not Lazy.
func (it *applyItem) urgent() bool {
	if it.stop {
		return true
	}
	for _, r := range it.reqs {
		if !r.Lazy {
			return true
		}
	}
	return false
}

// Open opens (creating if needed) the outbox file at path.
func Open(path string, opts Options) (*Outbox, error) {
	opts = opts.withDefaults()
	// The freelist is not written with every commit (NoFreelistSync): a
	// commit writes only the pages it changed, and Open rebuilds the
	// freelist by scanning the file (BenchmarkOpenFull: 131 ms instead of
	// 120 ms for a 64 MiB file here, most of it the count of the records
	// Open always makes). The hashmap freelist keeps page allocation cheap
	// when the file is fragmented by deletions.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: opts.NoSync,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	o := &Outbox{db: db, opts: opts, queue: make(chan Request, opts.QueueLen), done: make(chan struct{}), notify: make(chan struct{}, 1),
		deleting: map[uint64]struct{}{}, kick: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		fresh := tx.Bucket(bucketMeta) == nil
		for _, name := range [][]byte{bucketRecords, bucketMeta, bucketKeys, bucketKeySeqs, bucketCheckpoint,
			idxBucket(KindSummary), idxBucket(KindUncertain)} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		mb := tx.Bucket(bucketMeta)
		if fresh {
			if err := initMeta(mb, opts.FirstSeq); err != nil {
				return err
			}
		}
		o.incarnation = string(mb.Get(keyIncarnation))
		o.lastSeq = getU64(mb, keySeq)
		o.kinds = decodeCounts(mb.Get(keyCounts))
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if len(v) < 1 || !Kind(v[0]).valid() {
				return fmt.Errorf("record %d is corrupt", binary.BigEndian.Uint64(k))
			}
			ks := &o.kinds[v[0]]
			ks.Depth++
			ks.Bytes += uint64(len(v))
			if s := binary.BigEndian.Uint64(k); s > o.lastSeq {
				o.lastSeq = s // a record beyond the stored seq must never be reused
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	o.bkinds = o.kinds
	o.applied.Store(o.lastSeq)
	if !opts.NoWAL {
		if err := o.openLog(path + ".wal"); err != nil {
			db.Close()
			return nil, err
		}
		o.applyKick, o.applyDone, o.logKeys = make(chan struct{}, 1), make(chan struct{}), map[string]uint64{}
		go o.applier()
	}
	go o.writer()
	return o, nil
}

// openLog opens the write-ahead log and replays into the bbolt file the
// records it holds beyond the file's last seq (wal.go).
func (o *Outbox) openLog(path string) error {
	w, err := openWAL(path, o.opts.NoSync)
	if err != nil {
		return err
	}
	var ents []walEntry
	_, err = walScan(w.f, w.size, func(_ int64, es []walEntry) error {
		for _, e := range es {
			if e.seq > o.lastSeq {
				ents = append(ents, e)
			}
		}
		return nil
	})
	if err == nil && len(ents) > 0 {
		err = o.db.Update(func(tx *bolt.Tx) error {
			st := txState{lastSeq: o.lastSeq, kinds: o.kinds}
			if err := putEntries(tx, &st, ents); err != nil {
				return err
			}
			if err := o.pruneKeys(tx.Bucket(bucketKeys), tx.Bucket(bucketKeySeqs), st.lastSeq); err != nil {
				return err
			}
			mb := tx.Bucket(bucketMeta)
			if err := mb.Put(keySeq, u64(st.lastSeq)); err != nil {
				return err
			}
			if err := mb.Put(keyCounts, encodeCounts(st.kinds)); err != nil {
				return err
			}
			o.lastSeq, o.kinds, o.bkinds = st.lastSeq, st.kinds, st.kinds
			return nil
		})
		o.applied.Store(o.lastSeq)
	}
	if err == nil {
		err = w.remake(path)
	}
	if err != nil {
		w.close()
		return fmt.Errorf("outbox: replay log %s: %w", path, err)
	}
	o.wal = w
	if err := o.openSyncFiles(path); err != nil {
		w.close()
		return err
	}
	return nil
}

// putEntries stores logged entries in tx, skipping those at or below
// st.lastSeq (stored already), and counts them appended in st.
func putEntries(tx *bolt.Tx, st *txState, ents []walEntry) error {
	rb, kb, ksb := tx.Bucket(bucketRecords), tx.Bucket(bucketKeys), tx.Bucket(bucketKeySeqs)
	for _, e := range ents {
		if e.seq <= st.lastSeq {
			continue
		}
		k := u64(e.seq)
		v := make([]byte, 0, len(e.data)+1)
		v = append(append(v, byte(e.kind)), e.data...)
		if err := rb.Put(k, v); err != nil {
			return err
		}
		if e.kind != KindEvent {
			if err := tx.Bucket(idxBucket(e.kind)).Put(k, nil); err != nil {
				return err
			}
		}
		if len(e.key) > 0 {
			if err := kb.Put(e.key, k); err != nil {
				return err
			}
			if err := ksb.Put(k, e.key); err != nil {
				return err
			}
		}
		ks := &st.kinds[e.kind]
		ks.Appended++
		ks.Depth++
		ks.Bytes += uint64(len(v))
		st.lastSeq = e.seq
	}
	return nil
}

// initMeta stores a new outbox file's incarnation and the seq before its
// first record.
func initMeta(mb *bolt.Bucket, first uint64) error {
	if first == 0 {
		if us := time.Now().UnixMicro(); us > 0 {
			first = uint64(us)
		} else {
			first = 1
		}
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("incarnation id: %w", err)
	}
	if err := mb.Put(keyIncarnation, []byte(hex.EncodeToString(id[:]))); err != nil {
		return err
	}
	return mb.Put(keySeq, u64(first-1))
}

// Incarnation returns the outbox file's incarnation id (16 hex digits),
// made with the file; "" for a file made before incarnations existed.
func (o *Outbox) Incarnation() string { return o.incarnation }

// Append queues req for the writer. It blocks only while the queue is full.
// After Close, req.Done is called with ErrClosed.
func (o *Outbox) Append(req Request) {
	o.closeMu.RLock()
	defer o.closeMu.RUnlock()
	if o.closed {
		if req.Done != nil {
			req.Done(0, ErrClosed)
		}
		return
	}
	if o.opts.OnCommit != nil {
		req.queued = time.Now()
	}
	o.queue <- req
}

// AppendWait appends a record of kind and waits for the commit, returning
// the record's seq.
func (o *Outbox) AppendWait(kind Kind, build func(seq uint64) ([]byte, error)) (uint64, error) {
	type res struct {
		seq uint64
		err error
	}
	ch := make(chan res, 1)
	o.Append(Request{Kind: kind, Build: build, Done: func(seq uint64, err error) { ch <- res{seq, err} }})
	r := <-ch
	return r.seq, r.err
}

// SaveCheckpoint queues checkpoint entries behind everything appended
// before, without waiting for the commit.
func (o *Outbox) SaveCheckpoint(entries map[string][]byte) {
	o.Append(Request{Checkpoint: entries})
}

// Checkpoint returns the stored checkpoint entries.
func (o *Outbox) Checkpoint() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoint).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: read checkpoint: %w", err)
	}
	return out, nil
}

// Notify returns a channel that receives after records are committed.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Stats returns the current statistics.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := Stats{LastSeq: o.lastSeq, ByKind: make(map[Kind]KindStats, len(Kinds))}
	for _, k := range Kinds {
		ks := o.kinds[k]
		s.ByKind[k] = ks
		s.Depth += ks.Depth
		s.Bytes += ks.Bytes
		s.Drops += ks.Dropped()
	}
	return s
}

// Pending returns up to max records with seq > after, in seq order.
func (o *Outbox) Pending(after uint64, max int) ([]Record, error) {
	var out []Record
	o.mu.Lock()
	check := len(o.deleting) > 0
	// Logged records not yet in the file, taken before the file is read:
	// those applied meanwhile are in both, and skipped below.
	var tail []walEntry
	for i := range o.logged {
		if o.logged[i].seq > after {
			tail = o.logged[i:]
			break
		}
	}
	o.mu.Unlock()
	deleting := func(seq uint64) bool {
		if !check {
			return false
		}
		o.mu.Lock()
		_, ok := o.deleting[seq]
		o.mu.Unlock()
		return ok
	}
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			if len(v) < 1 {
				return fmt.Errorf("record %d is empty", binary.BigEndian.Uint64(k))
			}
			seq := binary.BigEndian.Uint64(k)
			if deleting(seq) {
				continue // acknowledged; its deletion is not committed yet
			}
			out = append(out, Record{Seq: seq, Kind: Kind(v[0]), Data: append([]byte(nil), v[1:]...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: read pending: %w", err)
	}
	last := after
	if len(out) > 0 {
		last = out[len(out)-1].Seq
	}
	for _, e := range tail {
		if len(out) >= max {
			break
		}
		if e.seq <= last || deleting(e.seq) {
			continue
		}
		out = append(out, Record{Seq: e.seq, Kind: e.kind, Data: append([]byte(nil), e.data...)})
	}
	return out, nil
}

// Delete removes the records with the given seqs, acknowledged by the
// uplink, and counts them delivered, in the next group commit, and waits
// for that commit. Missing seqs (dropped by the policy meanwhile, or
// deleted before) are ignored.
func (o *Outbox) Delete(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := o.DeleteLater(seqs...); err != nil {
		return err
	}
	return o.Flush()
}

// Flush waits until everything appended and every deletion queued before
// it is committed (a commit takes the queued deletions when it starts,
// after it took Flush's empty request from the queue).
func (o *Outbox) Flush() error {
	ch := make(chan error, 1)
	o.Append(Request{Done: func(_ uint64, err error) { ch <- err }})
	return <-ch
}

// DeleteLater queues the deletion of the records with the given seqs,
// acknowledged by the uplink, and returns at once. The deletions ride on
// the next commit the writer makes anyway (appends, checkpoints), or are
// committed on their own after Options.DeleteDelay, or by Close; until
// then Pending skips those records, and Stats still counts them queued.
// A crash before that commit leaves them in the file: they are sent again
// after the restart with their message ids, and the cloud drops the
// duplicates (JetStream's duplicate window, then its per-agent high-water
// mark), so this trades a rare resend for a synced transaction per
// acknowledged batch. It fails only when the outbox is closed.
func (o *Outbox) DeleteLater(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	o.closeMu.RLock()
	defer o.closeMu.RUnlock()
	if o.closed {
		return ErrClosed
	}
	o.mu.Lock()
	o.dels = append(o.dels, seqs...)
	for _, s := range seqs {
		o.deleting[s] = struct{}{}
	}
	many := len(o.dels) >= maxQueuedDeletes
	o.mu.Unlock()
	if many {
		// A backlog draining with nothing else to commit: do not let the
		// deletions pile up for DeleteDelay; an empty request commits them.
		select {
		case o.queue <- Request{}:
		default:
		}
		return nil
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// maxQueuedDeletes is how many deletions DeleteLater lets wait for another
// commit before it asks for one of their own.
const maxQueuedDeletes = 4096

// putCheckpoint stores the checkpoint entries of one request in cb (a nil
// value deletes its key).
func putCheckpoint(cb *bolt.Bucket, entries map[string][]byte) error {
	for k, v := range entries {
		var err error
		if v == nil {
			err = cb.Delete([]byte(k))
		} else {
			err = cb.Put([]byte(k), v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// arm starts *t (made if nil) to fire after d and returns its channel.
func arm(t **time.Timer, d time.Duration) <-chan time.Time {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	return (*t).C
}

// applyDeletes deletes the records of seqs in tx, counting them delivered
// in st.
// gone, if not nil, receives the same counts (Delivered, Depth and Bytes
// removed).
func applyDeletes(tx *bolt.Tx, st *txState, seqs []uint64, gone *[numKinds]KindStats) error {
	b := tx.Bucket(bucketRecords)
	for _, s := range seqs {
		k := u64(s)
		v := b.Get(k)
		if v == nil {
			continue
		}
		kind := Kind(v[0])
		ks := &st.kinds[kind]
		ks.Delivered++
		ks.Depth--
		ks.Bytes -= uint64(len(v))
		if gone != nil {
			g := &gone[kind]
			g.Delivered++
			g.Depth++
			g.Bytes += uint64(len(v))
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		if kind != KindEvent {
			if err := tx.Bucket(idxBucket(kind)).Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close stops accepting appends, commits what is queued, and closes the file.
func (o *Outbox) Close() error {
	o.closeMu.Lock()
	if o.closed {
		o.closeMu.Unlock()
		return nil
	}
	o.closed = true
	close(o.queue)
	o.closeMu.Unlock()
	<-o.done
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	return nil
}

func (o *Outbox) writer() {
	defer close(o.done)
	batch := make([]Request, 0, o.opts.MaxBatch)
	res := make([]result, 0, o.opts.MaxBatch)
	var timer *time.Timer
	var timerC <-chan time.Time // armed while deletions wait
	kick := o.kick
	if o.wal != nil {
		kick = nil // the applier commits the deletions
	}
	var synced chan logSync
	if o.wal != nil {
		synced = o.synced
	}
	for {
		batch = batch[:0]
		queue := o.queue
		if o.wal != nil && !o.canLog() {
			queue = nil // every log sync busy: wait for one
		}
		select {
		case s := <-synced:
			o.syncDone(s)
			continue
		case req, ok := <-queue:
			if !ok {
				// Closed and drained: commit the deletions still queued.
				if o.wal != nil {
					o.waitLog()
					o.waitSyncs()
					o.enqueue(applyItem{stop: true})
					<-o.applyDone
					o.closeSyncFiles()
					o.wal.close()
					return
				}
				o.commit(nil, res[:0])
				return
			}
			batch = append(batch, req)
		fill:
			for len(batch) < o.opts.MaxBatch {
				select {
				case r, ok := <-o.queue:
					if !ok {
						break fill
					}
					batch = append(batch, r)
				default:
					break fill
				}
			}
		case <-kick:
			if timerC == nil {
				timerC = arm(&timer, o.opts.DeleteDelay)
			}
			continue
		case <-timerC:
			timerC = nil
		}
		if o.wal != nil {
			o.commitLog(batch)
		} else {
			res = o.commit(batch, res[:0])
		}
		for i := range batch {
			batch[i] = Request{} // release closures
		}
	}
}

type result struct {
	seq uint64
	err error
}

// txState is the writer's view of the outbox inside one transaction.
type txState struct {
	lastSeq uint64
	kinds   [numKinds]KindStats
}

func (s *txState) bytes() uint64 {
	var b uint64
	for _, k := range Kinds {
		b += s.kinds[k].Bytes
	}
	return b
}

func (o *Outbox) commit(batch []Request, res []result) []result {
	res = res[:len(batch)]
	if !o.hasWork(batch) { // only Flush's empty requests: nothing to commit
		for i, req := range batch {
			res[i] = result{}
			if req.Done != nil {
				req.Done(0, nil)
			}
		}
		return res
	}
	// Writers are serialised (bbolt has one write transaction at a time;
	// wmu makes the counters follow the same order).
	o.wmu.Lock()
	var st txState
	var dels []uint64
	info := CommitInfo{Requests: len(batch), Wait: o.oldestWait(batch)}
	err := o.update(&info, func(tx *bolt.Tx) error {
		o.mu.Lock()
		st = txState{lastSeq: o.lastSeq, kinds: o.kinds}
		dels, o.dels = o.dels, nil
		o.mu.Unlock()
		// Deletions first: what they free is room for this batch.
		if err := applyDeletes(tx, &st, dels, nil); err != nil {
			return err
		}
		rb, kb, ksb, cb := tx.Bucket(bucketRecords), tx.Bucket(bucketKeys), tx.Bucket(bucketKeySeqs), tx.Bucket(bucketCheckpoint)
		for i, req := range batch {
			res[i] = result{}
			if err := putCheckpoint(cb, req.Checkpoint); err != nil {
				return err
			}
			if req.Build == nil {
				continue
			}
			if !req.Kind.valid() {
				res[i].err = fmt.Errorf("outbox: unknown kind %d", req.Kind)
				continue
			}
			ks := &st.kinds[req.Kind]
			if req.Key != nil {
				if v := kb.Get(req.Key); v != nil {
					ks.Duplicates++
					res[i] = result{seq: binary.BigEndian.Uint64(v), err: ErrDuplicate}
					continue
				}
			}
			data, err := req.Build(st.lastSeq + 1)
			if err != nil {
				res[i].err = fmt.Errorf("outbox: build record: %w", err)
				continue
			}
			size := uint64(len(data) + 1)
			if ok, err := o.makeRoom(tx, &st, req.Kind, size); err != nil {
				return err
			} else if !ok {
				ks.Refused++
				res[i].err = ErrFull
				continue
			}
			st.lastSeq++
			k := u64(st.lastSeq)
			v := make([]byte, 0, size)
			v = append(append(v, byte(req.Kind)), data...)
			if err := rb.Put(k, v); err != nil {
				return err
			}
			if req.Kind != KindEvent {
				if err := tx.Bucket(idxBucket(req.Kind)).Put(k, nil); err != nil {
					return err
				}
			}
			if req.Key != nil {
				if err := kb.Put(req.Key, k); err != nil {
					return err
				}
				if err := ksb.Put(k, req.Key); err != nil {
					return err
				}
			}
			ks.Appended++
			ks.Depth++
			ks.Bytes += size
			res[i].seq = st.lastSeq
		}
		if err := o.pruneKeys(kb, ksb, st.lastSeq); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keySeq, u64(st.lastSeq)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyCounts, encodeCounts(st.kinds))
	})
	if err != nil {
		err = fmt.Errorf("outbox: commit: %w", err)
		for i := range res {
			res[i] = result{err: err}
		}
		info.Err = err
		// The deletions wait for the next commit.
		o.mu.Lock()
		o.dels = append(dels, o.dels...)
		o.mu.Unlock()
		select {
		case o.kick <- struct{}{}:
		default:
		}
	} else {
		o.mu.Lock()
		o.kinds, o.bkinds = st.kinds, st.kinds
		o.lastSeq = st.lastSeq
		o.applied.Store(st.lastSeq)
		for _, s := range dels {
			delete(o.deleting, s)
		}
		o.mu.Unlock()
	}
	o.wmu.Unlock()
	if o.opts.OnCommit != nil {
		info.Deletes = len(dels)
		for i, req := range batch {
			info.Checkpoints += len(req.Checkpoint)
			if req.Build != nil && res[i].err == nil {
				info.Records++
			}
		}
		o.opts.OnCommit(info)
	}
	for i, req := range batch {
		if req.Done != nil {
			req.Done(res[i].seq, res[i].err)
		}
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return res
}

// update runs fn in a write transaction and commits it, as bbolt's
// DB.Update does, timing the two parts into info.
func (o *Outbox) update(info *CommitInfo, fn func(*bolt.Tx) error) error {
	t0 := time.Now()
	tx, err := o.db.Begin(true)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	t1 := time.Now()
	info.Build = t1.Sub(t0)
	committed = true
	err = tx.Commit()
	info.Commit = time.Since(t1)
	st := tx.Stats()
	info.Writes = int(st.GetWrite())
	return err
}

// hasWork reports whether a commit of batch would store or delete anything.
func (o *Outbox) hasWork(batch []Request) bool {
	for _, req := range batch {
		if req.Build != nil || len(req.Checkpoint) > 0 {
			return true
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.dels) > 0
}

// makeRoom applies the drop policy for a new record of kind and size: it
// reports whether the record fits, pushing out older records of a lower or
// the same evictable class if that makes enough room (and only then).
func (o *Outbox) makeRoom(tx *bolt.Tx, st *txState, kind Kind, size uint64) (bool, error) {
	max := uint64(o.opts.MaxBytes)
	used := st.bytes()
	if used+size <= max {
		return true, nil
	}
	if size > max {
		return false, nil
	}
	var victims []Kind
	var freeable uint64
	for _, k := range []Kind{KindSummary, KindUncertain} {
		if k.rank() <= kind.rank() {
			victims = append(victims, k)
			freeable += st.kinds[k].Bytes
		}
	}
	if used-freeable+size > max {
		return false, nil // dropping everything allowed would not make room
	}
	rb := tx.Bucket(bucketRecords)
	for _, k := range victims {
		c := tx.Bucket(idxBucket(k)).Cursor()
		for key, _ := c.First(); key != nil && used+size > max; key, _ = c.First() {
			v := rb.Get(key)
			if v != nil {
				n := uint64(len(v))
				if err := rb.Delete(key); err != nil {
					return false, err
				}
				ks := &st.kinds[k]
				ks.Evicted++
				ks.Depth--
				ks.Bytes -= n
				used -= n
			}
			if err := c.Delete(); err != nil {
				return false, err
			}
		}
		if used+size <= max {
			return true, nil
		}
	}
	return used+size <= max, nil
}

// pruneKeys forgets the keys of records more than KeepKeys seqs old.
func (o *Outbox) pruneKeys(kb, ksb *bolt.Bucket, lastSeq uint64) error {
	if lastSeq <= o.opts.KeepKeys {
		return nil
	}
	limit := lastSeq - o.opts.KeepKeys
	c := ksb.Cursor()
	for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= limit; k, v = c.First() {
		if err := kb.Delete(v); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

const countFields = 5

func encodeCounts(kinds [numKinds]KindStats) []byte {
	b := make([]byte, 0, numKinds*countFields*8)
	for _, k := range kinds {
		for _, v := range []uint64{k.Appended, k.Delivered, k.Evicted, k.Refused, k.Duplicates} {
			b = binary.BigEndian.AppendUint64(b, v)
		}
	}
	return b
}

func decodeCounts(b []byte) [numKinds]KindStats {
	var kinds [numKinds]KindStats
	if len(b) != numKinds*countFields*8 {
		return kinds
	}
	for i := range kinds {
		f := func(j int) uint64 { return binary.BigEndian.Uint64(b[(i*countFields+j)*8:]) }
		kinds[i] = KindStats{Appended: f(0), Delivered: f(1), Evicted: f(2), Refused: f(3), Duplicates: f(4)}
	}
	return kinds
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// EventKey is the idempotence key of an event: its stream and the reading's
// time (nanoseconds, big-endian, so that one stream's keys sort by time).
func EventKey(stream string, ts time.Time) []byte {
	k := make([]byte, 0, len(stream)+9)
	k = append(k, stream...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(ts.UnixNano()))
}
