// Package sysbench measures the whole edge system: the real outpost-edge
// binary between a real mosquitto and an embedded nats-server with
// JetStream, fed by the real sensorsim publisher. It reports
//
//   - mosquitto's own publish → subscribe rate (sensorsim → mosquitto → a
//     plain paho QoS 1 subscriber) and the agent's end-to-end rate with the
//     same publisher and broker settings, every reading counted by the
//     agent's /metrics (no loss), as a ratio;
//   - at a steady publish rate (10k readings/s): the agent's process CPU
//     time per reading (/proc/<pid>/stat), its resident memory
//     (/proc/<pid>/status VmRSS and VmHWM), and the p50/p99 time from MQTT
//     receipt to outbox commit (outpost_edge_receive_to_commit_seconds);
//   - the size of the stripped linux/arm64 binary.
//
// The package links nats-server; outpost-edge does not import it.
package sysbench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Config is a benchmark run. Zero values are defaults.
type Config struct {
	// Edge and Sensorsim are the binaries to run; Arm64 is the stripped
	// linux/arm64 outpost-edge whose size is reported. Required.
	Edge, Sensorsim, Arm64 string
	// Profile is the agent's firmware profile (its MQTT, NATS, data and
	// metrics settings are overridden). Required.
	Profile string
	// Data is sensorsim's --data (CSV files or directories). Required.
	Data string
	// Devices publishing (one stream each). Default 100.
	Devices int
	// Warm is the readings per device published before measuring, so that
	// every stream's model has its window. Default 200.
	Warm int
	// RateReadings are the readings counted in each rate run. Default 100000.
	RateReadings int64
	// RateRuns is how many times each rate is measured. Default 3;
	// negative: none.
	RateRuns int
	// SteadyRate is the publish rate of the steady runs. Default 10000/s.
	SteadyRate float64
	// SteadyFor is how long a steady run is measured. Default 20s.
	SteadyFor time.Duration
	// SteadyRuns is the number of steady runs. Default 1; negative: none.
	SteadyRuns int
	// SpikeEvery is sensorsim's --spike-every in the steady runs: readings
	// per device between injected spikes (which become events). Default 200.
	SpikeEvery int
	// SpikeStagger gives each device its own spike phase (sensorsim
	// --spike-stagger): events arrive spread out instead of as one burst
	// of every device every SpikeEvery readings (the default, the worst
	// case).
	SpikeStagger bool
	// AgentEnv are extra environment variables (KEY=VALUE) of the agent
	// process, e.g. GOMAXPROCS=1.
	AgentEnv []string
	// Dir holds the servers' and agents' files. Default a temporary
	// directory, removed afterwards.
	Dir string
	// NATSDir, if set, is where the embedded NATS server (the cloud's side)
	// keeps its JetStream store, in a temporary directory removed
	// afterwards, instead of under Dir: e.g. /dev/shm, so that only the
	// gateway's own files (broker, agent) are on the disk measured.
	NATSDir string
	// Log receives progress. Default io.Discard.
	Log io.Writer
}

