package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// commitLog commits a batch through the write-ahead log: it gives the
// records their seqs, recognises duplicates and writes the records to the
// log as one group, and starts the log's sync (logsync.go) without waiting
// for it. Once the group is durable, finishLog calls its records' Done and
// hands them with the batch's other requests to the applier. A batch that
// needs the drop policy (a record does not fit in Options.MaxBytes) or that
// does not fit in the log goes through the bbolt file directly (commit),
// once the groups before it are durable and the applier has applied
// everything logged before.
func (o *Outbox) commitLog(batch []Request) {
	g := &logGroup{id: o.nextGroup, batch: append([]Request(nil), batch...), res: make([]result, len(batch))}
	o.nextGroup++
	batch, res := g.batch, g.res
	info := CommitInfo{Requests: len(batch), Wait: o.oldestWait(batch)}
	t0 := time.Now()
	// Keys: those of logged records not yet in the bbolt file are in
	// logKeys; the file holds at least every record up to applied, read
	// before the read transaction starts.
	applied := o.applied.Load()
	if applied != o.keysPruned && len(o.logKeys) > 0 {
		for k, s := range o.logKeys {
			if s <= applied {
				delete(o.logKeys, k)
			}
		}
		o.keysPruned = applied
	}
	var rtx *bolt.Tx
	defer func() {
		if rtx != nil {
			_ = rtx.Rollback()
		}
	}()
	var local map[string]uint64
	var lastSeq uint64
	// A key is kept for the KeepKeys records after its own (pruneKeys
	// forgets it in the bbolt file once the applier gets there).
	recent := func(s uint64) bool { return lastSeq < o.opts.KeepKeys || s > lastSeq-o.opts.KeepKeys }
	known := func(key []byte) (uint64, bool, error) {
		if s, ok := local[string(key)]; ok {
			return s, true, nil
		}
		if s, ok := o.logKeys[string(key)]; ok && recent(s) {
			return s, true, nil
		}
		if rtx == nil {
			var err error
			if rtx, err = o.db.Begin(false); err != nil {
				return 0, false, err
			}
		}
		if v := rtx.Bucket(bucketKeys).Get(key); v != nil && recent(binary.BigEndian.Uint64(v)) {
			return binary.BigEndian.Uint64(v), true, nil
		}
		return 0, false, nil
	}
	o.mu.Lock()
	lastSeq = o.lastSeq
	var used uint64
	for _, k := range Kinds {
		used += o.kinds[k].Bytes
	}
	o.mu.Unlock()
	// Groups still waiting for their sync hold seqs and bytes beyond those.
	if n := len(o.inflight); n > 0 {
		lastSeq = o.inflight[n-1].seqAfter
		for _, f := range o.inflight {
			used += f.bytes
		}
	}
	max := uint64(o.opts.MaxBytes)
	direct := func() {
		if rtx != nil {
			_ = rtx.Rollback() // the applier may have to grow the file
			rtx = nil
		}
		o.waitLog()
		o.commitDirect(batch, res)
	}
	var ents []walEntry
	var dups [numKinds]uint64
	for i, req := range batch {
		if req.Build == nil {
			continue
		}
		if !req.Kind.valid() {
			res[i].err = fmt.Errorf("outbox: unknown kind %d", req.Kind)
			continue
		}
		if req.Key != nil {
			s, ok, err := known(req.Key)
			if err != nil {
				o.failBatch(batch, res, info, fmt.Errorf("outbox: read keys: %w", err))
				return
			}
			if ok {
				dups[req.Kind]++
				res[i] = result{seq: s, err: ErrDuplicate}
				continue
			}
		}
		data, err := req.Build(lastSeq + 1)
		if err != nil {
			res[i].err = fmt.Errorf("outbox: build record: %w", err)
			continue
		}
		size := uint64(len(data) + 1)
		if used+size > max {
			direct()
			return
		}
		used += size
		g.bytes += size
		lastSeq++
		ents = append(ents, walEntry{seq: lastSeq, kind: req.Kind, key: req.Key, data: data})
		if req.Key != nil {
			if local == nil {
				local = map[string]uint64{}
			}
			local[string(req.Key)] = lastSeq
		}
		res[i].seq = lastSeq
	}
	if rtx != nil {
		_ = rtx.Rollback()
		rtx = nil
	}
	t1 := time.Now()
	info.Build = t1.Sub(t0)
	g.ents, g.dups, g.seqAfter, g.info, g.start = ents, dups, lastSeq, info, t1
	g.off, g.last = o.wal.off, o.wal.last
	if len(ents) > 0 {
		if !walFits(ents) {
			direct()
			return
		}
		err := o.wal.write(ents, o.applied.Load() >= o.wal.last)
		if errors.Is(err, errWALFull) {
			// Wait for the groups before it, then for the applier to
			// apply everything logged, then start the log again. A
			// failed sync meanwhile fails this batch too: its seqs
			// followed the failed groups'.
			if o.waitLog() {
				err = errLogFailed
			} else if err = o.drain(); err == nil {
				g.off, g.last = o.wal.off, o.wal.last
				err = o.wal.write(ents, true)
			}
		}
		o.lastLog.Store(time.Now().UnixNano())
		if err != nil {
			o.failBatch(batch, res, info, err)
			return
		}
		for _, e := range ents {
			if e.key != nil {
				o.logKeys[string(e.key)] = e.seq
			}
		}
		o.syncLog(g)
	} else {
		g.durable = true
	}
	o.inflight = append(o.inflight, g)
	o.finishDurable()
}

