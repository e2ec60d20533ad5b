package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestDashboardInChromium opens outpost-cloud's dashboard in headless
// Chromium, driven over the DevTools protocol, then publishes an agent's
// state, summary and event through JetStream the way an agent does, and
// checks that the page shows the device, the bandwidth figures, the live
// event (through the server-sent event stream, without a reload), its
// verdict and a score plot.
func TestDashboardInChromium(t *testing.T) {
	browser := findChromium(t)
	natsURL, httpAddr := cloudHTTP(t)
	base := "http://" + httpAddr

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	page := openPage(t, ctx, browser, base+"/")

	// The page loaded and its live stream is connected.
	page.waitTrue(t, "the page's live stream to connect",
		`(() => { const l = document.getElementById("live"); return document.readyState === "complete" && !!l && l.dataset.state === "live"; })()`)
	// A marker that a reload would lose.
	page.eval(t, `window.__outpostMarker = "no-reload"; true`)
	// The rollouts section is filled by its own request; wait for it.
	page.waitTrue(t, "the rollouts section to say there are no rollouts",
		`(() => { const r = document.getElementById("rollouts"); return !!r && r.textContent.includes("no rollouts"); })()`)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const agent = "dash-gw-1"
	const stream = "sensors/press-9/temp"
	now := time.Now().UTC()
	publish := func(subject string, seq uint64, v any) {
		t.Helper()
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var opts []jetstream.PublishOpt
		if seq > 0 {
			opts = append(opts, jetstream.WithMsgID(names.MsgID(agent, seq)))
		}
		if _, err := js.Publish(ctx, subject, data, opts...); err != nil {
			t.Fatalf("publish on %s: %v", subject, err)
		}
	}
	// One state is published, no heartbeats follow: its stated interval
	// must keep the device online (3 intervals) for the whole test, however
	// slowly a loaded machine renders the page.
	publish(names.StateSubject(agent), 0, wire.State{
		Agent: agent, TS: now, Heartbeat: wire.Duration(5 * time.Minute), Version: "v9.9.9-dash",
		Profile: "press-line", Revision: 3, Started: now.Add(-time.Minute),
		Models: map[string]string{stream: "zscore@1"}, Readings: 1000, OutboxDepth: 7, OutboxBytes: 2048,
		Drops: 2, LastError: "uplink: dashboard test error",
	})
	publish(names.SummarySubject(agent), 1, wire.Summary{
		Agent: agent, Seq: 1, From: now.Add(-time.Minute), To: now, RawBytes: 10000, UplinkBytes: 400,
		Streams: []wire.StreamSummary{{Stream: stream, Count: 1000, Anomalies: 1}},
	})
	// Four events, the last one a spike, as the edge forwards them.
	scores := []float64{2.5, 3.1, 2.2, 9.5}
	for i, score := range scores {
		window := make([]float64, 32)
		for j := range window {
			window[j] = 20 + math.Sin(float64(j+i)/3)
		}
		kind := wire.KindUncertain
		if score >= 4 {
			kind = wire.KindAnomaly
			window[len(window)-1] = 35
		}
		seq := uint64(2 + i)
		ts := now.Add(time.Duration(i-len(scores)) * time.Second)
		publish(names.EventSubject(agent), seq, wire.Event{
			Agent: agent, Seq: seq, Stream: stream, TS: ts, Kind: kind, Score: score, Low: 2, High: 4,
			Value: window[len(window)-1], Model: "zscore@1", Window: window, Created: time.Now().UTC(),
		})
	}

	// The live events show up through the stream, then the spike's verdict.
	key := agent + ":5"
	page.waitTrue(t, "the live event row", fmt.Sprintf(
		`(() => { const r = document.querySelector('#events-body tr[data-key=%q]'); return !!r && r.textContent.includes(%q) && r.textContent.includes("anomaly"); })()`,
		key, stream))
	page.waitTrue(t, "the live verdict row", fmt.Sprintf(
		`(() => { const r = document.querySelector('#verdicts-body tr[data-key=%q]'); return !!r && r.textContent.includes("confirmed"); })()`, key))
	page.waitTrue(t, "a score plot of the stream's four events", fmt.Sprintf(
		`(() => { const p = document.querySelector('#plots .plot[data-stream=%q] polyline'); return !!p && p.getAttribute("points").split(" ").length === 4; })()`,
		agent+" "+stream))
	// The device and the bandwidth come from the JSON API the page polls.
	page.waitTrue(t, "the device listed online", fmt.Sprintf(
		`(() => { const r = document.querySelector('#devices-body tr[data-agent=%q]'); return !!r && r.textContent.includes("online") && r.textContent.includes("v9.9.9-dash") && r.textContent.includes("uplink: dashboard test error"); })()`, agent))
	page.waitTrue(t, "the bandwidth figures", `document.getElementById("sum-ratio").textContent === "4.0%" && document.getElementById("sum-saved").textContent === "96.0%"`)
	if got := page.evalString(t, `String(window.__outpostMarker)`); got != "no-reload" {
		t.Errorf("the page reloaded (marker = %q); the event must arrive live", got)
	}

	shot := page.screenshot(t)
	path := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("OUTPOST_E2E_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "dashboard.png"), shot, 0o644)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Errorf("screenshot is not a PNG (%d bytes)", len(shot))
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "chromium not installed; `make test` installs it (scripts/install-test-deps.sh)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// cdpPage is one browser tab driven over the Chrome DevTools protocol.
type cdpPage struct {
	ctx  context.Context
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
}

// openPage starts headless Chromium on url with a fresh profile, killed at
// cleanup, and connects to its tab.
func openPage(t *testing.T, ctx context.Context, browser, url string) *cdpPage {
	t.Helper()
	profile := t.TempDir()
	p := &proc{name: "chromium", done: make(chan struct{})}
	p.cmd = exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-quic", "--no-first-run",
		"--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--window-size=1400,1100", "--remote-debugging-port=0", "--user-data-dir="+profile, url)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers die with it
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("chromium (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("--- output of chromium ---\n%s", p.output())
		}
	})

	// Chromium writes its DevTools port in the profile once it listens.
	var port string
	waitFor(t, ctx, p, "chromium's DevToolsActivePort", func() bool {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err != nil {
			return false
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if _, err := strconv.Atoi(strings.TrimSpace(line)); err != nil {
			return false
		}
		port = strings.TrimSpace(line)
		return true
	})
	var wsURL string
	waitFor(t, ctx, p, "the page target of "+url, func() bool {
		res, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var targets []struct {
			Type                 string `json:"type"`
			URL                  string `json:"url"`
			WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
		}
		if json.NewDecoder(res.Body).Decode(&targets) != nil {
			return false
		}
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, url) && tg.WebSocketDebuggerURL != "" {
				wsURL = tg.WebSocketDebuggerURL
				return true
			}
		}
		return false
	})
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("connect to the page's DevTools socket %s: %v", wsURL, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &cdpPage{ctx: ctx, ws: ws}
}

