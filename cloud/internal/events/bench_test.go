package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
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

// publishEvents publishes perAgent events for each of agents agents from
// publishers connections (each owning a share of the agents, in seq order),
// with asynchronous publishes and acks.
func publishEvents(b *testing.B, url string, publishers, agents, perAgent int) {
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
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
			for seq := 1; seq <= perAgent; seq++ {
				if seq%100 == 0 {
					<-js.PublishAsyncComplete() // bound the acks outstanding
				}
				for a := p; a < agents; a += publishers {
					agent := fmt.Sprintf("bench-%03d", a)
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
}

// BenchmarkIngest measures events/s accepted by one replica's event ingest
// (batched durable pull consumer, per-agent high-water-mark compare-and-set
// in KV, ring, metrics, acks) on an embedded nats-server with file
// storage: "backlog" drains events already stored; "live" ingests while four
// publishers publish.
func BenchmarkIngest(b *testing.B) {
	const publishers, agents, perAgent = 4, 50, 1000
	const total = agents * perAgent
	for _, mode := range []string{"backlog", "live"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ns := testenv.StartNATS(b)
				nc, err := nats.Connect(ns.URL())
				if err != nil {
					b.Fatal(err)
				}
				js, _ := jetstream.New(nc)
				if err := streams.Ensure(context.Background(), js); err != nil {
					b.Fatal(err)
				}
				var accepted atomic.Int64
				done := make(chan struct{})
				m := metrics.New(func() float64 { return 0 })
				s := New(js, Config{Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
					OnEvent: func(api.Event) {
						if accepted.Add(1) == total {
							close(done)
						}
					}})
				if mode == "backlog" {
					publishEvents(b, ns.URL(), publishers, agents, perAgent)
				}
				b.StartTimer()
				if f := os.Getenv("INGEST_CPUPROFILE"); f != "" && i == 0 {
					out, err := os.Create(f + "." + mode)
					if err == nil {
						_ = pprof.StartCPUProfile(out)
						defer func() { pprof.StopCPUProfile(); out.Close() }()
					}
				}
				if err := s.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				if mode == "live" {
					publishEvents(b, ns.URL(), publishers, agents, perAgent)
				}
				select {
				case <-done:
				case <-time.After(2 * time.Minute):
					b.Fatalf("accepted %d of %d", accepted.Load(), total)
				}
				b.StopTimer()
				var size, dur dto.Metric
				_ = m.IngestBatchSize.WithLabelValues(MarkName).(prometheus.Histogram).Write(&size)
				_ = m.IngestBatchDuration.WithLabelValues(MarkName).(prometheus.Histogram).Write(&dur)
				if n := size.GetHistogram().GetSampleCount(); n > 0 {
					b.ReportMetric(size.GetHistogram().GetSampleSum()/float64(n), "events/batch")
					b.ReportMetric(1000*dur.GetHistogram().GetSampleSum()/float64(n), "ms/batch")
				}
				s.Stop()
				nc.Close()
				ns.Stop()
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
