package agent

import (
	"github.com/outpost-iot/outpost/edge/internal/outbox"
	"github.com/prometheus/client_golang/prometheus"
)

// commitMetrics are the outbox writer's instruments: where the time from
// an event's append to its commit goes (outbox.CommitInfo), beside the
// receive → commit histogram.
type commitMetrics struct {
	wait, build, commit prometheus.Histogram
	commits, writes     prometheus.Counter
	checkpoints         prometheus.Counter   // checkpoint entries stored
	apply               prometheus.Histogram // the applier's bbolt transactions
}

// newCommitMetrics registers the outbox commit metrics on reg.
func newCommitMetrics(reg prometheus.Registerer) *commitMetrics {
	buckets := prometheus.ExponentialBuckets(25e-6, 1.5, 28) // 25 µs to 1.4 s, as receive → commit
	m := &commitMetrics{
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outpost_edge_outbox_queue_wait_seconds",
			Help:    "Time the oldest request of an outbox transaction waited between its append and the start of the transaction.",
			Buckets: buckets}),
		build: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outpost_edge_outbox_build_seconds",
			Help:    "Time an outbox transaction spent before bbolt's commit: building and placing records, keys, checkpoints, deletions.",
			Buckets: buckets}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outpost_edge_outbox_commit_seconds",
			Help:    "Time of the commit an outbox append waits for: from the write-ahead log's write until its fdatasync (or a later one that covers it) has returned.",
			Buckets: buckets}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "outpost_edge_outbox_apply_seconds",
			Help:    "Time of a transaction moving logged records, checkpoints and deletions into the outbox's bbolt file (on no append's path): building it, writing pages, fdatasync, the meta page, fdatasync.",
			Buckets: buckets}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "outpost_edge_outbox_commits_total",
			Help: "Outbox commits appends waited for (write-ahead log writes; bbolt transactions when a batch goes to the file directly)."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "outpost_edge_outbox_commit_writes_total",
			Help: "Writes of the outbox commits appends waited for (one per log write; a bbolt page with its overflow pages is one)."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "outpost_edge_checkpoint_entries_total",
			Help: "Checkpoint entries (a stream's state, a camera's open bucket) stored in the outbox file: its write load besides events (profile checkpoint_interval)."}),
	}
	reg.MustRegister(m.wait, m.build, m.commit, m.commits, m.writes, m.apply, m.checkpoints)
	return m
}

// observe is the outbox's Options.OnCommit.
func (m *commitMetrics) observe(c outbox.CommitInfo) {
	if c.Err != nil {
		return
	}
	m.checkpoints.Add(float64(c.Checkpoints))
	if c.Apply {
		m.apply.Observe((c.Build + c.Commit).Seconds())
		return
	}
	m.wait.Observe(c.Wait.Seconds())
	m.build.Observe(c.Build.Seconds())
	m.commit.Observe(c.Commit.Seconds())
	m.commits.Inc()
	m.writes.Add(float64(c.Writes))
}
