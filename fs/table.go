package fs

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ostree-mount/ostree-mount/compose"
)

// nodeTable holds the nodes the kernel knows, by node ID. A node's ID is
// its inode number, which derives from the tree alone (inoFor), so that
// a successor serving the same mount gives the same IDs to the same
// entries.
//
// A successor meets IDs that its predecessor gave the kernel: it revives
// them from the predecessor's journal (journal.go), which names each ID's
// parent and name, by looking the name up again in the revived parent.
type nodeTable struct {
	f    *filesystem
	root *node

	mu sync.Mutex
	m  map[uint64]*node
	// index is a predecessor's journal: ID -> (parent, name), for the
	// IDs the kernel may still send; nil when the mount started fresh.
	// It never shrinks: a predecessor's ID may stay in the kernel for as
	// long as the mount, and its FORGET does not say whether the kernel
	// looked it up again since.
	index   map[uint64]journalRecord
	revived atomic.Int64
	stale   atomic.Int64
}

func newNodeTable(f *filesystem) *nodeTable {
	t := &nodeTable{f: f, m: map[uint64]*node{}}
	t.root = &node{fs: f, e: f.tree.Root(), ino: rootIno}
	t.m[rootIno] = t.root
	return t
}

// looked records a lookup of entry c of parent, whose ID is ino: the
// node, made on the first, and one more for the kernel's count.
func (t *nodeTable) looked(parent *node, c *compose.Entry, ino uint64) *node {
	t.mu.Lock()
	n := t.m[ino]
	fresh := n == nil
	if fresh {
		n = &node{fs: t.f, e: c, ino: ino, parent: parent}
		if c.IsDir() {
			n.dirPath = childPath(parent.dirPath, c.Name)
		}
		// An ID a predecessor gave has a count this server does not
		// know (a FORGET of the predecessor's lookups may still come):
		// it is counted as revived.
		_, n.revived = t.index[ino]
		t.m[ino] = n
		t.f.journal.add(ino, parent.ino, c.Name)
	}
	n.lookups++
	t.mu.Unlock()
	if fresh {
		t.f.limiter.added(n)
	}
	return n
}

// forget applies the kernel's FORGET: a node whose count reaches zero,
// or a revived one (whose count is unknown), is dropped. A
// predecessor's record of the ID stays: the FORGET may be of the
// predecessor's lookups only, sent after the kernel looked the name up
// again, and a node the kernel still holds is then revived again when
// it names it.
func (t *nodeTable) forget(ino, nlookup uint64) {
	if ino == rootIno {
		return
	}
	t.mu.Lock()
	n := t.m[ino]
	gone := false
	if n != nil {
		if n.revived || nlookup >= n.lookups {
			delete(t.m, ino)
			gone = true
		} else {
			n.lookups -= nlookup
		}
	}
	t.mu.Unlock()
	if gone {
		t.f.limiter.forgotten(n)
	}
}

// get returns the node of an ID the kernel sent, reviving it when a
// predecessor gave it.
func (t *nodeTable) get(ctx context.Context, ino uint64) (*node, syscall.Errno) {
	t.mu.Lock()
	n := t.m[ino]
	t.mu.Unlock()
	if n != nil {
		return n, 0
	}
	return t.revive(ctx, ino, 0)
}

// maxReviveDepth bounds the ancestors revived for one ID: deeper than any
// path a kernel resolves (PATH_MAX is 4096 bytes), and a journal that
// loops fails instead of recursing for ever.
const maxReviveDepth = 2048

