package rollout

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/wire"
)

// checkController is a Controller whose clock stands still, for check.
func checkController() (time.Time, *Controller) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return now, &Controller{cfg: Config{Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
}

// TestCheckIgnoresOtherModelsRefusal: a canary waiting for model vib@3
// whose state still carries its refusal of vib@2 (a report of the rollout
// before, arriving late) is not failed by it; a refusal of vib@3 itself,
// or any other new error, fails it.
func TestCheckIgnoresOtherModelsRefusal(t *testing.T) {
	now, c := checkController()
	for _, tc := range []struct {
		lastErr string
		fails   bool
	}{
		{"model vib@2 for sensors/x refused (arena): needs 9000 bytes; keeping the running model", false},
		{"model vib@3 for sensors/x refused (arena): needs 9000 bytes; keeping the running model", true},
		{"uplink: connection refused", true},
		{"", false},
	} {
		r := &api.Rollout{ID: "r1", Kind: api.KindModel, Model: "vib@3", Stream: "sensors/x", State: api.RolloutCanary, SwapTimeout: wire.Duration(time.Minute),
			Agents: []api.RolloutAgent{{ID: "gw-0000", Canary: true, Phase: api.PhaseDesired, Since: now}}}
		devs := map[string]api.Device{"gw-0000": {ID: "gw-0000", LastError: tc.lastErr}}
		if got := c.check(r, devs, true); got != tc.fails {
			t.Errorf("last error %q: failed %v, want %v (agent %+v)", tc.lastErr, got, tc.fails, r.Agents[0])
		}
		if tc.fails && !strings.Contains(r.Reason, tc.lastErr) {
			t.Errorf("last error %q: reason %q does not name it", tc.lastErr, r.Reason)
		}
	}
}

// TestCheckConfigErrorWhileBaking: a canary running pushed profile
// press-line@3 that then reports an error about that profile (the agent
// names it press-line.3) fails the rollout; an error about another
// profile does not.
func TestCheckConfigErrorWhileBaking(t *testing.T) {
	now, c := checkController()
	for _, tc := range []struct {
		lastErr string
		fails   bool
	}{
		{"config press-line.3 refused (unhealthy): it failed its probation: no readings; back to the profile before it", true},
		{"config press-line.2 refused (unhealthy): it failed its probation: no readings; back to the profile before it", false},
		{"config press-line.33 refused (unhealthy): it failed its probation: no readings; back to the profile before it", false},
	} {
		r := &api.Rollout{ID: "r2", Kind: api.KindConfig, Config: "press-line@3", State: api.RolloutBaking, SwapTimeout: wire.Duration(time.Minute),
			Agents: []api.RolloutAgent{{ID: "gw-0000", Canary: true, Phase: api.PhaseRunning, Since: now}}}
		devs := map[string]api.Device{"gw-0000": {ID: "gw-0000", Profile: "press-line", Revision: 3, LastError: tc.lastErr}}
		if got := c.check(r, devs, true); got != tc.fails {
			t.Errorf("last error %q: failed %v, want %v (agent %+v)", tc.lastErr, got, tc.fails, r.Agents[0])
		}
	}
}
