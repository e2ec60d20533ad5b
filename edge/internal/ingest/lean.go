package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// lean is the package's own MQTT 3.1.1 client for tcp and TLS brokers.
//
// One goroutine (run) connects, subscribes, reads the connection through
// its own buffer, decodes each PUBLISH in place and calls the handler on
// it: no goroutine hand-off between the socket and the handler, no
// allocation per message (topics are interned, the payload aliases the
// read buffer). Acknowledgements, from any goroutine, are appended to a
// buffer that the reader writes before it waits for more (fill), or a
// timer at most ackDelay later (or at once when ackBatch are waiting), so
// that at 10k readings/s PUBACKs cost a system call per millisecond, not
// per reading, and Ack never blocks on the socket. A pinger goroutine per
// connection sends PINGREQ every half keep-alive and closes a connection
// whose broker did not answer the previous one.
//
// Where the CPU went, at a steady 10k readings/s (perf, release build, one
// P): with paho, 22 µs per reading, a quarter of it the runtime's sysmon
// thread, a fifth paho's goroutines (reader, router, ordered delivery,
// outgoing, acker) and a tenth the scheduler switching between them.
// With this client reading a message at a time, 14 µs; reading once a
// millisecond (ReadCoalesce), about the same, sysmon then a third of it;
// with raw reads and writes (rawio_linux.go), 9 to 10 µs, sysmon 6%,
// PUBACK writes 15%, decoding and judging the readings about a quarter.
type lean struct {
	c         *Client
	host      string
	tls       *tls.Config // nil: plain TCP
	maxPacket int
	coalesce  time.Duration // Config.ReadCoalesce; 0: none

	// The write side, under wmu: the connection acknowledgements go to
	// (nil between connections), its generation, the acknowledgements
	// waiting, whether the flush timer is armed; closed after shutdown.
	wmu    sync.Mutex
	conn   net.Conn
	raw    *rawIO // conn's raw reads and writes; nil for TLS
	gen    uint32
	wbuf   []byte
	armed  bool
	closed bool
	timer  *time.Timer
	// sendMu serialises writes to the connection; spare is the buffer
	// swapped with wbuf by flush (under sendMu).
	sendMu sync.Mutex
	spare  []byte

	// The reader's (run's goroutine only): the read buffer and its
	// unread span, bytes of an oversized packet still to discard, the
	// interned topics, whether this client subscribed on any connection
	// yet, the packet identifier of the pending SUBSCRIBE.
	rbuf       []byte
	r, w       int
	skip       int
	small      bool // the last read was small: wait before the next (fill)
	topics     map[string]string
	subscribed bool
	subID      uint16

	pingOut              atomic.Bool
	connects, subscribes atomic.Uint64
	protoErrs, oversized atomic.Uint64
}

// Reconnect backoff: doubled after each failure, from minBackoff to
// maxBackoff.
const (
	minBackoff     = 250 * time.Millisecond
	maxBackoff     = 10 * time.Second
	connectTimeout = 10 * time.Second
	writeTimeout   = 10 * time.Second
	// maxTopics bounds the interned topics (publishers choose them).
	maxTopics = 4096
	// coalesceBelow is the read size under which fill waits before the
	// next read.
	coalesceBelow = 16 << 10
)

func newLean(c *Client, u *url.URL) (*lean, error) {
	l := &lean{c: c, maxPacket: c.cfg.MaxPacket, coalesce: max(0, c.cfg.ReadCoalesce), rbuf: make([]byte, 32<<10), topics: map[string]string{}}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("ingest: broker url %q has no host", c.cfg.URL)
	}
	switch u.Scheme {
	case "ssl", "tls", "tcps", "mqtts":
		l.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.cfg.TLS != nil {
			l.tls = c.cfg.TLS.Clone()
		}
		if l.tls.ServerName == "" {
			l.tls.ServerName = host
		}
		if port == "" {
			port = "8883"
		}
	default:
		if port == "" {
			port = "1883"
		}
	}
	l.host = net.JoinHostPort(host, port)
	l.timer = time.AfterFunc(time.Hour, l.flush)
	l.timer.Stop()
	return l, nil
}