func (c *Config) defaults() {
	if c.Devices == 0 {
		c.Devices = 100
	}
	if c.Warm == 0 {
		c.Warm = 200
	}
	if c.RateReadings == 0 {
		c.RateReadings = 100000
	}
	if c.RateRuns == 0 {
		c.RateRuns = 3
	}
	if c.SteadyRate == 0 {
		c.SteadyRate = 10000
	}
	if c.SteadyFor == 0 {
		c.SteadyFor = 20 * time.Second
	}
	if c.SteadyRuns == 0 {
		c.SteadyRuns = 1
	}
	if c.SpikeEvery == 0 {
		c.SpikeEvery = 200
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// RateRun is one pair of rate measurements.
type RateRun struct {
	// Mosquitto is the rate a plain subscriber received at; Agent the rate
	// the agent judged readings at (readings/s).
	Mosquitto, Agent float64
	// PublisherMosquitto and PublisherAgent are sensorsim's own publish
	// rates (acknowledged by mosquitto) in the two runs.
	PublisherMosquitto, PublisherAgent float64
}

// Ratio is Agent / Mosquitto.
func (r RateRun) Ratio() float64 { return r.Agent / r.Mosquitto }

// SteadyRun is one measurement at a steady publish rate.
type SteadyRun struct {
	Rate        float64       // readings/s the agent judged in the window
	Readings    float64       // readings judged in the window
	CPUPerRead  time.Duration // process CPU time (user + system) per reading
	CPUShare    float64       // CPU time / wall time in the window (1 = one core)
	Mem         memInfo       // resident memory at the end of the window
	Events      float64       // events committed in the window
	P50, P99    time.Duration // receipt → commit; -1 when the agent has no histogram
	Commits     float64       // observations in the histogram in the window
	DecodeErrs  float64
	Lost        int64 // published minus judged readings over the whole run
	Publisher   float64
	Spikes      int64
	Window      time.Duration
	HistMissing bool
	// Outbox splits the outbox writer's time in the window (the agent's
	// outpost_edge_outbox_* metrics; zero when it has none).
	Outbox OutboxSplit
	// WakeP50 and WakeP99 are how late a 1 ms sleep in the benchmark's
	// own process woke up during the window: the machine's CPU contention,
	// a floor under any latency that needs a thread woken (the agent's
	// commit needs several: its sync's writes, the kernel's cache flush).
	WakeP50, WakeP99 time.Duration
}

// OutboxSplit is where the outbox writer's time went in a steady run's
// window: per transaction, the p50/p99 of the oldest request's wait for
// the writer, of building the transaction and of bbolt's commit, with the
// transactions and their page writes.
type OutboxSplit struct {
	Commits, Writes      float64
	WaitP50, WaitP99     time.Duration
	BuildP50, BuildP99   time.Duration
	CommitP50, CommitP99 time.Duration
	CommitMax            time.Duration // upper bound of the highest bucket used
	// Applies are the transactions moving logged records into the bbolt
	// file (outpost_edge_outbox_apply_seconds; none before the log).
	Applies            float64
	ApplyP50, ApplyP99 time.Duration
}

// Result is the whole benchmark.
type Result struct {
	Rate       []RateRun
	Steady     []SteadyRun
	Arm64Bytes int64
}

// Run runs the benchmark.
func Run(ctx context.Context, c Config) (*Result, error) {
	c.defaults()
	for _, f := range []struct{ name, v string }{{"edge binary", c.Edge}, {"sensorsim binary", c.Sensorsim}, {"profile", c.Profile}, {"data", c.Data}} {
		if f.v == "" {
			return nil, fmt.Errorf("sysbench: no %s", f.name)
		}
	}
	if _, err := mosquittoPath(); err != nil {
		return nil, err
	}
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "edgebench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		c.Dir = d
	}
	res := &Result{}
	if c.Arm64 != "" {
		st, err := os.Stat(c.Arm64)
		if err != nil {
			return nil, fmt.Errorf("sysbench: arm64 binary: %w", err)
		}
		res.Arm64Bytes = st.Size()
	}
	natsDir := filepath.Join(c.Dir, "nats")
	if c.NATSDir != "" {
		d, err := os.MkdirTemp(c.NATSDir, "edgebench-nats-")
		if err != nil {
			return nil, fmt.Errorf("sysbench: %w", err)
		}
		defer os.RemoveAll(d)
		natsDir = d
	}
	ns, err := startNATS(natsDir)
	if err != nil {
		return nil, fmt.Errorf("sysbench: %w", err)
	}
	defer ns.Stop()
	for i := 0; i < c.RateRuns; i++ {
		r, err := rateRun(ctx, c, ns.url, i)
		if err != nil {
			return res, fmt.Errorf("sysbench: rate run %d: %w", i+1, err)
		}
		fmt.Fprintf(c.Log, "rate run %d: mosquitto %.0f/s, agent %.0f/s (%.0f%%)\n", i+1, r.Mosquitto, r.Agent, 100*r.Ratio())
		res.Rate = append(res.Rate, r)
	}
	for i := 0; i < c.SteadyRuns; i++ {
		s, err := steadyRun(ctx, c, ns.url, i)
		if err != nil {
			return res, fmt.Errorf("sysbench: steady run %d: %w", i+1, err)
		}
		fmt.Fprintf(c.Log, "steady run %d: %.0f readings/s (sensorsim published at %.0f/s), %v CPU/reading, RSS %.1f MiB (anon %.1f, file %.1f; peak %.1f), p50 %v p99 %v over %.0f commits\n",
			i+1, s.Rate, s.Publisher, s.CPUPerRead, mib(s.Mem.RSS), mib(s.Mem.Anon), mib(s.Mem.File), mib(s.Mem.HWM), s.P50, s.P99, s.Commits)
		if o := s.Outbox; o.Commits > 0 {
			fmt.Fprintf(c.Log, "  outbox: %.0f transactions (%.1f/s), %.1f page writes each; wait p50 %v p99 %v, build p50 %v p99 %v, commit p50 %v p99 %v (max <= %v)\n",
				o.Commits, o.Commits/s.Window.Seconds(), o.Writes/o.Commits, o.WaitP50, o.WaitP99, o.BuildP50, o.BuildP99, o.CommitP50, o.CommitP99, o.CommitMax)
			if o.Applies > 0 {
				fmt.Fprintf(c.Log, "  applied to bbolt in the background: %.0f transactions, p50 %v p99 %v\n", o.Applies, o.ApplyP50, o.ApplyP99)
			}
		}
		fmt.Fprintf(c.Log, "  a 1 ms sleep in the benchmark process woke up late by p50 %v p99 %v (CPU contention)\n", s.WakeP50, s.WakeP99)
		res.Steady = append(res.Steady, s)
	}
	return res, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// rateRun measures mosquitto's rate, then the agent's, each with a fresh
// broker: sensorsim publishes Warm readings per device and then
// RateReadings more as fast as it can; the rate is RateReadings over the
// time between the receipt of the last warm-up reading and of the last one.
func rateRun(ctx context.Context, c Config, natsURL string, run int) (RateRun, error) {
	var r RateRun
	warm := int64(c.Warm * c.Devices)
	total := warm + c.RateReadings
	pc := pubConfig{bin: c.Sensorsim, data: c.Data, devices: c.Devices, count: total}

	// mosquitto alone.
	dir := filepath.Join(c.Dir, fmt.Sprintf("rate-%d", run))
	mq, err := startMosquitto(filepath.Join(dir, "mosquitto-only"))
	if err != nil {
		return r, err
	}
	defer mq.Stop()
	sub, err := startSubscriber(mq.url, warm, total)
	if err != nil {
		return r, err
	}
	pc.mqttURL = mq.url
	pub, err := startPublisher(pc)
	if err != nil {
		sub.Stop()
		return r, err
	}
	pr, err := pub.wait(ctx)
	if err == nil {
		err = waitUntil(ctx, 60*time.Second, func() bool { return !sub.reached(1).IsZero() })
	}
	sub.Stop()
	mq.Stop()
	if err != nil {
		return r, fmt.Errorf("mosquitto: %w (received %d of %d)", err, sub.n.Load(), total)
	}
	r.Mosquitto = float64(c.RateReadings) / sub.reached(1).Sub(sub.reached(0)).Seconds()
	r.PublisherMosquitto = pr.MsgsPerSecond

	// The agent.
	mq2, err := startMosquitto(filepath.Join(dir, "mosquitto-agent"))
	if err != nil {
		return r, err
	}
	defer mq2.Stop()
	ag, err := startAgent(ctx, c.Edge, c.AgentEnv, c.Profile, fmt.Sprintf("bench-rate-%d", run), mq2.url, natsURL, filepath.Join(dir, "agent"))
	if err != nil {
		return r, err
	}
	defer ag.Stop()
	pc.mqttURL = mq2.url
	if pub, err = startPublisher(pc); err != nil {
		return r, err
	}
	var t0, t1 time.Time
	var last sample
	err = waitUntil(ctx, 120*time.Second, func() bool {
		s, err := scrape(ag.metrics)
		if err != nil {
			return false
		}
		last = s
		n := int64(s.sum("outpost_edge_readings_total"))
		now := time.Now()
		if t0.IsZero() && n >= warm {
			t0 = now
		}
		if n >= total {
			t1 = now
			return true
		}
		return false
	})
	pr, perr := pub.wait(ctx)
	if err != nil {
		return r, fmt.Errorf("agent: %w (judged %.0f of %d readings; log %s)", err, last.sum("outpost_edge_readings_total"), total, ag.log)
	}
	if perr != nil {
		return r, perr
	}
	if pr.Published != total || pr.Failed != 0 {
		return r, fmt.Errorf("sensorsim published %d (failed %d), want %d", pr.Published, pr.Failed, total)
	}
	// No loss, no double counting: exactly total readings, none malformed.
	time.Sleep(200 * time.Millisecond)
	s, err := scrape(ag.metrics)
	if err != nil {
		return r, err
	}
	if n := int64(s.sum("outpost_edge_readings_total")); n != total || s.sum("outpost_edge_decode_errors_total") != 0 {
		return r, fmt.Errorf("agent judged %d readings (%v decode errors), want %d", n, s.sum("outpost_edge_decode_errors_total"), total)
	}
	r.Agent = float64(c.RateReadings) / t1.Sub(t0).Seconds()
	r.PublisherAgent = pr.MsgsPerSecond
	return r, nil
}

// steadyRun publishes at SteadyRate with spikes, and measures the agent over
// SteadyFor after the warm-up.
func steadyRun(ctx context.Context, c Config, natsURL string, run int) (SteadyRun, error) {
	var r SteadyRun
	dir := filepath.Join(c.Dir, fmt.Sprintf("steady-%d", run))
	mq, err := startMosquitto(filepath.Join(dir, "mosquitto"))
	if err != nil {
		return r, err
	}
	defer mq.Stop()
	ag, err := startAgent(ctx, c.Edge, c.AgentEnv, c.Profile, fmt.Sprintf("bench-steady-%d", run), mq.url, natsURL, filepath.Join(dir, "agent"))
	if err != nil {
		return r, err
	}
	defer ag.Stop()
	warm := int64(c.Warm * c.Devices)
	// Two seconds more than measured, so the window ends before the
	// publisher does.
	total := warm + int64(c.SteadyRate*(c.SteadyFor.Seconds()+2))
	pub, err := startPublisher(pubConfig{bin: c.Sensorsim, data: c.Data, mqttURL: mq.url, devices: c.Devices,
		count: total, rate: c.SteadyRate, spikeEvery: c.SpikeEvery, spikeStagger: c.SpikeStagger})
	if err != nil {
		return r, err
	}
	var s1 sample
	if err := waitUntil(ctx, 120*time.Second, func() bool {
		s, err := scrape(ag.metrics)
		if err == nil && int64(s.sum("outpost_edge_readings_total")) >= warm {
			s1 = s
			return true
		}
		return false
	}); err != nil {
		stopProcess(pub.cmd)
		return r, fmt.Errorf("warm-up: %w", err)
	}
	t1 := time.Now()
	cpu1, err := procCPU(ag.pid())
	if err != nil {
		return r, err
	}
	wake := startWakeProbe()
	select {
	case <-time.After(c.SteadyFor):
	case <-ctx.Done():
		wake.stop()
		return r, ctx.Err()
	}
	r.WakeP50, r.WakeP99 = wake.stop()
	s2, err := scrape(ag.metrics)
	if err != nil {
		return r, err
	}
	cpu2, err := procCPU(ag.pid())
	if err != nil {
		return r, err
	}
	t2 := time.Now()
	if r.Mem, err = procMem(ag.pid()); err != nil {
		return r, err
	}
	pr, err := pub.wait(ctx)
	if err != nil {
		return r, err
	}
	// Wait for the agent to judge what is left, then count.
	var end sample
	_ = waitUntil(ctx, 30*time.Second, func() bool {
		s, err := scrape(ag.metrics)
		end = s
		return err == nil && int64(s.sum("outpost_edge_readings_total")) >= pr.Published
	})
	r.Window = t2.Sub(t1)
	r.Readings = s2.sum("outpost_edge_readings_total") - s1.sum("outpost_edge_readings_total")
	r.Rate = r.Readings / r.Window.Seconds()
	r.CPUPerRead = time.Duration(float64(cpu2-cpu1) / r.Readings)
	r.CPUShare = (cpu2 - cpu1).Seconds() / r.Window.Seconds()
	r.Events = s2.sum("outpost_edge_events_total") - s1.sum("outpost_edge_events_total")
	r.DecodeErrs = end.sum("outpost_edge_decode_errors_total")
	r.Lost = pr.Published - int64(end.sum("outpost_edge_readings_total"))
	r.Publisher, r.Spikes = pr.MsgsPerSecond, pr.Spikes
	const hist = "outpost_edge_receive_to_commit_seconds"
	bs, ok := s2.histogram(hist, s1)
	r.P50, r.P99 = -1, -1
	r.HistMissing = !ok
	if ok {
		r.Commits = bs[len(bs)-1].count
		r.P50 = seconds(quantile(0.5, bs))
		r.P99 = seconds(quantile(0.99, bs))
	}
	r.Outbox = outboxSplit(s1, s2)
	return r, nil
}

// wakeProbe sleeps 1 ms at a time on its own goroutine and records how
// late each sleep ends.
type wakeProbe struct {
	done chan struct{}
	late chan []time.Duration
}

func startWakeProbe() *wakeProbe {
	p := &wakeProbe{done: make(chan struct{}), late: make(chan []time.Duration, 1)}
	go func() {
		var late []time.Duration
		for {
			select {
			case <-p.done:
				p.late <- late
				return
			default:
			}
			t := time.Now()
			time.Sleep(time.Millisecond)
			late = append(late, time.Since(t)-time.Millisecond)
		}
	}()
	return p
}

// stop ends the probe and returns the p50 and p99 of the lateness.
func (p *wakeProbe) stop() (p50, p99 time.Duration) {
	close(p.done)
	late := <-p.late
	if len(late) == 0 {
		return -1, -1
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	return late[len(late)/2], late[len(late)*99/100]
}

// outboxSplit reads the outbox writer's histograms between two scrapes.
func outboxSplit(s1, s2 sample) OutboxSplit {
	var o OutboxSplit
	o.Commits = s2.sum("outpost_edge_outbox_commits_total") - s1.sum("outpost_edge_outbox_commits_total")
	o.Writes = s2.sum("outpost_edge_outbox_commit_writes_total") - s1.sum("outpost_edge_outbox_commit_writes_total")
	q := func(name string) (p50, p99 time.Duration, bs []bucket) {
		bs, ok := s2.histogram(name, s1)
		if !ok {
			return -1, -1, nil
		}
		return seconds(quantile(0.5, bs)), seconds(quantile(0.99, bs)), bs
	}
	o.WaitP50, o.WaitP99, _ = q("outpost_edge_outbox_queue_wait_seconds")
	o.BuildP50, o.BuildP99, _ = q("outpost_edge_outbox_build_seconds")
	var bs []bucket
	o.CommitP50, o.CommitP99, bs = q("outpost_edge_outbox_commit_seconds")
	var abs []bucket
	o.ApplyP50, o.ApplyP99, abs = q("outpost_edge_outbox_apply_seconds")
	if len(abs) > 0 {
		o.Applies = abs[len(abs)-1].count
	}
	for i := len(bs) - 1; i > 0; i-- {
		if bs[i].count > bs[i-1].count {
			o.CommitMax = seconds(bs[i].le)
			break
		}
	}
	return o
}

func seconds(s float64) time.Duration {
	if math.IsNaN(s) {
		return -1
	}
	return time.Duration(s * float64(time.Second))
}

// waitUntil polls cond every 10 ms until it holds, for at most d.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// median of xs (0 when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
