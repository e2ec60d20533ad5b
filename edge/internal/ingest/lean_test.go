package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/testenv"
)

// count returns how many times payload s was handled.
func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.got {
		if g == s {
			n++
		}
	}
	return n
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestLeanSessionAcrossBrokerRestart: the broker restarts while a QoS 1
// message is unacknowledged. With persistence on the session survives: the
// client reconnects without subscribing again, the broker redelivers the
// unacknowledged message (and only it), and new messages flow. With it off
// the session is lost and the client subscribes again.
func TestLeanSessionAcrossBrokerRestart(t *testing.T) {
	for _, persist := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistence-%v", persist), func(t *testing.T) {
			// "user root": run as root, mosquitto would switch to its own
			// user, which cannot write the test's directory, and lose
			// the sessions it should persist.
			mq := testenv.StartMosquitto(t, fmt.Sprintf("persistence %v", persist), "user root", "log_type all")
			r := &recorder{skip: "2"}
			c := start(t, mq.URL(), r, false)
			defer c.Close()
			publish(t, mq.URL(), "1", "2", "3")
			waitFor(t, "three messages", func() bool { return r.has("1") && r.has("2") && r.has("3") })
			// Restart only once mosquitto has read the two acknowledgements
			// (they leave within 1 ms, but a loaded machine may take longer
			// to send and read them; one still unread would be redelivered).
			acked := func() int { return strings.Count(mq.Log(), "Received PUBACK from outpost-edge-test") }
			waitFor(t, "mosquitto to read the PUBACKs of 1 and 3", func() bool { return acked() >= 2 })
			if n := acked(); n != 2 {
				t.Fatalf("mosquitto read %d PUBACKs, want 2 (message 2 is not acknowledged):\n%s", n, mq.Log())
			}
			mq.Restart()
			waitFor(t, "the reconnect", func() bool { return c.Stats().Connects >= 2 && c.Connected() })
			st := c.Stats()
			if persist {
				waitFor(t, "the unacknowledged message again", func() bool { return r.count("2") == 2 })
				if st.Subscribes != 1 {
					t.Fatalf("subscribed %d times; the session kept the subscription", st.Subscribes)
				}
			} else if st.Subscribes != 2 {
				t.Fatalf("subscribed %d times; the session was lost, so want a second SUBSCRIBE", st.Subscribes)
			}
			publish(t, mq.URL(), "4")
			waitFor(t, "a new message", func() bool { return r.has("4") })
			if r.count("1") != 1 || r.count("3") != 1 {
				t.Fatalf("acknowledged messages redelivered: %v", r.got)
			}
		})
	}
}

// TestLeanKeepAlive: with a 1 s keep-alive and no traffic for several
// seconds, the client's PINGREQs keep mosquitto from dropping it (it drops
// a client silent for 1.5 keep-alives).
func TestLeanKeepAlive(t *testing.T) {
	mq := testenv.StartMosquitto(t)
	r := &recorder{}
	c := startConfig(t, Config{URL: mq.URL(), ClientID: "ka", QoS: 1, Filters: []string{"sensors/+/+"}, Handler: r.handle,
		Logger: quiet(), KeepAlive: time.Second})
	time.Sleep(4 * time.Second)
	if n := c.Stats().Connects; n != 1 {
		t.Fatalf("%d connects over 4 idle seconds; the keep-alive should hold the connection", n)
	}
	publish(t, mq.URL(), "after")
	waitFor(t, "a message after the idle time", func() bool { return r.has("after") })
}

// fakeBroker is a raw TCP server speaking just enough MQTT to feed the
// client malformed or crafted packets: serve is called for each
// connection with its index.
type fakeBroker struct {
	ln    net.Listener
	wg    sync.WaitGroup
	serve func(i int, c *fakeConn)
}

type fakeConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func startFake(t *testing.T, serve func(i int, c *fakeConn)) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBroker{ln: ln, serve: serve}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for i := 0; ; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer conn.Close()
				fc := &fakeConn{t: t, Conn: conn, r: bufio.NewReader(conn)}
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				f.serve(i, fc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeBroker) url() string { return "tcp://" + f.ln.Addr().String() }

