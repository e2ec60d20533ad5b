package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/models/detect"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// BenchmarkStartToFirstReading measures the time from Run to the first
// reading judged, for an agent restarting on a data directory that holds
// 10,000 unsent records and the checkpoints of 100 streams, with the
// reading already queued for it in mosquitto (persistent session) and NATS
// down. Target: at most 1 s.
func BenchmarkStartToFirstReading(b *testing.B) {
	srv := testenv.StartNATS(b)
	srv.Stop()
	mq := testenv.StartMosquitto(b)
	p, err := profile.Parse([]byte(deliveryYAML("gw-start", srv.URL(), mq.URL(), b.TempDir())))
	if err != nil {
		b.Fatal(err)
	}
	// Fill the data directory.
	ob, err := outbox.Open(filepath.Join(p.DataDir, "outbox.db"), outbox.Options{})
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 600)
	for i := 0; i < 10000; i++ {
		ob.Append(outbox.Request{Kind: outbox.KindEvent, Build: func(uint64) ([]byte, error) { return rec, nil }})
	}
	cp := map[string][]byte{}
	pd := p.Defaults()
	for s := 0; s < 100; s++ {
		d, err := detect.New(detectConfig(pd.StreamFor(topicOf(s))))
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			d.Judge(time.Unix(int64(i), 0), float64(i%7))
		}
		cp[cpPrefix+topicOf(s)], _ = d.MarshalBinary()
	}
	if _, err := ob.AppendWait(outbox.KindSummary, func(uint64) ([]byte, error) { return rec, nil }); err != nil {
		b.Fatal(err)
	}
	ob.SaveCheckpoint(cp)
	if err := ob.Close(); err != nil {
		b.Fatal(err)
	}

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL()).SetClientID("bench-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	run := func(publishFirst bool) time.Duration {
		ready := make(chan struct{})
		a, err := New(Options{Profile: p, Version: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(*Agent) { close(ready) }})
		if err != nil {
			b.Fatal(err)
		}
		if publishFirst {
			payload := fmt.Sprintf(`{"ts":%d,"value":1}`, time.Now().UnixMilli())
			if tok := pub.Publish(topicOf(0), 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatal(tok.Error())
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- a.Run(ctx) }()
		select {
		case <-ready:
		case err := <-done:
			b.Fatalf("agent stopped: %v", err)
		}
		for a.readings.Load() == 0 {
			if time.Since(start) > 20*time.Second {
				b.Fatal("no reading judged within 20 s")
			}
			if !publishFirst && a.in.Connected() {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		took := time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return took
	}
	run(false) // creates the persistent session
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += run(true)
	}
	b.ReportMetric(total.Seconds()*1000/float64(b.N), "ms/start")
}
