// Package service assembles outpost-cloud: the embedded or external NATS
// server, the streams, event and summary ingest, the second stage
// (verdicts), alert sinks, the device registry, the NATS API and the HTTP
// side. Start brings everything up; Stop shuts it down in reverse
// order (consumers and API, HTTP, the NATS connection, then the embedded
// server).
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/alerts"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/events"
	"github.com/outpost-iot/outpost/cloud/internal/httpui"
	"github.com/outpost-iot/outpost/cloud/internal/keys"
	"github.com/outpost-iot/outpost/cloud/internal/learn"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/modelstore"
	"github.com/outpost-iot/outpost/cloud/internal/natsembed"
	"github.com/outpost-iot/outpost/cloud/internal/registry"
	"github.com/outpost-iot/outpost/cloud/internal/rollout"
	"github.com/outpost-iot/outpost/cloud/internal/scorer"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/cloud/internal/summaries"
	"github.com/outpost-iot/outpost/cloud/internal/verdicts"
	"github.com/outpost-iot/outpost/shared/buildinfo"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Config configures the service. The zero value runs an embedded NATS
// server on 127.0.0.1:4222 with its store in ./outpost-data and serves HTTP
// on 127.0.0.1:8080.
type Config struct {
	// DataDir is where the embedded server keeps JetStream data.
	// Default "./outpost-data".
	DataDir string
	// NATSListen is the embedded server's client address; port 0 picks a
	// free port. Default "127.0.0.1:4222". Ignored with NATSURL.
	NATSListen string
	// NATSURL, when set, makes the service use that external NATS server
	// and start no embedded one.
	NATSURL string
	// HTTPListen is the HTTP address; port 0 picks a free port.
	// Default "127.0.0.1:8080".
	HTTPListen string
	// RingSize is how many latest events are kept for the dashboard.
	RingSize int
	// Now is the clock for online status and relative queries; default
	// time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Batch is the most messages each durable consumer processes as one
	// batch; default ingest.DefaultBatch.
	Batch int
	// Scorer names the second-stage scorer: a built-in one ("name@version",
	// or "name" for its latest version: forecast-cloud, robust-zscore), or
	// a cloud-float model in the model store. Default scorer.DefaultName
	// (the stock float model forecast-cloud).
	Scorer string
	// ScoreThreshold is the scorer's confirm threshold; 0 means the
	// scorer's default.
	ScoreThreshold float64
	// OnEvent, if set, is called with each event this replica accepts
	// (concurrently for different agents; in seq order per agent).
	OnEvent func(api.Event)
	// OnVerdict, if set, is called with each verdict this replica decides
	// (concurrently for different agents).
	OnVerdict func(api.Event, wire.Verdict)
	// Webhook configures the webhook alert sink; an empty URL means none.
	// Metrics and Logger are filled in by the service.
	Webhook alerts.Config
	// SigningKey is the model-signing key file (PEM PKCS #8 ed25519),
	// created when missing. Default <DataDir>/keys/model-signing.key.
	// Replicas on one NATS must share the file (see package keys).
	SigningKey string
	// MaxModelBytes bounds a pushed model file; 0 means
	// modelstore.DefaultMaxModelBytes.
	MaxModelBytes int64
	// Learn configures the learning loop (package learn); its Mode "" is
	// off. Models, Rollouts, Devices, Events, Now and Logger are filled in
	// by the service.
	Learn learn.Config
}

