package service

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/learn"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// TestLearnLeaderAcrossReplicas: of two replicas with the learning loop
// on, one leads (outpost_cloud_learn_leader 1), the other waits (0); when
// the leader stops, the other takes over.
func TestLearnLeaderAcrossReplicas(t *testing.T) {
	ns := testenv.StartNATS(t)
	key := filepath.Join(t.TempDir(), "signing.key")
	cfg := func() Config {
		return Config{NATSURL: ns.URL(), SigningKey: key, Learn: learn.Config{Mode: learn.ModeApprove, Lease: time.Second}}
	}
	svcs := []*Service{startCfg(t, cfg()), startCfg(t, cfg())}
	leaders := func() (n, at int) {
		at = -1
		for i, s := range svcs {
			// The lease can change hands between two reads: compare the
			// gauge with Leading only when Leading held still around it.
			before := s.Learner().Leading()
			g := metricValue(t, s, "outpost_cloud_learn_leader")
			if after := s.Learner().Leading(); before == after && (g == 1) != after {
				t.Fatalf("replica %d: gauge %g, Leading %v", i, g, after)
			}
			if g == 1 {
				n, at = n+1, i
			}
		}
		return n, at
	}
	waitFor(t, "a leader", func() bool { n, _ := leaders(); return n == 1 })
	_, first := leaders()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n, at := leaders(); n != 1 || at != first {
			t.Fatalf("%d leaders (%d) while replica %d leads", n, at, first)
		}
	}
	svcs[first].Stop()
	svcs = []*Service{svcs[1-first]}
	waitFor(t, "the other replica to lead", func() bool { n, _ := leaders(); return n == 1 })
}

// metricValue is the value of the gauge (or counter) name in s's registry.
func metricValue(t *testing.T, s *Service, name string) float64 {
	t.Helper()
	fams, err := s.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name || len(f.GetMetric()) != 1 {
			continue
		}
		m := f.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
