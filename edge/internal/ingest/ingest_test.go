package ingest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/shared/testenv"
)

type recorder struct {
	mu   sync.Mutex
	got  []string
	skip string // payload not to acknowledge
}

func (r *recorder) handle(m Message) {
	r.mu.Lock()
	r.got = append(r.got, string(m.Payload))
	r.mu.Unlock()
	if string(m.Payload) != r.skip {
		m.Ack()
	}
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if g == s {
			return true
		}
	}
	return false
}

// clients are the two implementations behind Start; the tests that run
// for both hold them to the same contract.
var clients = []struct {
	name string
	paho bool
}{{"lean", false}, {"paho", true}}

func start(t *testing.T, url string, r *recorder, usePaho bool) *Client {
	t.Helper()
	return startConfig(t, Config{URL: url, ClientID: "outpost-edge-test", QoS: 1, Filters: []string{"sensors/+/+"},
		Handler: r.handle, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Paho: usePaho})
}

// startConfig starts a client with cfg and waits until it is connected and
// subscribed; it is closed at the end of the test.
func startConfig(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func publish(t *testing.T, url string, payloads ...string) {
	t.Helper()
	p := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("pub"))
	if tok := p.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer p.Disconnect(100)
	for _, s := range payloads {
		if tok := p.Publish("sensors/a/b", 1, false, s); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnackedIsRedelivered: a message the handler did not acknowledge is
// delivered again to the next session with the same client id.
func TestUnackedIsRedelivered(t *testing.T) {
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) { testUnackedIsRedelivered(t, cl.paho) })
	}
}

func testUnackedIsRedelivered(t *testing.T, usePaho bool) {
	mq := testenv.StartMosquitto(t)
	a := &recorder{skip: "2"}
	ca := start(t, mq.URL(), a, usePaho)
	publish(t, mq.URL(), "1", "2", "3")
	waitFor(t, "three messages", func() bool { return a.has("1") && a.has("2") && a.has("3") })
	ca.Close()

	b := &recorder{}
	cb := start(t, mq.URL(), b, usePaho)
	defer cb.Close()
	waitFor(t, "the unacknowledged message again", func() bool { return b.has("2") })
	publish(t, mq.URL(), "4")
	waitFor(t, "a new message", func() bool { return b.has("4") })
	if b.has("1") || b.has("3") {
		t.Fatalf("acknowledged messages redelivered: %v", b.got)
	}
}

// TestResubscribesAfterBrokerRestart: the broker restarts, keeping the
// session (persistence on) or forgetting it (off); either way the client
// reconnects and its subscriptions hold again (restored by the session, or
// made again).
func TestResubscribesAfterBrokerRestart(t *testing.T) {
	for _, cl := range clients {
		for _, persist := range []string{"true", "false"} {
			t.Run(cl.name+"/persistence-"+persist, func(t *testing.T) {
				testResubscribesAfterBrokerRestart(t, cl.paho, "persistence "+persist)
			})
		}
	}
}

func testResubscribesAfterBrokerRestart(t *testing.T, usePaho bool, conf string) {
	mq := testenv.StartMosquitto(t, conf)
	r := &recorder{}
	c := start(t, mq.URL(), r, usePaho)
	defer c.Close()
	publish(t, mq.URL(), "before")
	waitFor(t, "a message", func() bool { return r.has("before") })
	mq.Restart()
	waitFor(t, "the reconnect", func() bool { return c.Connected() })
	deadline := time.Now().Add(20 * time.Second)
	for !r.has("after") && time.Now().Before(deadline) {
		publish(t, mq.URL(), "after") // the resubscribe may lag the reconnect
		time.Sleep(200 * time.Millisecond)
	}
	if !r.has("after") {
		t.Fatal("no message after the broker restart")
	}
}
