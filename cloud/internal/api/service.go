package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// DeviceLister lists the fleet registry.
type DeviceLister interface {
	Devices() []Device
}

// EventQuerier answers event queries from the event store.
type EventQuerier interface {
	QueryEvents(ctx context.Context, q EventsQuery) ([]Event, error)
}

// VerdictQuerier answers verdict queries.
type VerdictQuerier interface {
	QueryVerdicts(ctx context.Context, q EventsQuery) ([]wire.Verdict, error)
}

// BadRequestError marks an error caused by the request; the service
// replies with CodeBadRequest.
type BadRequestError struct{ Err error }

func (e *BadRequestError) Error() string { return e.Err.Error() }
func (e *BadRequestError) Unwrap() error { return e.Err }

// ServiceConfig configures the micro service.
type ServiceConfig struct {
	Devices DeviceLister
	Events  EventQuerier
	// Verdicts answers verdicts.list; nil leaves the endpoint out.
	Verdicts VerdictQuerier
	// Models serves models.* and keys.public; nil leaves them out.
	Models ModelStore
	// Rollouts serves rollouts.*; nil leaves them out.
	Rollouts RolloutManager
	// Learn serves models.history and models.approve; nil leaves them
	// out.
	Learn Learner
	// ModelTimeout bounds one models.* request (a push reads, checks,
	// signs and stores a file). Default 60s.
	ModelTimeout time.Duration
	// Version is the service version; it must be semver for micro, so a
	// non-semver build version is reported in the version endpoint only.
	Version string
	// QueryTimeout bounds one events.list query. Default 10s.
	QueryTimeout time.Duration
	// Observe is called after each request with the endpoint and whether it
	// failed; nil means no observation.
	Observe func(endpoint string, failed bool)
	Logger  *slog.Logger
}

// Service is the running micro service.
type Service struct {
	svc micro.Service
}

// StartService registers the service on nc. Replicas share the work through
// micro's default queue group.
func StartService(nc *nats.Conn, cfg ServiceConfig) (*Service, error) {
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, bool) {}
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     "1.0.0",
		Description: "Outpost fleet API " + cfg.Version,
	})
	if err != nil {
		return nil, fmt.Errorf("api: add micro service: %w", err)
	}
	g := svc.AddGroup(names.APIPrefix)
	h := &handlers{cfg: cfg}
	add := func(name, subject string, fn func(micro.Request) error) error {
		wrapped := func(req micro.Request) {
			err := fn(req)
			cfg.Observe(subject, err != nil)
			if err != nil {
				code := ErrorCode(err)
				if code == CodeInternal && errors.Is(err, context.DeadlineExceeded) {
					code = CodeUnavailable
				}
				cfg.Logger.Warn("api request failed", "endpoint", subject, "code", code, "err", err)
				if rerr := req.Error(code, err.Error(), nil); rerr != nil {
					cfg.Logger.Warn("api error reply failed", "endpoint", subject, "err", rerr)
				}
			}
		}
		if err := g.AddEndpoint(name, micro.HandlerFunc(wrapped), micro.WithEndpointSubject(subject)); err != nil {
			return fmt.Errorf("api: add endpoint %s: %w", subject, err)
		}
		return nil
	}
	errs := []error{
		add("devices_list", EndpointDevicesList, h.devicesList),
		add("events_list", EndpointEventsList, h.eventsList),
		add("version", EndpointVersion, h.version),
	}
	if cfg.Verdicts != nil {
		errs = append(errs, add("verdicts_list", EndpointVerdicts, h.verdictsList))
	}
	if cfg.Models != nil {
		if cfg.ModelTimeout == 0 {
			cfg.ModelTimeout = 60 * time.Second
		}
		mh := &modelHandlers{store: cfg.Models, timeout: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), cfg.ModelTimeout)
		}}
		for subject, fn := range mh.endpoints() {
			errs = append(errs, add(strings.ReplaceAll(subject, ".", "_"), subject, fn))
		}
	}
	if cfg.Rollouts != nil {
		rh := &rolloutHandlers{m: cfg.Rollouts, timeout: 30 * time.Second}
		for subject, fn := range rh.endpoints() {
			errs = append(errs, add(strings.ReplaceAll(subject, ".", "_"), subject, fn))
		}
	}
	if cfg.Learn != nil {
		for subject, fn := range learnEndpoints(cfg.Learn, 60*time.Second) {
			errs = append(errs, add(strings.ReplaceAll(subject, ".", "_"), subject, fn))
		}
	}
	if err := errors.Join(errs...); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	// The endpoints' subscriptions reach the server asynchronously; flush so
	// that a client on another connection can call them as soon as this
	// returns, instead of meeting "no responders".
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("api: flush endpoint subscriptions: %w", err)
	}
	return &Service{svc: svc}, nil
}

// Stop unsubscribes the endpoints, letting in-flight requests finish.
func (s *Service) Stop() error { return s.svc.Stop() }

type handlers struct{ cfg ServiceConfig }

func (h *handlers) devicesList(req micro.Request) error {
	devs := h.cfg.Devices.Devices()
	if devs == nil {
		devs = []Device{}
	}
	return req.RespondJSON(devs)
}

func (h *handlers) eventsList(req micro.Request) error {
	var q EventsQuery
	if data := req.Data(); len(data) > 0 {
		if err := json.Unmarshal(data, &q); err != nil {
			return &BadRequestError{fmt.Errorf("events.list: request must be JSON like {\"agent\":\"gw-1\",\"since\":\"15m\",\"limit\":100}: %w", err)}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	evs, err := h.cfg.Events.QueryEvents(ctx, q)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []Event{}
	}
	return req.RespondJSON(evs)
}

func (h *handlers) verdictsList(req micro.Request) error {
	var q EventsQuery
	if data := req.Data(); len(data) > 0 {
		if err := json.Unmarshal(data, &q); err != nil {
			return &BadRequestError{fmt.Errorf("verdicts.list: request must be JSON like {\"agent\":\"gw-1\",\"since\":\"15m\",\"limit\":100}: %w", err)}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	defer cancel()
	vs, err := h.cfg.Verdicts.QueryVerdicts(ctx, q)
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []wire.Verdict{}
	}
	return req.RespondJSON(vs)
}

func (h *handlers) version(req micro.Request) error {
	return req.RespondJSON(VersionInfo{Service: ServiceName, Version: h.cfg.Version})
}
