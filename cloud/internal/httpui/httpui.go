// Package httpui serves outpost-cloud's HTTP side: /healthz, /metrics, the
// dashboard page at / (HTML, CSS and vanilla JavaScript embedded in the
// binary, no external resources), and the JSON API the page reads, which
// mirrors the NATS API:
//
//	GET /api/v1/devices                         []api.Device
//	GET /api/v1/events?agent=&since=&limit=     []api.Event, oldest first, with verdicts
//	GET /api/v1/verdicts?agent=&since=&limit=   []wire.Verdict, oldest first
//	GET /api/v1/summary                         Summary (fleet totals)
//	GET /api/v1/rollouts                        what Sources.Rollouts returns; 404 without it
//	GET /api/v1/learn                           what Sources.Decisions returns (learning decisions); 404 without it
//	GET /api/v1/stream                          server-sent events (see Broadcaster; Live feeds it the fleet's events and verdicts)
//
// Errors are JSON {"code": "400", "message": "..."} with the same code as
// the HTTP status, as the NATS API's Nats-Service-Error-Code.
package httpui

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources is what the handlers read.
type Sources struct {
	// Devices lists the registry.
	Devices func() []api.Device
	// Latest returns up to n of the latest events, newest first; the page
	// is rendered with them (or with the fleet's from Events, when set)
	// before its script takes over.
	Latest func(n int) []api.Event
	// Verdicts returns up to n of the latest verdicts, newest first; nil
	// means none.
	Verdicts func(n int) []wire.Verdict
	// Events answers /api/v1/events from the stream; nil falls back to
	// Latest (this replica's ring, without agent or since filters).
	Events api.EventQuerier
	// VerdictQuery answers /api/v1/verdicts from the stream; nil falls back
	// to Verdicts.
	VerdictQuery api.VerdictQuerier
	// Rollouts lists rollouts for /api/v1/rollouts; nil means this service
	// has none, and the endpoint answers 404.
	Rollouts func(ctx context.Context) (any, error)
	// Decisions lists the learning loop's recent decisions for
	// /api/v1/learn; nil answers 404.
	Decisions func(ctx context.Context) (any, error)
	// Stream serves /api/v1/stream; nil answers 404.
	Stream *Broadcaster
	// Healthy reports nil when the service can do its work (NATS connected).
	Healthy func() error
	// Version is the build version shown on the page.
	Version string
	// QueryTimeout bounds one events or verdicts query. Default 10s.
	QueryTimeout time.Duration
}

// Summary is the fleet's totals, /api/v1/summary.
type Summary struct {
	// Time is when the summary was made.
	Time    time.Time `json:"time"`
	Version string    `json:"version"`
	Devices int       `json:"devices"`
	Online  int       `json:"online"`
	// RawBytes and UplinkBytes total the devices' raw reading bytes and
	// uplinked bytes from their summaries.
	RawBytes    uint64 `json:"raw_bytes"`
	UplinkBytes uint64 `json:"uplink_bytes"`
	// UplinkRatio is UplinkBytes / RawBytes; null when RawBytes is 0.
	UplinkRatio *float64 `json:"uplink_ratio"`
	// Saved is 1 - UplinkRatio, the share of raw bytes not uplinked; null
	// when RawBytes is 0.
	Saved       *float64 `json:"saved"`
	Readings    uint64   `json:"readings"`
	Anomalies   uint64   `json:"anomalies"`
	Uncertain   uint64   `json:"uncertain"`
	OutboxDepth uint64   `json:"outbox_depth"`
	OutboxBytes uint64   `json:"outbox_bytes"`
	Drops       uint64   `json:"drops"`
	// DevicesWithErrors counts devices reporting a last error.
	DevicesWithErrors int `json:"devices_with_errors"`
	// StreamClients is the number of live dashboard streams; StreamDropped
	// the messages dropped for slow ones.
	StreamClients int    `json:"stream_clients"`
	StreamDropped uint64 `json:"stream_dropped"`
}

