package service

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
)

// benchEventN is an uncertain event with an n-value window; every 20th
// ends with a spike.
func benchEventN(agent string, seq uint64, n int) wire.Event {
	win := make([]float64, n)
	for i := range win {
		win[i] = 20 + float64((int(seq)+i)%5)/10
	}
	if seq%20 == 0 {
		win[n-1] = 30
	}
	return wire.Event{Agent: agent, Seq: seq, Stream: "sensors/" + agent + "/temp", TS: time.Now().UTC(), Kind: wire.KindUncertain,
		Score: 0.7, Low: 0.5, High: 0.9, Value: win[n-1], Model: "edge@1", Window: win, Created: time.Now().UTC()}
}

// benchScorers are the second stages the service benchmarks run: each
// scorer with windows it scores (forecast-cloud needs 66 values; the
// generic-sensor-model profile forwards 96).
var benchScorers = []struct {
	scorer string
	window int
}{{"robust-zscore@1", 32}, {"forecast-cloud@1", 96}}

func startBench(b *testing.B, cfg Config) *Service {
	b.Helper()
	ns := testenv.StartNATS(b)
	cfg.NATSURL, cfg.HTTPListen, cfg.Logger, cfg.DataDir = ns.URL(), "127.0.0.1:0", quietLogger(), b.TempDir()
	s, err := Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)
	return s
}

// BenchmarkPublishToVerdict publishes events at a fixed rate (1,000/s from
// 10 agents on one connection) into a full outpost-cloud on loopback and
// reports the p50 and p99 of the time from just before each event's publish
// until its verdict message arrives at a subscriber of the verdict subjects
// (what the agent sees): "p50-ms", "p99-ms"; "decide-p99-ms" is the p99 of
// the verdict's own LatencyMS (decision time - event.Created).
func BenchmarkPublishToVerdict(b *testing.B) {
	for _, bs := range benchScorers {
		b.Run(fmt.Sprintf("%s/window=%d", bs.scorer, bs.window), func(b *testing.B) { benchPublishToVerdict(b, bs.scorer, bs.window) })
	}
}

func benchPublishToVerdict(b *testing.B, scorer string, window int) {
	const rate, seconds, agents = 1000, 3, 10
	const n = rate * seconds
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var mu sync.Mutex
		var sent sync.Map // msg id -> publish time
		lat := make([]float64, 0, n)
		decide := make([]float64, 0, n)
		done := make(chan struct{})
		svc := startBench(b, Config{Scorer: scorer})
		nc, err := nats.Connect(svc.NATSURL())
		if err != nil {
			b.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		sub, err := nc.Subscribe(names.VerdictsAll, func(m *nats.Msg) {
			now := time.Now()
			var v wire.Verdict
			if json.Unmarshal(m.Data, &v) != nil {
				return
			}
			t0, ok := sent.Load(names.MsgID(v.Agent, v.Seq))
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, float64(now.Sub(t0.(time.Time)))/float64(time.Millisecond))
			decide = append(decide, v.LatencyMS)
			if len(lat) == n {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for k := 0; k < n; k++ {
			if d := time.Until(start.Add(time.Duration(k) * time.Second / rate)); d > 0 {
				time.Sleep(d)
			}
			agent := fmt.Sprintf("lat-%02d", k%agents)
			seq := uint64(k/agents + 1)
			ev := benchEventN(agent, seq, window)
			data, _ := json.Marshal(ev)
			sent.Store(names.MsgID(agent, seq), ev.Created)
			if _, err := js.PublishAsync(names.EventSubject(agent), data, jetstream.WithMsgID(names.MsgID(agent, seq))); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("only %d verdicts of %d", len(lat), n)
		}
		b.StopTimer()
		_ = sub.Unsubscribe()
		nc.Close()
		mu.Lock()
		sort.Float64s(lat)
		sort.Float64s(decide)
		b.ReportMetric(lat[len(lat)/2], "p50-ms")
		b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
		b.ReportMetric(lat[len(lat)-1], "max-ms")
		b.ReportMetric(decide[len(decide)*99/100], "decide-p99-ms")
		mu.Unlock()
	}
}

// BenchmarkSecondStage drains a backlog of 20,000 stored events through a
// full outpost-cloud (event ingest and the second stage both running) and
// reports verdicts/s: re-scoring (robust-zscore@1 over 32-value windows,
// forecast-cloud@1 over 96-value windows), publishing each verdict with
// its acknowledgement, the high-water-mark compare-and-set and the acks.
func BenchmarkSecondStage(b *testing.B) {
	for _, bs := range benchScorers {
		b.Run(fmt.Sprintf("%s/window=%d", bs.scorer, bs.window), func(b *testing.B) { benchSecondStage(b, bs.scorer, bs.window) })
	}
}

func benchSecondStage(b *testing.B, scorer string, window int) {
	const agents, perAgent = 20, 1000
	const n = agents * perAgent
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var got atomic.Int64
		done := make(chan struct{})
		ns := testenv.StartNATS(b)
		// Store the events first: a service started on the same server
		// creates the streams, then is stopped.
		first, err := Start(context.Background(), Config{NATSURL: ns.URL(), DataDir: b.TempDir(), HTTPListen: "127.0.0.1:0", Logger: quietLogger(), Scorer: "robust-zscore@1"})
		if err != nil {
			b.Fatal(err)
		}
		first.Stop()
		nc, err := nats.Connect(ns.URL())
		if err != nil {
			b.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		for seq := uint64(1); seq <= perAgent; seq++ {
			for a := 0; a < agents; a++ {
				agent := fmt.Sprintf("ss-%02d", a)
				data, _ := json.Marshal(benchEventN(agent, seq, window))
				if _, err := js.PublishAsync(names.EventSubject(agent), data, jetstream.WithMsgID(names.MsgID(agent, seq))); err != nil {
					b.Fatal(err)
				}
			}
			if seq%50 == 0 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		nc.Close()
		b.StartTimer()
		svc, err := Start(context.Background(), Config{NATSURL: ns.URL(), DataDir: b.TempDir(), HTTPListen: "127.0.0.1:0", Logger: quietLogger(), Scorer: scorer,
			OnVerdict: func(api.Event, wire.Verdict) {
				if got.Add(1) == n {
					close(done)
				}
			}})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("only %d verdicts of %d", got.Load(), n)
		}
		b.StopTimer()
		svc.Stop()
		ns.Stop()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "verdicts/s")
}
