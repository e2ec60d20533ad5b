package sysbench

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

const exposition = `# HELP outpost_edge_readings_total Readings decoded and judged.
# TYPE outpost_edge_readings_total counter
outpost_edge_readings_total 12345
outpost_edge_events_total{kind="anomaly"} 3
outpost_edge_events_total{kind="uncertain"} 4
outpost_edge_receive_to_commit_seconds_bucket{le="0.001"} 10
outpost_edge_receive_to_commit_seconds_bucket{le="0.002"} 90
outpost_edge_receive_to_commit_seconds_bucket{le="0.004"} 100
outpost_edge_receive_to_commit_seconds_bucket{le="+Inf"} 100
outpost_edge_receive_to_commit_seconds_sum 0.15
outpost_edge_receive_to_commit_seconds_count 100
`

func TestParseMetricsAndQuantiles(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.sum("outpost_edge_readings_total"); got != 12345 {
		t.Fatalf("readings %v", got)
	}
	if got := s.sum("outpost_edge_events_total"); got != 7 {
		t.Fatalf("events %v", got)
	}
	bs, ok := s.histogram("outpost_edge_receive_to_commit_seconds", nil)
	if !ok || len(bs) != 4 || !math.IsInf(bs[3].le, 1) {
		t.Fatalf("buckets %v", bs)
	}
	// Rank 50 of 100 lies in (1 ms, 2 ms], 40 of its 80: 1.5 ms.
	if q := quantile(0.5, bs); math.Abs(q-0.0015) > 1e-12 {
		t.Fatalf("p50 %v", q)
	}
	// Rank 99 lies in (2 ms, 4 ms], 9 of its 10: 3.8 ms.
	if q := quantile(0.99, bs); math.Abs(q-0.0038) > 1e-12 {
		t.Fatalf("p99 %v", q)
	}
	// A window: the same sample minus itself is empty.
	if d, _ := s.histogram("outpost_edge_receive_to_commit_seconds", s); !math.IsNaN(quantile(0.5, d)) {
		t.Fatalf("empty window has a quantile")
	}
	if _, ok := s.histogram("outpost_edge_nothing", nil); ok {
		t.Fatal("histogram that is not there")
	}
}

func TestProcReadings(t *testing.T) {
	pid := os.Getpid()
	c1, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	c2, err := procCPU(pid)
	if err != nil || c2 < c1 {
		t.Fatalf("cpu %v then %v: %v", c1, c2, err)
	}
	m, err := procMem(pid)
	if err != nil || m.RSS == 0 || m.HWM < m.RSS || m.Anon+m.File+m.Shm != m.RSS {
		t.Fatalf("%+v: %v", m, err)
	}
}
