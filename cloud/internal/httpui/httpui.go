// Package httpui serves outpost-cloud's HTTP side: /healthz, /metrics, the
// dashboard page at / and the JSON endpoints /api/v1/devices,
// /api/v1/events and /api/v1/verdicts.
package httpui

import (
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
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
	// Latest returns up to n of the latest events, newest first.
	Latest func(n int) []api.Event
	// Verdicts returns up to n of the latest verdicts, newest first; nil
	// means none.
	Verdicts func(n int) []wire.Verdict
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
	verdictsOf := func(n int) []wire.Verdict {
		if src.Verdicts == nil {
			return []wire.Verdict{}
		}
		return src.Verdicts(n)
	}
	mux.HandleFunc("GET /api/v1/verdicts", func(w http.ResponseWriter, r *http.Request) {
		n := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > api.MaxEventsLimit {
				count("verdicts", true)
				http.Error(w, "limit must be a number from 1 to "+strconv.Itoa(api.MaxEventsLimit), http.StatusBadRequest)
				return
			}
			n = v
		}
		count("verdicts", false)
		writeJSON(w, logger, verdictsOf(n))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		count("dashboard", false)
		data := page{
			Version:  src.Version,
			Now:      time.Now().UTC().Format(time.RFC3339),
			Devices:  src.Devices(),
			Events:   src.Latest(50),
			Verdicts: verdictsOf(50),
		}
		for _, d := range data.Devices {
			if d.Online {
				data.Online++
			}
			data.RawBytes += d.RawBytes
			data.UplinkBytes += d.UplinkBytes
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
	Version     string
	Now         string
	Online      int
	RawBytes    uint64
	UplinkBytes uint64
	Devices     []api.Device
	Events      []api.Event
	Verdicts    []wire.Verdict
}

// bytesIEC formats a byte count with binary prefixes.
func bytesIEC(b uint64) string {
	const unit = 1024
	if b < unit {
		return strconv.FormatUint(b, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(b)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// saved is the share of raw bytes that did not need uplinking, e.g. "97.5%".
func saved(raw, up uint64) string {
	if raw == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*(1-float64(up)/float64(raw)), 'f', 1, 64) + "%"
}

func models(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

var dashboard = template.Must(template.New("dashboard").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"score":  func(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) },
	"bytes":  bytesIEC,
	"saved":  saved,
	"models": models,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Outpost</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}
th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.online{color:#080;font-weight:bold}.offline{color:#a00}
.anomaly,.confirmed{color:#a00;font-weight:bold}.rejected{color:#777}.uncertain{color:#b70}
small{color:#777}
</style></head><body>
<h1>Outpost fleet</h1>
<p><small>outpost-cloud {{.Version}} &middot; {{.Now}} &middot; refreshes every 5s</small></p>
<h2>Devices ({{.Online}} online of {{len .Devices}})</h2>
<p id="bandwidth">Bandwidth: edges received <b>{{bytes .RawBytes}}</b> of readings and uplinked <b>{{bytes .UplinkBytes}}</b> (saved {{saved .RawBytes .UplinkBytes}})</p>
<table id="devices"><tr><th>Agent</th><th>Status</th><th>Last seen</th><th>Version</th><th>Profile</th><th>Rev</th><th>Group</th><th>Models</th><th>Outbox</th><th>Drops</th><th>Raw</th><th>Uplink</th><th>Last error</th></tr>
{{range .Devices}}<tr><td>{{.ID}}</td><td class="{{if .Online}}online">online{{else}}offline">offline{{end}}</td><td>{{ts .LastSeen}}</td><td>{{.Version}}</td><td>{{.Profile}}</td><td>{{.Revision}}</td><td>{{.Group}}</td><td>{{models .Models}}</td><td>{{.OutboxDepth}} ({{bytes .OutboxBytes}})</td><td>{{.Drops}}</td><td>{{bytes .RawBytes}}</td><td>{{bytes .UplinkBytes}}</td><td>{{.LastError}}</td></tr>
{{else}}<tr><td colspan="13">no devices yet</td></tr>
{{end}}</table>
<h2>Latest verdicts</h2>
<table id="verdicts"><tr><th>Decided</th><th>Agent</th><th>Seq</th><th>Stream</th><th>Edge kind</th><th>Decision</th><th>Score</th><th>Model</th><th>Latency ms</th><th>Reason</th></tr>
{{range .Verdicts}}<tr><td>{{ts .Decided}}</td><td>{{.Agent}}</td><td>{{.Seq}}</td><td>{{.Stream}}</td><td class="{{.EdgeKind}}">{{.EdgeKind}}</td><td class="{{.Decision}}">{{.Decision}}</td><td>{{score .Score}}</td><td>{{.Model}}</td><td>{{score .LatencyMS}}</td><td>{{.Reason}}</td></tr>
{{else}}<tr><td colspan="10">no verdicts yet</td></tr>
{{end}}</table>
<h2>Latest events</h2>
<table id="events"><tr><th>Time</th><th>Agent</th><th>Seq</th><th>Stream</th><th>Kind</th><th>Score</th><th>Value</th><th>Model</th></tr>
{{range .Events}}<tr><td>{{ts .TS}}</td><td>{{.Agent}}</td><td>{{.Seq}}</td><td>{{.Stream}}</td><td class="{{.Kind}}">{{.Kind}}</td><td>{{score .Score}}</td><td>{{.Value}}</td><td>{{.Model}}</td></tr>
{{else}}<tr><td colspan="8">no events yet</td></tr>
{{end}}</table>
</body></html>
`))
