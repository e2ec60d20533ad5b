// Package broker runs the MQTT broker embedded in the agent (mochi-mqtt),
// for gateways without their own mosquitto. The agent's ingest client
// connects to it over TCP like to any broker.
//
// mochi drops a publish to a subscriber whose outbound queue is full rather
// than blocking the publisher; the defaults (a small write buffer, 8192
// in-flight QoS 1 messages) lose messages in bursts of tens of thousands per
// second. Start sizes the queues so that a burst of up to PendingWrites
// messages to one subscriber is queued, not dropped; Dropped counts what is
// dropped anyway.
package broker

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Config configures the embedded broker. The zero value listens on
// 127.0.0.1:1883 without authentication.
type Config struct {
	// Listen is the TCP address. Default "127.0.0.1:1883"; port 0 picks one.
	Listen string
	// Username and Password, when Username is set, are required of every
	// client.
	Username, Password string
	// PendingWrites is the per-client outbound queue length. Default 131072.
	PendingWrites int
	// Logger receives the broker's logs (warnings and up). Default slog.Default().
	Logger *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	srv *mqtt.Server
	tcp *listeners.TCP
}

// Start starts the broker and returns once it is listening.
func Start(cfg Config) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:1883"
	}
	if cfg.PendingWrites <= 0 {
		cfg.PendingWrites = 1 << 17
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(cfg.PendingWrites)
	caps.MaximumInflight = 65535 // QoS 1 messages awaiting a subscriber's PUBACK
	caps.ReceiveMaximum = 65535  // QoS 1 messages a publisher may have in flight (MQTT 5)
	caps.MaximumSessionExpiryInterval = 24 * 3600
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: 64 << 10,
		ClientNetReadBufferSize:  64 << 10,
		Logger:                   cfg.Logger.With("component", "mqtt-broker"),
		InlineClient:             false,
	})
	var err error
	if cfg.Username != "" {
		err = srv.AddHook(&passwordHook{user: []byte(cfg.Username), pass: []byte(cfg.Password)}, nil)
	} else {
		err = srv.AddHook(new(auth.AllowHook), nil)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: cfg.Listen})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp}, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the broker's URL for MQTT clients.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Dropped counts the publishes the broker dropped (full client queue or
// in-flight store).
func (b *Broker) Dropped() int64 {
	return atomic.LoadInt64(&b.srv.Info.MessagesDropped) + atomic.LoadInt64(&b.srv.Info.InflightDropped)
}

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error { return b.srv.Close() }

// passwordHook accepts clients with the configured username and password and
// allows them every topic.
type passwordHook struct {
	mqtt.HookBase
	user, pass []byte
}

func (h *passwordHook) ID() string { return "outpost-password" }

func (h *passwordHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *passwordHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	u := subtle.ConstantTimeCompare(pk.Connect.Username, h.user)
	p := subtle.ConstantTimeCompare(pk.Connect.Password, h.pass)
	return u&p == 1
}

func (h *passwordHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
