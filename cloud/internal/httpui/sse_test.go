package httpui

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// sseMsg is one parsed server-sent event.
type sseMsg struct {
	event string
	data  string
}

// readSSE parses server-sent events from r into a channel, closed at EOF.
func readSSE(r io.Reader) <-chan sseMsg {
	ch := make(chan sseMsg, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.event != "" || m.data != "" {
					ch <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "event: "):
				m.event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				m.data = line[len("data: "):]
			}
		}
	}()
	return ch
}

// connect opens the stream of srv and returns its messages; the
// connection is closed at cleanup or by cancel.
func connect(t *testing.T, srv *httptest.Server) (<-chan sseMsg, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	return readSSE(res.Body), cancel
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func next(t *testing.T, ch <-chan sseMsg) sseMsg {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no stream message within 20s")
	}
	return sseMsg{}
}

func TestBroadcasterDeliversInOrder(t *testing.T) {
	b := NewBroadcaster(BroadcasterConfig{Logger: quiet()})
	srv := httptest.NewServer(b)
	defer srv.Close()
	defer b.Close()
	msgs, _ := connect(t, srv)
	waitUntil(t, "the client to subscribe", func() bool { return b.Clients() == 1 })
	for i := range 10 {
		b.Publish(SSEEvent, map[string]int{"seq": i})
	}
	b.Publish(SSEVerdict, map[string]string{"decision": "confirmed"})
	for i := range 10 {
		m := next(t, msgs)
		var v struct{ Seq int }
		if m.event != SSEEvent || json.Unmarshal([]byte(m.data), &v) != nil || v.Seq != i {
			t.Fatalf("message %d = %+v", i, m)
		}
	}
	if m := next(t, msgs); m.event != SSEVerdict || m.data != `{"decision":"confirmed"}` {
		t.Fatalf("verdict message = %+v", m)
	}
}

// A client that does not read must not block Publish: what does not fit
// its buffer is dropped for it, counted, and reported to it afterwards, so
// received + reported dropped = published.
func TestBroadcasterSlowClientDroppedNotBlocking(t *testing.T) {
	b := NewBroadcaster(BroadcasterConfig{Buffer: 8, Heartbeat: 20 * time.Millisecond, Logger: quiet()})
	srv := httptest.NewServer(b)
	defer srv.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	waitUntil(t, "the client to subscribe", func() bool { return b.Clients() == 1 })

	// 20,000 messages of 1 KiB, far more than the socket buffers hold,
	// published while the client reads nothing.
	const n = 20000
	payload := map[string]string{"pad": strings.Repeat("x", 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			b.Publish(SSEEvent, payload)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Publish blocked on a client that does not read")
	}
	if b.Dropped() == 0 {
		t.Fatal("nothing was dropped for a client that read nothing")
	}

	// Now the client reads: every message arrives or is reported dropped.
	msgs := readSSE(res.Body)
	var received, dropped uint64
	for received+dropped < n {
		m := next(t, msgs)
		switch m.event {
		case SSEEvent:
			received++
		case SSEDropped:
			var d struct{ Dropped uint64 }
			if err := json.Unmarshal([]byte(m.data), &d); err != nil || d.Dropped == 0 {
				t.Fatalf("dropped message %q: %v", m.data, err)
			}
			dropped += d.Dropped
		}
	}
	if received+dropped != n || dropped != b.Dropped() {
		t.Fatalf("received %d + reported dropped %d, want %d; broadcaster counted %d dropped", received, dropped, n, b.Dropped())
	}
	// A fast client meanwhile gets everything.
	fast, _ := connect(t, srv)
	waitUntil(t, "the second client", func() bool { return b.Clients() == 2 })
	b.Publish(SSEVerdict, map[string]int{"seq": 1})
	for {
		if m := next(t, fast); m.event == SSEVerdict {
			break
		}
	}
}

func TestBroadcasterHeartbeat(t *testing.T) {
	b := NewBroadcaster(BroadcasterConfig{Heartbeat: 10 * time.Millisecond, Logger: quiet()})
	srv := httptest.NewServer(b)
	defer srv.Close()
	defer b.Close()
	msgs, _ := connect(t, srv)
	for range 3 {
		m := next(t, msgs)
		var hb struct{ Time time.Time }
		if m.event != SSEHeartbeat || json.Unmarshal([]byte(m.data), &hb) != nil || hb.Time.IsZero() {
			t.Fatalf("heartbeat = %+v", m)
		}
	}
}

func TestBroadcasterDisconnectAndClose(t *testing.T) {
	b := NewBroadcaster(BroadcasterConfig{MaxClients: 2, Logger: quiet()})
	srv := httptest.NewServer(b)
	defer srv.Close()

	_, cancel := connect(t, srv)
	msgs, _ := connect(t, srv)
	waitUntil(t, "two clients", func() bool { return b.Clients() == 2 })
	// A third is refused with a JSON error while two are connected.
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var e errorBody
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != 503 || e.Code != "503" || e.Message == "" {
		t.Errorf("third client = %d %+v (%v)", res.StatusCode, e, err)
	}
	res.Body.Close()

	// A client that goes away is forgotten.
	cancel()
	waitUntil(t, "the cancelled client to be removed", func() bool { return b.Clients() == 1 })
	b.Publish(SSEEvent, 1) // still fine with one client gone

	// Close ends the remaining stream and refuses new ones.
	b.Close()
	for range msgs {
	}
	waitUntil(t, "no clients after Close", func() bool { return b.Clients() == 0 })
	res, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Errorf("after Close the stream answers %d, want 503", res.StatusCode)
	}
	b.Close() // twice is fine
}

// A client whose connection takes no writes is disconnected after
// WriteTimeout, so its handler does not linger.
func TestBroadcasterStuckClientDisconnected(t *testing.T) {
	b := NewBroadcaster(BroadcasterConfig{Buffer: 1 << 16, WriteTimeout: 100 * time.Millisecond, Logger: quiet()})
	srv := httptest.NewServer(b)
	defer srv.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	waitUntil(t, "the client to subscribe", func() bool { return b.Clients() == 1 })
	// 48 MiB, more than the loopback socket buffers take, and nobody reads.
	payload := map[string]string{"pad": strings.Repeat("x", 1024)}
	for range 48 << 10 {
		b.Publish(SSEEvent, payload)
		if b.Clients() == 0 {
			break
		}
	}
	waitUntil(t, "the stuck client to be disconnected", func() bool { return b.Clients() == 0 })
}
