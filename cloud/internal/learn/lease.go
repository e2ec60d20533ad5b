package learn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
)

// DefaultLease is how long a replica holds the learning loop's leader
// lease without renewing it (the TTL of the bucket names.BucketLeaders when
// this replica creates it).
const DefaultLease = 15 * time.Second

// leaders binds the bucket of leader leases, creating it with a TTL of ttl
// when it does not exist. When it exists its TTL is the lease (every
// replica must use the same); a TTL of 0 (keys never expire) is refused.
func leaders(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (jetstream.KeyValue, time.Duration, error) {
	kv, err := js.KeyValue(ctx, names.BucketLeaders)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: names.BucketLeaders, History: 1, TTL: ttl,
			Description: "leader leases of outpost-cloud replicas (a key per job; the TTL is the lease)",
		})
		if errors.Is(err, jetstream.ErrBucketExists) { // another replica was quicker
			kv, err = js.KeyValue(ctx, names.BucketLeaders)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("learn: KV bucket %s: %w", names.BucketLeaders, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("learn: KV bucket %s: %w", names.BucketLeaders, err)
	}
	if st.TTL() <= 0 {
		return nil, 0, fmt.Errorf("learn: KV bucket %s has no TTL: a dead leader's lease would never expire (delete the bucket; it is recreated)", names.BucketLeaders)
	}
	return kv, st.TTL(), nil
}

// lease is a leader lease: the key in a KV bucket whose TTL expires it
// unless its holder renews it. A replica takes the lease by creating the
// key (kv.Create fails while it exists), renews it every TTL/3 with an
// update checked against the revision it last wrote, and releases it by
// deleting it at that revision. The server's clock expires the key, so a
// replica that dies loses the lease TTL after its last renewal; one that
// cannot renew steps down (calls lose) once 2/3 of the TTL have passed
// since it sent its last successful renewal, before the key can expire.
type lease struct {
	kv   jetstream.KeyValue
	key  string
	me   []byte
	ttl  time.Duration
	log  *slog.Logger
	gain func() error // called when the lease is taken; an error releases it
	lose func()       // called when the lease is lost or released

	held atomic.Bool
	// crashed makes Stop leave the key behind, as a process that dies
	// does (tests).
	crashed atomic.Bool
	rev     uint64    // the revision we last wrote (lease goroutine only)
	sent    time.Time // when we sent the write that gave rev

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// holderID names this process and lease: host, pid and random bytes, so
// that no two leases write the same value.
func holderID() string {
	host, _ := os.Hostname()
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// startLease starts contending for key.
func startLease(kv jetstream.KeyValue, key string, ttl time.Duration, log *slog.Logger, gain func() error, lose func()) *lease {
	l := &lease{kv: kv, key: key, me: []byte(holderID()), ttl: ttl, log: log, gain: gain, lose: lose,
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Held reports whether this replica holds the lease.
func (l *lease) Held() bool { return l.held.Load() }

func (l *lease) run() {
	defer close(l.done)
	every := l.ttl / 3
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.release()
			return
		case <-t.C:
		}
		l.step()
		t.Reset(every)
	}
}

// step takes the lease when it is free, or renews it.
func (l *lease) step() {
	ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
	defer cancel()
	sent := time.Now()
	if !l.held.Load() {
		rev, err := l.kv.Create(ctx, l.key, l.me)
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				l.log.Debug("learn: leader lease not taken", "err", err)
			}
			return
		}
		l.rev, l.sent = rev, sent
		l.held.Store(true)
		if err := l.gain(); err != nil {
			l.log.Warn("learn: took the leader lease but cannot lead; releasing it", "err", err)
			l.held.Store(false)
			l.lose()
			l.delete()
		}
		return
	}
	rev, err := l.kv.Update(ctx, l.key, l.me, l.rev)
	if err == nil {
		l.rev, l.sent = rev, sent
		return
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		// The revision moved. When our earlier write went through but its
		// answer was lost, the key still holds our id.
		if e, gerr := l.kv.Get(ctx, l.key); gerr == nil && string(e.Value()) == string(l.me) {
			l.rev = e.Revision()
			if rev, err = l.kv.Update(ctx, l.key, l.me, l.rev); err == nil {
				l.rev, l.sent = rev, sent
				return
			}
		}
		l.log.Warn("learn: leader lease taken by another replica; no longer running the learning loop", "err", err)
		l.stepDown()
		return
	}
	if time.Since(l.sent) >= l.ttl-l.ttl/3 {
		l.log.Warn("learn: cannot renew the leader lease; no longer running the learning loop", "err", err)
		l.stepDown()
		return
	}
	l.log.Debug("learn: renew leader lease (retrying)", "err", err)
}

func (l *lease) stepDown() {
	l.held.Store(false)
	l.lose()
}

// release gives the lease up (on stop): lose, then delete the key at our
// revision so that another replica takes over at once.
func (l *lease) release() {
	if !l.held.Load() {
		return
	}
	l.stepDown()
	if !l.crashed.Load() {
		l.delete()
	}
}

func (l *lease) delete() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
		l.log.Debug("learn: release leader lease", "err", err)
	}
}

// Stop releases the lease (when held) and stops contending.
func (l *lease) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}