// Fleet computes the fleet totals of devs.
func Fleet(devs []api.Device) Summary {
	var s Summary
	s.Devices = len(devs)
	for _, d := range devs {
		if d.Online {
			s.Online++
		}
		s.RawBytes += d.RawBytes
		s.UplinkBytes += d.UplinkBytes
		s.Readings += d.Readings
		s.Anomalies += d.Anomalies
		s.Uncertain += d.Uncertain
		s.OutboxDepth += d.OutboxDepth
		s.OutboxBytes += d.OutboxBytes
		s.Drops += d.Drops
		if d.LastError != "" {
			s.DevicesWithErrors++
		}
	}
	if s.RawBytes > 0 {
		r := float64(s.UplinkBytes) / float64(s.RawBytes)
		saved := 1 - r
		s.UplinkRatio, s.Saved = &r, &saved
	}
	return s
}

// errorBody is the JSON of an error reply.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, logger *slog.Logger, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(errorBody{Code: strconv.Itoa(status), Message: msg}); err != nil {
		logger.Debug("write error reply", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, logger *slog.Logger, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		logger.Warn("write JSON reply", "err", err)
	}
}

// statusOf maps a query error to an HTTP status.
func statusOf(err error) int {
	var bad *api.BadRequestError
	switch {
	case errors.As(err, &bad):
		return http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// query reads agent, since and limit from the URL.
func query(r *http.Request) (api.EventsQuery, error) {
	v := r.URL.Query()
	q := api.EventsQuery{Agent: v.Get("agent"), Since: v.Get("since")}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > api.MaxEventsLimit {
			return q, &api.BadRequestError{Err: errors.New("limit must be a number from 1 to " + strconv.Itoa(api.MaxEventsLimit))}
		}
		q.Limit = n
	}
	return q, nil
}

// Handler returns the HTTP handler.
func Handler(src Sources, m *metrics.Metrics, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	if src.QueryTimeout <= 0 {
		src.QueryTimeout = 10 * time.Second
	}
	mux := http.NewServeMux()
	count := func(endpoint string, failed bool) {
		outcome := "ok"
		if failed {
			outcome = "error"
		}
		m.APIRequests.WithLabelValues("http", endpoint, outcome).Inc()
	}
	fail := func(w http.ResponseWriter, endpoint string, status int, msg string) {
		count(endpoint, true)
		if status >= 500 {
			logger.Warn("http api request failed", "endpoint", endpoint, "status", status, "err", msg)
		}
		writeError(w, logger, status, msg)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := src.Healthy(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		devs := src.Devices()
		if devs == nil {
			devs = []api.Device{}
		}
		count("devices", false)
		writeJSON(w, logger, devs)
	})
	mux.HandleFunc("GET /api/v1/summary", func(w http.ResponseWriter, r *http.Request) {
		s := Fleet(src.Devices())
		s.Time, s.Version = time.Now().UTC(), src.Version
		if src.Stream != nil {
			s.StreamClients, s.StreamDropped = src.Stream.Clients(), src.Stream.Dropped()
		}
		count("summary", false)
		writeJSON(w, logger, s)
	})
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		q, err := query(r)
		if err != nil {
			fail(w, "events", http.StatusBadRequest, err.Error())
			return
		}
		var evs []api.Event
		if src.Events != nil {
			ctx, cancel := context.WithTimeout(r.Context(), src.QueryTimeout)
			defer cancel()
			evs, err = src.Events.QueryEvents(ctx, q)
		} else {
			evs, err = latest(src.Latest, q)
		}
		if err != nil {
			fail(w, "events", statusOf(err), err.Error())
			return
		}
		if evs == nil {
			evs = []api.Event{}
		}
		count("events", false)
		writeJSON(w, logger, evs)
	})
	mux.HandleFunc("GET /api/v1/verdicts", func(w http.ResponseWriter, r *http.Request) {
		q, err := query(r)
		if err != nil {
			fail(w, "verdicts", http.StatusBadRequest, err.Error())
			return
		}
		var vs []wire.Verdict
		if src.VerdictQuery != nil {
			ctx, cancel := context.WithTimeout(r.Context(), src.QueryTimeout)
			defer cancel()
			vs, err = src.VerdictQuery.QueryVerdicts(ctx, q)
		} else {
			vs, err = latest(src.Verdicts, q)
		}
		if err != nil {
			fail(w, "verdicts", statusOf(err), err.Error())
			return
		}
		if vs == nil {
			vs = []wire.Verdict{}
		}
		count("verdicts", false)
		writeJSON(w, logger, vs)
	})
	mux.HandleFunc("GET /api/v1/rollouts", func(w http.ResponseWriter, r *http.Request) {
		if src.Rollouts == nil {
			fail(w, "rollouts", http.StatusNotFound, "this outpost-cloud has no rollouts")
			return
		}
		v, err := src.Rollouts(r.Context())
		if err != nil {
			fail(w, "rollouts", statusOf(err), err.Error())
			return
		}
		count("rollouts", false)
		writeJSON(w, logger, v)
	})
	mux.HandleFunc("GET /api/v1/learn", func(w http.ResponseWriter, r *http.Request) {
		if src.Decisions == nil {
			fail(w, "learn", http.StatusNotFound, "this outpost-cloud has no learning loop")
			return
		}
		v, err := src.Decisions(r.Context())
		if err != nil {
			fail(w, "learn", statusOf(err), err.Error())
			return
		}
		count("learn", false)
		writeJSON(w, logger, v)
	})
	mux.HandleFunc("GET /api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		if src.Stream == nil {
			fail(w, "stream", http.StatusNotFound, "this outpost-cloud has no live stream")
			return
		}
		count("stream", false)
		src.Stream.ServeHTTP(w, r)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, "unknown", http.StatusNotFound, "no API endpoint "+r.Method+" "+r.URL.Path+": see /api/v1/devices, events, verdicts, summary, rollouts, stream")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		count("dashboard", false)
		devs := src.Devices()
		var vs []wire.Verdict
		if src.Verdicts != nil {
			vs = src.Verdicts(50)
		}
		data := page{
			Version:  src.Version,
			Now:      time.Now().UTC().Format(time.RFC3339),
			Devices:  devs,
			Fleet:    Fleet(devs),
			Events:   pageEvents(r.Context(), src, 50),
			Verdicts: vs,
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
		if err := dashboard.Execute(w, data); err != nil {
			logger.Warn("render dashboard", "err", err)
		}
	})
	return mux
}

