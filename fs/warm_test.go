package fs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// localStore is a fileStore whose objects are local only when listed,
// as a lazy remote store's.
type localStore struct {
	*fileStore
	local map[repo.Checksum]bool
}

func (s *localStore) LocalObject(_ repo.ObjectType, c repo.Checksum) bool { return s.local[c] }

// warmNodes: a directory of small files, one large file and a symlink.
func warmNodes() []repotest.Node {
	nodes := []repotest.Node{{Path: "d", Mode: repo.ModeDir | 0o755}}
	for i := range 10 {
		nodes = append(nodes, repotest.Node{Path: fmt.Sprintf("d/f%d", i), Data: fmt.Sprintf("file %d\n", i)})
	}
	nodes = append(nodes,
		repotest.Node{Path: "d/big", Data: strings.Repeat("b", warmMaxSize+1)},
		repotest.Node{Path: "d/empty", Data: ""},
		repotest.Node{Path: "d/link", Mode: repo.ModeSymlink | 0o777, Target: "f0"})
	return nodes
}

// attached looks a path up through the raw operations, as the kernel
// does, and returns the node the table holds for it.
func attached(t *testing.T, raw *rawFS, names ...string) *node {
	t.Helper()
	id := uint64(fuse.FUSE_ROOT_ID)
	for _, name := range names {
		var out fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: id}, name, &out); !st.Ok() || out.NodeId == 0 {
			t.Fatalf("lookup %s: %v", name, st)
		}
		id = out.NodeId
	}
	n, errno := raw.f.nodes.get(context.Background(), id)
	if errno != 0 {
		t.Fatalf("%v: not in the table after its lookup: %v", names, errno)
	}
	return n
}

// waitWarmed waits until the warmer has opened n objects and its queue is
// empty, or fails after a generous deadline.
func waitWarmed(t *testing.T, f *filesystem, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.warm.warmed.Load() < n || len(f.warm.q) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("warmed %d objects, want %d", f.warm.warmed.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A listing alone warms nothing (find and ls read no file). The first
// read of a file in a listed directory opens the rest of its small
// files' objects ahead of their reads, once each: those reads then open
// nothing. Large and empty files and non-files are left alone.
func TestWarmListedFiles(t *testing.T) {
	ctx := context.Background()
	im := newImage(t, nil, warmNodes()...)
	st := &fileStore{Faulty: im.objs, dir: t.TempDir()}
	f := newFilesystem(st, im.tree, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(f.warm.stop)
	raw := newRawFS(f)
	d := attached(t, raw, "d")
	readdir(t, d)
	read := func(i int) {
		t.Helper()
		n := attached(t, raw, "d", fmt.Sprintf("f%d", i))
		res, errno := n.Read(ctx, nil, make([]byte, 64), 0)
		if errno != 0 {
			t.Fatalf("read f%d: %v", i, errno)
		}
		if b, _ := res.Bytes(make([]byte, 64)); string(b) != fmt.Sprintf("file %d\n", i) {
			t.Errorf("read f%d: %q", i, b)
		}
	}
	for i := range 10 {
		// One read of its metadata (composition), none by the warmer yet.
		if got := im.objs.Reads(im.sums[fmt.Sprintf("d/f%d", i)]); got != 1 {
			t.Errorf("f%d: %d reads of the object after the listing alone, want 1", i, got)
		}
	}
	read(0)
	waitWarmed(t, f, 10)
	for i := 1; i < 10; i++ {
		sum := im.sums[fmt.Sprintf("d/f%d", i)]
		if got := im.objs.Reads(sum); got != 2 {
			t.Errorf("f%d: %d reads of the object once f0 was read, want 2 (metadata, the warmer's open)", i, got)
		}
		read(i)
		if got := im.objs.Reads(sum); got != 2 {
			t.Errorf("f%d: %d reads of the object after reading it, want 2 (the warmer's open kept)", i, got)
		}
	}
	if got := im.objs.Reads(im.sums["d/big"]); got != 1 {
		t.Errorf("big: %d reads, want 1 (its metadata): a large file is not warmed", got)
	}
	if got := f.warm.warmed.Load(); got != 10 {
		t.Errorf("warmed %d objects, want the 10 small files", got)
	}
	// A listing is warmed once: reading again warms nothing more.
	read(0)
	if got := f.warm.warmed.Load(); got != 10 || len(f.warm.q) != 0 {
		t.Errorf("warmed %d objects (%d queued) after a second read, want 10", got, len(f.warm.q))
	}
}

// Over a store that would have to fetch (a lazy remote), only local
// objects are warmed; with NoWarm nothing is.
func TestWarmOnlyLocal(t *testing.T) {
	im := newImage(t, nil, warmNodes()...)
	st := &localStore{fileStore: &fileStore{Faulty: im.objs, dir: t.TempDir()}, local: map[repo.Checksum]bool{im.sums["d/f3"]: true}}
	f := newFilesystem(st, im.tree, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(f.warm.stop)
	d, _ := lookup(t, f.nodes.root, "d")
	readdir(t, d)
	f.warm.read("d/big")
	waitWarmed(t, f, 1)
	for i := range 10 {
		want := 1
		if i == 3 {
			want = 2
		}
		if got := im.objs.Reads(im.sums[fmt.Sprintf("d/f%d", i)]); got != want {
			t.Errorf("f%d: %d reads, want %d", i, got, want)
		}
	}
	off := newFilesystem(st, im.tree, Options{NoWarm: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if off.warm != nil {
		t.Error("NoWarm made a warmer")
	}
}
