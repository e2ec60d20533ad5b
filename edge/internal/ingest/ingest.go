// Package ingest is the agent's MQTT client: a paho session with QoS 1, a
// persistent session (clean session off) under a stable client id,
// automatic reconnects and resubscription on every connect. Messages are not
// acknowledged automatically: the handler acknowledges each message once it
// is safe (judged normal, or its event committed to the outbox), so the
// broker redelivers whatever the agent had not secured when it died.
package ingest

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Message is one received MQTT message.
type Message struct {
	Topic   string
	Payload []byte
	msg     paho.Message
	c       *Client
}

// Ack acknowledges the message to the broker. Safe to call from any
// goroutine, once; it does not block.
func (m Message) Ack() {
	select {
	case m.c.acks <- m.msg:
	case <-m.c.stop:
	}
}

// Handler receives messages in the order the broker sent them, on one
// goroutine. It must not block for long.
type Handler func(Message)

// Config configures the client.
type Config struct {
	// URL of the broker, e.g. "tcp://127.0.0.1:1883".
	URL string
	// ClientID is the stable session id.
	ClientID string
	// Username and Password, if set, authenticate the client.
	Username, Password string
	// QoS of the subscriptions (0 or 1).
	QoS byte
	// Filters to subscribe to.
	Filters []string
	// Handler receives every message.
	Handler Handler
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Client is a running MQTT client.
type Client struct {
	cfg       Config
	pc        paho.Client
	log       *slog.Logger
	acks      chan paho.Message
	stop      chan struct{}
	wg        sync.WaitGroup
	connected atomic.Bool
	paused    atomic.Bool
	connCh    chan struct{}
	connOnce  sync.Once
	closeOnce sync.Once
}

// Start starts the client; it connects (and keeps reconnecting) in the
// background, so a broker that is not up yet is not an error.
func Start(cfg Config) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Handler == nil {
		return nil, fmt.Errorf("ingest: no handler")
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("component", "ingest"), acks: make(chan paho.Message, 1<<16),
		stop: make(chan struct{}), connCh: make(chan struct{})}
	o := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.connected.Store(false)
			c.log.Warn("mqtt connection lost", "broker", cfg.URL, "err", err)
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
	c.pc = paho.NewClient(o)
	c.wg.Add(1)
	go c.acker()
	c.pc.Connect() // with ConnectRetry the token completes only on success; onConnect reports it
	return c, nil
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
		c.connected.Store(true)
		c.connOnce.Do(func() { close(c.connCh) })
		c.log.Info("mqtt connected and subscribed", "broker", c.cfg.URL, "client_id", c.cfg.ClientID, "filters", c.cfg.Filters)
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

// Connected reports whether the client is connected and subscribed.
func (c *Client) Connected() bool { return c.connected.Load() }

// WaitConnected waits for the first successful connect and subscribe.
func (c *Client) WaitConnected(ctx context.Context) error {
	select {
	case <-c.connCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest: waiting for %s: %w", c.cfg.URL, ctx.Err())
	}
}

// Pause stops handing messages to the handler; those that arrive are left
// unacknowledged for the broker to redeliver. Used at shutdown before the
// outbox is flushed.
func (c *Client) Pause() { c.paused.Store(true) }

// Close sends the pending acknowledgements and disconnects. Messages not
// acknowledged by then are redelivered by the broker on the next connect.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		c.pc.Disconnect(500)
	})
}

// bufConn is the broker connection of a plain TCP broker. It reads
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
		if len(c.wbuf) >= 4*64 {
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

const ackDelay = time.Millisecond

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
