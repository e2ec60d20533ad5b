package outbox

import (
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchAppend appends b.N ~200-byte event records from parallel producers
// (GOMAXPROCS × 8 goroutines) with fsync on, each waiting for its commit as
// the agent's MQTT ack does, and reports records/s.
func benchAppend(b *testing.B, opts Options) {
	o, err := Open(filepath.Join(b.TempDir(), "o.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	payload := make([]byte, 200)
	build := func(seq uint64) ([]byte, error) {
		return strconv.AppendUint(payload[:0:0], seq, 10), nil
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var wg sync.WaitGroup
		for pb.Next() {
			wg.Add(1)
			o.Append(Request{Kind: KindEvent, Build: build, Done: func(_ uint64, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			}})
		}
		wg.Wait()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppend: group commit (up to 1024 records per transaction).
func BenchmarkAppend(b *testing.B) { benchAppend(b, Options{}) }

// BenchmarkAppendOneTxPerRecord: the same with one transaction per record,
// for comparison.
func BenchmarkAppendOneTxPerRecord(b *testing.B) { benchAppend(b, Options{MaxBatch: 1}) }

// BenchmarkAppendKeyed: group commit with an idempotence key per record.
func BenchmarkAppendKeyed(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "o.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	build := func(seq uint64) ([]byte, error) { return make([]byte, 200), nil }
	b.ReportAllocs()
	b.SetParallelism(8)
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var ctr sync.Mutex
	n := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var wg sync.WaitGroup
		for pb.Next() {
			ctr.Lock()
			n++
			key := EventKey("sensors/press-1/temp", t0.Add(time.Duration(n)*time.Millisecond))
			ctr.Unlock()
			wg.Add(1)
			o.Append(Request{Kind: KindEvent, Key: key, Build: build, Done: func(_ uint64, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			}})
		}
		wg.Wait()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