func (c *Config) fill() {
	if c.DataDir == "" {
		c.DataDir = "./outpost-data"
	}
	if c.NATSListen == "" {
		c.NATSListen = "127.0.0.1:4222"
	}
	if c.HTTPListen == "" {
		c.HTTPListen = "127.0.0.1:8080"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Scorer == "" {
		c.Scorer = scorer.DefaultName
	}
	if c.SigningKey == "" {
		c.SigningKey = filepath.Join(c.DataDir, keys.DefaultFile)
	}
}

// Service is a running outpost-cloud.
type Service struct {
	cfg      Config
	embedded *natsembed.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	metrics  *metrics.Metrics
	registry *registry.Registry
	events   *events.Store
	sums     *summaries.Consumer
	stage    *verdicts.Stage
	feed     *verdicts.Feed
	webhook  *alerts.Webhook
	api      *api.Service
	models   *modelstore.Store
	rollouts *rollout.Controller
	learn    *learn.Learner
	httpSrv  *http.Server
	stream   *httpui.Broadcaster
	live     *httpui.Live
	httpLn   net.Listener
	httpDone chan error
	stopOnce sync.Once
}

// Start brings the service up. On error everything started is stopped.
func Start(ctx context.Context, cfg Config) (s *Service, err error) {
	cfg.fill()
	s = &Service{cfg: cfg}
	defer func() {
		if err != nil {
			s.Stop()
			s = nil
		}
	}()
	log := cfg.Logger
	url := cfg.NATSURL
	if url == "" {
		s.embedded, err = natsembed.Start(natsembed.Config{Listen: cfg.NATSListen, StoreDir: cfg.DataDir, Logger: log})
		if err != nil {
			return s, err
		}
		url = s.embedded.ClientURL()
		log.Info("embedded nats-server started", "url", url, "store", cfg.DataDir)
	}
	s.nc, err = nats.Connect(url,
		nats.Name("outpost-cloud"),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
	)
	if err != nil {
		return s, fmt.Errorf("service: connect to NATS at %s: %w", url, err)
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		return s, fmt.Errorf("service: jetstream: %w", err)
	}
	if err = streams.Ensure(ctx, s.js); err != nil {
		return s, err
	}
	if err = s.openModels(ctx); err != nil {
		return s, err
	}
	reg := registry.New(registry.Config{Now: cfg.Now, Logger: log})
	s.metrics = metrics.New(func() float64 { return float64(reg.OnlineCount()) })
	reg.SetMetrics(s.metrics)
	s.registry = reg
	s.stream = httpui.NewBroadcaster(httpui.BroadcasterConfig{Logger: log})
	s.metrics.Registry.MustRegister(s.stream.Collectors()...)
	// The live stream shows the fleet's events and verdicts, whichever
	// replica ingested or decided them.
	s.live = httpui.StartLive(s.js, s.stream, httpui.LiveConfig{Logger: log})
	if err = s.registry.Start(ctx, s.js); err != nil {
		return s, err
	}
	s.events = events.New(s.js, events.Config{RingSize: cfg.RingSize, Batch: cfg.Batch, Metrics: s.metrics, Logger: log, Now: cfg.Now, OnEvent: s.onEvent})
	if err = s.events.Start(ctx); err != nil {
		return s, err
	}
	if s.sums, err = summaries.Start(ctx, s.js, summaries.Config{Batch: cfg.Batch, Metrics: s.metrics, Logger: log}); err != nil {
		return s, err
	}
	sc, err := s.secondStage(ctx)
	if err != nil {
		return s, fmt.Errorf("service: second-stage scorer: %w", err)
	}
	if s.stage, err = verdicts.Start(ctx, s.js, verdicts.Config{Scorer: sc, Batch: cfg.Batch, Now: cfg.Now, Metrics: s.metrics, Logger: log, OnVerdict: s.onVerdict}); err != nil {
		return s, err
	}
	if s.feed, err = verdicts.StartFeed(ctx, s.js, 0, log); err != nil {
		return s, err
	}
	if cfg.Webhook.URL != "" {
		wcfg := cfg.Webhook
		wcfg.Metrics, wcfg.Logger = s.metrics, log
		if s.webhook, err = alerts.StartWebhook(ctx, s.js, wcfg); err != nil {
			return s, err
		}
	}
	if s.rollouts, err = s.startRollouts(ctx); err != nil {
		return s, err
	}
	if s.learn, err = s.startLearn(ctx); err != nil {
		return s, err
	}
	s.api, err = api.StartService(s.nc, api.ServiceConfig{
		Devices:  s.registry,
		Events:   s.events,
		Verdicts: s.events,
		Models:   s.modelAPI(),
		Rollouts: s.rollouts,
		Learn:    s.learn,
		Version:  buildinfo.String(),
		Logger:   log,
		Observe: func(endpoint string, failed bool) {
			outcome := "ok"
			if failed {
				outcome = "error"
			}
			s.metrics.APIRequests.WithLabelValues("nats", endpoint, outcome).Inc()
		},
	})
	if err != nil {
		return s, err
	}
	s.httpLn, err = net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return s, fmt.Errorf("service: HTTP listen on %s: %w", cfg.HTTPListen, err)
	}
	s.httpSrv = &http.Server{
		Handler: httpui.Handler(httpui.Sources{
			Devices:  s.registry.Devices,
			Latest:   s.events.Latest,
			Verdicts: s.feed.Latest,
			// The dashboard's JSON API mirrors the NATS API's queries and
			// the live stream carries the fleet's events and verdicts
			// (s.live).
			Events:       s.events,
			VerdictQuery: s.events,
			Stream:       s.stream,
			Rollouts:     s.listRollouts,
			Decisions:    s.listDecisions,
			Healthy: func() error {
				if !s.nc.IsConnected() {
					return errors.New("not connected to NATS")
				}
				return nil
			},
			Version: buildinfo.String(),
		}, s.metrics, log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.httpSrv.Handler = s.withModelRoutes(s.httpSrv.Handler)
	// Open event streams never become idle: end them when HTTP shuts down.
	s.httpSrv.RegisterOnShutdown(s.stream.Close)
	s.httpDone = make(chan error, 1)
	go func() { s.httpDone <- s.httpSrv.Serve(s.httpLn) }()
	log.Info("ready", "nats", url, "http", s.HTTPAddr(), "version", buildinfo.String())
	return s, nil
}

// onEvent passes an accepted event to Config.OnEvent. (The dashboard's
// live stream follows the events stream itself, httpui.Live, so that every
// replica shows every replica's events.)
func (s *Service) onEvent(ev api.Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// onVerdict passes a decided verdict to Config.OnVerdict (the live stream
// follows the verdicts stream, as events).
func (s *Service) onVerdict(ev api.Event, v wire.Verdict) {
	if s.cfg.OnVerdict != nil {
		s.cfg.OnVerdict(ev, v)
	}
}

// NATSURL is the URL of the NATS server the service uses.
func (s *Service) NATSURL() string { return s.nc.ConnectedUrl() }

// HTTPAddr is the address the HTTP server listens on.
func (s *Service) HTTPAddr() string { return s.httpLn.Addr().String() }

// Registry is the device registry.
func (s *Service) Registry() *registry.Registry { return s.registry }

// Events is the event store.
func (s *Service) Events() *events.Store { return s.events }

// Metrics are the service's metrics.
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

// JetStream is the service's JetStream context.
func (s *Service) JetStream() jetstream.JetStream { return s.js }

// Verdicts is the feed of latest verdicts.
func (s *Service) Verdicts() *verdicts.Feed { return s.feed }

// Stop shuts the service down: API and consumers, HTTP, the NATS
// connection, then the embedded server. It is safe on a partly started
// service, and safe to call more than once.
func (s *Service) Stop() { s.stopOnce.Do(s.stop) }

func (s *Service) stop() {
	log := s.cfg.Logger
	if s.api != nil {
		if err := s.api.Stop(); err != nil {
			log.Warn("stop api", "err", err)
		}
	}
	if s.webhook != nil {
		s.webhook.Stop()
	}
	if s.learn != nil {
		s.learn.Stop()
	}
	if s.rollouts != nil {
		s.rollouts.Stop()
	}
	if s.stage != nil {
		s.stage.Stop()
	}
	if s.sums != nil {
		s.sums.Stop()
	}
	if s.events != nil {
		s.events.Stop()
	}
	if s.feed != nil {
		s.feed.Stop()
	}
	if s.live != nil {
		s.live.Stop()
	}
	if s.registry != nil {
		s.registry.Stop()
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			log.Warn("stop http", "err", err)
		}
		cancel()
		<-s.httpDone
	} else if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	if s.nc != nil {
		// Send outstanding acknowledgements before closing.
		if err := s.nc.FlushTimeout(2 * time.Second); err != nil && s.nc.IsConnected() {
			log.Warn("flush NATS connection", "err", err)
		}
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	log.Info("stopped")
}
