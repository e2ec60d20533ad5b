// Package outbox is the agent's durable queue of what must reach the cloud:
// events and summaries, each with a strictly increasing per-agent sequence
// number, kept in a bbolt file until the uplink's publish is acknowledged.
//
// Appends are group-committed: one writer goroutine takes everything queued
// and commits it in one transaction, then calls each record's Done. The MQTT
// message a record came from is acknowledged from Done, after the commit.
//
// Bound: the records held may not exceed Options.MaxBytes. Low-priority
// records (uncertain events, summaries) are refused once they would take the
// outbox past 90% of MaxBytes, anomalies only past 100%. Every refused record
// is counted in Drops, which is stored with the outbox and survives restarts.
package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors.
var (
	// ErrFull: the record was refused by the full-outbox policy and counted.
	ErrFull = errors.New("outbox: full, record dropped")
	// ErrClosed: the outbox is closed.
	ErrClosed = errors.New("outbox: closed")
)

// Kind is what a record holds.
type Kind byte

// Kinds.
const (
	KindEvent   Kind = 1
	KindSummary Kind = 2
)

var (
	bucketRecords = []byte("records")
	bucketMeta    = []byte("meta")
	keySeq        = []byte("seq")
	keyDrops      = []byte("drops")
)

// Options configure an outbox. The zero value is the default.
type Options struct {
	// MaxBytes bounds the record bytes held. Default 64 MiB.
	MaxBytes int64
	// MaxBatch bounds the records committed in one transaction. Default 1024.
	MaxBatch int
	// QueueLen is how many appends may wait for the writer before Append
	// blocks. Default 4096.
	QueueLen int
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
	return o
}

// Record is one stored record.
type Record struct {
	Seq  uint64
	Kind Kind
	Data []byte
}

// Request asks for one record to be appended.
type Request struct {
	Kind Kind
	// Low marks a low-priority record (uncertain event, summary): refused
	// first when the outbox fills.
	Low bool
	// Build returns the record's bytes given its sequence number (so that the
	// number can be written into the record). Called on the writer goroutine.
	Build func(seq uint64) ([]byte, error)
	// Done, if set, is called on the writer goroutine once the record is
	// committed (err nil) or refused (ErrFull, ErrClosed, a Build or
	// storage error). It must not block for long.
	Done func(seq uint64, err error)
}

// Stats describe the outbox.
type Stats struct {
	// Depth and Bytes are the records held and their bytes.
	Depth, Bytes uint64
	// Drops counts records refused by the full-outbox policy, ever.
	Drops uint64
	// LastSeq is the last sequence number given out.
	LastSeq uint64
}

// Outbox is a durable record queue. Its methods are safe for concurrent use.
type Outbox struct {
	db    *bolt.DB
	opts  Options
	queue chan Request

	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}

	mu     sync.Mutex
	stats  Stats
	notify chan struct{}
}

// Open opens (creating if needed) the outbox file at path.
func Open(path string, opts Options) (*Outbox, error) {
	opts = opts.withDefaults()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	o := &Outbox{db: db, opts: opts, queue: make(chan Request, opts.QueueLen), done: make(chan struct{}), notify: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		rb, err := tx.CreateBucketIfNotExists(bucketRecords)
		if err != nil {
			return err
		}
		mb, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		o.stats.LastSeq = getU64(mb, keySeq)
		o.stats.Drops = getU64(mb, keyDrops)
		return rb.ForEach(func(k, v []byte) error {
			o.stats.Depth++
			o.stats.Bytes += uint64(len(v))
			if s := binary.BigEndian.Uint64(k); s > o.stats.LastSeq {
				o.stats.LastSeq = s // a record beyond the stored seq must never be reused
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	go o.writer()
	return o, nil
}

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
	o.queue <- req
}

// AppendWait appends and waits for the commit, returning the record's seq.
func (o *Outbox) AppendWait(kind Kind, low bool, build func(seq uint64) ([]byte, error)) (uint64, error) {
	type res struct {
		seq uint64
		err error
	}
	ch := make(chan res, 1)
	o.Append(Request{Kind: kind, Low: low, Build: build, Done: func(seq uint64, err error) { ch <- res{seq, err} }})
	r := <-ch
	return r.seq, r.err
}

// Notify returns a channel that receives after records are committed.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Stats returns the current statistics.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Pending returns up to max records with seq > after, in seq order.
func (o *Outbox) Pending(after uint64, max int) ([]Record, error) {
	var out []Record
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			if len(v) < 1 {
				return fmt.Errorf("record %d is empty", binary.BigEndian.Uint64(k))
			}
			out = append(out, Record{Seq: binary.BigEndian.Uint64(k), Kind: Kind(v[0]), Data: append([]byte(nil), v[1:]...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: read pending: %w", err)
	}
	return out, nil
}

// Delete removes the records with the given seqs (acknowledged by the
// uplink). Missing seqs are ignored.
func (o *Outbox) Delete(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	var n, bytes uint64
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for _, s := range seqs {
			k := u64(s)
			if v := b.Get(k); v != nil {
				n++
				bytes += uint64(len(v))
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox: delete: %w", err)
	}
	o.mu.Lock()
	o.stats.Depth -= n
	o.stats.Bytes -= bytes
	o.mu.Unlock()
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
	for req := range o.queue {
		batch = append(batch[:0], req)
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
		o.commit(batch)
	}
}

type result struct {
	seq uint64
	err error
}

func (o *Outbox) commit(batch []Request) {
	res := make([]result, len(batch))
	o.mu.Lock()
	st := o.stats
	o.mu.Unlock()
	base := st
	err := o.db.Update(func(tx *bolt.Tx) error {
		rb, mb := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
		s := st
		for i, req := range batch {
			res[i] = result{}
			data, err := req.Build(s.LastSeq + 1)
			if err != nil {
				res[i].err = fmt.Errorf("outbox: build record: %w", err)
				continue
			}
			size := int64(len(data) + 1)
			limit := o.opts.MaxBytes
			if req.Low {
				limit = limit * 9 / 10
			}
			if int64(s.Bytes)+size > limit {
				s.Drops++
				res[i].err = ErrFull
				continue
			}
			s.LastSeq++
			v := make([]byte, 0, len(data)+1)
			v = append(append(v, byte(req.Kind)), data...)
			if err := rb.Put(u64(s.LastSeq), v); err != nil {
				return err
			}
			s.Depth++
			s.Bytes += uint64(size)
			res[i].seq = s.LastSeq
		}
		if err := mb.Put(keySeq, u64(s.LastSeq)); err != nil {
			return err
		}
		if err := mb.Put(keyDrops, u64(s.Drops)); err != nil {
			return err
		}
		st = s
		return nil
	})
	if err != nil {
		err = fmt.Errorf("outbox: commit: %w", err)
		for i := range res {
			res[i] = result{err: err}
		}
	} else {
		o.mu.Lock()
		// Deletes may have run meanwhile: apply only what this batch added.
		o.stats.Depth += st.Depth - base.Depth
		o.stats.Bytes += st.Bytes - base.Bytes
		o.stats.LastSeq = st.LastSeq
		o.stats.Drops = st.Drops
		o.mu.Unlock()
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
