package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hasLine(t *testing.T, body, line string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in /metrics:\n%s", line, body)
}

func TestUplinkLagAndCommitServed(t *testing.T) {
	m := New()
	age, waiting := 2500*time.Millisecond, uint64(7)
	m.UplinkLag(func() (time.Duration, uint64) { return age, waiting })
	m.Commit.Observe(300e-6)
	m.Commit.Observe(5e-3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, addr.String())
	hasLine(t, body, "outpost_edge_uplink_lag_seconds 2.5")
	hasLine(t, body, "outpost_edge_uplink_waiting_records 7")
	hasLine(t, body, "outpost_edge_receive_to_commit_seconds_count 2")
	// Read at every scrape.
	age, waiting = 0, 0
	body = scrape(t, addr.String())
	hasLine(t, body, "outpost_edge_uplink_lag_seconds 0")
	hasLine(t, body, "outpost_edge_uplink_waiting_records 0")
}
