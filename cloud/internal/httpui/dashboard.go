package httpui

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
)

// The page is rendered with the state at request time, so it is useful
// without JavaScript; static/app.js then keeps it live from the JSON API
// and the server-sent event stream.
//
//go:embed dashboard.html
var dashboardHTML string

//go:embed static
var staticFS embed.FS

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return http.FileServerFS(sub)
}

type page struct {
	Version  string
	Now      string
	Fleet    Summary
	Devices  []api.Device
	Events   []api.Event
	Verdicts []wire.Verdict
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

// percent formats a share, e.g. "97.5%"; "-" when nil.
func percent(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(100**f, 'f', 1, 64) + "%"
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
	"score":   func(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) },
	"bytes":   bytesIEC,
	"percent": percent,
	"models":  models,
}).Parse(dashboardHTML))