// read reads one packet: its type, flags and body; ok false when the
// connection ended.
func (c *fakeConn) read() (typ, flags byte, body []byte, ok bool) {
	var hdr []byte
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, 0, nil, false
		}
		hdr = append(hdr, b)
		h, err := parseHeader(hdr)
		if err == errShort {
			continue
		}
		if err != nil {
			c.t.Errorf("fake broker: client sent a bad header %x: %v", hdr, err)
			return 0, 0, nil, false
		}
		body = make([]byte, h.remaining)
		if _, err := io.ReadFull(c.r, body); err != nil {
			return 0, 0, nil, false
		}
		return h.typ, h.flags, body, true
	}
}

// handshake reads CONNECT, answers CONNACK with sessionPresent, and, when
// the client subscribes, SUBACK granting QoS 1.
func (c *fakeConn) handshake(sessionPresent bool) bool {
	typ, _, _, ok := c.read()
	if !ok || typ != pktConnect {
		c.t.Errorf("fake broker: first packet type %d, want CONNECT", typ)
		return false
	}
	sp := byte(0)
	if sessionPresent {
		sp = 1
	}
	c.Write([]byte{pktConnack << 4, 2, sp, 0})
	if sessionPresent {
		return true
	}
	typ, flags, body, ok := c.read()
	if !ok || typ != pktSubscribe || flags != 2 || len(body) < 2 {
		c.t.Errorf("fake broker: packet type %d flags %d, want SUBSCRIBE", typ, flags)
		return false
	}
	c.Write([]byte{pktSuback << 4, 3, body[0], body[1], 1})
	return true
}

func pub(topic, payload string, qos byte, id uint16) []byte {
	return appendPublish(nil, publishPacket{topic: []byte(topic), payload: []byte(payload), qos: qos, id: id})
}

