package fs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
)

// The journal is the file "nodes" in a mount's State directory: every
// node ID the server gives the kernel, with its parent's ID and its
// name, appended before the reply that gives it. It survives the
// process (a write(2) is in the page cache once it returns, whatever
// kills the process next), so that a successor can revive the IDs the
// kernel still holds.
//
// Its format: the magic journalMagic, the commit's 32 bytes, then
// records of ID (8 bytes, little-endian), parent ID (8) and name length
// (2), then the name. A torn last record (a process killed in its
// write) is cut off when a successor opens the journal. IDs forgotten
// and given again are appended again; the journal is rewritten from
// what the kernel may still hold once it has grown well past that
// (compact).
const journalMagic = "OMNODES1"

const (
	journalFile = "nodes"
	initFile    = "init"
	// compactSlack is how many records past twice the live ones the
	// journal may grow before it is rewritten.
	compactSlack = 1 << 15
)

type journalRecord struct {
	ino, parent uint64
	name        string
}

type journal struct {
	dir    string
	commit repo.Checksum
	log    *slog.Logger
	table  *nodeTable

	mu        sync.Mutex
	f         *os.File
	buf       []byte
	records   int // in the file and buf
	compactAt int
	failed    bool // a write failed: logged once, the mount goes on
}

func journalHeader(c repo.Checksum) []byte {
	return append([]byte(journalMagic), c[:]...)
}

// createJournal starts an empty journal in dir.
func createJournal(dir string, c repo.Checksum, log *slog.Logger) (*journal, error) {
	p := filepath.Join(dir, journalFile)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Write(journalHeader(c)); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", p, err)
	}
	return &journal{dir: dir, commit: c, log: log, f: f, compactAt: compactSlack}, nil
}

// ErrNoState is returned when a mount cannot be resumed: its State has
// no journal or no INIT, or they are not this tree's.
var ErrNoState = errors.New("no state to resume from")

// openJournal opens a predecessor's journal in dir, cuts off a torn last
// record, and returns its records by ID.
func openJournal(dir string, c repo.Checksum, log *slog.Logger) (*journal, map[uint64]journalRecord, error) {
	p := filepath.Join(dir, journalFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("journal %s: %w", p, ErrNoState)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	hdr := journalHeader(c)
	if !bytes.HasPrefix(b, hdr) {
		return nil, nil, fmt.Errorf("journal %s: not a journal of commit %s: %w", p, c, ErrNoState)
	}
	index, good := parseJournal(b[len(hdr):])
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	if end := int64(len(hdr) + good); end < int64(len(b)) {
		log.Warn("journal: a torn last record cut off", "path", p, "bytes", int64(len(b))-end)
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("journal %s: %w", p, err)
		}
	}
	j := &journal{dir: dir, commit: c, log: log, f: f, records: len(index)}
	j.compactAt = 2*len(index) + compactSlack
	return j, index, nil
}

// parseJournal reads records up to the first incomplete one, and
// returns them with the length of the complete ones.
func parseJournal(b []byte) (map[uint64]journalRecord, int) {
	index := map[uint64]journalRecord{}
	off := 0
	for len(b)-off >= 18 {
		n := int(binary.LittleEndian.Uint16(b[off+16:]))
		if len(b)-off-18 < n {
			break
		}
		rec := journalRecord{
			ino:    binary.LittleEndian.Uint64(b[off:]),
			parent: binary.LittleEndian.Uint64(b[off+8:]),
			name:   string(b[off+18 : off+18+n]),
		}
		index[rec.ino] = rec
		off += 18 + n
	}
	return index, off
}

func appendRecord(buf []byte, r journalRecord) []byte {
	buf = binary.LittleEndian.AppendUint64(buf, r.ino)
	buf = binary.LittleEndian.AppendUint64(buf, r.parent)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(r.name)))
	return append(buf, r.name...)
}

// add buffers a record; flush writes it. Called with the table's mutex
// held.
func (j *journal) add(ino, parent uint64, name string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.buf = appendRecord(j.buf, journalRecord{ino, parent, name})
	j.records++
	j.mu.Unlock()
}

// flush writes what add buffered. Every request that may give the
// kernel a node flushes before its reply.
func (j *journal) flush() {
	if j == nil {
		return
	}
	j.mu.Lock()
	if len(j.buf) > 0 {
		j.writeLocked(j.buf)
		j.buf = j.buf[:0]
	}
	compact := j.records > j.compactAt
	j.mu.Unlock()
	if compact {
		j.compact()
	}
}

func (j *journal) writeLocked(b []byte) {
	if j.f == nil {
		return
	}
	if _, err := j.f.Write(b); err != nil && !j.failed {
		j.failed = true
		j.log.Error("journal: write failed; a successor cannot revive the nodes given since", "dir", j.dir, "err", err)
	}
}

// compact rewrites the journal from what the kernel may still hold: the
// live nodes and the predecessor's records not forgotten yet. The new
// file replaces the old with a rename, so that a crash at any point
// leaves one or the other whole.
func (j *journal) compact() {
	t := j.table
	t.mu.Lock()
	defer t.mu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.records <= j.compactAt || j.f == nil {
		return
	}
	buf := journalHeader(j.commit)
	n := 0
	t.recordsLocked(func(r journalRecord) {
		buf = appendRecord(buf, r)
		n++
	})
	tmp := filepath.Join(j.dir, "."+journalFile+".tmp")
	err := os.WriteFile(tmp, buf, 0o600)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(j.dir, journalFile))
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(filepath.Join(j.dir, journalFile), os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		os.Remove(tmp)
		j.log.Warn("journal: compaction failed; it goes on growing", "dir", j.dir, "err", err)
		j.compactAt = 2*j.records + compactSlack
		return
	}
	j.f.Close()
	j.f = f
	j.buf = j.buf[:0] // every buffered record's node is in the new file
	j.records = n
	j.compactAt = 2*n + compactSlack
}

func (j *journal) close() {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}
