package fs

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Backing files of passed-through opens (Options.Passthrough).
//
// The kernel passes every open of an inode through to one backing file:
// an open that names another while the first is open fails (EIO). So an
// inode has one backing ID, registered at its first open and shared by
// the opens that overlap it, and closed when the last is released.
//
// A successor meets inodes whose backing ID its predecessor registered
// and never closed, held by files still open: it must give new opens of
// those inodes the same ID. The IDs are recorded in the mount's State
// (the file "backing": inode number and ID, or ID 0 once closed, the
// last record of an inode winning), and a successor uses a
// predecessor's ID for an inode as long as the mount lasts (it cannot
// know when the predecessor's files are all closed).
const backingFile = "backing"

type backings struct {
	mu  sync.Mutex
	m   map[uint64]*backing
	old map[uint64]int32 // a predecessor's, by inode
	f   *os.File         // nil: no State
}

type backing struct {
	id        int32
	refs      int
	inherited bool // a predecessor's: never closed here
}

func newBackings() *backings { return &backings{m: map[uint64]*backing{}} }

// openState records the IDs in dir from now on; resuming, it first
// reads the predecessor's.
func (b *backings) openState(dir string, resume bool) error {
	p := filepath.Join(dir, backingFile)
	if resume {
		data, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("backing files: %w", err)
		}
		b.old = map[uint64]int32{}
		for len(data) >= 12 {
			ino, id := binary.LittleEndian.Uint64(data), int32(binary.LittleEndian.Uint32(data[8:]))
			if id == 0 {
				delete(b.old, ino)
			} else {
				b.old[ino] = id
			}
			data = data[12:]
		}
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND | unix.O_CLOEXEC
	if !resume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return fmt.Errorf("backing files: %w", err)
	}
	b.f = f
	return nil
}

func (b *backings) record(ino uint64, id int32) {
	if b.f == nil {
		return
	}
	var rec [12]byte
	binary.LittleEndian.PutUint64(rec[:], ino)
	binary.LittleEndian.PutUint32(rec[8:], uint32(id))
	_, _ = b.f.Write(rec[:])
}

// acquire returns inode ino's backing ID for one more open, registering
// fd with register when the inode has none.
func (b *backings) acquire(ino uint64, fd int, register func(fd int) (int32, error)) (int32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k := b.m[ino]; k != nil {
		k.refs++
		return k.id, nil
	}
	if id, ok := b.old[ino]; ok {
		b.m[ino] = &backing{id: id, refs: 1, inherited: true}
		return id, nil
	}
	id, err := register(fd)
	if err != nil {
		return 0, err
	}
	b.m[ino] = &backing{id: id, refs: 1}
	b.record(ino, id)
	return id, nil
}

// release ends one open of inode ino; the last closes the ID with
// unregister, unless it was a predecessor's.
func (b *backings) release(ino uint64, unregister func(id int32)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.m[ino]
	if k == nil {
		return
	}
	if k.refs--; k.refs > 0 || k.inherited {
		return
	}
	delete(b.m, ino)
	unregister(k.id)
	b.record(ino, 0)
}

func (b *backings) close() {
	if b.f != nil {
		b.f.Close()
	}
}
