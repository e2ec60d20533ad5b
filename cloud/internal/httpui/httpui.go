// Package httpui serves outpost-cloud's HTTP side: /healthz, /metrics, the
// dashboard page at / and the JSON endpoints /api/v1/devices and
// /api/v1/events.
package httpui

import (
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources is what the handlers read.
type Sources struct {
	// Devices lists the registry.
	Devices func() []api.Device
	// Latest returns up to n of the latest events, newest first.
	Latest func(n int) []api.Event
	// Healthy reports nil when the service can do its work (NATS connected).
	Healthy func() error
	// Version is the build version shown on the page.
	Version string
}

// Handler returns the HTTP handler.
func Handler(src Sources, m *metrics.Metrics, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	mux := http.NewServeMux()
	count := func(endpoint string, failed bool) {
		outcome := "ok"
		if failed {
			outcome = "error"
		}
		m.APIRequests.WithLabelValues("http", endpoint, outcome).Inc()
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
		count("devices", false)
		writeJSON(w, logger, devs)
	})
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		n := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > api.MaxEventsLimit {
				count("events", true)
				http.Error(w, "limit must be a number from 1 to "+strconv.Itoa(api.MaxEventsLimit), http.StatusBadRequest)
				return
			}
			n = v
		}
		count("events", false)
		writeJSON(w, logger, src.Latest(n))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		count("dashboard", false)
		data := page{
			Version: src.Version,
			Now:     time.Now().UTC().Format(time.RFC3339),
			Devices: src.Devices(),
			Events:  src.Latest(50),
		}
		for _, d := range data.Devices {
			if d.Online {
				data.Online++
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := dashboard.Execute(w, data); err != nil {
			logger.Warn("render dashboard", "err", err)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, logger *slog.Logger, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		logger.Warn("write JSON reply", "err", err)
	}
}

type page struct {
	Version string
	Now     string
	Online  int
	Devices []api.Device
	Events  []api.Event
}

var dashboard = template.Must(template.New("dashboard").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"score": func(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Outpost</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}
th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.online{color:#080;font-weight:bold}.offline{color:#a00}
.anomaly{color:#a00;font-weight:bold}.uncertain{color:#b70}
small{color:#777}
</style></head><body>
<h1>Outpost fleet</h1>
<p><small>outpost-cloud {{.Version}} &middot; {{.Now}} &middot; refreshes every 5s</small></p>
<h2>Devices ({{.Online}} online of {{len .Devices}})</h2>
<table id="devices"><tr><th>Agent</th><th>Status</th><th>Last seen</th><th>Version</th><th>Profile</th><th>Rev</th><th>Outbox</th><th>Drops</th><th>Last error</th></tr>
{{range .Devices}}<tr><td>{{.ID}}</td><td class="{{if .Online}}online">online{{else}}offline">offline{{end}}</td><td>{{ts .LastSeen}}</td><td>{{.Version}}</td><td>{{.Profile}}</td><td>{{.Revision}}</td><td>{{.OutboxDepth}}</td><td>{{.Drops}}</td><td>{{.LastError}}</td></tr>
{{else}}<tr><td colspan="9">no devices yet</td></tr>
{{end}}</table>
<h2>Latest events</h2>
<table id="events"><tr><th>Time</th><th>Agent</th><th>Seq</th><th>Stream</th><th>Kind</th><th>Score</th><th>Value</th><th>Model</th></tr>
{{range .Events}}<tr><td>{{ts .TS}}</td><td>{{.Agent}}</td><td>{{.Seq}}</td><td>{{.Stream}}</td><td class="{{.Kind}}">{{.Kind}}</td><td>{{score .Score}}</td><td>{{.Value}}</td><td>{{.Model}}</td></tr>
{{else}}<tr><td colspan="8">no events yet</td></tr>
{{end}}</table>
</body></html>
`))
