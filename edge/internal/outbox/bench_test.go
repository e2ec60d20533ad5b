package outbox

import (
	"path/filepath"
	"sort"
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

// BenchmarkOpenFull opens an outbox holding 64 MiB of 1 KiB records (the
// default bound): the time an agent's start spends on it, which includes
// rebuilding bbolt's freelist (it is not written with each commit).
func BenchmarkOpenFull(b *testing.B) {
	path := filepath.Join(b.TempDir(), "o.db")
	o, err := Open(path, Options{NoSync: true, MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	rec := func(uint64) ([]byte, error) { return make([]byte, 1023), nil }
	var wg sync.WaitGroup
	for i := 0; i < 64<<10; i++ {
		wg.Add(1)
		o.Append(Request{Kind: KindEvent, Build: rec, Done: func(uint64, error) { wg.Done() }})
	}
	wg.Wait()
	// Deliver every other record now and then: a fragmented file.
	recs, _ := o.Pending(0, 64<<10)
	var seqs []uint64
	for i, r := range recs {
		if i%2 == 0 {
			seqs = append(seqs, r.Seq)
		}
	}
	if err := o.Delete(seqs...); err != nil {
		b.Fatal(err)
	}
	if err := o.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		o.Close()
		b.StartTimer()
	}
}

// BenchmarkCommitLatency replays the outbox's load in the agent at 10k
// readings/s (see edge/bench): an event every 30 ms (each b.N is one),
// waited for like the MQTT ack, 100 streams' checkpoints of 1.3 KB once a
// second, and an uplink that deletes what was committed (DeleteLater). It
// reports the p50 and p99 time from Append to Done, with fsync on. Run with
// -benchtime 600x (18 s).
func BenchmarkCommitLatency(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "o.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the uplink: delete what is committed
		defer wg.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			case <-o.Notify():
			}
			recs, _ := o.Pending(last, 256)
			if len(recs) == 0 {
				continue
			}
			var seqs []uint64
			for _, r := range recs {
				seqs = append(seqs, r.Seq)
			}
			last = seqs[len(seqs)-1]
			time.Sleep(time.Millisecond) // the publish round trip
			if err := o.DeleteLater(seqs...); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	go func() { // the checkpoints
		defer wg.Done()
		state := make([]byte, 1300)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for turn := 0; ; turn++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			cp := map[string][]byte{}
			for s := 0; s < 100; s++ {
				state[0] = byte(turn)
				cp["detect/sensors/dev-"+strconv.Itoa(s)] = append([]byte(nil), state...)
			}
			o.SaveCheckpoint(cp)
		}
	}()
	ev := make([]byte, 1500)
	lat := make([]time.Duration, 0, b.N)
	tick := time.NewTicker(30 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		t0 := time.Now()
		done := make(chan struct{})
		o.Append(Request{Kind: KindEvent, Key: EventKey("sensors/dev-1", t0),
			Build: func(uint64) ([]byte, error) { return ev, nil },
			Done: func(_ uint64, err error) {
				if err != nil {
					b.Error(err)
				}
				lat = append(lat, time.Since(t0))
				close(done)
			}})
		<-done
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
