package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
)

// Delivery tests: the agent's contract across NATS outages and crashes,
// with real mosquitto and a real nats-server.

// deliveryYAML is a profile for delivery tests: short windows so that
// injected spikes are frequent, summaries every 2 s.
func deliveryYAML(agentID, natsURL, mqttURL, dataDir string) string {
	return fmt.Sprintf(`
name: delivery
agent:
  id: %s
  heartbeat: 1s
nats:
  url: %s
mqtt:
  url: %s
  topics:
    - filter: sensors/+/temp
streams:
  - match: sensors/#
    window: 40
    low: 5
    high: 7
    cooldown: 3
summary_interval: 2s
data_dir: %s
`, agentID, natsURL, mqttURL, dataDir)
}

func deliveryProfile(t *testing.T, agentID, natsURL, mqttURL string) profile.Profile {
	t.Helper()
	p, err := profile.Parse([]byte(deliveryYAML(agentID, natsURL, mqttURL, t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readingGen generates readings for a set of streams: a sine with noise, and a
// spike of 12 standard deviations every spikeEvery readings per stream
// (after a warm-up of 2 windows), at a per-stream offset. It records the
// spikes it produced.
type readingGen struct {
	streams    int
	spikeEvery int
	t0         time.Time
	rng        *rand.Rand
	next       []int // next reading index per stream

	mu     sync.Mutex
	spikes map[string]bool // stream + "@" + ts millis
	order  []string        // spikes in publish order
}

func newSignal(streams, spikeEvery int, seed int64) *readingGen {
	return &readingGen{streams: streams, spikeEvery: spikeEvery, t0: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		rng: rand.New(rand.NewSource(seed)), next: make([]int, streams), spikes: map[string]bool{}}
}

func topicOf(i int) string { return fmt.Sprintf("sensors/dev-%02d/temp", i) }

func spikeKey(stream string, ts time.Time) string {
	return stream + "@" + strconv.FormatInt(ts.UnixMilli(), 10)
}

// reading returns the next reading of stream i as topic and payload.
func (s *readingGen) reading(i int) (string, string) {
	n := s.next[i]
	s.next[i]++
	ts := s.t0.Add(time.Duration(n) * 10 * time.Millisecond)
	sigma := math.Sqrt(2*2/2.0 + 0.05*0.05)
	v := 20 + 2*math.Sin(float64(n)*2*math.Pi/25) + s.rng.NormFloat64()*0.05
	if n >= 80 && (n+i*7)%s.spikeEvery == 0 {
		v += 12 * sigma
		s.mu.Lock()
		s.spikes[spikeKey(topicOf(i), ts)] = true
		s.order = append(s.order, spikeKey(topicOf(i), ts))
		s.mu.Unlock()
	}
	return topicOf(i), fmt.Sprintf(`{"ts":%d,"value":%.4f}`, ts.UnixMilli(), v)
}

// publish publishes rounds readings of every stream at QoS 1, about perSec
// readings per second in all.
func (s *readingGen) publish(t *testing.T, c paho.Client, rounds, perSec int) {
	t.Helper()
	const batch = 20
	interval := time.Duration(float64(time.Second) * batch / float64(perSec))
	next := time.Now()
	var toks []paho.Token
	sent := 0
	for r := 0; r < rounds; r++ {
		for i := 0; i < s.streams; i++ {
			topic, payload := s.reading(i)
			toks = append(toks, c.Publish(topic, 1, false, payload))
			sent++
			if sent%batch == 0 {
				for _, tok := range toks {
					if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						t.Errorf("publish: %v", tok.Error())
						return
					}
				}
				toks = toks[:0]
				next = next.Add(interval)
				time.Sleep(time.Until(next))
			}
		}
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Errorf("publish: %v", tok.Error())
		}
	}
}

func (s *readingGen) spikeSet() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.spikes))
	for k := range s.spikes {
		out[k] = true
	}
	return out
}

// delivered is what a stream holds of one agent's records.
type delivered struct {
	seqs      []uint64       // outbox seqs in stream order (events and summaries)
	anomalies map[string]int // spike key -> times present
	events    int
}

