package httpui

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Server-sent event names on /api/v1/stream.
const (
	// SSEEvent carries an accepted edge event (api.Event without its
	// window).
	SSEEvent = "event"
	// SSEVerdict carries a second-stage verdict (wire.Verdict).
	SSEVerdict = "verdict"
	// SSEHeartbeat is sent every BroadcasterConfig.Heartbeat with
	// {"time": RFC 3339} so clients and proxies see the stream alive.
	SSEHeartbeat = "heartbeat"
	// SSEDropped tells a client how many messages it missed because it
	// read too slowly: {"dropped": n} (n since the previous such message).
	SSEDropped = "dropped"
)

// BroadcasterConfig configures a Broadcaster. Zero values mean the defaults.
type BroadcasterConfig struct {
	// Buffer is how many messages wait per client before further ones are
	// dropped for that client. Default 256.
	Buffer int
	// Heartbeat is the interval of heartbeat messages. Default 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds one write to a client; a client that does not
	// take a message within it is disconnected. Default 30s.
	WriteTimeout time.Duration
	// MaxClients is the most concurrent stream clients; more are refused
	// with 503. Default 100.
	MaxClients int
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c *BroadcasterConfig) fill() {
	if c.Buffer <= 0 {
		c.Buffer = 256
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Broadcaster fans messages out to server-sent-event clients. Publish never
// blocks: each client has a bounded buffer, and a message that does not fit
// is dropped for that client and counted (per client, reported to it in an
// SSEDropped message once it catches up, and in total). A client whose
// connection does not take a write within WriteTimeout is disconnected.
type Broadcaster struct {
	cfg BroadcasterConfig

	mu      sync.Mutex
	clients map[*sseClient]struct{}
	closed  chan struct{}
	once    sync.Once
	// changed, if set (Live), is called after a client came or went;
	// ready, if set, waits until the messages published after it returns
	// reach the client (Live follows the streams).
	changed func()
	ready   func(ctx context.Context)

	nclients  atomic.Int64 // len(clients), read without the lock
	published atomic.Uint64
	dropped   atomic.Uint64
}

type sseClient struct {
	ch      chan []byte
	dropped atomic.Uint64
}

// NewBroadcaster returns a Broadcaster with no clients.
func NewBroadcaster(cfg BroadcasterConfig) *Broadcaster {
	cfg.fill()
	return &Broadcaster{cfg: cfg, clients: map[*sseClient]struct{}{}, closed: make(chan struct{})}
}

// Publish sends v, encoded as JSON, as a server-sent event named event to
// every connected client without blocking.
func (b *Broadcaster) Publish(event string, v any) {
	if b.nclients.Load() == 0 {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		b.cfg.Logger.Warn("stream: encode message", "event", event, "err", err)
		return
	}
	msg := frame(event, data)
	b.published.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.clients {
		select {
		case c.ch <- msg:
		default:
			c.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
}

// frame formats one server-sent event; data is JSON, which has no raw
// newlines.
func frame(event string, data []byte) []byte {
	msg := make([]byte, 0, len(event)+len(data)+16)
	msg = append(msg, "event: "...)
	msg = append(msg, event...)
	msg = append(msg, "\ndata: "...)
	msg = append(msg, data...)
	return append(msg, "\n\n"...)
}

// Clients returns the number of connected clients.
func (b *Broadcaster) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// Dropped returns how many messages were dropped for slow clients in total.
func (b *Broadcaster) Dropped() uint64 { return b.dropped.Load() }

// Close disconnects every client and refuses new ones. It is safe to call
// more than once; the service calls it when HTTP shuts down, since open
// streams would otherwise hold the server's graceful shutdown.
func (b *Broadcaster) Close() {
	b.once.Do(func() { close(b.closed) })
}

// Collectors are the broadcaster's metrics: outpost_cloud_stream_clients,
// outpost_cloud_stream_messages_total and
// outpost_cloud_stream_dropped_total.
func (b *Broadcaster) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "outpost_cloud", Name: "stream_clients",
			Help: "Dashboard clients connected to the server-sent event stream.",
		}, func() float64 { return float64(b.Clients()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "outpost_cloud", Name: "stream_messages_total",
			Help: "Messages published to the server-sent event stream while clients were connected.",
		}, func() float64 { return float64(b.published.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "outpost_cloud", Name: "stream_dropped_total",
			Help: "Stream messages dropped for clients that read too slowly.",
		}, func() float64 { return float64(b.dropped.Load()) }),
	}
}

// watch makes changed be called (without locks held) after each client
// comes or goes, and ServeHTTP wait (at most ReadyTimeout) for ready before
// it answers a new client.
func (b *Broadcaster) watch(changed func(), ready func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changed, b.ready = changed, ready
}

// ReadyTimeout bounds how long a new stream client waits for the live feed
// to follow the fleet's events (see Live) before its stream opens anyway.
const ReadyTimeout = 5 * time.Second

// notify calls the watcher.
func (b *Broadcaster) notify() {
	b.mu.Lock()
	f := b.changed
	b.mu.Unlock()
	if f != nil {
		f()
	}
}

func (b *Broadcaster) subscribe() (*sseClient, bool) {
	defer b.notify()
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.closed:
		return nil, false
	default:
	}
	if len(b.clients) >= b.cfg.MaxClients {
		return nil, false
	}
	c := &sseClient{ch: make(chan []byte, b.cfg.Buffer)}
	b.clients[c] = struct{}{}
	b.nclients.Store(int64(len(b.clients)))
	return c, true
}

func (b *Broadcaster) unsubscribe(c *sseClient) {
	defer b.notify()
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.clients, c)
	b.nclients.Store(int64(len(b.clients)))
}

// ServeHTTP streams messages to one client until it disconnects or the
// broadcaster is closed.
func (b *Broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, ok := b.subscribe()
	if !ok {
		writeError(w, b.cfg.Logger, http.StatusServiceUnavailable,
			"the live stream is full ("+strconv.Itoa(b.cfg.MaxClients)+" clients) or shutting down: retry later")
		return
	}
	defer b.unsubscribe(c)
	b.mu.Lock()
	ready := b.ready
	b.mu.Unlock()
	if ready != nil {
		// Open the stream once what is published from now on reaches it.
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		ready(ctx)
		cancel()
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(msg []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(b.cfg.WriteTimeout))
		if _, err := w.Write(msg); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// retry: how long the browser waits before reconnecting.
	if !write([]byte("retry: 3000\n\n")) {
		return
	}
	tick := time.NewTicker(b.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-b.closed:
			return
		case now := <-tick.C:
			if n := c.dropped.Swap(0); n > 0 {
				if !write(frame(SSEDropped, []byte(`{"dropped":`+strconv.FormatUint(n, 10)+`}`))) {
					return
				}
			}
			hb, _ := json.Marshal(struct {
				Time time.Time `json:"time"`
			}{now.UTC()})
			if !write(frame(SSEHeartbeat, hb)) {
				return
			}
		case msg := <-c.ch:
			if n := c.dropped.Swap(0); n > 0 {
				if !write(frame(SSEDropped, []byte(`{"dropped":`+strconv.FormatUint(n, 10)+`}`))) {
					return
				}
			}
			if !write(msg) {
				return
			}
		}
	}
}