// pageEvents returns the n latest events of the last hour, newest first,
// for the page: the fleet's, from the stream (Sources.Events), whichever
// replica accepted them; this replica's (Sources.Latest) without a stream
// query or when it fails.
func pageEvents(ctx context.Context, src Sources, n int) []api.Event {
	if src.Events != nil {
		ctx, cancel := context.WithTimeout(ctx, src.QueryTimeout)
		defer cancel()
		if evs, err := src.Events.QueryEvents(ctx, api.EventsQuery{Since: "1h", Limit: n}); err == nil {
			slices.Reverse(evs)
			return evs
		}
	}
	return src.Latest(n)
}

// latest answers a query from an in-memory newest-first list: oldest
// first, filtered by agent, the newest q.Limit.
func latest[T any](fn func(int) []T, q api.EventsQuery) ([]T, error) {
	if fn == nil {
		return nil, nil
	}
	if _, err := q.Normalize(time.Now()); err != nil {
		return nil, &api.BadRequestError{Err: err}
	}
	if q.Agent != "" || q.Since != "" {
		return nil, &api.BadRequestError{Err: errors.New("agent and since filters need the stream query, which this server lacks")}
	}
	l := fn(q.Limit)
	out := make([]T, 0, len(l))
	for i := len(l) - 1; i >= 0; i-- {
		out = append(out, l[i])
	}
	return out, nil
}
