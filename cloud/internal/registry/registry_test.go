package registry

import (
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/wire"
)

func TestOnlineRule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	cases := []struct {
		age, hb time.Duration
		want    bool
	}{
		{0, time.Second, true},
		{3 * time.Second, time.Second, true},
		{3*time.Second + 1, time.Second, false},
		{45 * time.Second, 0, true}, // default 15s heartbeat
		{46 * time.Second, 0, false},
	}
	for _, c := range cases {
		if got := Online(now, now.Add(-c.age), c.hb); got != c.want {
			t.Errorf("Online(age %v, heartbeat %v) = %v, want %v", c.age, c.hb, got, c.want)
		}
	}
}

func TestObserveKeepsNewest(t *testing.T) {
	now := time.Now()
	r := New(Config{Now: func() time.Time { return now }})
	r.Observe(wire.State{Agent: "x", Version: "new", Heartbeat: wire.Duration(time.Second)}, now)
	r.Observe(wire.State{Agent: "x", Version: "old"}, now.Add(-time.Minute))
	r.Observe(wire.State{Agent: "w", Version: "w1"}, now.Add(-time.Hour))
	devs := r.Devices()
	if len(devs) != 2 || devs[0].ID != "w" || devs[0].Online || devs[1].Version != "new" || !devs[1].Online {
		t.Errorf("devices = %+v", devs)
	}
	if r.OnlineCount() != 1 {
		t.Errorf("OnlineCount = %d, want 1", r.OnlineCount())
	}
}
