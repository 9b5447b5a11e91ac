package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

func journalNodes() []repotest.Node {
	nodes := []repotest.Node{
		{Path: "a", Mode: repo.ModeDir | 0o755},
		{Path: "a/b", Mode: repo.ModeDir | 0o755},
		{Path: "a/b/c", Mode: repo.ModeDir | 0o755},
	}
	for i := range 50 {
		nodes = append(nodes, repotest.Node{Path: fmt.Sprintf("a/b/c/f%d", i), Data: fmt.Sprint(i)})
	}
	return nodes
}

// stateFS is a filesystem over im keeping its state in dir (resume:
// taking over a predecessor's), without a kernel.
func stateFS(t *testing.T, im *image, dir string, resume bool) *rawFS {
	t.Helper()
	o := Options{State: dir, Resume: resume, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f := newFilesystem(im.objs, im.tree, o)
	if f.limiter != nil {
		f.limiter.notify = func([]uint64) bool { return true }
	}
	if err := f.openState(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.journal.close)
	return newRawFS(f)
}

// walk looks a path up through raw, as the kernel does, and returns its
// node ID.
func walk(t *testing.T, raw *rawFS, names ...string) uint64 {
	t.Helper()
	id := uint64(rootIno)
	for _, name := range names {
		var out fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: id}, name, &out); !st.Ok() || out.NodeId == 0 {
			t.Fatalf("lookup %s: %v", name, st)
		}
		id = out.NodeId
	}
	return id
}

// A successor revives the IDs its predecessor gave, parents first, from
// the journal alone; an ID nobody gave is ESTALE; a forgotten one is
// dropped from the index.
func TestJournalRevives(t *testing.T) {
	im := newImage(t, nil, journalNodes()...)
	dir := t.TempDir()
	first := stateFS(t, im, dir, false)
	f7 := walk(t, first, "a", "b", "c", "f7")
	f8 := walk(t, first, "a", "b", "c", "f8")
	c := walk(t, first, "a", "b", "c")

	next := stateFS(t, im, dir, true)
	var ao fuse.AttrOut
	if st := next.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: f7}}, &ao); !st.Ok() || ao.Ino != f7 || ao.Size != 1 {
		t.Fatalf("getattr of a predecessor's file: %v, ino %d size %d", st, ao.Ino, ao.Size)
	}
	if got := next.f.nodes.revived.Load(); got != 4 {
		t.Errorf("revived %d nodes for a/b/c/f7, want 4 (its ancestors first)", got)
	}
	// A read through a handle the predecessor opened (this store's
	// contents are not files, so files open through the daemon): the
	// file is opened again under the kernel's number, once.
	const oldFh = 7 << 32
	for range 2 {
		res, st := next.Read(nil, &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: f7}, Fh: oldFh, Size: 16}, make([]byte, 16))
		if !st.Ok() {
			t.Fatalf("read of a predecessor's file: %v", st)
		}
		if b, _ := res.Bytes(make([]byte, 16)); string(b) != "7" {
			t.Errorf("read of a predecessor's file: %q", b)
		}
	}
	if got := im.objs.Reads(im.sums["a/b/c/f7"]); got != 2 {
		t.Errorf("%d reads of the object, want 2 (its metadata, one open for the adopted handle)", got)
	}
	next.Release(nil, &fuse.ReleaseIn{InHeader: fuse.InHeader{NodeId: f7}, Fh: oldFh})
	if h := next.f.handles.get(oldFh, f7); h != nil {
		t.Error("the adopted handle outlived its RELEASE")
	}
	// A name under a revived directory.
	var eo fuse.EntryOut
	if st := next.Lookup(nil, &fuse.InHeader{NodeId: c}, "f9", &eo); !st.Ok() || eo.NodeId == 0 {
		t.Errorf("lookup under a revived directory: %v", st)
	}
	// Unknown everywhere: ESTALE.
	if st := next.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: 12345}}, &ao); st != fuse.Status(syscall.ESTALE) {
		t.Errorf("getattr of an ID nobody gave: %v, want ESTALE", st)
	}
	// A predecessor's ID looked up again by this server, then the
	// FORGET of the predecessor's lookups (the kernel evicted its inode
	// and looked the name up again, and the FORGET comes after): the
	// kernel still holds the ID, and it still resolves.
	if id := walk(t, next, "a", "b", "c", "f8"); id != f8 {
		t.Fatalf("f8 looked up again: ID %d, want %d", id, f8)
	}
	next.Forget(f8, 3)
	if st := next.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: f8}}, &ao); !st.Ok() || ao.Ino != f8 {
		t.Errorf("getattr of an ID the kernel still holds after a predecessor's FORGET: %v", st)
	}
	// A revived node, whose count is unknown, goes at its first FORGET.
	next.Forget(f7, 1)
	next.f.nodes.mu.Lock()
	_, live := next.f.nodes.m[f7]
	next.f.nodes.mu.Unlock()
	if live {
		t.Error("a revived node outlived its FORGET")
	}
}