func (t *nodeTable) revive(ctx context.Context, ino uint64, depth int) (*node, syscall.Errno) {
	t.mu.Lock()
	rec, ok := t.index[ino]
	t.mu.Unlock()
	if !ok || depth > maxReviveDepth {
		t.stale.Add(1)
		t.f.log.Warn("node ID unknown to this server and to its predecessor's journal: ESTALE", "node", ino)
		return nil, syscall.ESTALE
	}
	var parent *node
	t.mu.Lock()
	parent = t.m[rec.parent]
	t.mu.Unlock()
	if parent == nil {
		var errno syscall.Errno
		if parent, errno = t.revive(ctx, rec.parent, depth+1); errno != 0 {
			return nil, errno
		}
	}
	if !parent.e.IsDir() {
		return nil, t.staleRecord(ino, rec, "its parent is not a directory")
	}
	d, errno := parent.dir(ctx)
	if errno != 0 {
		return nil, errno
	}
	c, ok := d.Lookup(rec.name)
	if !ok {
		return nil, t.staleRecord(ino, rec, "no such name")
	}
	if parent.childIno(c) != ino {
		return nil, t.staleRecord(ino, rec, "the name has another node ID")
	}
	t.mu.Lock()
	n := t.m[ino]
	fresh := n == nil
	if fresh {
		n = &node{fs: t.f, e: c, ino: ino, parent: parent, revived: true}
		if c.IsDir() {
			n.dirPath = childPath(parent.dirPath, c.Name)
		}
		t.m[ino] = n
	}
	t.mu.Unlock()
	if fresh {
		t.revived.Add(1)
		t.f.limiter.added(n)
	}
	return n, 0
}

func (t *nodeTable) staleRecord(ino uint64, rec journalRecord, why string) syscall.Errno {
	t.stale.Add(1)
	t.f.log.Error("journal names a node this tree does not have: ESTALE", "node", ino, "parent", rec.parent, "name", rec.name, "why", why)
	return syscall.ESTALE
}

// records calls fn with every ID the kernel may know: the live nodes and
// those of the predecessor's journal not revived or forgotten yet, each
// after its parent. t.mu held.
func (t *nodeTable) recordsLocked(fn func(journalRecord)) {
	done := map[uint64]bool{rootIno: true}
	var visit func(n *node)
	visit = func(n *node) {
		if done[n.ino] {
			return
		}
		done[n.ino] = true
		if n.parent != nil {
			visit(n.parent)
			fn(journalRecord{ino: n.ino, parent: n.parent.ino, name: n.e.Name})
		}
	}
	for _, n := range t.m {
		visit(n)
	}
	for ino, rec := range t.index {
		if !done[ino] {
			done[ino] = true
			fn(rec)
		}
	}
}

// handleTable holds the handles of files opened through the daemon
// (Options.Passthrough, or a store whose contents are not files). A
// handle's number carries an epoch drawn at start, so that a handle a
// predecessor gave the kernel is never taken for one of this server's.
type handleTable struct {
	mu    sync.Mutex
	m     map[uint64]*fileHandle
	epoch uint64
	next  uint32
}

func newHandleTable() *handleTable {
	var b [4]byte
	_, _ = rand.Read(b[:])
	epoch := uint64(binary.LittleEndian.Uint32(b[:]) | 1)
	return &handleTable{m: map[uint64]*fileHandle{}, epoch: epoch << 32}
}

func (h *handleTable) add(fh *fileHandle) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	id := h.epoch | uint64(h.next)
	h.m[id] = fh
	return id
}

// get returns handle id if it is this server's and reads node ino.
func (h *handleTable) get(id, ino uint64) *fileHandle {
	h.mu.Lock()
	defer h.mu.Unlock()
	fh := h.m[id]
	if fh == nil || fh.ino != ino {
		return nil
	}
	return fh
}

// adopt keeps fh under a predecessor's handle id, for the reads the
// kernel still sends with it.
func (h *handleTable) adopt(id uint64, fh *fileHandle) *fileHandle {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.m[id]; old != nil && old.ino == fh.ino {
		fh.release()
		return old
	}
	h.m[id] = fh
	return fh
}

func (h *handleTable) remove(id uint64) *fileHandle {
	h.mu.Lock()
	defer h.mu.Unlock()
	fh := h.m[id]
	delete(h.m, id)
	return fh
}
