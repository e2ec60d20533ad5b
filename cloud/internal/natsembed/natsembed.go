// Package natsembed runs nats-server with JetStream inside the outpost-cloud
// process, so that a single binary is the whole system on one machine.
package natsembed

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server. The zero value listens on
// 127.0.0.1:4222 and stores JetStream data under ./outpost-data.
type Config struct {
	// Listen is the client address, host:port. Port 0 picks a free port.
	// Default "127.0.0.1:4222".
	Listen string
	// StoreDir is the JetStream store directory. Default "./outpost-data".
	StoreDir string
	// Logger receives the server's log lines. Default slog.Default().
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients.
	// Default 10s.
	ReadyTimeout time.Duration
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if c.StoreDir == "" {
		c.StoreDir = "./outpost-data"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 10 * time.Second
	}
}

// Server is a running embedded nats-server.
type Server struct {
	s *server.Server
}

// Start starts the server and waits until it accepts clients.
func Start(cfg Config) (*Server, error) {
	cfg.fill()
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("natsembed: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("natsembed: listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "outpost-cloud",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: configure nats-server: %w", err)
	}
	s.SetLoggerV2(&logAdapter{l: cfg.Logger.With("component", "nats-server")}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("natsembed: nats-server on %s not ready within %s (is the port in use?)", cfg.Listen, cfg.ReadyTimeout)
	}
	return &Server{s: s}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.s.ClientURL() }

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// logAdapter routes nats-server's logger to slog.
type logAdapter struct{ l *slog.Logger }

// Noticef logs at debug level: the server's notices (its start-up banner
// among them) would drown the service's own log; outpost-cloud logs the
// client URL itself.
func (a *logAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
