// Package ingest is the agent's MQTT client: QoS 1, a persistent session
// (clean session off) under a stable client id, automatic reconnects with
// backoff, subscriptions restored. Messages are not acknowledged
// automatically: the handler acknowledges each message once it is safe
// (judged normal, or its event committed to the outbox), so the broker
// redelivers whatever the agent had not secured when it died.
//
// Brokers at tcp://, mqtt://, ssl://, tls://, tcps:// and mqtts:// URLs are
// read by the package's own MQTT 3.1.1 client (lean.go): one goroutine
// reads the connection in batches (a steady trickle is read once a
// millisecond, Config.ReadCoalesce), decodes PUBLISH packets in place and
// calls the handler inline, with no hand-off between receipt and handler;
// PUBACKs are written together, at most about a millisecond after Ack.
// Websocket brokers (ws://, wss://) go through paho (paho.go). Both give
// the handler the same contract: messages in order on one goroutine, a
// message acknowledged only by Ack, an unacknowledged one redelivered by
// the broker to the next session.
package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Message is one received MQTT message.
type Message struct {
	Topic string
	// Payload is valid only until the handler returns: the lean client
	// reuses its read buffer. Copy what must be kept.
	Payload []byte
	c       *Client
	msg     paho.Message // paho's message; nil for the lean client
	id      uint16       // lean: packet identifier, 0 for QoS 0
	gen     uint32       // lean: the connection the message came on
}

// Ack acknowledges the message to the broker. Safe to call from any
// goroutine, once; it does not block. An acknowledgement of a message
// that came on a connection since lost is dropped (the broker redelivers
// the message on the new session, and the outbox's idempotence absorbs
// it): a packet identifier means nothing outside its connection.
func (m Message) Ack() {
	if m.msg != nil {
		select {
		case m.c.acks <- m.msg:
		case <-m.c.stop:
		}
		return
	}
	if m.id != 0 && m.c != nil && m.c.lean != nil {
		m.c.lean.ack(m.gen, m.id)
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
	// KeepAlive is the MQTT keep-alive interval. Default 30s.
	KeepAlive time.Duration
	// MaxPacket is the largest packet the lean client reads (bytes);
	// a larger PUBLISH is skipped, counted (Stats.Oversized) and
	// acknowledged, so that the broker does not redeliver it forever.
	// Default 1 MiB.
	MaxPacket int
	// TLS configures ssl://, tls://, tcps:// and mqtts:// brokers (the
	// lean client) and wss:// brokers (paho): roots, client certificate,
	// server name. Default: the system's roots, server name from the URL.
	TLS *tls.Config
	// ReadCoalesce is how long the lean client waits after a small read
	// before reading again, so that a steady stream is read (and
	// acknowledged) in batches rather than a wake-up per message. It adds
	// at most that much to the time a message waits before the handler.
	// Default 1ms; negative: none.
	ReadCoalesce time.Duration
	// Paho makes the client use paho for every scheme (tests compare the
	// two clients with it). Default: paho only for ws:// and wss://.
	Paho bool
}

// Stats are counters of the lean client (zero with paho).
type Stats struct {
	// Connects counts successful connects (CONNACK accepted).
	Connects uint64
	// Subscribes counts SUBSCRIBE packets sent (not on a reconnect to a
	// session the broker kept).
	Subscribes uint64
	// ProtocolErrors counts connections closed for a packet that breaks
	// MQTT 3.1.1.
	ProtocolErrors uint64
	// Oversized counts PUBLISH packets over MaxPacket, skipped.
	Oversized uint64
}

// Client is a running MQTT client.
type Client struct {
	cfg       Config
	log       *slog.Logger
	stop      chan struct{}
	wg        sync.WaitGroup
	connected atomic.Bool
	paused    atomic.Bool
	connCh    chan struct{}
	connOnce  sync.Once
	closeOnce sync.Once

	lean *lean // tcp and TLS brokers

	pc   paho.Client       // websocket brokers, or Config.Paho
	acks chan paho.Message // paho's acknowledgements, sent by acker
	// pahoMu orders starting a connect loop (pahoReconnect) with Close:
	// none starts once closing is set.
	pahoMu  sync.Mutex
	closing bool
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
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.MaxPacket <= 0 {
		cfg.MaxPacket = 1 << 20
	}
	if cfg.ReadCoalesce == 0 {
		cfg.ReadCoalesce = time.Millisecond
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ingest: broker url %q: %w", cfg.URL, err)
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("component", "ingest"), stop: make(chan struct{}), connCh: make(chan struct{})}
	if leanScheme(u.Scheme) && !cfg.Paho {
		c.lean, err = newLean(c, u)
		if err != nil {
			return nil, err
		}
		c.wg.Add(1)
		go c.lean.run()
		return c, nil
	}
	c.startPaho()
	return c, nil
}

// leanScheme reports whether the lean client serves a URL scheme.
func leanScheme(s string) bool {
	switch s {
	case "tcp", "mqtt", "ssl", "tls", "tcps", "mqtts":
		return true
	}
	return false
}

// setConnected records a connect and subscribe (or a session that kept
// the subscriptions).
func (c *Client) setConnected() {
	c.connected.Store(true)
	c.connOnce.Do(func() { close(c.connCh) })
	c.log.Info("mqtt connected and subscribed", "broker", c.cfg.URL, "client_id", c.cfg.ClientID, "filters", c.cfg.Filters)
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

// Stats returns the lean client's counters.
func (c *Client) Stats() Stats {
	if c.lean == nil {
		return Stats{}
	}
	return Stats{Connects: c.lean.connects.Load(), Subscribes: c.lean.subscribes.Load(),
		ProtocolErrors: c.lean.protoErrs.Load(), Oversized: c.lean.oversized.Load()}
}

// Close sends the pending acknowledgements and disconnects. Messages not
// acknowledged by then are redelivered by the broker on the next connect.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		if c.lean != nil {
			c.lean.shutdown()
			c.wg.Wait()
			return
		}
		c.pahoMu.Lock()
		c.closing = true
		c.pahoMu.Unlock()
		c.wg.Wait()
		c.pc.Disconnect(500)
	})
}
