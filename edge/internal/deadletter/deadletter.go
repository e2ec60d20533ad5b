// Package deadletter keeps samples of payloads the agent could not decode:
// a bounded bbolt bucket of the most recent entries (topic, reason, error,
// time, the first bytes of the payload), oldest evicted first, so an
// operator can see what a misbehaving publisher sends.
//
// The store never stops the agent and costs little under a storm of
// garbage: Add never blocks (entries are written by a background writer,
// many per transaction), writes are rate limited, and store errors are
// logged and counted, never returned to the caller. All methods are safe
// on a nil *Store (which keeps nothing), so a store that failed to open
// can simply be left out.
package deadletter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults filled in by Open.
const (
	DefaultMaxEntries = 1000
	DefaultMaxPayload = 1024
	DefaultRate       = 100
	DefaultQueue      = 256
	maxErrorText      = 512
	maxTopic          = 256
)

var bucketName = []byte("deadletter")

// Options configure a Store. The zero value means the defaults.
type Options struct {
	// MaxEntries bounds the entries kept; the oldest are evicted. Default
	// 1000.
	MaxEntries int
	// MaxPayload bounds the payload bytes kept per entry. Default 1024.
	MaxPayload int
	// Rate bounds the entries accepted per second (a token bucket holding
	// one second's worth); further entries are counted and dropped.
	// Default 100; negative means no limit.
	Rate float64
	// Queue is how many accepted entries may wait for the writer; beyond
	// it entries are counted and dropped. Default 256.
	Queue int
	// Now is the clock, for entry times and the rate limit. Default
	// time.Now.
	Now func() time.Time
	// Logger for store errors. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Entry is one dead letter.
type Entry struct {
	// Seq numbers entries in the order they were written.
	Seq uint64 `json:"seq"`
	// Time the payload was dead-lettered.
	Time time.Time `json:"time"`
	// Topic the payload arrived on.
	Topic string `json:"topic"`
	// Reason is the decode error's reason label.
	Reason string `json:"reason"`
	// Error is the error text (at most 512 bytes).
	Error string `json:"error"`
	// Size is the full payload's length.
	Size int `json:"size"`
	// Payload is the payload's first MaxPayload bytes.
	Payload []byte `json:"payload"`
}

// Stats counts what the store did since it was opened.
type Stats struct {
	// Offered counts Add calls.
	Offered uint64
	// Written counts entries committed to the file.
	Written uint64
	// RateLimited and QueueFull count entries dropped before writing.
	RateLimited, QueueFull uint64
	// Evicted counts entries removed to keep the bound.
	Evicted uint64
	// Errors counts failed store transactions (their entries are lost).
	Errors uint64
	// Entries is the number of entries held.
	Entries int
}

type item struct {
	e    Entry
	done chan struct{} // a flush marker when set
}

// Store is an open dead-letter store.
type Store struct {
	opts  Options
	db    *bolt.DB
	queue chan item
	stop  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex // rate limiter and closed
	tokens float64
	last   time.Time
	closed bool

	offered, written, rateLimited, queueFull, evicted, errs atomic.Uint64
	entries                                                 atomic.Int64
	seq                                                     uint64 // writer only
	logged                                                  uint64 // writer only
}

// Open opens (creating if needed) the store at path and starts its writer.
// Entries beyond opts.MaxEntries left by an earlier run are evicted.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("deadletter: open %s: %w", path, err)
	}
	s := &Store{opts: opts, db: db, queue: make(chan item, opts.Queue), stop: make(chan struct{}),
		tokens: opts.Rate, last: opts.Now()}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		n := b.Stats().KeyN
		if k, _ := b.Cursor().Last(); k != nil {
			s.seq = binary.BigEndian.Uint64(k)
		}
		n -= s.evict(b, n)
		s.entries.Store(int64(n))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("deadletter: %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// Add offers a dead letter: the payload received on topic failed with
// reason and err. It copies what it keeps, never blocks, and reports
// whether the entry was queued for writing (false when rate limited, the
// queue is full, or the store is nil or closed).
func (s *Store) Add(topic, reason string, err error, payload []byte) bool {
	if s == nil {
		return false
	}
	s.offered.Add(1)
	now := s.opts.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if s.opts.Rate > 0 {
		if el := now.Sub(s.last).Seconds(); el > 0 {
			s.tokens = min(s.tokens+el*s.opts.Rate, s.opts.Rate)
		}
		s.last = now
		if s.tokens < 1 {
			s.mu.Unlock()
			s.rateLimited.Add(1)
			return false
		}
		s.tokens--
	}
	e := Entry{Time: now.UTC(), Topic: truncate(topic, maxTopic), Reason: reason, Size: len(payload)}
	if err != nil {
		e.Error = truncate(err.Error(), maxErrorText)
	}
	e.Payload = append([]byte(nil), payload[:min(len(payload), s.opts.MaxPayload)]...)
	// Sent under mu, so that Close (which sets closed under mu before the
	// writer's final drain) cannot strand an entry in the queue.
	defer s.mu.Unlock()
	select {
	case s.queue <- item{e: e}:
		return true
	default:
		s.queueFull.Add(1)
		return false
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Flush waits until every entry queued before it was written (or failed).
func (s *Store) Flush() {
	if s == nil {
		return
	}
	done := make(chan struct{})
	select {
	case s.queue <- item{done: done}:
	case <-s.stop:
		return
	}
	select {
	case <-done:
	case <-s.stop:
	}
}

// Entries returns the entries held, oldest first.
func (s *Store) Entries() ([]Entry, error) {
	if s == nil {
		return nil, nil
	}
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName).ForEach(func(_, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("deadletter: read: %w", err)
	}
	return out, nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	return Stats{Offered: s.offered.Load(), Written: s.written.Load(), RateLimited: s.rateLimited.Load(),
		QueueFull: s.queueFull.Load(), Evicted: s.evicted.Load(), Errors: s.errs.Load(), Entries: int(s.entries.Load())}
}

// Close writes what is queued and closes the file.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("deadletter: close: %w", err)
	}
	return nil
}

// writer writes queued entries, as many per transaction as are waiting.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]item, 0, 64)
	for {
		batch = batch[:0]
		select {
		case it := <-s.queue:
			batch = append(batch, it)
		case <-s.stop:
			// Drain what was accepted before Close.
			for {
				select {
				case it := <-s.queue:
					batch = append(batch, it)
					continue
				default:
				}
				break
			}
			s.write(batch)
			return
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case it := <-s.queue:
				batch = append(batch, it)
			default:
				break more
			}
		}
		s.write(batch)
	}
}

