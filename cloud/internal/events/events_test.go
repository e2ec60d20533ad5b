package events

import (
	"testing"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
)

func ev(agent string, seq uint64) api.Event {
	return api.Event{Event: wire.Event{Agent: agent, Seq: seq, Kind: wire.KindAnomaly}}
}

func TestRing(t *testing.T) {
	s := New(nil, Config{RingSize: 3})
	if got := s.Latest(0); len(got) != 0 {
		t.Errorf("empty ring: Latest(0) = %+v", got)
	}
	for i, e := range []api.Event{ev("a", 0), ev("a", 2), ev("b", 1), ev("a", 3), ev("b", 5)} {
		s.record(e)
		if got := s.Latest(1); len(got) != 1 || got[0].Seq != e.Seq {
			t.Errorf("after %d: Latest(1) = %+v", i, got)
		}
	}
	// 5 recorded into a ring of 3: the newest 3, newest first.
	got := s.Latest(0)
	if len(got) != 3 || got[0].Agent != "b" || got[0].Seq != 5 || got[1].Seq != 3 || got[2].Agent != "b" || got[2].Seq != 1 {
		t.Errorf("Latest(0) = %+v", got)
	}
}