// finishLog completes a durable group: its records become visible
// (Pending, Stats) and go to the applier with the batch's other requests,
// and their Done is called.
func (o *Outbox) finishLog(g *logGroup) {
	batch, res, ents, info := g.batch, g.res, g.ents, g.info
	if len(ents) > 0 {
		info.Commit = time.Since(g.start)
		info.Writes = 1
		o.lastLog.Store(time.Now().UnixNano())
	}
	// The requests without a record, and the checkpoints of those with
	// one (whose Done then waits for them), go to the applier.
	var others []Request
	for i, req := range batch {
		switch {
		case req.Build == nil:
			others = append(others, req)
		case len(req.Checkpoint) > 0:
			seq, rerr, done := res[i].seq, res[i].err, req.Done
			others = append(others, Request{Checkpoint: req.Checkpoint, Done: func(_ uint64, err error) {
				if done != nil {
					if err == nil {
						err = rerr
					}
					done(seq, err)
				}
			}})
		}
	}
	// The records become visible (Stats, Pending) with their item queued
	// for the applier, under one lock.
	o.mu.Lock()
	if len(ents) > 0 {
		o.lastSeq = g.seqAfter
	}
	o.logged = append(o.logged, ents...)
	for _, e := range ents {
		ks := &o.kinds[e.kind]
		ks.Appended++
		ks.Depth++
		ks.Bytes += uint64(len(e.data) + 1)
	}
	for k, n := range g.dups {
		o.kinds[k].Duplicates += n
	}
	if len(ents) > 0 || len(others) > 0 || g.dups != [numKinds]uint64{} {
		o.enqueue(applyItem{ents: ents, dups: g.dups, reqs: others})
	}
	o.mu.Unlock()
	if len(ents) > 0 {
		select { // Pending returns them from now on
		case o.notify <- struct{}{}:
		default:
		}
	}
	if o.opts.OnCommit != nil && len(ents) > 0 {
		info.Records = len(ents)
		o.opts.OnCommit(info)
	}
	for i, req := range batch {
		if req.Done != nil && req.Build != nil && len(req.Checkpoint) == 0 {
			req.Done(res[i].seq, res[i].err)
		}
	}
}

