package httpui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/wire"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// store is a small in-memory event and verdict store answering queries
// the way the stream-backed one does (oldest first, newest Limit, agent
// filter), or with err when set.
type store struct {
	mu       sync.Mutex
	events   []api.Event
	verdicts []wire.Verdict
	err      error
	last     api.EventsQuery
}

func (s *store) QueryEvents(_ context.Context, q api.EventsQuery) ([]api.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = q
	if _, err := q.Normalize(time.Now()); err != nil {
		return nil, &api.BadRequestError{Err: err}
	}
	if s.err != nil {
		return nil, s.err
	}
	var out []api.Event
	for _, e := range s.events {
		if q.Agent == "" || e.Agent == q.Agent {
			out = append(out, e)
		}
	}
	if len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

func (s *store) QueryVerdicts(_ context.Context, q api.EventsQuery) ([]wire.Verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = q
	if _, err := q.Normalize(time.Now()); err != nil {
		return nil, &api.BadRequestError{Err: err}
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.verdicts, nil
}

func testServer(t *testing.T, src Sources) (*httptest.Server, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(func() float64 { return 0 })
	if src.Devices == nil {
		src.Devices = func() []api.Device { return nil }
	}
	if src.Latest == nil {
		src.Latest = func(int) []api.Event { return nil }
	}
	src.Healthy = func() error { return nil }
	srv := httptest.NewServer(Handler(src, m, quiet()))
	t.Cleanup(srv.Close)
	return srv, m
}

func get(t *testing.T, url string, out any) (int, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %d, not JSON: %v\n%s", url, res.StatusCode, err, body)
		}
	}
	return res.StatusCode, res.Header
}

func TestJSONAPI(t *testing.T) {
	now := time.Now().UTC()
	devs := []api.Device{
		{ID: "gw-1", Online: true, RawBytes: 8000, UplinkBytes: 200, OutboxDepth: 3, OutboxBytes: 300, Drops: 1, Readings: 500, Anomalies: 2, Uncertain: 4, LastError: "boom"},
		{ID: "gw-2", RawBytes: 2000, UplinkBytes: 200, OutboxDepth: 1, OutboxBytes: 100, Readings: 100},
	}
	st := &store{}
	for i := range 5 {
		agent := "gw-1"
		if i%2 == 1 {
			agent = "gw-2"
		}
		st.events = append(st.events, api.Event{Event: wire.Event{Agent: agent, Seq: uint64(i + 1), Kind: wire.KindAnomaly, TS: now}})
	}
	st.verdicts = []wire.Verdict{{Agent: "gw-1", Seq: 1, Decision: wire.Confirmed}}
	b := NewBroadcaster(BroadcasterConfig{Logger: quiet()})
	defer b.Close()
	srv, _ := testServer(t, Sources{
		Devices:      func() []api.Device { return devs },
		Events:       st,
		VerdictQuery: st,
		Stream:       b,
		Version:      "v1.2.3",
	})

	var gotDevs []api.Device
	if code, h := get(t, srv.URL+"/api/v1/devices", &gotDevs); code != 200 || len(gotDevs) != 2 || h.Get("Content-Type") != "application/json" {
		t.Errorf("devices = %d %+v", code, gotDevs)
	}

	var sum Summary
	if code, _ := get(t, srv.URL+"/api/v1/summary", &sum); code != 200 {
		t.Fatalf("summary = %d", code)
	}
	if sum.Devices != 2 || sum.Online != 1 || sum.RawBytes != 10000 || sum.UplinkBytes != 400 ||
		sum.UplinkRatio == nil || *sum.UplinkRatio != 0.04 || sum.Saved == nil || *sum.Saved != 0.96 ||
		sum.OutboxDepth != 4 || sum.OutboxBytes != 400 || sum.Drops != 1 || sum.Readings != 600 ||
		sum.Anomalies != 2 || sum.Uncertain != 4 || sum.DevicesWithErrors != 1 || sum.Version != "v1.2.3" || sum.Time.IsZero() {
		t.Errorf("summary = %+v", sum)
	}

	var evs []api.Event
	if code, _ := get(t, srv.URL+"/api/v1/events?agent=gw-1&since=15m&limit=2", &evs); code != 200 || len(evs) != 2 || evs[0].Seq != 3 || evs[1].Seq != 5 {
		t.Errorf("events = %d %+v", code, evs)
	}
	if st.last != (api.EventsQuery{Agent: "gw-1", Since: "15m", Limit: 2}) {
		t.Errorf("query passed on = %+v", st.last)
	}
	var vs []wire.Verdict
	if code, _ := get(t, srv.URL+"/api/v1/verdicts?limit=10", &vs); code != 200 || len(vs) != 1 || vs[0].Decision != wire.Confirmed {
		t.Errorf("verdicts = %d %+v", code, vs)
	}

	// Errors are JSON with the status as code.
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/v1/events?limit=x", 400, "limit must be a number"},
		{"/api/v1/events?limit=0", 400, "limit must be a number"},
		{"/api/v1/verdicts?limit=10001", 400, "limit must be a number"},
		{"/api/v1/events?since=yesterday", 400, "since"},
		{"/api/v1/events?agent=bad.agent", 400, "agent"},
		{"/api/v1/verdicts?since=-5m", 400, "negative"},
		{"/api/v1/rollouts", 404, "no rollouts"},
		{"/api/v1/nonesuch", 404, "no API endpoint"},
	} {
		var e errorBody
		code, h := get(t, srv.URL+tc.path, &e)
		if code != tc.code || e.Code != fmt.Sprint(tc.code) || !strings.Contains(e.Message, tc.msg) || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s = %d %+v, want %d with %q", tc.path, code, e, tc.code, tc.msg)
		}
	}
	st.err = fmt.Errorf("query: %w", context.DeadlineExceeded)
	var e errorBody
	if code, _ := get(t, srv.URL+"/api/v1/events", &e); code != 503 || e.Code != "503" {
		t.Errorf("timed-out query = %d %+v, want 503", code, e)
	}
	st.err = errors.New("stream gone")
	if code, _ := get(t, srv.URL+"/api/v1/verdicts", &e); code != 500 || e.Code != "500" || e.Message != "stream gone" {
		t.Errorf("failed query = %d %+v, want 500", code, e)
	}
	// Wrong method on an endpoint.
	res, err := http.Post(srv.URL+"/api/v1/devices", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == 200 {
		t.Errorf("POST /api/v1/devices = 200")
	}
}