// TestLeanMalformedPackets: a broker that sends packets breaking MQTT 3.1.1
// gets its connection closed, counted as a protocol error, and the client
// connects again; nothing malformed reaches the handler, and the good
// messages sent before each bad packet do.
func TestLeanMalformedPackets(t *testing.T) {
	bad := []struct {
		name string
		pkt  []byte
	}{
		{"qos 3", func() []byte { p := pub("a/b", "x", 1, 9); p[0] |= 6; return p }()},
		{"qos 2", pub("a/b", "x", 2, 9)},
		{"topic length beyond the packet", []byte{pktPublish << 4, 4, 0, 200, 'a', 'b'}},
		{"remaining length of five bytes", []byte{pktPublish << 4, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"packet identifier 0", pub("a/b", "x", 1, 0)},
		{"wildcard in the topic", pub("a/+", "x", 0, 0)},
		{"topic not UTF-8", pub("a/\xff", "x", 0, 0)},
		{"empty topic", pub("", "x", 0, 0)},
		{"unexpected packet type", []byte{5 << 4, 2, 0, 1}},
		{"PINGRESP with a body", []byte{pktPingresp << 4, 1, 0}},
		{"SUBACK for another packet", []byte{pktSuback << 4, 3, 0x12, 0x34, 1}},
		{"over the packet size limit", append([]byte{pktSuback << 4, 0x81, 0x10}, make([]byte, 2049)...)},
	}
	final := len(bad)
	f := startFake(t, func(i int, c *fakeConn) {
		if !c.handshake(false) {
			return
		}
		c.Write(pub("sensors/x/y", fmt.Sprintf("ok-%d", i), 1, 1))
		if i < final {
			c.Write(bad[i].pkt)
			io.Copy(io.Discard, c) // until the client closes
			return
		}
		io.Copy(io.Discard, c)
	})
	r := &recorder{}
	c, err := Start(Config{URL: f.url(), ClientID: "bad", QoS: 1, Filters: []string{"sensors/#"}, Handler: r.handle,
		Logger: quiet(), MaxPacket: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "every good message", func() bool { return r.has(fmt.Sprintf("ok-%d", final)) })
	for i := range bad {
		if !r.has(fmt.Sprintf("ok-%d", i)) {
			t.Errorf("the good message before %q was not handled", bad[i].name)
		}
	}
	if st := c.Stats(); st.ProtocolErrors != uint64(len(bad)) || st.Connects != uint64(len(bad)+1) {
		t.Fatalf("stats %+v, want %d protocol errors and %d connects", st, len(bad), len(bad)+1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if !strings.HasPrefix(g, "ok-") {
			t.Fatalf("the handler got %q", g)
		}
	}
}

// TestLeanOversizedSkipped: a PUBLISH over MaxPacket is not handled; it is
// acknowledged (the broker would redeliver it forever otherwise) and
// counted, and the messages after it flow on the same connection.
func TestLeanOversizedSkipped(t *testing.T) {
	acks := make(chan uint16, 10)
	f := startFake(t, func(i int, c *fakeConn) {
		if !c.handshake(false) {
			return
		}
		c.Write(pub("sensors/big", strings.Repeat("z", 5000), 1, 5))
		c.Write(pub("sensors/small", "small", 1, 6))
		for {
			typ, _, body, ok := c.read()
			if !ok {
				return
			}
			if typ == pktPuback {
				acks <- uint16(body[0])<<8 | uint16(body[1])
			}
		}
	})
	r := &recorder{}
	c, err := Start(Config{URL: f.url(), ClientID: "big", QoS: 1, Filters: []string{"sensors/#"}, Handler: r.handle,
		Logger: quiet(), MaxPacket: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "the small message", func() bool { return r.has("small") })
	got := map[uint16]bool{}
	for len(got) < 2 {
		select {
		case id := <-acks:
			got[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("acknowledged %v, want 5 and 6", got)
		}
	}
	if st := c.Stats(); st.Oversized != 1 || st.ProtocolErrors != 0 || st.Connects != 1 {
		t.Fatalf("stats %+v, want 1 oversized, no protocol error, one connect", st)
	}
	if r.count("small") != 1 || len(r.got) != 1 {
		t.Fatalf("handled %d messages, want only the small one", len(r.got))
	}
}

// TestLeanStaleAckDropped: an acknowledgement of a message that came on a
// connection since lost is not sent on the next connection (the packet
// identifier may name another message there); the broker's redelivery
// covers it. A session the broker kept is not subscribed again.
func TestLeanStaleAckDropped(t *testing.T) {
	seen := make(chan []byte, 10) // packets the client sent on the second connection
	f := startFake(t, func(i int, c *fakeConn) {
		switch i {
		case 0:
			if !c.handshake(false) {
				return
			}
			c.Write(pub("sensors/a", "held", 1, 7))
			time.Sleep(200 * time.Millisecond)
		case 1:
			if !c.handshake(true) {
				return
			}
			c.Write(pub("sensors/a", "new", 1, 8))
			for {
				typ, _, body, ok := c.read()
				if !ok {
					return
				}
				seen <- append([]byte{typ}, body...)
			}
		}
	})
	var mu sync.Mutex
	var held []Message
	c, err := Start(Config{URL: f.url(), ClientID: "stale", QoS: 1, Filters: []string{"sensors/#"}, Logger: quiet(),
		Handler: func(m Message) { mu.Lock(); held = append(held, m); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "both messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == 2 })
	held[0].Ack() // from the first connection: dropped
	held[1].Ack()
	for {
		select {
		case p := <-seen:
			switch {
			case p[0] == pktPuback && bytes.Equal(p[1:], []byte{0, 8}):
				return // the new message's, and nothing before it
			case p[0] == pktPuback:
				t.Fatalf("PUBACK %x on the second connection", p[1:])
			case p[0] == pktSubscribe:
				t.Fatal("SUBSCRIBE although the broker kept the session")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no PUBACK for the new message")
		}
	}
}

// TestLeanUnansweredPing: a broker that stops answering (no PINGRESP) is
// left and connected to again.
func TestLeanUnansweredPing(t *testing.T) {
	f := startFake(t, func(i int, c *fakeConn) {
		if c.handshake(false) {
			io.Copy(io.Discard, c) // reads PINGREQs, never answers
		}
	})
	c, err := Start(Config{URL: f.url(), ClientID: "ping", QoS: 1, Filters: []string{"sensors/#"}, Logger: quiet(),
		Handler: func(Message) {}, KeepAlive: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "a second connect", func() bool { return c.Stats().Connects >= 2 })
}

// TestLeanCloseFlushesAcks: Close sends the acknowledgements waiting, then
// DISCONNECT.
func TestLeanCloseFlushesAcks(t *testing.T) {
	got := make(chan []byte, 10)
	f := startFake(t, func(i int, c *fakeConn) {
		if !c.handshake(false) {
			return
		}
		c.Write(pub("sensors/a", "m", 1, 3))
		for {
			typ, _, body, ok := c.read()
			if !ok {
				close(got)
				return
			}
			got <- append([]byte{typ}, body...)
		}
	})
	r := &recorder{}
	c, err := Start(Config{URL: f.url(), ClientID: "close", QoS: 1, Filters: []string{"sensors/#"}, Logger: quiet(),
		Handler: r.handle})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", func() bool { return r.has("m") })
	c.Close()
	var seq []string
	for p := range got {
		seq = append(seq, fmt.Sprintf("%d:%x", p[0], p[1:]))
	}
	if len(seq) < 2 || seq[len(seq)-2] != "4:0003" || seq[len(seq)-1] != "14:" {
		t.Fatalf("packets after the message: %v, want ... PUBACK 3, DISCONNECT", seq)
	}
}

// TestLeanTLS: an mqtts:// broker (mosquitto with a certificate made for
// the test) is read by the lean client over crypto/tls.
func TestLeanTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	// "user root": mosquitto started as root would switch to its own user,
	// which cannot read the test's directory.
	mq := testenv.StartMosquitto(t, "user root", fmt.Sprintf("listener %d 127.0.0.1", port),
		"certfile "+certFile, "keyfile "+keyFile)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	r := &recorder{}
	c, err := Start(Config{URL: fmt.Sprintf("mqtts://127.0.0.1:%d", port), ClientID: "tls", QoS: 1,
		Filters: []string{"sensors/+/+"}, Handler: r.handle, Logger: quiet(), TLS: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, mq.URL(), "over tls") // published on the plain listener
	waitFor(t, "the message over TLS", func() bool { return r.has("over tls") })
	if c.lean == nil || c.lean.tls == nil {
		t.Fatal("not the lean client over TLS")
	}
}

// TestLeanSubscriptionRefused: a broker that refuses the subscription
// (SUBACK 0x80) never makes the client report itself connected, and the
// client retries with a growing backoff rather than in a tight loop.
func TestLeanSubscriptionRefused(t *testing.T) {
	f := startFake(t, func(i int, c *fakeConn) {
		if typ, _, _, ok := c.read(); !ok || typ != pktConnect {
			return
		}
		c.Write([]byte{pktConnack << 4, 2, 0, 0})
		typ, _, body, ok := c.read()
		if !ok || typ != pktSubscribe {
			return
		}
		c.Write([]byte{pktSuback << 4, 3, body[0], body[1], 0x80})
		io.Copy(io.Discard, c)
	})
	c, err := Start(Config{URL: f.url(), ClientID: "refused", QoS: 1, Filters: []string{"sensors/#"}, Logger: quiet(),
		Handler: func(Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "a second attempt", func() bool { return c.Stats().Connects >= 2 })
	time.Sleep(time.Second)
	// Backoff 250 ms, 500 ms, 1 s...: at most 4 connects in the first
	// 1.75 s and a bit, far fewer than a tight loop would make.
	if n := c.Stats().Connects; n > 4 || c.Connected() {
		t.Fatalf("%d connects, connected %v", n, c.Connected())
	}
}
