package ingest

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// startPaho runs the client on paho: websocket brokers, or Config.Paho.
func (c *Client) startPaho() {
	cfg := c.cfg
	c.acks = make(chan paho.Message, 1<<16)
	o := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		// Connects and reconnects are ours (pahoConnect), so that every
		// failed attempt is logged with why (paho's own retries are
		// silent: a wss broker with a CA the agent does not trust would
		// fail without a word).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(10 * time.Second).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.connected.Store(false)
			c.log.Warn("mqtt connection lost", "broker", cfg.URL, "err", err)
			c.pahoReconnect()
		}).
		SetDefaultPublishHandler(c.receive)
	if u, err := url.Parse(cfg.URL); err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		// Plain TCP: read through a buffer and write PUBACKs in batches
		// (bufConn). TLS and websocket brokers use paho's own connection.
		o.SetCustomOpenConnectionFn(func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
			conn, err := (&net.Dialer{Timeout: o.ConnectTimeout}).Dial("tcp", u.Host)
			if err != nil {
				return nil, fmt.Errorf("ingest: dial %s: %w", u.Host, err)
			}
			return &bufConn{Conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}, nil
		})
	}
	if cfg.TLS != nil {
		// wss:// (and ssl:// etc. with Config.Paho): a private CA, a
		// client certificate. paho's own default is the system's roots.
		o.SetTLSConfig(cfg.TLS)
	}
	c.pc = paho.NewClient(o)
	c.wg.Add(1)
	go c.acker()
	c.pahoReconnect()
}

// pahoReconnect starts a connect loop (pahoConnect), unless the client is
// closing.
func (c *Client) pahoReconnect() {
	c.pahoMu.Lock()
	defer c.pahoMu.Unlock()
	if c.closing {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.pahoConnect()
	}()
}

// pahoConnect connects paho, retrying with backoff (1 s doubling to 10 s)
// and logging why each attempt failed, until it is connected (onConnect
// subscribes) or the client is closed.
func (c *Client) pahoConnect() {
	backoff := time.Second
	for {
		tok := c.pc.Connect()
		select {
		case <-tok.Done():
		case <-c.stop:
			return
		}
		err := tok.Error()
		if err == nil {
			return
		}
		err = closedAfterHandshake(c.cfg.TLS != nil, err)
		c.log.Warn("mqtt connect failed", "broker", c.cfg.URL, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-c.stop:
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (c *Client) onConnect(pc paho.Client) {
	filters := map[string]byte{}
	for _, f := range c.cfg.Filters {
		filters[f] = c.cfg.QoS
	}
	tok := pc.SubscribeMultiple(filters, c.receive)
	go func() {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			c.log.Error("mqtt subscribe failed", "filters", c.cfg.Filters, "err", tok.Error())
			return
		}
		c.setConnected()
	}()
}

func (c *Client) receive(_ paho.Client, m paho.Message) {
	if c.paused.Load() {
		return // not acknowledged: the broker redelivers it to the next session
	}
	c.cfg.Handler(Message{Topic: m.Topic(), Payload: m.Payload(), msg: m, c: c})
}

// acker sends acknowledgements off the caller's goroutine, so that an outbox
// commit is never held up by a broker connection that is down.
func (c *Client) acker() {
	defer c.wg.Done()
	for {
		select {
		case m := <-c.acks:
			m.Ack()
		case <-c.stop:
			// Flush what is queued: these messages are secured.
			for {
				select {
				case m := <-c.acks:
					m.Ack()
				default:
					return
				}
			}
		}
	}
}

// bufConn is paho's connection to a plain TCP broker. It reads
// through a buffer (paho reads each packet's header a byte at a time, a
// system call each), and it holds PUBACKs for up to ackDelay and writes
// them together (one write per acknowledgement was a system call per
// reading). Holding an acknowledgement only makes it later: a reading is
// still acknowledged after it was judged or committed, and an
// acknowledgement lost with the connection means a redelivery, which the
// outbox's idempotence absorbs.
type bufConn struct {
	net.Conn
	r     *bufio.Reader
	mu    sync.Mutex
	wbuf  []byte
	armed bool
	werr  error
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// Write holds PUBACKs (4 bytes, type 4) for up to ackDelay and writes them
// together; any other packet flushes what is held first.
func (c *bufConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) == 4 && b[0] == 0x40 && c.werr == nil {
		c.wbuf = append(c.wbuf, b...)
		if len(c.wbuf) >= 4*ackBatch {
			return len(b), c.flushLocked()
		}
		if !c.armed {
			c.armed = true
			time.AfterFunc(ackDelay, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.armed = false
				c.flushLocked()
			})
		}
		return len(b), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// ackDelay is how long PUBACKs are held at most; ackBatch how many are
// written at once at the most.
const (
	ackDelay = time.Millisecond
	ackBatch = 64
)

func (c *bufConn) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	c.werr = err
	return err
}
