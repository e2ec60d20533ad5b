//go:build linux

package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
)

// benchDir is where the latency benchmarks put their files:
// $OUTBOX_BENCH_DIR (e.g. /dev/shm, to take the disk out), else the test's
// temporary directory.
func benchDir(b *testing.B) string {
	if d := os.Getenv("OUTBOX_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "outbox-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// reportQuantiles reports the p50, p99 and max of lat in µs.
func reportQuantiles(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.5), prefix+"p50-µs")
	b.ReportMetric(q(0.99), prefix+"p99-µs")
	b.ReportMetric(q(1), prefix+"max-µs")
}

// BenchmarkFdatasync measures what the device allows, in the directory of
// the outbox benchmarks: per iteration, interleaved so that both see the
// same load, (1) one 4 KiB page overwritten and fdatasync'd, (2) a bbolt
// commit's pattern: 8 pages written, fdatasync, the meta page written,
// fdatasync. Both files are written in full first (no block allocation on
// the way). Reports p50/p99/max of each in µs.
func BenchmarkFdatasync(b *testing.B) {
	dir := benchDir(b)
	const pages = 8
	page := make([]byte, 4096*pages)
	for i := range page {
		page[i] = byte(i)
	}
	open := func(name string, size int) *os.File {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, size), 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		return f
	}
	const span = 256 // pages written in turn
	one, two := open("one", 4096*span), open("two", 4096*(span+2))
	sync := func(f *os.File) {
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	var lat1, lat2 []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := one.WriteAt(page[:4096], int64(i%span)*4096); err != nil {
			b.Fatal(err)
		}
		sync(one)
		t1 := time.Now()
		if _, err := two.WriteAt(page, int64(2+(i*pages)%(span-pages))*4096); err != nil {
			b.Fatal(err)
		}
		sync(two)
		if _, err := two.WriteAt(page[:4096], int64(i%2)*4096); err != nil {
			b.Fatal(err)
		}
		sync(two)
		lat1 = append(lat1, t1.Sub(t0))
		lat2 = append(lat2, time.Since(t1))
	}
	b.StopTimer()
	reportQuantiles(b, "1sync-", lat1)
	reportQuantiles(b, "bbolt-", lat2)
}

// BenchmarkEventLatency appends events as the agent does in a burst of
// anomalies (one every 1.5 ms, with a 200-byte record and an idempotence
// key) while the uplink deletes what was committed, and saves a checkpoint
// of 100 streams of 2 KB each every 100 events (Lazy, as the agent's
// periodic ones), with fsync on; it reports the p50/p99/max of Append →
// Done in µs, and of the commit and the queue wait (CommitInfo) of the
// commits that held records: through the write-ahead log (wal), and with
// every commit in the bbolt file (bbolt, Options.NoWAL).
// wal-serial syncs one log group at a time (Options.LogSyncs 1), as before
// the pipelined syncs.
func BenchmarkEventLatency(b *testing.B) {
	b.Run("wal", func(b *testing.B) { benchEventLatency(b, Options{}) })
	b.Run("wal-serial", func(b *testing.B) { benchEventLatency(b, Options{LogSyncs: 1}) })
	b.Run("bbolt", func(b *testing.B) { benchEventLatency(b, Options{NoWAL: true}) })
}

// openBench opens an outbox in benchDir with opts and returns it with a
// checkpoint of 100 streams of 2 KB each, as the agent's.
func openBench(b *testing.B, opts Options) (*Outbox, map[string][]byte) {
	b.Helper()
	o, err := Open(filepath.Join(benchDir(b), "o.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	cp := map[string][]byte{}
	for s := 0; s < 100; s++ {
		cp[fmt.Sprintf("detect/sensors/dev-%d/x", s)] = make([]byte, 2048)
	}
	return o, cp
}

func benchEventLatency(b *testing.B, opts Options) {
	var log commitLog
	opts.OnCommit = log.add
	o, cp := openBench(b, opts)
	defer o.Close()
	lat := make([]time.Duration, b.N)
	done := make(chan struct{}, b.N)
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	tick := time.NewTicker(1500 * time.Microsecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		i, start := i, time.Now()
		o.Append(Request{Kind: KindEvent, Key: EventKey("sensors/dev/x", t0.Add(time.Duration(i)*time.Millisecond)),
			Build: func(uint64) ([]byte, error) { return make([]byte, 200), nil },
			Done: func(seq uint64, err error) {
				if err != nil {
					b.Error(err)
				}
				lat[i] = time.Since(start)
				o.DeleteLater(seq)
				done <- struct{}{}
			}})
		if i%100 == 99 {
			o.Append(Request{Checkpoint: cp, Lazy: true})
		}
	}
	for i := 0; i < b.N; i++ {
		<-done
	}
	b.StopTimer()
	reportQuantiles(b, "", lat)
	var wait, commit []time.Duration
	for _, c := range log.all() {
		if c.Records > 0 && !c.Apply {
			wait = append(wait, c.Wait)
			commit = append(commit, c.Commit)
		}
	}
	reportQuantiles(b, "commit-", commit)
	reportQuantiles(b, "wait-", wait)
}

// BenchmarkEventBurst appends events in bursts, as the system benchmark's
// spikes make them (every device spikes at the same reading): b.N bursts of
// 100 events spread over 10 ms, one burst every 200 ms, with the uplink
// deleting what was committed and a Lazy checkpoint of 100 streams of 2 KB
// after each burst; it reports the p50/p99/max of Append → Done in µs, with
// the write-ahead log's syncs pipelined (wal, Options.LogSyncs default) and
// one at a time (wal-serial).
func BenchmarkEventBurst(b *testing.B) {
	b.Run("wal", func(b *testing.B) { benchEventBurst(b, Options{}) })
	b.Run("wal-serial", func(b *testing.B) { benchEventBurst(b, Options{LogSyncs: 1}) })
}

func benchEventBurst(b *testing.B, opts Options) {
	o, cp := openBench(b, opts)
	defer o.Close()
	const per = 100
	lat := make([]time.Duration, b.N*per)
	done := make(chan struct{}, len(lat))
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	next := time.Now()
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Until(next))
		next = next.Add(200 * time.Millisecond)
		for j := 0; j < per; j++ {
			if j%10 == 0 && j > 0 {
				time.Sleep(time.Millisecond)
			}
			n, start := i*per+j, time.Now()
			o.Append(Request{Kind: KindEvent, Key: EventKey(fmt.Sprintf("sensors/dev-%d/x", j), t0.Add(time.Duration(i)*time.Second)),
				Build: func(uint64) ([]byte, error) { return make([]byte, 400), nil },
				Done: func(seq uint64, err error) {
					if err != nil {
						b.Error(err)
					}
					lat[n] = time.Since(start)
					o.DeleteLater(seq)
					done <- struct{}{}
				}})
		}
		o.Append(Request{Checkpoint: cp, Lazy: true})
	}
	for range lat {
		<-done
	}
	b.StopTimer()
	reportQuantiles(b, "", lat)
}
