package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-iot/outpost/cloud/internal/api"
	"github.com/outpost-iot/outpost/cloud/internal/metrics"
	"github.com/outpost-iot/outpost/cloud/internal/streams"
	"github.com/outpost-iot/outpost/shared/names"
	"github.com/outpost-iot/outpost/shared/testenv"
	"github.com/outpost-iot/outpost/shared/wire"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// benchShape is the load of an ingest benchmark: publishers connections,
// each publishing for its share of agents agents, perAgent events per
// agent in seq order.
type benchShape struct {
	publishers, agents, perAgent int
}

func (s benchShape) total() int { return s.agents * s.perAgent }

// shapes: "50x2000" is 50 agents sending 2,000 events each (few agents, long
// per-agent runs in every batch); "1000x100" is a wider fleet (1,000
// agents, 100 events each: about one event per agent in a batch).
var shapes = []struct {
	name  string
	shape benchShape
}{
	{"50x2000", benchShape{publishers: 4, agents: 50, perAgent: 2000}},
	{"1000x100", benchShape{publishers: 4, agents: 1000, perAgent: 100}},
}

// publishEvents publishes the events of shape from shape.publishers
// connections (each owning a share of the agents, in seq order), with
// asynchronous publishes and acks, and returns the time it took.
func publishEvents(b *testing.B, url string, shape benchShape) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < shape.publishers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			nc, err := nats.Connect(url)
			if err != nil {
				b.Error(err)
				return
			}
			defer nc.Close()
			js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
			win := make([]float64, 16)
			for i := range win {
				win[i] = 20 + float64(i%3)/10
			}
			sent := 0
			for seq := 1; seq <= shape.perAgent; seq++ {
				for a := p; a < shape.agents; a += shape.publishers {
					if sent++; sent%400 == 0 {
						<-js.PublishAsyncComplete() // bound the acks outstanding
					}
					agent := fmt.Sprintf("bench-%04d", a)
					ev := wire.Event{Agent: agent, Seq: uint64(seq), Stream: "sensors/" + agent + "/temp", TS: time.Now().UTC(), Kind: wire.KindUncertain,
						Score: 0.7, Low: 0.5, High: 0.9, Value: 20.2, Model: "edge@1", Window: win, Created: time.Now().UTC()}
					data, _ := json.Marshal(ev)
					if _, err := js.PublishAsync(names.EventSubject(agent), data, jetstream.WithMsgID(names.MsgID(agent, uint64(seq)))); err != nil {
						b.Error(err)
						return
					}
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(2 * time.Minute):
				b.Error("publish acks did not complete")
			}
		}(p)
	}
	wg.Wait()
	return time.Since(start)
}

// cpuTime is the CPU time (user and system) of this process so far: the
// embedded server's, the replica's and, in live mode, the publishers'.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchServer starts an embedded nats-server with the streams and returns
// it with a JetStream context on a connection of its own.
func benchServer(b *testing.B) (*testenv.NATS, *nats.Conn, jetstream.JetStream) {
	ns := testenv.StartNATS(b)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		b.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if err := streams.Ensure(context.Background(), js); err != nil {
		b.Fatal(err)
	}
	return ns, nc, js
}

// BenchmarkIngest measures events/s accepted by one replica's event ingest
// (the shared durable consumer, per-agent high-water-mark compare-and-set
// in KV, ring, metrics, acks) on an embedded nats-server with file storage,
// which runs in the same process and shares the same cores.
//
// "backlog" drains events that four publishers stored before the replica
// started (the replica's own rate: the publishers are not timed and do not
// compete for the CPU). "live" starts the replica and then the four
// publishers, and times until the last event is accepted: publishers,
// server and replica share the cores, and the figure is bounded by the
// publish rate (reported as pub-events/s).
//
// cpu-us/event is the process's CPU time (server and replica, and in live
// mode the publishers) per event over the timed part: on a machine shared
// with other work it varies less than events/s. INGEST_BATCH=N sets
// Config.Batch; INGEST_CPUPROFILE=FILE writes a CPU profile of the first
// run of each mode; INGEST_CONSUMERS=N runs N Stores on the shared durable
// in the process (as N replicas would).
func BenchmarkIngest(b *testing.B) {
	for _, mode := range []string{"backlog", "live"} {
		for _, sh := range shapes {
			b.Run(mode+"/"+sh.name, func(b *testing.B) { benchIngest(b, mode, sh.shape) })
		}
	}
}