// run connects, serves the connection until it fails, and connects again
// with backoff, until the client is closed.
func (l *lean) run() {
	c := l.c
	defer c.wg.Done()
	backoff := minBackoff
	for {
		conn, present, err := l.connect()
		connectFailed := err != nil
		if err == nil {
			err = l.serve(conn, present)
			if c.connected.Swap(false) {
				backoff = minBackoff // it worked until it broke: retry soon
			}
		}
		if l.stopping() {
			return
		}
		var pe *ProtocolError
		if errors.As(err, &pe) {
			l.protoErrs.Add(1)
			c.log.Error("mqtt connection closed: bad packet from the broker", "broker", c.cfg.URL, "err", err)
		} else if connectFailed {
			// Refused, unreachable, or a TLS handshake that failed (wrong
			// CA, no or an unknown client certificate): say so every time.
			c.log.Warn("mqtt connect failed", "broker", c.cfg.URL, "err", err, "retry_in", backoff)
		} else {
			c.log.Warn("mqtt connection lost", "broker", c.cfg.URL, "err", err, "retry_in", backoff)
		}
		select {
		case <-c.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (l *lean) stopping() bool {
	select {
	case <-l.c.stop:
		return true
	default:
		return false
	}
}

// closedAfterHandshake says why a TLS connection may end right after its
// handshake: with TLS 1.3 the broker checks the client's certificate only
// then, and its alert saying why ("unknown certificate authority",
// "certificate required") can be lost when the connection is reset or
// closed before it is read. err is returned unchanged otherwise, or
// without TLS.
func closedAfterHandshake(tlsOn bool, err error) error {
	if !tlsOn || err == nil {
		return err
	}
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	if !closed {
		// paho flattens the errors it reports into text.
		msg := err.Error()
		closed = strings.HasSuffix(msg, "EOF") || strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "broken pipe")
	}
	if !closed {
		return err
	}
	return fmt.Errorf("%w (the broker closed the connection right after the TLS handshake, as a TLS 1.3 broker does when it refuses the client certificate: check mqtt.tls cert_file and key_file against the broker's CA)", err)
}

// connect dials, sends CONNECT and reads the CONNACK; it returns whether
// the broker kept a session for the client id.
func (l *lean) connect() (net.Conn, bool, error) {
	cfg := l.c.cfg
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	go func() { // Close interrupts a dial
		select {
		case <-l.c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: connectTimeout}
	if l.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: l.tls}).DialContext(ctx, "tcp", l.host)
	} else {
		conn, err = d.DialContext(ctx, "tcp", l.host)
	}
	if err != nil {
		return nil, false, fmt.Errorf("ingest: dial %s: %w", l.host, err)
	}
	ka := max(1, min(65535, int(cfg.KeepAlive/time.Second)))
	pkt, err := appendConnect(nil, connectOptions{clientID: cfg.ClientID, username: cfg.Username, password: cfg.Password,
		keepAlive: uint16(ka)})
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("ingest: %w", err)
	}
	conn.SetDeadline(time.Now().Add(connectTimeout))
	if _, err := conn.Write(pkt); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("ingest: send CONNECT to %s: %w", l.host, closedAfterHandshake(l.tls != nil, err))
	}
	l.r, l.w, l.skip, l.small = 0, 0, 0, false
	h, body, err := l.next(conn)
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("ingest: waiting for CONNACK from %s: %w", l.host, closedAfterHandshake(l.tls != nil, err))
	}
	if h.typ != pktConnack {
		conn.Close()
		return nil, false, protoErr(h.typ, "packet before CONNACK")
	}
	ack, err := decodeConnack(h.flags, body)
	if err != nil {
		conn.Close()
		return nil, false, err
	}
	if ack.code != 0 {
		conn.Close()
		return nil, false, fmt.Errorf("ingest: %s refused the connection: %s", l.host, connackText(ack.code))
	}
	conn.SetDeadline(time.Time{})
	l.connects.Add(1)
	return conn, ack.sessionPresent, nil
}