// collect reads the events and summaries streams and returns agent's
// records. It fails the test on a message without the right id.
func collect(t *testing.T, js jetstream.JetStream, agent string) delivered {
	t.Helper()
	d := delivered{anomalies: map[string]int{}}
	type msg struct {
		streamSeq uint64
		seq       uint64
	}
	for _, st := range []string{names.StreamEvents, names.StreamSummaries} {
		for _, m := range edgetest.Messages(t, js, st) {
			id := m.Header.Get(nats.MsgIdHdr)
			prefix := agent + ":"
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			seq, err := strconv.ParseUint(id[len(prefix):], 10, 64)
			if err != nil {
				t.Fatalf("message id %q", id)
			}
			if st == names.StreamEvents {
				var ev wire.Event
				if err := json.Unmarshal(m.Data, &ev); err != nil {
					t.Fatalf("event %s: %v", id, err)
				}
				if ev.Seq != seq {
					t.Fatalf("event %s carries seq %d", id, ev.Seq)
				}
				d.events++
				if ev.Kind == wire.KindAnomaly {
					d.anomalies[spikeKey(ev.Stream, ev.TS)]++
				}
				d.seqs = append(d.seqs, seq)
			}
		}
	}
	return d
}

// checkDelivered checks that every spike is in the events stream exactly
// once, that there is no other anomaly, and that events are in strictly
// increasing seq order (so no seq twice).
func checkDelivered(t *testing.T, d delivered, spikes map[string]bool) {
	t.Helper()
	for i := 1; i < len(d.seqs); i++ {
		if d.seqs[i] <= d.seqs[i-1] {
			t.Errorf("event %d has seq %d after seq %d: order broken or duplicate", i, d.seqs[i], d.seqs[i-1])
		}
	}
	var missing, twice, extra []string
	for k := range spikes {
		switch n := d.anomalies[k]; {
		case n == 0:
			missing = append(missing, k)
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s×%d", k, n))
		}
	}
	for k := range d.anomalies {
		if !spikes[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(twice) > 0 || len(extra) > 0 {
		t.Fatalf("%d spikes: %d missing %v, %d more than once %v, %d anomalies not injected %v",
			len(spikes), len(missing), first(missing), len(twice), first(twice), len(extra), first(extra))
	}
}

func first(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// waitDelivered waits until every spike is in the stream (or a time out),
// then returns what the stream holds.
func waitDelivered(t *testing.T, js jetstream.JetStream, agent string, spikes map[string]bool, timeout time.Duration) delivered {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := collect(t, js, agent)
		all := true
		for k := range spikes {
			if d.anomalies[k] == 0 {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) {
			return d
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestOfflineNATSDown: NATS is down for a sustained period while readings
// with spikes keep flowing; the outbox holds the events (its behaviour does
// not depend on how long the outage lasts: records wait in bbolt, the uplink
// retries every Backoff). After NATS returns, everything arrives in order,
// once, and readings published while the backlog drains are judged and
// their events delivered too.
func TestOfflineNATSDown(t *testing.T) {
	if testing.Short() {
		t.Skip("sustained outage")
	}
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	mq := testenv.StartMosquitto(t)
	p := deliveryProfile(t, "gw-offline", srv.URL(), mq.URL())
	a := startAgent(t, p)
	pub := publisher(t, mq.URL(), "", "")
	sig := newSignal(10, 60, 1)

	sig.publish(t, pub, 200, 1000) // 2 s online
	srv.Stop()
	outage := 25 * time.Second
	start := time.Now()
	rounds := 0
	for time.Since(start) < outage {
		sig.publish(t, pub, 100, 1000)
		rounds += 100
	}
	waitFor(t, "the outage's events committed", func() bool {
		return a.State().Readings >= uint64(10*(200+rounds))
	})
	st := a.State()
	t.Logf("after %v offline: %d readings, outbox depth %d (%d bytes)", time.Since(start).Round(time.Second), st.Readings, st.OutboxDepth, st.OutboxBytes)
	if st.OutboxDepth < 100 {
		t.Fatalf("outbox depth %d after the outage: the test did not build a backlog", st.OutboxDepth)
	}
	// While the backlog drains, new readings keep coming: the publisher
	// starts before NATS returns and goes on after.
	drainPub := make(chan struct{})
	go func() {
		defer close(drainPub)
		sig.publish(t, pub, 300, 1000)
	}()
	time.Sleep(200 * time.Millisecond)
	srv.Restart()
	<-drainPub
	d := waitDelivered(t, js, "gw-offline", sig.spikeSet(), 60*time.Second)
	checkDelivered(t, d, sig.spikeSet())
	waitFor(t, "outbox to drain", func() bool { return a.State().OutboxDepth == 0 })
	t.Logf("%d spikes, %d events delivered in order", len(sig.spikeSet()), d.events)
}

// TestOutboxFullPolicyHolds fills a small outbox (64 KiB) with NATS down:
// summaries are pushed out first, then new anomalies are refused while the
// oldest are kept. After NATS returns, exactly the first anomalies arrive,
// in order, and the counts add up: appended = delivered + dropped + queued,
// per kind; the drop counts reach the cloud in the agent's state.
func TestOutboxFullPolicyHolds(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := edgetest.CreateStreams(t, srv.URL())
	srv.Stop()
	mq := testenv.StartMosquitto(t)
	p := deliveryProfile(t, "gw-full", srv.URL(), mq.URL())
	p.Outbox.MaxBytes = 64 << 10
	a := startAgent(t, p)
	pub := publisher(t, mq.URL(), "", "")
	sig := newSignal(10, 60, 5)
	sig.publish(t, pub, 1200, 2000) // 12000 readings, 200 spikes: about 3 times the room
	waitFor(t, "readings judged", func() bool { return a.State().Readings == 12000 })
	a.commitSummary(time.Now().UTC()) // one more summary: refused or pushing out an older one
	st := a.box.Stats()
	ev, sum := st.ByKind[outbox.KindEvent], st.ByKind[outbox.KindSummary]
	t.Logf("outbox full: %d bytes of %d; anomalies %+v; summaries %+v", st.Bytes, p.Outbox.MaxBytes, ev, sum)
	if ev.Refused == 0 {
		t.Fatal("no anomaly refused: the outbox did not fill")
	}
	if sum.Depth != 0 || ev.Evicted != 0 {
		t.Fatalf("summaries held %d, anomalies evicted %d: summaries must go first, anomalies never pushed out", sum.Depth, ev.Evicted)
	}
	if got := ev.Appended + ev.Refused; got != uint64(len(sig.order)) {
		t.Fatalf("anomalies appended %d + refused %d != %d spikes", ev.Appended, ev.Refused, len(sig.order))
	}

	srv.Restart()
	waitFor(t, "outbox to drain", func() bool { return a.box.Stats().Depth == 0 })
	// The oldest anomalies were kept: the first Appended spikes arrive.
	kept := map[string]bool{}
	for _, k := range sig.order[:ev.Appended] {
		kept[k] = true
	}
	checkDelivered(t, collect(t, js, "gw-full"), kept)

	st = a.box.Stats()
	for _, k := range outbox.Kinds {
		ks := st.ByKind[k]
		if ks.Appended+ks.Refused != ks.Delivered+ks.Dropped()+ks.Depth {
			t.Errorf("%s: appended %d + refused %d != delivered %d + dropped %d + queued %d",
				k, ks.Appended, ks.Refused, ks.Delivered, ks.Dropped(), ks.Depth)
		}
	}
	// The drop counts reach the cloud in the state message.
	waitFor(t, "state with drops", func() bool {
		s := lastState(js, "gw-full")
		return s.DropsByKind["anomaly"] == ev.Refused && s.DropsByKind["summary"] > 0 &&
			s.Drops == s.DropsByKind["anomaly"]+s.DropsByKind["summary"]+s.DropsByKind["uncertain"]
	})
}
