package agent

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/shared/modelpkg"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// publishRange publishes n smooth readings on topic, the i-th at t0 + (from+i) s.
func publishRange(t *testing.T, c paho.Client, topic string, from, n int) {
	t.Helper()
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		v := 20 + 2*math.Sin(float64(i)*2*math.Pi/50) + 0.05*math.Sin(float64(i)*7.3)
		payload := fmt.Sprintf(`{"ts":%d,"value":%.4f}`, t0.Add(time.Duration(i)*time.Second).UnixMilli(), v)
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// TestControlStreamModel: a desired key naming one stream (under the
// profile's sensors/# rule) gives that stream alone its own model, and the
// most specific key wins: the stream's own > its rule's pattern > "*".
// The model is reported under the stream's name; changing it swaps just
// that stream (the other streams keep judging with their model, reading
// after reading); removing the key sends the stream back to its pattern's
// model. A stream no rule takes, or a key with a wildcard that is no
// rule's pattern, is refused. A restart runs the stream's model again from
// the package kept on disk.
func TestControlStreamModel(t *testing.T) {
	env := newCtlEnv(t)
	env.pushStock(t, 2)
	env.pushStock(t, 3)
	mq := testenv.StartMosquitto(t)
	p := modelProfile(t, env.srv.URL(), mq.URL())
	p.Agent.ID = "gw-stream"
	const dev0, dev1 = "sensors/dev-0/temp", "sensors/dev-1/temp"
	var (
		mu     sync.Mutex
		models = map[string][]string{} // stream -> model of each judgement
	)
	judgedBy := func(stream string, from int) map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for _, m := range models[stream][from:] {
			out[m]++
		}
		return out
	}
	count := func(stream string) int { mu.Lock(); defer mu.Unlock(); return len(models[stream]) }
	opts := Options{Profile: p, TrustKey: modelpkg.FormatPublicKey(env.pub), Logger: testLogger(t), OnJudged: func(j Judged) {
		mu.Lock()
		models[j.Stream] = append(models[j.Stream], j.Model)
		mu.Unlock()
	}}
	ctl := startCtlAgent(t, opts)
	a := ctl.a()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := a.WaitMQTT(wctx); err != nil {
		t.Fatal(err)
	}
	pub := publisher(t, mq.URL(), "", "")

	// "*" for every stream, dev-1 its own.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 1, Models: map[string]string{"*": "ae-edge@2", dev1: "ae-edge@3"}})
	waitFor(t, "ae-edge@3 for dev-1", func() bool {
		st := a.State()
		return st.Models["*"] == "ae-edge@2" && st.Models[dev1] == "ae-edge@3" && st.Models["sensors/#"] == "ae-edge@2"
	})
	publishRange(t, pub, dev0, 0, 120)
	publishRange(t, pub, dev1, 0, 120)
	waitFor(t, "the first readings", func() bool { return count(dev0) == 120 && count(dev1) == 120 })
	if got := judgedBy(dev0, 0); got["ae-edge@2"] != 120 {
		t.Fatalf("dev-0 judged by %v, want ae-edge@2 only", got)
	}
	if got := judgedBy(dev1, 0); got["ae-edge@3"] != 120 {
		t.Fatalf("dev-1 judged by %v, want ae-edge@3 only", got)
	}

	// The pattern over "*", the stream over the pattern, even when the
	// stream's model is the installed one: a hot swap of dev-1 alone, the
	// pattern's model for dev-0.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 2, Models: map[string]string{"*": "ae-edge@2", "sensors/#": "ae-edge@3", dev1: "ae-edge@1"}})
	waitFor(t, "ae-edge@1 for dev-1, ae-edge@3 for sensors/#", func() bool {
		st := a.State()
		return st.Models[dev1] == "ae-edge@1" && st.Models["sensors/#"] == "ae-edge@3" && st.Models["*"] == "ae-edge@2"
	})
	a.mu.Lock()
	m0, m1 := a.detectors[dev0].Model(), a.detectors[dev1].Model()
	a.mu.Unlock()
	if m0 != "ae-edge@3" || m1 != "ae-edge@1" {
		t.Fatalf("detectors run %s (dev-0) and %s (dev-1), want ae-edge@3 and ae-edge@1", m0, m1)
	}
	publishRange(t, pub, dev0, 120, 30)
	publishRange(t, pub, dev1, 120, 30)
	waitFor(t, "the second readings", func() bool { return count(dev0) == 150 && count(dev1) == 150 })
	if got := judgedBy(dev0, 120); got["ae-edge@3"] != 30 {
		t.Fatalf("dev-0 judged by %v after the swap, want ae-edge@3 only", got)
	}
	if got := judgedBy(dev1, 120); got["ae-edge@1"] != 30 {
		t.Fatalf("dev-1 judged by %v after the swap, want ae-edge@1 only", got)
	}

	// Only dev-1 changes: dev-0's scorer is not touched (its model stays).
	a.mu.Lock()
	d0 := a.detectors[dev0]
	a.mu.Unlock()
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 3, Models: map[string]string{"*": "ae-edge@2", "sensors/#": "ae-edge@3", dev1: "ae-edge@2"}})
	waitFor(t, "ae-edge@2 for dev-1", func() bool { return a.State().Models[dev1] == "ae-edge@2" })
	a.mu.Lock()
	same, m1 := a.detectors[dev0] == d0 && d0.Model() == "ae-edge@3", a.detectors[dev1].Model()
	a.mu.Unlock()
	if !same || m1 != "ae-edge@2" {
		t.Fatalf("after swapping dev-1 alone: dev-0 unchanged %v, dev-1 runs %s", same, m1)
	}

	// Refused: a stream no rule takes, a wildcard that is no rule's pattern.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 4, Models: map[string]string{"sensors/#": "ae-edge@3", dev1: "ae-edge@2",
		"pumps/p-1/flow": "ae-edge@2", "sensors/+/temp": "ae-edge@2"}})
	waitFor(t, "the refusals", func() bool {
		e := a.State().LastError
		return strings.Contains(e, "model ae-edge@2 for pumps/p-1/flow refused (stream)") &&
			strings.Contains(e, "model ae-edge@2 for sensors/+/temp refused (stream)")
	})
	if st := a.State(); st.Models[dev1] != "ae-edge@2" || st.Models["sensors/#"] != "ae-edge@3" || st.Models["pumps/p-1/flow"] != "" {
		t.Fatalf("models after the refusals: %v", st.Models)
	}

	// A restart runs dev-1's model from disk.
	ctl.stop()
	ctl = startCtlAgent(t, opts)
	a = ctl.a()
	if st := a.State(); st.Models[dev1] != "ae-edge@2" || st.Models["sensors/#"] != "ae-edge@3" {
		t.Fatalf("after a restart: %v", st.Models)
	}
	a.mu.Lock()
	d1 := a.detectors[dev1]
	ok := d1 != nil && d1.Model() == "ae-edge@2"
	a.mu.Unlock()
	if !ok {
		t.Fatal("dev-1's checkpoint was not restored with its own model")
	}

	// The key removed: dev-1 goes back to the pattern's model and is no
	// longer reported.
	env.setDesired(t, p.Agent.ID, wire.Desired{Revision: 5, Models: map[string]string{"sensors/#": "ae-edge@3"}})
	waitFor(t, "dev-1 back on sensors/#'s model", func() bool {
		st := a.State()
		_, named := st.Models[dev1]
		a.mu.Lock()
		m := a.detectors[dev1].Model()
		a.mu.Unlock()
		return !named && st.Models["sensors/#"] == "ae-edge@3" && m == "ae-edge@3" && !strings.Contains(st.LastError, "model")
	})
}
