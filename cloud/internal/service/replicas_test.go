package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// tally counts, across replicas, how often each agent:seq was accepted.
type tally struct {
	mu sync.Mutex
	n  map[string]int
	// per replica
	by map[string]int
}

func newTally() *tally { return &tally{n: map[string]int{}, by: map[string]int{}} }

func (t *tally) add(replica string, agent string, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n[names.MsgID(agent, seq)]++
	t.by[replica]++
}

func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := 0
	for _, v := range t.n {
		s += v
	}
	return s
}

func (t *tally) replica(r string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.by[r]
}

// window returns a 16-value window ending in last.
func window(seq uint64, last float64) []float64 {
	w := make([]float64, 16)
	for i := range w[:15] {
		w[i] = 20 + math.Sin(float64(seq)+float64(i))
	}
	w[15] = last
	return w
}

// TestReplicasShareWorkExactlyOnce: two replicas (each its own NATS
// connection) share 5,000 events from 20 agents while one of them is stopped
// and started again midway; duplicates republished with fresh Msg-Ids are
// dropped. Every event is accepted once and gets one verdict, across all
// replica instances.
func TestReplicasShareWorkExactlyOnce(t *testing.T) {
	const agents, perAgent, dupsPerAgent = 20, 250, 5
	ns := testenv.StartNATS(t)
	evTally, vTally := newTally(), newTally()
	var svcs []*Service
	var svcMu sync.Mutex
	start := func(name string) *Service {
		s := startCfg(t, Config{NATSURL: ns.URL(),
			OnEvent:   func(e api.Event) { evTally.add(name, e.Agent, e.Seq) },
			OnVerdict: func(e api.Event, v wire.Verdict) { vTally.add(name, v.Agent, v.Seq) },
		})
		svcMu.Lock()
		svcs = append(svcs, s)
		svcMu.Unlock()
		return s
	}
	start("a")
	b := start("b")

	// Four publishers, five agents each, every agent in seq order on one
	// connection; after seq 200 each agent republishes seqs 10..14 with
	// fresh Msg-Ids (what an agent restored from an old backup would do),
	// and once more with the original Msg-Id (JetStream's window drops it).
	var published atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			nc, err := nats.Connect(ns.URL())
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			pub := func(agent string, seq uint64, msgID string) {
				kind := wire.KindUncertain
				last := 20.5
				if seq%10 == 0 {
					kind, last = wire.KindAnomaly, 40
				}
				ev := wire.Event{Agent: agent, Seq: seq, Stream: "sensors/" + agent + "/temp", TS: time.Now().UTC(), Kind: kind,
					Score: 0.7, Low: 0.5, High: 0.9, Value: last, Model: "edge@1", Window: window(seq, last), Created: time.Now().UTC()}
				data, _ := json.Marshal(ev)
				if _, err := js.PublishAsync(names.EventSubject(agent), data, jetstream.WithMsgID(msgID)); err != nil {
					errs <- err
				}
			}
			for seq := uint64(1); seq <= perAgent; seq++ {
				for a := p * agents / 4; a < (p+1)*agents/4; a++ {
					agent := fmt.Sprintf("gw-%02d", a)
					pub(agent, seq, names.MsgID(agent, seq))
					if seq == 200 {
						for d := uint64(10); d < 10+dupsPerAgent; d++ {
							pub(agent, d, fmt.Sprintf("%s:resent", names.MsgID(agent, d)))
						}
						pub(agent, 15, names.MsgID(agent, 15))
					}
				}
				published.Add(agents / 4)
				if seq%10 == 0 {
					time.Sleep(5 * time.Millisecond) // spread the load over the restart
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				errs <- fmt.Errorf("publisher %d: acks not complete", p)
			}
		}(p)
	}

	// Stop replica b once it has done some of the work, then start it again.
	waitFor(t, "replica b to accept events", func() bool { return evTally.replica("b") >= 100 })
	b.Stop()
	t.Logf("replica b stopped after %d events (%d published)", evTally.replica("b"), published.Load())
	t0 := time.Now()
	start("b2")
	t.Logf("b2 started in %v", time.Since(t0))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	const total = agents * perAgent
	dupMetric := func() float64 {
		svcMu.Lock()
		defer svcMu.Unlock()
		s := 0.0
		for _, x := range svcs {
			s += testutil.ToFloat64(x.metrics.EventsDuplicate)
		}
		return s
	}
	deadline := time.Now().Add(90 * time.Second) // a guard against hangs; a normal run takes seconds
	for evTally.total() < total || vTally.total() < total || dupMetric() < agents*dupsPerAgent {
		if time.Now().After(deadline) {
			dumpConsumers(t, ns.URL())
			svcMu.Lock()
			for i, x := range svcs {
				for _, c := range []string{"events", "verdicts"} {
					for _, o := range []string{"accepted", "duplicate", "redelivered", "deferred", "invalid"} {
						t.Logf("svc %d %s %s = %v", i, c, o, testutil.ToFloat64(x.metrics.IngestMessages.WithLabelValues(c, o)))
					}
				}
			}
			svcMu.Unlock()
			t.Fatalf("timed out: %d events and %d verdicts accepted of %d, %v duplicates", evTally.total(), vTally.total(), total, dupMetric())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything extra would show now
	for name, tl := range map[string]*tally{"events": evTally, "verdicts": vTally} {
		tl.mu.Lock()
		if len(tl.n) != total {
			t.Errorf("%s: %d distinct agent:seq accepted, want %d", name, len(tl.n), total)
		}
		for k, n := range tl.n {
			if n != 1 {
				t.Errorf("%s: %s accepted %d times", name, k, n)
			}
		}
		t.Logf("%s per replica: %v", name, tl.by)
		tl.mu.Unlock()
	}
	if d := dupMetric(); d != agents*dupsPerAgent {
		t.Errorf("duplicates counted = %v, want %d", d, agents*dupsPerAgent)
	}
	if evTally.replica("a") == 0 || evTally.replica("b")+evTally.replica("b2") == 0 {
		t.Errorf("work not shared: %v", evTally.by)
	}
	// The stream holds every event plus the fresh-Msg-Id duplicates; the
	// verdict stream one verdict per event.
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for stream, want := range map[string]uint64{names.StreamEvents: total + agents*dupsPerAgent, names.StreamVerdicts: total} {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != want {
			t.Errorf("%s holds %d messages, want %d", stream, info.State.Msgs, want)
		}
	}
	kv, err := js.KeyValue(ctx, names.BucketHWM)
	if err != nil {
		t.Fatal(err)
	}
	for a := 0; a < agents; a++ {
		e, err := kv.Get(ctx, "events."+fmt.Sprintf("gw-%02d", a))
		if err != nil {
			t.Fatalf("mark of gw-%02d: %v", a, err)
		}
		var m struct{ Seq uint64 }
		if json.Unmarshal(e.Value(), &m) != nil || m.Seq != perAgent {
			t.Errorf("mark of gw-%02d = %s, want seq %d", a, e.Value(), perAgent)
		}
	}
}

func dumpConsumers(t *testing.T, url string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, name := range []string{"outpost-cloud-events", "outpost-cloud-verdicts"} {
		c, err := js.Consumer(context.Background(), names.StreamEvents, name)
		if err != nil {
			continue
		}
		i, _ := c.Info(context.Background())
		t.Logf("%s: pending %d ack_pending %d redelivered %d waiting %d delivered %+v ackfloor %+v", name, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, i.Delivered, i.AckFloor)
	}
}