// call sends one DevTools command and returns its result, skipping the
// protocol's events.
func (c *cdpPage) call(method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	id := c.next
	deadline, ok := c.ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.ws.SetWriteDeadline(deadline)
	_ = c.ws.SetReadDeadline(deadline)
	if err := c.ws.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	for {
		var reply struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := c.ws.ReadJSON(&reply); err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		if reply.ID != id {
			continue
		}
		if reply.Error != nil {
			return nil, fmt.Errorf("%s: %s (code %d)", method, reply.Error.Message, reply.Error.Code)
		}
		return reply.Result, nil
	}
}

// evalValue evaluates a JavaScript expression in the page and returns its
// JSON value.
func (c *cdpPage) evalValue(expr string) (json.RawMessage, error) {
	res, err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return nil, err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, err
	}
	if r.ExceptionDetails != nil {
		return nil, fmt.Errorf("evaluate %q: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	return r.Result.Value, nil
}

func (c *cdpPage) eval(t *testing.T, expr string) json.RawMessage {
	t.Helper()
	v, err := c.evalValue(expr)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (c *cdpPage) evalString(t *testing.T, expr string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(c.eval(t, expr), &s); err != nil {
		t.Fatalf("evaluate %q: not a string: %v", expr, err)
	}
	return s
}

// waitTrue polls a boolean JavaScript expression until it is true.
func (c *cdpPage) waitTrue(t *testing.T, what, expr string) {
	t.Helper()
	for {
		v, err := c.evalValue(expr)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if string(v) == "true" {
			return
		}
		select {
		case <-c.ctx.Done():
			body, _ := c.evalValue(`document.body.innerText`)
			t.Fatalf("timed out waiting for %s; the page reads:\n%s", what, body)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// screenshot captures the page as a PNG.
func (c *cdpPage) screenshot(t *testing.T) []byte {
	t.Helper()
	res, err := c.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	return png
}