// A journal cut in the middle of a record (a process killed in its
// write) opens with the complete records, and the torn bytes are cut off
// so that the successor's records follow whole ones. A journal of
// another commit, or none, cannot be resumed from.
func TestJournalTornAndForeign(t *testing.T) {
	im := newImage(t, nil, journalNodes()...)
	dir := t.TempDir()
	first := stateFS(t, im, dir, false)
	a := walk(t, first, "a")
	b := walk(t, first, "a", "b")
	p := filepath.Join(dir, journalFile)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	full := fi.Size()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := appendRecord(nil, journalRecord{ino: 99, parent: b, name: "c"})
	if _, err := f.Write(torn[:len(torn)-1]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c, _ := im.tree.Commit()
	j, index, err := openJournal(dir, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	j.close()
	if len(index) != 2 || index[a].name != "a" || index[b].parent != a {
		t.Errorf("index %v, want a and a/b", index)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != full {
		t.Errorf("journal is %d bytes after opening, want the %d of its whole records", fi.Size(), full)
	}

	other := repotest.NewMemStore()
	if _, _, err := openJournal(dir, mustOtherCommit(t, other), slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, ErrNoState) {
		t.Errorf("a journal of another commit: %v, want ErrNoState", err)
	}
	if _, _, err := openJournal(t.TempDir(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, ErrNoState) {
		t.Errorf("no journal: %v, want ErrNoState", err)
	}
	if _, err := loadInit(t.TempDir()); !errors.Is(err, ErrNoState) {
		t.Errorf("no INIT: %v, want ErrNoState", err)
	}
}

func mustOtherCommit(t *testing.T, mem *repotest.MemStore) repo.Checksum {
	t.Helper()
	tree, meta, err := mem.PutTree(repotest.Node{Path: "other", Data: "x"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := mem.PutCommit(&repo.Commit{RootTree: tree, RootMeta: meta, Subject: "other"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Nodes given, forgotten and given again grow the journal; past its
// bound it is rewritten with what the kernel may still hold: the live
// nodes, their ancestors, and a predecessor's IDs not forgotten, and a
// successor revives from the rewritten journal.
func TestJournalCompaction(t *testing.T) {
	im := newImage(t, nil, journalNodes()...)
	dir := t.TempDir()
	first := stateFS(t, im, dir, false)
	first.f.journal.compactAt = 200
	keep := walk(t, first, "a", "b", "c", "f0")
	for round := range 10 {
		for i := 1; i < 50; i++ {
			id := walk(t, first, "a", "b", "c", fmt.Sprintf("f%d", i))
			first.Forget(id, 1)
		}
		_ = round
	}
	first.f.journal.mu.Lock()
	records := first.f.journal.records
	first.f.journal.mu.Unlock()
	if records > 300 {
		t.Errorf("%d records after 490 lookups and forgets with compaction at 200", records)
	}
	c, _ := im.tree.Commit()
	_, index, err := openJournal(dir, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := index[keep]; !ok {
		t.Fatal("the live node is not in the rewritten journal")
	}
	next := stateFS(t, im, dir, true)
	var ao fuse.AttrOut
	if st := next.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: keep}}, &ao); !st.Ok() || ao.Ino != keep {
		t.Errorf("revive from the rewritten journal: %v", st)
	}
	if _, errno := next.f.nodes.get(context.Background(), keep); errno != 0 {
		t.Errorf("get: %v", errno)
	}
}

// The in-flight slots outlive their mapping (they are the file's): a
// successor fails the IDs still recorded, once, with EIO replies, and a
// fresh start clears them.
func TestInflightSlots(t *testing.T) {
	dir := t.TempDir()
	in, err := openInflight(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	a := in.begin(100)
	b := in.begin(200)
	in.end(a) // answered: its ID stays in the slot until reused
	_ = b     // in flight when the process dies
	in.close()

	next, err := openInflight(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer next.close()
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if n := next.failPredecessors(fds[1]); n != 2 {
		t.Fatalf("failed %d requests, want 2 (the pipe takes both; the kernel would refuse the answered one)", n)
	}
	buf := make([]byte, 64)
	n, _ := syscall.Read(fds[0], buf)
	if n != 32 {
		t.Fatalf("%d bytes of replies, want two headers of 16", n)
	}
	got := map[uint64]int32{}
	for off := 0; off < n; off += 16 {
		h := (*fuse.OutHeader)(unsafe.Pointer(&buf[off]))
		got[h.Unique] = h.Status
	}
	if got[100] != -int32(syscall.EIO) || got[200] != -int32(syscall.EIO) {
		t.Errorf("replies %v, want EIO for 100 and 200", got)
	}
	if n := next.failPredecessors(fds[1]); n != 0 {
		t.Errorf("failed %d requests again", n)
	}
	fresh, err := openInflight(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.close()
	fresh.begin(300)
	if again, _ := openInflight(dir, true); again.failPredecessors(fds[1]) != 0 {
		t.Error("a fresh start kept a predecessor's IDs")
	}
}

// Overlapping passed-through opens of an inode share one backing ID
// (the kernel refuses a second), closed with the last; a successor
// gives the IDs its predecessor left registered to the same inodes, and
// never closes them.
func TestBackingsShared(t *testing.T) {
	dir := t.TempDir()
	b := newBackings()
	if err := b.openState(dir, false); err != nil {
		t.Fatal(err)
	}
	next := int32(0)
	registered, closed := 0, []int32{}
	reg := func(int) (int32, error) { registered++; next++; return next, nil }
	unreg := func(id int32) { closed = append(closed, id) }
	a1, _ := b.acquire(10, 3, reg)
	a2, _ := b.acquire(10, 4, reg)
	c1, _ := b.acquire(20, 5, reg)
	if a1 != a2 || a1 == c1 || registered != 2 {
		t.Fatalf("IDs %d %d %d, %d registered: want one per inode", a1, a2, c1, registered)
	}
	b.release(10, unreg)
	if len(closed) != 0 {
		t.Fatalf("closed %v with an open left", closed)
	}
	b.release(10, unreg)
	if len(closed) != 1 || closed[0] != a1 {
		t.Fatalf("closed %v after the last release, want [%d]", closed, a1)
	}
	b.close() // the server dies with inode 20's ID registered

	s := newBackings()
	if err := s.openState(dir, true); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if id, _ := s.acquire(20, 6, reg); id != c1 || registered != 2 {
		t.Errorf("successor's ID for inode 20: %d (%d registered), want the predecessor's %d", id, registered, c1)
	}
	s.release(20, unreg)
	if len(closed) != 1 {
		t.Errorf("the successor closed a predecessor's ID: %v", closed)
	}
	if id, _ := s.acquire(10, 7, reg); id == a1 || registered != 3 {
		t.Errorf("inode 10, whose ID was closed: %d (%d registered), want a new one", id, registered)
	}
}
