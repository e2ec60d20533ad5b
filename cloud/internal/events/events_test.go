package events

import (
	"testing"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/shared/wire"
)

func ev(agent string, seq uint64) api.Event {
	return api.Event{Event: wire.Event{Agent: agent, Seq: seq, Kind: wire.KindAnomaly}}
}

func TestAcceptHighWaterMarkAndRing(t *testing.T) {
	s := New(nil, Config{RingSize: 3, Metrics: metrics.New(func() float64 { return 0 })})
	steps := []struct {
		agent string
		seq   uint64
		want  bool
	}{
		{"a", 0, true}, // the first sequence of an agent is accepted even if 0
		{"a", 0, false},
		{"a", 2, true},
		{"a", 1, false}, // below the high-water mark: a late duplicate
		{"b", 1, true},  // marks are per agent
		{"a", 2, false},
		{"a", 3, true},
		{"b", 5, true}, // gaps are accepted (dropped records at the edge)
	}
	for i, st := range steps {
		if got := s.Accept(ev(st.agent, st.seq)); got != st.want {
			t.Errorf("step %d: Accept(%s, %d) = %v, want %v", i, st.agent, st.seq, got, st.want)
		}
	}
	if s.HighWaterMark("a") != 3 || s.HighWaterMark("b") != 5 {
		t.Errorf("marks a=%d b=%d, want 3 and 5", s.HighWaterMark("a"), s.HighWaterMark("b"))
	}
	// 5 accepted into a ring of 3: the newest 3, newest first.
	got := s.Latest(0)
	if len(got) != 3 || got[0].Agent != "b" || got[0].Seq != 5 || got[1].Seq != 3 || got[2].Agent != "b" || got[2].Seq != 1 {
		t.Errorf("Latest(0) = %+v", got)
	}
	if got := s.Latest(1); len(got) != 1 || got[0].Seq != 5 {
		t.Errorf("Latest(1) = %+v", got)
	}
}