func (s *Store) write(batch []item) {
	var n int
	for _, it := range batch {
		if it.done == nil {
			n++
		}
	}
	if n > 0 {
		seq := s.seq
		var evicted int
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketName)
			if b == nil {
				return errors.New("bucket missing")
			}
			for _, it := range batch {
				if it.done != nil {
					continue
				}
				seq++
				it.e.Seq = seq
				v, err := json.Marshal(it.e)
				if err != nil {
					return err
				}
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], seq)
				if err := b.Put(k[:], v); err != nil {
					return err
				}
			}
			evicted = s.evict(b, int(s.entries.Load())+n)
			return nil
		})
		if err != nil {
			s.errs.Add(1)
			s.logged++
			if s.logged&(s.logged-1) == 0 { // 1st, 2nd, 4th...: bounded logging
				s.opts.Logger.Error("dead-letter store write failed; entries lost", "entries", n, "err", err, "failures", s.logged)
			}
		} else {
			s.seq = seq
			s.written.Add(uint64(n))
			s.evicted.Add(uint64(evicted))
			s.entries.Add(int64(n - evicted))
		}
	}
	for _, it := range batch {
		if it.done != nil {
			close(it.done)
		}
	}
}

// evict deletes the oldest entries of b, which holds n, down to the bound,
// and returns how many it deleted.
func (s *Store) evict(b *bolt.Bucket, n int) int {
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n-len(old) > s.opts.MaxEntries; k, _ = c.Next() {
		old = append(old, append([]byte(nil), k...))
	}
	del := 0
	for _, k := range old {
		if b.Delete(k) == nil {
			del++
		}
	}
	return del
}
