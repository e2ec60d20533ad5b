package uplink

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/edge/internal/edgetest"
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// BenchmarkDrain measures how fast a backlog of b.N 600-byte events drains
// from the outbox (fsync on) to JetStream (embedded nats-server, file
// storage), acknowledged and deleted: records/s.
func BenchmarkDrain(b *testing.B) {
	srv := testenv.StartNATS(b)
	edgetest.CreateStreams(b, srv.URL())
	ob, err := outbox.Open(filepath.Join(b.TempDir(), "o.db"), outbox.Options{MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	rec := make([]byte, 600)
	for i := 0; i < b.N; i++ {
		ob.Append(outbox.Request{Kind: outbox.KindEvent, Build: func(uint64) ([]byte, error) { return rec, nil }})
	}
	for ob.Stats().Depth < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	up, err := New(ob, Config{Agent: "gw-bench", URL: srv.URL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- up.Run(ctx) }()
	for ob.Stats().Depth > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
