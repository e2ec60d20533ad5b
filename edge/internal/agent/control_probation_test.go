package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/control"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// TestControlConfigProbation: a pushed profile is "applying" until its
// pipeline has judged readings healthily for the grace period, then
// "applied". One whose decoder turns the same traffic into decode errors
// fails its probation: the agent goes back to the profile before it (not
// the installed one) and LastError names the config and the rate. One
// that does not start goes back to the profile before it too. Profiles
// that change the agent id or the data directory are refused before they
// run.
func TestControlConfigProbation(t *testing.T) {
	env := newCtlEnv(t)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-probation"
	opts := Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub), Logger: testLogger(t), ConfigGrace: time.Second}
	ctl := startCtlAgent(t, opts)
	if st := ctl.a().State(); st.ConfigStatus != control.StatusApplied || st.Config != "" {
		t.Fatalf("installed profile: config %q status %q", st.Config, st.ConfigStatus)
	}
	pub := publisher(t, mq.URL(), "", "")
	waitMQTT := func() *Agent {
		t.Helper()
		a := ctl.a()
		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer wcancel()
		if err := a.WaitMQTT(wctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// The installed profile's traffic: clean readings (the baseline).
	a := waitMQTT()
	publishRange(t, pub, "sensors/dev-0/temp", 0, 20)
	waitFor(t, "readings on the installed profile", func() bool { return a.State().Readings == 20 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(key, text string) {
		t.Helper()
		if err := profile.Check([]byte(text)); err != nil {
			t.Fatalf("%s does not validate: %v", key, err)
		}
		if _, err := env.configs.Put(ctx, key, []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	applied := func() map[string]any {
		b, err := os.ReadFile(filepath.Join(p.DataDir, "control", "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	// Revision 2: applying until it has judged readings for the grace
	// period, then applied.
	put(names.ConfigKey("plant-a", 2), pushedYAML("plant-a", 2, mq.URL(), "50"))
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Config: names.ConfigKey("plant-a", 2), ConfigRevision: 2})
	waitFor(t, "plant-a.2 applying", func() bool {
		st := ctl.a().State()
		return st.Profile == "plant-a" && st.Revision == 2 && st.Config == "plant-a.2"
	})
	// No reading yet: on probation whatever the time.
	if st := ctl.a().State(); st.ConfigStatus != control.StatusApplying {
		t.Fatalf("plant-a.2 before any reading: status %q", st.ConfigStatus)
	}
	if m := applied(); m["pending"] != true || m["config"] != "plant-a.2" {
		t.Fatalf("state.json while applying: %v", m)
	}
	if n := swapCount(t, ctl.a(), "config", "ok", ""); n != 0 {
		t.Fatalf("%v config successes counted before the probation ended", n)
	}
	a = waitMQTT()
	publishRange(t, pub, "sensors/dev-0/temp", 20, 20)
	waitFor(t, "plant-a.2 applied", func() bool { return ctl.a().State().ConfigStatus == control.StatusApplied })
	if st := ctl.a().State(); st.Profile != "plant-a" || st.Revision != 2 || st.LastError != "" {
		t.Fatalf("after the probation: %s revision %d, last error %q", st.Profile, st.Revision, st.LastError)
	}
	if m := applied(); m["pending"] != nil || m["config"] != "plant-a.2" {
		t.Fatalf("state.json once applied: %v", m)
	}
	if n := swapCount(t, ctl.a(), "config", "ok", ""); n != 1 {
		t.Fatalf("%v config successes counted, want 1", n)
	}

	// Revision 3 reads the same topics as SenML: every message is a decode
	// error. It fails its probation; back to revision 2.
	bad := strings.Replace(pushedYAML("plant-a", 3, mq.URL(), "50"), "    - filter: sensors/+/+\n", "    - filter: sensors/+/+\n      decoder: senml\n", 1)
	put(names.ConfigKey("plant-a", 3), bad)
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 2, Config: names.ConfigKey("plant-a", 3), ConfigRevision: 3})
	waitFor(t, "plant-a.3 applying", func() bool {
		st := ctl.a().State()
		return st.Revision == 3 && st.ConfigStatus == control.StatusApplying
	})
	a = waitMQTT()
	publishRange(t, pub, "sensors/dev-0/temp", 40, 20)
	waitFor(t, "plant-a.3 refused, back to plant-a.2", func() bool {
		st := ctl.a().State()
		return st.Profile == "plant-a" && st.Revision == 2 && st.Config == "plant-a.2" && st.ConfigStatus == control.StatusApplied &&
			strings.Contains(st.LastError, "config plant-a.3 refused (unhealthy)") && strings.Contains(st.LastError, "decode-error rate")
	})
	if a.State().DecodeErrors == 0 {
		t.Fatal("plant-a.3 counted no decode error")
	}
	t.Logf("refused: %s", ctl.a().State().LastError)
	// And it is not tried again (the desired state still names it). (The
	// messages plant-a.3 had not taken yet are plant-a.2's too: the MQTT
	// session is persistent.)
	a = waitMQTT()
	publishRange(t, pub, "sensors/dev-0/temp", 60, 20)
	waitFor(t, "readings on plant-a.2 again", func() bool { return ctl.a().State().Readings >= 20 })
	if st := ctl.a().State(); st.Revision != 2 || st.DecodeErrors != 0 || !strings.Contains(st.LastError, "plant-a.3") {
		t.Fatalf("after the refusal: revision %d, %d decode errors, last error %q", st.Revision, st.DecodeErrors, st.LastError)
	}

	// Revision 4 does not start (its embedded broker's port is taken):
	// back to revision 2, not the installed profile.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	put(names.ConfigKey("plant-a", 4), strings.Replace(pushedYAML("plant-a", 4, mq.URL(), "50"), "  url: "+mq.URL()+"\n",
		"  embedded:\n    listen: "+busy.Addr().String()+"\n", 1))
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 3, Config: names.ConfigKey("plant-a", 4), ConfigRevision: 4})
	waitFor(t, "plant-a.4 refused, back to plant-a.2", func() bool {
		st := ctl.a().State()
		return st.Revision == 2 && st.Config == "plant-a.2" && strings.Contains(st.LastError, "config plant-a.4 refused") &&
			strings.Contains(st.LastError, busy.Addr().String())
	})

	// Another agent id, another data directory: refused before they run.
	put(names.ConfigKey("plant-a", 5), strings.Replace(pushedYAML("plant-a", 5, mq.URL(), "50"), "agent:\n", "agent:\n  id: gw-other\n", 1))
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 4, Config: names.ConfigKey("plant-a", 5), ConfigRevision: 5})
	waitFor(t, "plant-a.5 refused", func() bool {
		e := ctl.a().State().LastError
		return strings.Contains(e, "config plant-a.5 refused (invalid)") && strings.Contains(e, "agent.id gw-other") && strings.Contains(e, "cannot change")
	})
	other := t.TempDir()
	put(names.ConfigKey("plant-a", 6), pushedYAML("plant-a", 6, mq.URL(), "50")+fmt.Sprintf("data_dir: %s\n", other))
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 5, Config: names.ConfigKey("plant-a", 6), ConfigRevision: 6})
	waitFor(t, "plant-a.6 refused", func() bool {
		e := ctl.a().State().LastError
		return strings.Contains(e, "config plant-a.6 refused (invalid)") && strings.Contains(e, "data_dir "+other) && strings.Contains(e, "cannot change")
	})
	if st := ctl.a().State(); st.Revision != 2 || st.ConfigStatus != control.StatusApplied {
		t.Fatalf("after the refusals: revision %d, status %q", st.Revision, st.ConfigStatus)
	}
	// The same data directory, spelt differently, is no change.
	put(names.ConfigKey("plant-a", 7), pushedYAML("plant-a", 7, mq.URL(), "50")+fmt.Sprintf("data_dir: %s/\n", p.DataDir))
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 6, Config: names.ConfigKey("plant-a", 7), ConfigRevision: 7})
	waitFor(t, "plant-a.7 applying", func() bool {
		st := ctl.a().State()
		return st.Revision == 7 && st.ConfigStatus == control.StatusApplying && st.LastError == ""
	})
}