// commitDirect commits batch in the bbolt file (commit) once the applier
// has applied everything logged before.
func (o *Outbox) commitDirect(batch []Request, res []result) []result {
	if err := o.drain(); err != nil {
		return o.failBatch(batch, res, CommitInfo{Requests: len(batch)}, err)
	}
	return o.commit(batch, res[:0])
}

// failBatch fails every request of batch with err.
func (o *Outbox) failBatch(batch []Request, res []result, info CommitInfo, err error) []result {
	res = res[:len(batch)]
	for i := range res {
		res[i] = result{err: err}
	}
	if o.opts.OnCommit != nil {
		info.Err = err
		o.opts.OnCommit(info)
	}
	for _, req := range batch {
		if req.Done != nil {
			req.Done(0, err)
		}
	}
	return res
}

// oldestWait is how long the oldest request of batch has waited since its
// Append (0 without Options.OnCommit).
func (o *Outbox) oldestWait(batch []Request) time.Duration {
	if o.opts.OnCommit == nil {
		return 0
	}
	var oldest time.Time
	for _, req := range batch {
		if !req.queued.IsZero() && (oldest.IsZero() || req.queued.Before(oldest)) {
			oldest = req.queued
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// enqueue hands it to the applier.
func (o *Outbox) enqueue(it applyItem) {
	o.applyMu.Lock()
	if len(o.applyQ) == 0 {
		o.applyAt = time.Now()
	}
	o.applyQ = append(o.applyQ, it)
	o.urgent = o.urgent || it.urgent()
	o.applyMu.Unlock()
	select {
	case o.applyKick <- struct{}{}:
	default:
	}
}

// drain waits until the applier has committed everything handed to it.
func (o *Outbox) drain() error {
	ch := make(chan error, 1)
	o.enqueue(applyItem{reqs: []Request{{Done: func(_ uint64, err error) { ch <- err }}}})
	return <-ch
}

// applier commits what the writer logged, with the checkpoints and
// flushes behind it and the queued deletions, in the bbolt file, in the
// order handed over, everything waiting in one transaction. Deletions with
// nothing else to commit wait Options.DeleteDelay.
func (o *Outbox) applier() {
	defer close(o.applyDone)
	var timer *time.Timer
	var timerC <-chan time.Time
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	for {
		o.applyMu.Lock()
		items, urgent, at := o.applyQ, o.urgent, o.applyAt
		if len(items) > 0 && !urgent {
			// Gather for ApplyEvery, then wait for the log to be quiet;
			// no longer than ApplyDelay.
			now := time.Now()
			age := now.Sub(at)
			wait := max(o.opts.ApplyQuiet-now.Sub(time.Unix(0, o.lastLog.Load())), o.opts.ApplyEvery-age)
			wait = min(wait, o.opts.ApplyDelay-age)
			if wait > 0 {
				o.applyMu.Unlock()
				pace.Reset(wait)
				select {
				case <-o.applyKick: // more, maybe urgent: look again
					pace.Stop()
				case <-pace.C:
				}
				continue
			}
		}
		o.applyQ, o.urgent = nil, false
		o.applyMu.Unlock()
		if len(items) == 0 {
			select {
			case <-o.applyKick:
			case <-o.kick:
				if timerC == nil {
					timerC = arm(&timer, o.opts.DeleteDelay)
				}
				continue
			case <-timerC:
				timerC = nil
				o.apply(nil)
			}
			continue
		}
		if o.apply(items) {
			return
		}
	}
}

// apply commits items and the queued deletions in one transaction and
// reports whether an item asked the applier to stop. Logged entries whose
// commit fails are kept for the next one.
func (o *Outbox) apply(items []applyItem) (stop bool) {
	var ents []walEntry
	var dups [numKinds]uint64
	work := false
	for _, it := range items {
		stop = stop || it.stop
		ents = append(ents, it.ents...)
		for k, n := range it.dups {
			dups[k] += n
			work = work || n > 0
		}
		for _, r := range it.reqs {
			work = work || len(r.Checkpoint) > 0
		}
	}
	o.mu.Lock()
	work = work || len(ents) > 0 || len(o.dels) > 0
	o.mu.Unlock()
	var err error
	if work {
		err = o.applyTx(items, ents, dups)
		if err != nil && len(ents) > 0 {
			// Logged and acknowledged: keep them for the next commit.
			o.applyMu.Lock()
			o.applyQ = append([]applyItem{{ents: ents, dups: dups}}, o.applyQ...)
			o.applyMu.Unlock()
			if !stop {
				time.Sleep(50 * time.Millisecond)
				select {
				case o.applyKick <- struct{}{}:
				default:
				}
			}
		}
	}
	for _, it := range items {
		for _, r := range it.reqs {
			if r.Done != nil {
				r.Done(0, err)
			}
		}
	}
	if work && err == nil {
		select {
		case o.notify <- struct{}{}:
		default:
		}
	}
	return stop
}

// applyTx is apply's transaction.
func (o *Outbox) applyTx(items []applyItem, ents []walEntry, dups [numKinds]uint64) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	info := CommitInfo{Apply: true, Records: len(ents)}
	for _, it := range items {
		info.Requests += len(it.reqs)
	}
	var st txState
	var dels []uint64
	var gone [numKinds]KindStats
	err := o.update(&info, func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		o.mu.Lock()
		st = txState{lastSeq: getU64(mb, keySeq), kinds: o.bkinds}
		dels, o.dels = o.dels, nil
		o.mu.Unlock()
		if err := putEntries(tx, &st, ents); err != nil {
			return err
		}
		cb := tx.Bucket(bucketCheckpoint)
		for _, it := range items {
			for _, r := range it.reqs {
				if err := putCheckpoint(cb, r.Checkpoint); err != nil {
					return err
				}
				info.Checkpoints += len(r.Checkpoint)
			}
		}
		// Deletions of records whose entries are still on their way
		// (acknowledged by the uplink as soon as logged) wait for them.
		var later []uint64
		now := dels[:0:0]
		for _, s := range dels {
			if s <= st.lastSeq {
				now = append(now, s)
			} else {
				later = append(later, s)
			}
		}
		if len(later) > 0 {
			dels = now
			o.mu.Lock()
			o.dels = append(later, o.dels...)
			o.mu.Unlock()
		}
		if err := applyDeletes(tx, &st, dels, &gone); err != nil {
			return err
		}
		for k, n := range dups {
			st.kinds[k].Duplicates += n
		}
		if err := o.pruneKeys(tx.Bucket(bucketKeys), tx.Bucket(bucketKeySeqs), st.lastSeq); err != nil {
			return err
		}
		if err := mb.Put(keySeq, u64(st.lastSeq)); err != nil {
			return err
		}
		return mb.Put(keyCounts, encodeCounts(st.kinds))
	})
	info.Deletes = len(dels)
	if err != nil {
		err = fmt.Errorf("outbox: commit: %w", err)
		info.Err = err
		o.mu.Lock()
		o.dels = append(dels, o.dels...)
		o.mu.Unlock()
	} else {
		o.mu.Lock()
		o.bkinds = st.kinds
		n := 0
		for n < len(o.logged) && o.logged[n].seq <= st.lastSeq {
			n++
		}
		o.logged = o.logged[n:]
		for k := range gone {
			ks, g := &o.kinds[k], gone[k]
			ks.Delivered += g.Delivered
			ks.Depth -= g.Depth
			ks.Bytes -= g.Bytes
		}
		for _, s := range dels {
			delete(o.deleting, s)
		}
		o.mu.Unlock()
		o.applied.Store(st.lastSeq)
	}
	if o.opts.OnCommit != nil {
		o.opts.OnCommit(info)
	}
	return err
}