func TestRolloutsWhenProvided(t *testing.T) {
	srv, _ := testServer(t, Sources{Rollouts: func(context.Context) (any, error) {
		return []map[string]any{{"id": "r1", "model": "ae@2", "state": "canary"}}, nil
	}})
	var rs []map[string]any
	if code, _ := get(t, srv.URL+"/api/v1/rollouts", &rs); code != 200 || len(rs) != 1 || rs[0]["state"] != "canary" {
		t.Errorf("rollouts = %d %+v", code, rs)
	}
}

// Without stream queries the endpoints answer from the in-memory latest
// lists, oldest first, and refuse filters they cannot apply.
func TestEventsFromLatestWithoutQuerier(t *testing.T) {
	srv, _ := testServer(t, Sources{
		Latest: func(n int) []api.Event {
			all := []api.Event{{Event: wire.Event{Seq: 3}}, {Event: wire.Event{Seq: 2}}, {Event: wire.Event{Seq: 1}}}
			return all[:min(n, len(all))]
		},
	})
	var evs []api.Event
	if code, _ := get(t, srv.URL+"/api/v1/events?limit=2", &evs); code != 200 || len(evs) != 2 || evs[0].Seq != 2 || evs[1].Seq != 3 {
		t.Errorf("events = %d %+v", code, evs)
	}
	var e errorBody
	if code, _ := get(t, srv.URL+"/api/v1/events?agent=gw-1", &e); code != 400 {
		t.Errorf("agent filter without querier = %d %+v", code, e)
	}
	var vs []wire.Verdict
	if code, _ := get(t, srv.URL+"/api/v1/verdicts", &vs); code != 200 || vs == nil || len(vs) != 0 {
		t.Errorf("verdicts without source = %d %+v", code, vs)
	}
	if code, _ := get(t, srv.URL+"/api/v1/stream", &e); code != 404 || e.Code != "404" {
		t.Errorf("stream without broadcaster = %d %+v", code, e)
	}
}

func TestDashboardPage(t *testing.T) {
	srv, _ := testServer(t, Sources{
		Devices: func() []api.Device {
			return []api.Device{{ID: "gw-<b>", Online: true, Models: map[string]string{"s/t": "ae@3"}, RawBytes: 10000, UplinkBytes: 400}}
		},
		Latest: func(int) []api.Event {
			return []api.Event{{Event: wire.Event{Agent: "gw-1", Seq: 7, Stream: "sensors/x", Kind: wire.KindAnomaly}}}
		},
		Verdicts: func(int) []wire.Verdict {
			return []wire.Verdict{{Agent: "gw-1", Seq: 7, Decision: wire.Confirmed, Model: "robust-zscore@1"}}
		},
		Version: "v0.0.1",
	})
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	page := string(body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/ = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`src="/static/app.js"`, `href="/static/style.css"`, "gw-&lt;b&gt;", "s/t=ae@3", "9.8 KiB", "400 B", "4.0%", "96.0%",
		`data-key="gw-1:7"`, "sensors/x", "confirmed", "robust-zscore@1", "v0.0.1", "Rollouts in progress",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing is loaded from elsewhere: the machine and the operators may
	// have no internet.
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(page, bad) {
			t.Errorf("page refers to an external resource (%q)", bad)
		}
	}
	for path, ctype := range map[string]string{"/static/app.js": "text/javascript", "/static/style.css": "text/css"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) || len(b) == 0 {
			t.Errorf("%s = %d %s (%d bytes)", path, res.StatusCode, res.Header.Get("Content-Type"), len(b))
		}
		if strings.Contains(string(b), "https://") {
			t.Errorf("%s refers to an external resource", path)
		}
	}
}
