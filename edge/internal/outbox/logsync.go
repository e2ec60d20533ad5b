package outbox

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Pipelined log syncs. The writer does not wait for a group's fdatasync
// before it writes the next group: it starts the sync on another goroutine
// (up to Options.LogSyncs at once) and goes on taking appends. A sync that
// returns without error makes durable every group written before it
// started, so groups complete in log order, each once a sync started after
// its write has returned. Where the time of a sync goes on a loaded
// machine is mostly waiting for the kernel to issue the device's cache
// flush (a kernel worker that has to be scheduled) and to wake the syncing
// thread; a second sync started meanwhile shares that flush instead of
// queuing behind the whole first sync, so an event that arrives during a
// slow sync no longer waits for two. Measured (system benchmark, 10k
// readings/s, a loaded 2-core VM): with events spread out, p99 16 against
// 26 ms one group at a time; when every device's spike arrives at once,
// no difference showed (the time moves from the queue to the syncs).
//
// Each concurrent sync uses its own open file of the log, so that a write
// error is reported to every sync that covers the failed pages (Linux
// reports a writeback error once per open file), not only to the first to
// ask. When a sync fails, every group not yet complete fails with it (their
// Done gets the error and nothing is acknowledged): the log's end, the
// writer's seqs and its keys go back to where the oldest of them began, so
// the next record is written over them, as without the pipeline.

// errLogFailed fails a batch that had to wait for the groups before it
// when one of them failed.
var errLogFailed = errors.New("outbox: an earlier log sync failed")

// logGroup is one batch written to the log (or without records), waiting
// to be durable.
type logGroup struct {
	id       uint64
	batch    []Request
	res      []result
	ents     []walEntry
	dups     [numKinds]uint64
	info     CommitInfo
	start    time.Time
	off      int64  // the log's end before the group's write
	last     uint64 // the log's last seq before it
	seqAfter uint64 // the writer's last seq after the group
	bytes    uint64 // record bytes the group adds
	durable  bool
}

// logSync is a finished sync: it started after group id was written.
type logSync struct {
	id  uint64
	f   *os.File
	err error
}

// openSyncFiles opens the files the syncs use.
func (o *Outbox) openSyncFiles(path string) error {
	o.synced = make(chan logSync, o.opts.LogSyncs)
	if o.wal.noSync {
		return nil
	}
	for i := 0; i < o.opts.LogSyncs; i++ {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			o.closeSyncFiles()
			return fmt.Errorf("outbox: open log: %w", err)
		}
		o.syncFiles = append(o.syncFiles, f)
	}
	return nil
}

func (o *Outbox) closeSyncFiles() {
	for _, f := range o.syncFiles {
		f.Close()
	}
	o.syncFiles = nil
}

// canLog reports whether the writer may take appends: a sync is free.
func (o *Outbox) canLog() bool { return o.wal.noSync || len(o.syncFiles) > 0 }

// syncLog starts the sync of the group just written (durable at once
// without syncs, Options.NoSync).
func (o *Outbox) syncLog(g *logGroup) {
	if o.wal.noSync {
		g.durable = true
		return
	}
	f := o.syncFiles[len(o.syncFiles)-1]
	o.syncFiles = o.syncFiles[:len(o.syncFiles)-1]
	id := g.id
	go func() {
		err := o.opts.syncLog(f)
		o.synced <- logSync{id: id, f: f, err: err}
	}()
}

// syncDone takes a finished sync: the groups it covers are durable, or,
// when it failed and covers a group not yet complete, every group not yet
// complete fails.
func (o *Outbox) syncDone(s logSync) {
	o.syncFiles = append(o.syncFiles, s.f)
	if s.err != nil {
		if len(o.inflight) > 0 && o.inflight[0].id <= s.id {
			o.failLog(fmt.Errorf("outbox: sync log: %w", s.err))
		}
		return
	}
	for _, g := range o.inflight {
		if g.id > s.id {
			break
		}
		g.durable = true
	}
	o.finishDurable()
}

// finishDurable completes the durable groups at the head of the pipeline,
// in order.
func (o *Outbox) finishDurable() {
	for len(o.inflight) > 0 && o.inflight[0].durable {
		g := o.inflight[0]
		o.inflight[0] = nil
		o.inflight = o.inflight[1:]
		o.finishLog(g)
	}
}

// failLog fails every group not yet complete with err and moves the log's
// end, the writer's keys and (through o.lastSeq, untouched until a group
// completes) its seqs back to where the oldest of them began.
func (o *Outbox) failLog(err error) {
	gs := o.inflight
	o.inflight = nil
	o.logFails++
	o.wal.off, o.wal.last = gs[0].off, gs[0].last
	for _, g := range gs {
		for _, e := range g.ents {
			if e.key != nil && o.logKeys[string(e.key)] == e.seq {
				delete(o.logKeys, string(e.key))
			}
		}
	}
	for _, g := range gs {
		o.failBatch(g.batch, g.res, g.info, err)
	}
}

// waitLog waits until every group written is complete or failed, and
// reports whether one failed meanwhile.
func (o *Outbox) waitLog() (failed bool) {
	n := o.logFails
	for len(o.inflight) > 0 {
		o.syncDone(<-o.synced)
	}
	return o.logFails != n
}

// waitSyncs waits for every sync in flight (after waitLog: for those whose
// groups failed or completed through a later sync).
func (o *Outbox) waitSyncs() {
	for !o.wal.noSync && len(o.syncFiles) < o.opts.LogSyncs {
		o.syncDone(<-o.synced)
	}
}
