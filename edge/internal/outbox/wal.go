package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The write-ahead log. An event's append is acknowledged once its record
// is in the log and the log is fdatasync'd: one contiguous write and one
// fdatasync, where a bbolt commit writes every page the transaction
// touched, syncs, writes the meta page and syncs again. The records are
// then applied to the bbolt file by another goroutine (Outbox.applier), in
// seq order, and the log space is reused once bbolt has committed them.
//
// The log is one file of walSize bytes, written in full (zeros) when it is
// made, so that a write never allocates a block and an fdatasync has no
// metadata to commit. It is made under a temporary name and renamed, so a
// log that exists is whole. A log record is
//
//	magic u32 | n u32 | crc u32 (CRC-32C of the n payload bytes) | payload
//
// and its payload is a count u32 and that many entries,
//
//	seq u64 | kind u8 | key length u16 | key | data length u32 | data
//
// with consecutive seqs. Writing starts again at offset 0 whenever bbolt
// holds every record written before; what follows the new records is left
// over from earlier (its seqs are lower) or torn. Reading (walScan) starts
// at offset 0 and stops at the first record that does not check out: bad
// magic, length or CRC, or a first seq that does not follow the previous
// record's last. Replay (Open) applies the entries whose seq is above the
// last seq bbolt holds and skips the rest, so replaying twice, or a record
// bbolt already had, changes nothing.

// walSize is the size of the log file. A batch that does not fit goes
// through bbolt directly, as before the log.
const walSize = 4 << 20

const (
	walMagic  = 0x4f42574c // "OBWL"
	walHeader = 12
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

// walEntry is one record in the log.
type walEntry struct {
	seq  uint64
	kind Kind
	key  []byte
	data []byte // without the kind byte
}

// wal is the open log. Only the writer goroutine uses it after Open.
type wal struct {
	f      *os.File
	size   int64 // of the file as found; not walSize: remade after replay
	off    int64 // where the next record goes
	last   uint64
	noSync bool
	buf    []byte
}

// errWALFull: the record does not fit in what is left of the log.
var errWALFull = errors.New("outbox: log full")

// openWAL opens the log at path, making it if it does not exist.
func openWAL(path string, noSync bool) (*wal, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := makeWAL(path); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("outbox: open log: %w", err)
	}
	return &wal{f: f, size: st.Size(), noSync: noSync}, nil
}

// remake replaces a log whose size is not walSize (cut short by hand or a
// tool; the agent never changes it) with a new one, once what it held is
// in the bbolt file.
func (w *wal) remake(path string) error {
	if w.size == walSize {
		return nil
	}
	w.f.Close()
	if err := makeWAL(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("outbox: open log: %w", err)
	}
	w.f, w.size, w.off, w.last = f, walSize, 0, 0
	return nil
}

// makeWAL writes a zeroed log under a temporary name, syncs it, renames it
// to path and syncs the directory.
func makeWAL(path string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: make log: %w", err)
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < walSize && err == nil; off += int64(len(zero)) {
		_, err = f.WriteAt(zero, off)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("outbox: make log: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// walScan reads the log's records from offset 0 and calls fn with each
// record's offset and entries, in order, until a record does not check
// out. end is where the records it accepted end.
func walScan(f *os.File, size int64, fn func(off int64, ents []walEntry) error) (end int64, err error) {
	var off int64
	var last uint64
	hdr := make([]byte, walHeader)
	for off+walHeader <= size {
		if _, err := f.ReadAt(hdr, off); err != nil {
			return off, fmt.Errorf("outbox: read log: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if binary.BigEndian.Uint32(hdr) != walMagic || n < 4 || off+walHeader+n > size {
			return off, nil
		}
		payload := make([]byte, n)
		if _, err := f.ReadAt(payload, off+walHeader); err != nil {
			return off, fmt.Errorf("outbox: read log: %w", err)
		}
		if crc32.Checksum(payload, walCRC) != binary.BigEndian.Uint32(hdr[8:]) {
			return off, nil
		}
		ents, ok := decodeWAL(payload)
		if !ok || len(ents) == 0 || (last != 0 && ents[0].seq != last+1) {
			return off, nil
		}
		if err := fn(off, ents); err != nil {
			return off, err
		}
		last = ents[len(ents)-1].seq
		off += walHeader + n
	}
	return off, nil
}

// decodeWAL decodes a record's payload; ok is false when it is malformed
// or its seqs are not consecutive.
func decodeWAL(p []byte) (ents []walEntry, ok bool) {
	if len(p) < 4 {
		return nil, false
	}
	count := binary.BigEndian.Uint32(p)
	p = p[4:]
	for i := uint32(0); i < count; i++ {
		if len(p) < 11 {
			return nil, false
		}
		e := walEntry{seq: binary.BigEndian.Uint64(p), kind: Kind(p[8])}
		kl := int(binary.BigEndian.Uint16(p[9:]))
		p = p[11:]
		if len(p) < kl+4 {
			return nil, false
		}
		if kl > 0 {
			e.key = p[:kl]
		}
		dl := int(binary.BigEndian.Uint32(p[kl:]))
		p = p[kl+4:]
		if len(p) < dl || !e.kind.valid() {
			return nil, false
		}
		e.data = p[:dl]
		p = p[dl:]
		if len(ents) > 0 && e.seq != ents[len(ents)-1].seq+1 {
			return nil, false
		}
		ents = append(ents, e)
	}
	return ents, len(p) == 0
}

// write writes ents (consecutive seqs) as one record, without syncing it,
// and moves the log's end past it. restart says that bbolt holds every
// record written before: the record goes to offset 0. errWALFull: it does
// not fit; nothing was written.
func (w *wal) write(ents []walEntry, restart bool) error {
	b := w.buf[:0]
	b = binary.BigEndian.AppendUint32(b, walMagic)
	b = binary.BigEndian.AppendUint32(b, 0) // n
	b = binary.BigEndian.AppendUint32(b, 0) // crc
	b = binary.BigEndian.AppendUint32(b, uint32(len(ents)))
	for _, e := range ents {
		b = binary.BigEndian.AppendUint64(b, e.seq)
		b = append(b, byte(e.kind))
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.key)))
		b = append(b, e.key...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.data)))
		b = append(b, e.data...)
	}
	w.buf = b
	n := len(b) - walHeader
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[walHeader:], walCRC))
	off := w.off
	if restart {
		off = 0
	}
	if off+int64(len(b)) > walSize {
		return errWALFull
	}
	if _, err := w.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("outbox: write log: %w", err)
	}
	w.off = off + int64(len(b))
	w.last = ents[len(ents)-1].seq
	return nil
}

// fits reports whether a record of ents fits in a log of walSize at all.
func walFits(ents []walEntry) bool {
	n := int64(walHeader + 4)
	for _, e := range ents {
		n += 15 + int64(len(e.key)+len(e.data))
		if len(e.key) > 0xffff {
			return false
		}
	}
	return n <= walSize
}

func (w *wal) close() error { return w.f.Close() }