// serve subscribes when the broker has no session for the client (or this
// client never subscribed: the filters may have changed since the session
// was made), starts the pinger and reads the connection until it fails.
func (l *lean) serve(conn net.Conn, sessionPresent bool) error {
	c := l.c
	l.wmu.Lock()
	if l.closed {
		l.wmu.Unlock()
		conn.Write([]byte{pktDisconnect << 4, 0})
		conn.Close()
		return nil
	}
	l.gen++
	gen := l.gen
	l.conn, l.wbuf = conn, l.wbuf[:0]
	l.raw = newRawIO(conn)
	l.wmu.Unlock()
	defer func() {
		l.wmu.Lock()
		if l.conn == conn {
			l.conn, l.raw = nil, nil
			l.gen++ // acknowledgements of this connection's messages are void now
			l.wbuf = l.wbuf[:0]
		}
		l.wmu.Unlock()
		conn.Close()
	}()

	l.subID = 0
	if !sessionPresent || !l.subscribed {
		l.subID = uint16(gen%65535) + 1
		pkt, err := appendSubscribe(nil, l.subID, c.cfg.Filters, c.cfg.QoS)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if err := l.send(conn, pkt); err != nil {
			return fmt.Errorf("ingest: send SUBSCRIBE: %w", err)
		}
		l.subscribes.Add(1)
	} else {
		c.setConnected()
	}

	done := make(chan struct{})
	defer close(done)
	l.pingOut.Store(false)
	go l.pinger(conn, done)

	for {
		h, body, err := l.next(conn)
		if err != nil {
			return err
		}
		switch h.typ {
		case pktPublish:
			if err := l.publish(h, body, gen); err != nil {
				return err
			}
		case pktSuback:
			id, codes, err := decodeSuback(h.flags, body)
			if err != nil {
				return err
			}
			if id != l.subID || l.subID == 0 {
				return protoErr(pktSuback, "packet identifier %d, want %d", id, l.subID)
			}
			if len(codes) != len(c.cfg.Filters) {
				return protoErr(pktSuback, "%d return codes for %d filters", len(codes), len(c.cfg.Filters))
			}
			for i, code := range codes {
				if code == 0x80 {
					return fmt.Errorf("ingest: the broker refused the subscription to %q", c.cfg.Filters[i])
				}
			}
			l.subID, l.subscribed = 0, true
			c.setConnected()
		case pktPingresp:
			if h.flags != 0 || len(body) != 0 {
				return protoErr(pktPingresp, "flags %#x, %d bytes", h.flags, len(body))
			}
			l.pingOut.Store(false)
		default:
			return protoErr(h.typ, "unexpected packet type %d", h.typ)
		}
	}
}

// publish hands a PUBLISH to the handler (oversized ones are acknowledged
// and skipped).
func (l *lean) publish(h header, body []byte, gen uint32) error {
	c := l.c
	p, err := decodePublish(h.flags, body)
	if err != nil {
		return err
	}
	if p.qos > 1 {
		// Subscriptions are at QoS 0 or 1, and a broker never sends
		// above the granted QoS.
		return protoErr(pktPublish, "QoS %d above the subscriptions'", p.qos)
	}
	topic, ok := l.topics[string(p.topic)]
	if !ok {
		if err := checkTopic(p.topic); err != nil {
			return err
		}
		if len(l.topics) >= maxTopics {
			clear(l.topics)
		}
		topic = string(p.topic)
		l.topics[topic] = topic
	}
	if h.remaining > l.maxPacket {
		n := l.oversized.Add(1)
		if n&(n-1) == 0 {
			c.log.Error("mqtt message over the packet size limit skipped", "topic", topic, "bytes", h.remaining,
				"limit", l.maxPacket, "count", n)
		}
		if p.qos > 0 {
			l.ack(gen, p.id) // never deliverable: not to come back forever
		}
		return nil
	}
	if c.paused.Load() {
		return nil // not acknowledged: redelivered to the next session
	}
	m := Message{Topic: topic, Payload: p.payload, c: c, gen: gen}
	if p.qos > 0 {
		m.id = p.id
	}
	c.cfg.Handler(m)
	return nil
}

// maxVarHeader is the most a PUBLISH's variable header can take: topic
// length, topic, packet identifier.
const maxVarHeader = 2 + 65535 + 2

// next returns the next packet from the connection. The body aliases the
// read buffer and is valid until the next call. For a PUBLISH over
// maxPacket the body is only a prefix holding its variable header, and the
// rest is discarded by the following calls.
func (l *lean) next(conn net.Conn) (header, []byte, error) {
	for {
		if l.skip > 0 {
			n := min(l.skip, l.w-l.r)
			l.r += n
			l.skip -= n
			if l.skip > 0 {
				if err := l.fill(conn); err != nil {
					return header{}, nil, err
				}
				continue
			}
		}
		h, err := parseHeader(l.rbuf[l.r:l.w])
		switch {
		case err == errShort:
			l.ensure(maxVarintBytes + 1)
		case err != nil:
			return header{}, nil, err
		case h.remaining > l.maxPacket:
			if h.typ != pktPublish {
				return header{}, nil, protoErr(h.typ, "packet of %d bytes over the limit of %d", h.remaining, l.maxPacket)
			}
			pre := min(h.remaining, maxVarHeader)
			if l.w-l.r >= h.size+pre {
				body := l.rbuf[l.r+h.size : l.r+h.size+pre]
				l.r += h.size + pre
				l.skip = h.remaining - pre
				return h, body, nil
			}
			l.ensure(h.size + pre)
		default:
			if l.w-l.r >= h.size+h.remaining {
				body := l.rbuf[l.r+h.size : l.r+h.size+h.remaining : l.r+h.size+h.remaining]
				l.r += h.size + h.remaining
				return h, body, nil
			}
			l.ensure(h.size + h.remaining)
		}
		if err := l.fill(conn); err != nil {
			return header{}, nil, err
		}
	}
}

