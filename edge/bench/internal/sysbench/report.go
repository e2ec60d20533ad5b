package sysbench

import (
	"fmt"
	"io"
)

// Write prints r as a Markdown table: medians over the runs, with the
// range in brackets when there was more than one, and issue #4's targets.
func (r *Result) Write(w io.Writer, c Config) {
	c.defaults()
	var mq, ag, ratio, pubM, pubA []float64
	for _, x := range r.Rate {
		mq = append(mq, x.Mosquitto)
		ag = append(ag, x.Agent)
		ratio = append(ratio, x.Ratio())
		pubM = append(pubM, x.PublisherMosquitto)
		pubA = append(pubA, x.PublisherAgent)
	}
	fmt.Fprintln(w, "| what | measured | target |")
	fmt.Fprintln(w, "|---|---|---|")
	if len(r.Rate) > 0 {
		fmt.Fprintf(w, "| mosquitto's own publish → subscribe rate, QoS 1, sensorsim with %d devices → plain paho subscriber (%d runs of %d readings) | %s readings/s (sensorsim's publish rate %s/s) | |\n",
			c.Devices, len(r.Rate), c.RateReadings, spread(mq, "%.0f"), spread(pubM, "%.0f"))
		fmt.Fprintf(w, "| outpost-edge end-to-end, same publisher and broker settings, every reading counted by /metrics | %s readings/s (sensorsim's publish rate %s/s) | |\n",
			spread(ag, "%.0f"), spread(pubA, "%.0f"))
		fmt.Fprintf(w, "| end-to-end / mosquitto's own rate (per run) | %s | ≥ 80%% |\n", spread(scale(ratio, 100), "%.0f%%"))
	}
	if len(r.Steady) > 0 {
		var rate, pub, cpu, share, rss, hwm, anon, file, p50, p99, commits, events, wake []float64
		missing := false
		for _, s := range r.Steady {
			rate = append(rate, s.Rate)
			cpu = append(cpu, float64(s.CPUPerRead)/1e3)
			share = append(share, 100*s.CPUShare)
			rss = append(rss, mib(s.Mem.RSS))
			hwm = append(hwm, mib(s.Mem.HWM))
			anon = append(anon, mib(s.Mem.Anon))
			file = append(file, mib(s.Mem.File))
			pub = append(pub, s.Publisher)
			events = append(events, s.Events)
			wake = append(wake, float64(s.WakeP99)/1e6)
			if s.HistMissing || s.Commits == 0 {
				missing = true
			} else {
				p50 = append(p50, float64(s.P50)/1e6)
				p99 = append(p99, float64(s.P99)/1e6)
				commits = append(commits, s.Commits)
			}
		}
		var lost int64
		for _, s := range r.Steady {
			lost += s.Lost
		}
		phase := "every device at the same reading"
		if c.SpikeStagger {
			phase = "each device at its own phase"
		}
		fmt.Fprintf(w, "| steady run: readings judged per second over %v after %d warm-up readings per device (%d runs) | %s readings/s (sensorsim's whole run: %s/s), %s events committed (a spike every %d readings per device, %s); readings published but not judged: %d | %.0f/s |\n",
			c.SteadyFor, c.Warm, len(r.Steady), spread(rate, "%.0f"), spread(pub, "%.0f"), spread(events, "%.0f"), c.SpikeEvery, phase, lost, c.SteadyRate)
		if missing {
			fmt.Fprintln(w, "| MQTT receipt → outbox commit p50 / p99 | n/a: this outpost-edge does not observe outpost_edge_receive_to_commit_seconds | p99 ≤ 2 ms |")
		} else {
			where := "the cloud's NATS store on the same disk"
			if c.NATSDir != "" {
				where = "the cloud's NATS store under " + c.NATSDir + ", off the gateway's disk"
			}
			fmt.Fprintf(w, "| MQTT receipt → outbox commit, p50 / p99 (outpost_edge_receive_to_commit_seconds, %s commits; %s) | %s ms / %s ms (meanwhile a 1 ms sleep in the benchmark process woke up p99 %s ms late) | p99 ≤ 2 ms |\n",
				spread(commits, "%.0f"), where, spread(p50, "%.2f"), spread(p99, "%.2f"), spread(wake, "%.2f"))
		}
		fmt.Fprintf(w, "| process CPU time (user + system) per reading, including inference | %s µs (%s%% of one core) | ≤ 12 µs |\n",
			spread(cpu, "%.2f"), spread(share, "%.0f"))
		fmt.Fprintf(w, "| resident memory at the end of the window / peak (VmRSS / VmHWM) | %s / %s MiB (at the end: anonymous %s, file-backed %s: the binary and the outbox's mmap) | ≤ 30 MiB |\n",
			spread(rss, "%.1f"), spread(hwm, "%.1f"), spread(anon, "%.1f"), spread(file, "%.1f"))
	}
	if r.Arm64Bytes > 0 {
		fmt.Fprintf(w, "| outpost-edge linux/arm64, static, stripped | %.1f MB (%d bytes) | ≤ 15 MB |\n", float64(r.Arm64Bytes)/1e6, r.Arm64Bytes)
	}
}

func scale(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = k * x
	}
	return out
}

// spread formats the median of xs, and its range when there are several.
func spread(xs []float64, f string) string {
	if len(xs) == 0 {
		return "-"
	}
	m := fmt.Sprintf(f, median(xs))
	if len(xs) == 1 {
		return m
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return m + " (" + fmt.Sprintf(f, lo) + " to " + fmt.Sprintf(f, hi) + ")"
}