func benchIngest(b *testing.B, mode string, shape benchShape) {
	total := shape.total()
	var pubTime, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns, nc, js := benchServer(b)
		var accepted atomic.Int64
		done := make(chan struct{})
		m := metrics.New(func() float64 { return 0 })
		batch, _ := strconv.Atoi(os.Getenv("INGEST_BATCH"))
		consumers, _ := strconv.Atoi(os.Getenv("INGEST_CONSUMERS"))
		var stores []*Store
		for range max(consumers, 1) {
			stores = append(stores, New(js, Config{Batch: batch, Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				OnEvent: func(api.Event) {
					if accepted.Add(1) == int64(total) {
						close(done)
					}
				}}))
		}
		if mode == "backlog" {
			publishEvents(b, ns.URL(), shape)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		if f := os.Getenv("INGEST_CPUPROFILE"); f != "" && i == 0 {
			out, err := os.Create(f + "." + mode)
			if err == nil {
				_ = pprof.StartCPUProfile(out)
				defer func() { pprof.StopCPUProfile(); out.Close() }()
			}
		}
		for _, s := range stores {
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		if mode == "live" {
			pubTime += publishEvents(b, ns.URL(), shape)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("accepted %d of %d", accepted.Load(), total)
		}
		b.StopTimer()
		cpu += cpuTime() - cpu0
		var size, dur dto.Metric
		_ = m.IngestBatchSize.WithLabelValues(MarkName).(prometheus.Histogram).Write(&size)
		_ = m.IngestBatchDuration.WithLabelValues(MarkName).(prometheus.Histogram).Write(&dur)
		if n := size.GetHistogram().GetSampleCount(); n > 0 {
			b.ReportMetric(size.GetHistogram().GetSampleSum()/float64(n), "events/batch")
			b.ReportMetric(1000*dur.GetHistogram().GetSampleSum()/float64(n), "ms/batch")
		}
		for _, s := range stores {
			s.Stop()
		}
		nc.Close()
		ns.Stop()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(total*b.N), "cpu-us/event")
	if pubTime > 0 {
		b.ReportMetric(float64(total*b.N)/pubTime.Seconds(), "pub-events/s")
	}
}

// BenchmarkConsumeCeiling drains the same backlog as BenchmarkIngest with a
// bare JetStream Consume on a durable and a handler that does nothing but
// acknowledge: the ceiling of any ingest on this server and machine.
// "ack" acknowledges every message (AckExplicit, what replicas sharing a
// durable need), "ackall" acknowledges every 500th and the last message
// (AckAll; unsafe with replicas sharing the durable), "none" uses
// AckNone. "ack+decode" also decodes each event; "ack-late" acknowledges
// every message, 2,000 at a time (as the ingest does after committing a
// batch). The consumer has no
// filter (the stream holds only events), as the ingest's.
func BenchmarkConsumeCeiling(b *testing.B) {
	shape := shapes[0].shape
	total := shape.total()
	for _, mode := range []string{"ack", "ack+decode", "ack-late", "ackall", "none"} {
		b.Run(mode, func(b *testing.B) {
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ns, nc, js := benchServer(b)
				publishEvents(b, ns.URL(), shape)
				policy := jetstream.AckExplicitPolicy
				switch mode {
				case "ackall":
					policy = jetstream.AckAllPolicy
				case "none":
					policy = jetstream.AckNonePolicy
				}
				b.StartTimer()
				cpu0 := cpuTime()
				if f := os.Getenv("INGEST_CPUPROFILE"); f != "" && i == 0 {
					out, err := os.Create(f + ".ceiling-" + mode)
					if err == nil {
						_ = pprof.StartCPUProfile(out)
					}
				}
				ctx := context.Background()
				cons, err := js.CreateOrUpdateConsumer(ctx, names.StreamEvents, jetstream.ConsumerConfig{
					Durable: "ceiling", AckPolicy: policy,
					AckWait: 5 * time.Second, MaxAckPending: 8000})
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan struct{})
				n := 0
				var ev wire.Event
				var late []jetstream.Msg
				cc, err := cons.Consume(func(m jetstream.Msg) {
					n++
					switch mode {
					case "ack-late":
						late = append(late, m)
						if len(late) == 2000 || n == total {
							for _, m := range late {
								_ = m.Ack()
							}
							late = late[:0]
						}
					case "ack":
						_ = m.Ack()
					case "ack+decode":
						if err := wire.DecodeEvent(m.Data(), &ev); err != nil {
							b.Error(err)
						}
						_ = m.Ack()
					case "ackall":
						if n%500 == 0 || n == total {
							_ = m.Ack()
						}
					}
					if n == total {
						close(done)
					}
				}, jetstream.PullMaxMessages(2000))
				if err != nil {
					b.Fatal(err)
				}
				select {
				case <-done:
				case <-time.After(2 * time.Minute):
					b.Fatalf("consumed %d of %d", n, total)
				}
				b.StopTimer()
				cpu += cpuTime() - cpu0
				if os.Getenv("INGEST_CPUPROFILE") != "" && i == 0 {
					pprof.StopCPUProfile()
				}
				cc.Stop()
				nc.Close()
				ns.Stop()
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(total*b.N), "cpu-us/event")
		})
	}
}