// ensure makes room for n bytes from l.r on in the read buffer.
func (l *lean) ensure(n int) {
	if len(l.rbuf)-l.r >= n {
		return
	}
	if len(l.rbuf) >= n {
		copy(l.rbuf, l.rbuf[l.r:l.w])
	} else {
		b := make([]byte, max(n, 2*len(l.rbuf)))
		copy(b, l.rbuf[l.r:l.w])
		l.rbuf = b
	}
	l.w -= l.r
	l.r = 0
}

// fill reads what the connection has into the buffer (at least a byte).
//
// After a small read it first sends the waiting acknowledgements and
// waits Config.ReadCoalesce, so that a steady trickle of messages is read
// in batches: at 10k messages/s, one wake-up, read and PUBACK write per
// millisecond instead of a wake-up and two reads per message (each wake
// of an idle Go process also wakes the runtime's sysmon thread). Messages
// wait in the socket for at most that long more; at high rates reads are
// large and nothing waits.
func (l *lean) fill(conn net.Conn) error {
	if l.r == l.w {
		l.r, l.w = 0, 0
	}
	if l.w == len(l.rbuf) {
		l.ensure(l.w - l.r + 1)
	}
	if l.small && l.coalesce > 0 {
		l.flush()
		time.Sleep(l.coalesce)
	}
	var n int
	var err error
	if raw := l.rawFor(conn); raw != nil {
		n, err = raw.read(l.rbuf[l.w:])
	} else {
		n, err = conn.Read(l.rbuf[l.w:])
	}
	l.small = n < coalesceBelow
	l.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if err == io.EOF {
		err = fmt.Errorf("ingest: %s closed the connection: %w", l.host, err)
	}
	return err
}

// rawFor returns the raw reader of conn, if it has one.
func (l *lean) rawFor(conn net.Conn) *rawIO {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.conn == conn {
		return l.raw
	}
	return nil
}

// ack queues a PUBACK for packet id of connection generation gen.
func (l *lean) ack(gen uint32, id uint16) {
	l.wmu.Lock()
	if gen != l.gen || l.conn == nil {
		l.wmu.Unlock()
		return
	}
	l.wbuf = append(l.wbuf, pktPuback<<4, 2, byte(id>>8), byte(id))
	switch {
	case len(l.wbuf) >= 4*ackBatch:
		l.armed = true
		l.timer.Reset(0)
	case !l.armed:
		l.armed = true
		l.timer.Reset(ackDelay)
	}
	l.wmu.Unlock()
}

// flush writes the waiting acknowledgements.
func (l *lean) flush() {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.wmu.Lock()
	if l.armed {
		l.armed = false
		l.timer.Stop()
	}
	conn, raw, b := l.conn, l.raw, l.wbuf
	if conn == nil || len(b) == 0 {
		l.wmu.Unlock()
		return
	}
	l.wbuf = l.spare[:0]
	l.wmu.Unlock()
	rest := b
	if raw != nil {
		rest = rest[raw.write(rest):]
	}
	if len(rest) == 0 {
		l.spare = b[:0]
		return
	}
	if err := l.write(conn, rest); err != nil {
		conn.Close() // the reader sees it and reconnects
	}
	l.spare = b[:0]
}

// send writes one packet.
func (l *lean) send(conn net.Conn, pkt []byte) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.write(conn, pkt)
}

// write writes under sendMu with a deadline, so that a broker that stops
// reading cannot hold a writer forever.
func (l *lean) write(conn net.Conn, b []byte) error {
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := conn.Write(b)
	return err
}

// pinger sends PINGREQ every half keep-alive; a PINGREQ still unanswered
// when the next is due closes the connection.
func (l *lean) pinger(conn net.Conn, done <-chan struct{}) {
	t := time.NewTicker(l.c.cfg.KeepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if l.pingOut.Load() {
				l.c.log.Warn("mqtt broker did not answer a PINGREQ; closing the connection", "broker", l.c.cfg.URL)
				conn.Close()
				return
			}
			l.pingOut.Store(true)
			if err := l.send(conn, []byte{pktPingreq << 4, 0}); err != nil {
				conn.Close()
				return
			}
		}
	}
}

// shutdown sends the waiting acknowledgements and DISCONNECT, and closes
// the connection; the reader then ends.
func (l *lean) shutdown() {
	l.timer.Stop()
	l.flush()
	l.wmu.Lock()
	conn := l.conn
	l.conn, l.closed = nil, true
	l.gen++
	l.wmu.Unlock()
	if conn != nil {
		l.send(conn, []byte{pktDisconnect << 4, 0})
		conn.Close()
	}
}
