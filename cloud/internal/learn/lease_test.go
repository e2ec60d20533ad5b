package learn

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// contender is one replica's lease with a record of its terms.
type contender struct {
	l *lease
	// terms are [start, end) of each time it held the lease; end zero
	// while it holds it.
	mu    sync.Mutex
	terms [][2]time.Time
	kvJS  jetstream.JetStream
}

func (c *contender) leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.terms) > 0 && c.terms[len(c.terms)-1][1].IsZero()
}

func contend(t *testing.T, url string, ttl time.Duration) *contender {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, got, err := leaders(context.Background(), js, ttl)
	if err != nil {
		t.Fatal(err)
	}
	c := &contender{kvJS: js}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c.l = startLease(kv, names.LeaderLearn, got, log, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.terms = append(c.terms, [2]time.Time{time.Now()})
		return nil
	}, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.terms[len(c.terms)-1][1] = time.Now()
	})
	t.Cleanup(c.l.Stop)
	return c
}

func waitLease(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLeaseOneLeader: of three replicas one leads; while it renews no other
// takes over (over several TTLs); when it stops the lease is released and
// another leads; when that one dies without releasing (crash), a third
// takes over once the key expires; when another writer takes the key, it
// steps down. No two terms overlap.
func TestLeaseOneLeader(t *testing.T) {
	srv := testenv.StartNATS(t)
	const ttl = time.Second
	cs := []*contender{contend(t, srv.URL(), ttl), contend(t, srv.URL(), ttl), contend(t, srv.URL(), ttl)}
	holders := func() (out []int) {
		for i, c := range cs {
			if c.l.Held() {
				out = append(out, i)
			}
		}
		return out
	}
	waitLease(t, "a leader", func() bool { return len(holders()) == 1 })
	first := holders()[0]
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if l := holders(); len(l) != 1 || l[0] != first {
			t.Fatalf("leaders %v while %d renews", l, first)
		}
	}
	// A clean stop releases the lease.
	cs[first].l.Stop()
	waitLease(t, "a second leader", func() bool { return len(holders()) == 1 })
	second := holders()[0]
	if second == first || cs[first].leading() {
		t.Fatalf("after stopping %d the leader is %d", first, second)
	}
	// A crash leaves the key: the last one takes over once it expires.
	stopped := time.Now()
	cs[second].l.crashed.Store(true)
	cs[second].l.Stop()
	waitLease(t, "a third leader", func() bool { return len(holders()) == 1 })
	third := holders()[0]
	t.Logf("leaders %d, %d, %d; the third took over %s after the crash (TTL %s)", first, second, third, time.Since(stopped).Round(10*time.Millisecond), ttl)
	if third == first || third == second {
		t.Fatalf("third leader %d", third)
	}
	// Someone else writes the key: the leader steps down at its next
	// renewal, and nobody leads until the key expires.
	kv, _, err := leaders(context.Background(), cs[third].kvJS, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), names.LeaderLearn, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	waitLease(t, "the leader to step down", func() bool { return !cs[third].l.Held() })
	// Terms never overlap.
	var all [][2]time.Time
	for _, c := range cs {
		c.mu.Lock()
		all = append(all, c.terms...)
		c.mu.Unlock()
	}
	for i, a := range all {
		for j, b := range all {
			if i != j && !a[1].IsZero() && a[0].Before(b[0]) && b[0].Before(a[1]) {
				t.Fatalf("terms overlap: %v and %v", a, b)
			}
		}
	}
}
