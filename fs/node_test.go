package fs

// Kernel-free tests: the node tree is built over an in-memory store
// (repotest.MemStore, wrapped in repotest.Faulty), and the node methods
// (or the raw operations, as go-fuse's server calls them) are called
// directly. Nothing is mounted, so they pass as an
// unprivileged user.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// image is an in-memory composed tree and the store under it.
type image struct {
	mem  *repotest.MemStore
	objs *repotest.Faulty
	tree *compose.Tree
	sums map[string]repo.Checksum // content object of each file path
}

// newImage stores nodes as a commit; with links (path -> group leader),
// as an image commit whose hardlink groups those are.
func newImage(t *testing.T, links map[string]string, nodes ...repotest.Node) *image {
	t.Helper()
	mem := repotest.NewMemStore()
	tree, meta, err := mem.PutTree(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	cm := &repo.Commit{RootTree: tree, RootMeta: meta, Subject: "test"}
	if links != nil {
		cm.Metadata.SetString(compose.KeyMode, compose.ModePrecomposed)
		keys := make([]string, 0, len(links))
		for k := range links {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		arr := make([]any, len(keys))
		for i, k := range keys {
			arr[i] = gvariant.DictEntry{Key: k, Value: links[k]}
		}
		cm.Metadata.Set(compose.KeyHardlinks, gvariant.Variant{Type: gvariant.MustParseType("a{ss}"), Value: arr})
	}
	c, err := mem.PutCommit(cm)
	if err != nil {
		t.Fatal(err)
	}
	im := &image{mem: mem, objs: repotest.NewFaulty(mem), sums: map[string]repo.Checksum{}}
	if im.tree, err = compose.Open(im.objs, c, compose.Options{CacheBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(im.tree.Close)
	for _, n := range nodes {
		if n.Mode&repo.ModeFmt != repo.ModeDir {
			fm := repo.FileMeta{UID: n.UID, GID: n.GID, Mode: n.Mode, Target: n.Target, Xattrs: n.Xattrs}
			if fm.Mode == 0 {
				fm.Mode = repo.ModeRegular | 0o644
			}
			if im.sums[n.Path], err = repo.FileChecksum(&fm, stringReader(n, &fm)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return im
}

func stringReader(n repotest.Node, fm *repo.FileMeta) io.Reader {
	if fm.IsSymlink() {
		return nil
	}
	fm.Size = int64(len(n.Data))
	return &stringR{s: n.Data}
}

type stringR struct{ s string }

func (r *stringR) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

// root builds the mount's node tree over im, without a kernel.
func (im *image) root(t *testing.T, o Options) (*node, *rawFS) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := newFilesystem(im.objs, im.tree, o)
	if f.limiter != nil {
		f.limiter.notify = func([]uint64) bool { return true }
	}
	return f.nodes.root, newRawFS(f)
}

// lookup walks a slash-separated path from n with Lookup.
func lookup(t *testing.T, n *node, names ...string) (*node, fuse.EntryOut) {
	t.Helper()
	var out fuse.EntryOut
	for _, name := range names {
		out = fuse.EntryOut{}
		in, errno := n.Lookup(context.Background(), name, &out)
		if errno != 0 {
			t.Fatalf("lookup %s: %v", name, errno)
		}
		n = in
	}
	return n, out
}

func readdir(t *testing.T, n *node) []fuse.DirEntry {
	t.Helper()
	var out []fuse.DirEntry
	errno := n.Readdir(context.Background(), 0, func(_ *compose.Entry, de fuse.DirEntry) bool {
		out = append(out, de)
		return true
	})
	if errno != 0 {
		t.Fatalf("readdir /%s: %v", n.path(), errno)
	}
	return out
}

func readAll(t *testing.T, n *node, off int64, size int) ([]byte, syscall.Errno) {
	t.Helper()
	fh, _, errno := n.Open(context.Background(), syscall.O_RDONLY)
	if errno != 0 {
		return nil, errno
	}
	if fh != nil {
		defer fh.release()
	}
	res, errno := n.Read(context.Background(), fh, make([]byte, size), off)
	if errno != 0 {
		return nil, errno
	}
	b, st := res.Bytes(make([]byte, size))
	if !st.Ok() {
		t.Fatalf("read result: %v", st)
	}
	return b, 0
}

var basicNodes = []repotest.Node{
	{Path: "a", Mode: repo.ModeDir | 0o750, UID: 5, GID: 6},
	{Path: "a/f", Data: "hello, world\n"},
	{Path: "a/sub", Mode: repo.ModeDir | 0o755},
	{Path: "a/sub2", Mode: repo.ModeDir | 0o755},
	{Path: "link", Mode: repo.ModeSymlink | 0o777, Target: "a/f"},
	{Path: "x", Mode: repo.ModeRegular | 0o600, Data: "x", Xattrs: []repo.Xattr{{Name: "user.k", Value: []byte("value")}}},
}

func TestNodeOperations(t *testing.T) {
	im := newImage(t, nil, basicNodes...)
	root, _ := im.root(t, Options{})
	ctx := context.Background()

	a, out := lookup(t, root, "a")
	if out.Mode != repo.ModeDir|0o750 || out.Uid != 5 || out.Gid != 6 {
		t.Errorf("a: mode %#o %d:%d, want dir 0750 5:6", out.Mode, out.Uid, out.Gid)
	}
	if out.Nlink != 4 {
		t.Errorf("a: nlink %d, want 4 (two subdirectories)", out.Nlink)
	}
	var ao fuse.AttrOut
	if errno := a.Getattr(ctx, &ao); errno != 0 || ao.Ino != out.Ino || ao.Mode != out.Mode {
		t.Errorf("getattr a: %v, ino %d mode %#o; lookup said %d %#o", errno, ao.Ino, ao.Mode, out.Ino, out.Mode)
	}

	var names []string
	for _, e := range readdir(t, root) {
		names = append(names, e.Name)
		_, lo := lookup(t, root, e.Name)
		if e.Ino != lo.Ino {
			t.Errorf("readdir %s: ino %d, lookup %d", e.Name, e.Ino, lo.Ino)
		}
		if e.Mode != lo.Mode&syscall.S_IFMT {
			t.Errorf("readdir %s: type %#o, lookup %#o", e.Name, e.Mode, lo.Mode)
		}
	}
	if want := []string{"a", "link", "x"}; !equal(names, want) {
		t.Errorf("readdir /: %v, want %v", names, want)
	}

	f, fo := lookup(t, root, "a", "f")
	if fo.Size != 13 || fo.Mode != repo.ModeRegular|0o644 || fo.Nlink != 1 {
		t.Errorf("a/f: size %d mode %#o nlink %d", fo.Size, fo.Mode, fo.Nlink)
	}
	if b, errno := readAll(t, f, 0, 100); errno != 0 || string(b) != "hello, world\n" {
		t.Errorf("read a/f: %q, %v", b, errno)
	}
	if b, errno := readAll(t, f, 7, 3); errno != 0 || string(b) != "wor" {
		t.Errorf("read a/f at 7: %q, %v", b, errno)
	}
	if b, errno := readAll(t, f, 13, 10); errno != 0 || len(b) != 0 {
		t.Errorf("read a/f at its end: %q, %v", b, errno)
	}

	l, _ := lookup(t, root, "link")
	if target, errno := l.Readlink(ctx); errno != 0 || string(target) != "a/f" {
		t.Errorf("readlink: %q, %v", target, errno)
	}
	if _, errno := f.Readlink(ctx); errno != syscall.EINVAL {
		t.Errorf("readlink of a file: %v, want EINVAL", errno)
	}

	x, _ := lookup(t, root, "x")
	buf := make([]byte, 64)
	if n, errno := x.Getxattr(ctx, "user.k", buf); errno != 0 || string(buf[:n]) != "value" {
		t.Errorf("getxattr user.k: %q, %v", buf[:n], errno)
	}
	if n, errno := x.Getxattr(ctx, "user.k", buf[:2]); errno != syscall.ERANGE || n != 5 {
		t.Errorf("getxattr into 2 bytes: %d, %v; want 5, ERANGE", n, errno)
	}
	if _, errno := x.Getxattr(ctx, "user.none", buf); errno != syscall.ENODATA {
		t.Errorf("getxattr of a missing name: %v, want ENODATA", errno)
	}
	if n, errno := x.Listxattr(ctx, buf); errno != 0 || string(buf[:n]) != "user.k\x00" {
		t.Errorf("listxattr: %q, %v", buf[:n], errno)
	}

	var eo fuse.EntryOut
	if _, errno := root.Lookup(ctx, "nope", &eo); errno != syscall.ENOENT {
		t.Errorf("lookup of a missing name: %v, want ENOENT", errno)
	}
	if _, _, errno := f.Open(ctx, syscall.O_RDWR); errno != syscall.EROFS {
		t.Errorf("open for writing: %v, want EROFS", errno)
	}
	var so fuse.StatfsOut
	if errno := root.Statfs(ctx, &so); errno != 0 || so.NameLen != 255 {
		t.Errorf("statfs over a store that does not report: %v, namelen %d", errno, so.NameLen)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Inode numbers are derived from the tree, so that a remount (or the
// kernel's forgetting a node and looking it up again) gives the same
// numbers; different paths differ, and the root is rootIno.
func TestInodeNumbersStable(t *testing.T) {
	im := newImage(t, nil, basicNodes...)
	inos := func() map[string]uint64 {
		root, _ := im.root(t, Options{})
		m := map[string]uint64{"": root.ino}
		for _, p := range [][]string{{"a"}, {"a", "f"}, {"a", "sub"}, {"a", "sub2"}, {"link"}, {"x"}} {
			_, out := lookup(t, root, p...)
			m[joinPath(p)] = out.Ino
		}
		return m
	}
	first, second := inos(), inos()
	seen := map[uint64]string{}
	for p, ino := range first {
		if second[p] != ino {
			t.Errorf("/%s: inode %d, then %d", p, ino, second[p])
		}
		if q, dup := seen[ino]; dup {
			t.Errorf("/%s and /%s share inode %d", p, q, ino)
		}
		seen[ino] = p
	}
	if first[""] != rootIno {
		t.Errorf("root inode %d, want %d", first[""], rootIno)
	}
}

func joinPath(p []string) string {
	s := ""
	for i, n := range p {
		if i > 0 {
			s += "/"
		}
		s += n
	}
	return s
}

// A hardlink group of an image shares one inode number and reports as
// its link count the members the image still shows; a file with the same
// content outside the group has its own inode. In a plain commit, equal
// regular files share an inode, as in an ostree checkout.
func TestHardlinkGroups(t *testing.T) {
	nodes := []repotest.Node{
		{Path: "h1", Data: "same"},
		{Path: "h2", Data: "same"},
		{Path: "d/h3", Data: "same"},
		{Path: "other", Data: "same"},
		{Path: "solo", Data: "solo"},
	}
	links := map[string]string{"h1": "h1", "h2": "h1", "d/h3": "h1", "gone": "h1"}
	im := newImage(t, links, nodes...)
	root, _ := im.root(t, Options{})
	_, h1 := lookup(t, root, "h1")
	_, h2 := lookup(t, root, "h2")
	_, h3 := lookup(t, root, "d", "h3")
	_, other := lookup(t, root, "other")
	_, solo := lookup(t, root, "solo")
	if h1.Ino != h2.Ino || h1.Ino != h3.Ino {
		t.Errorf("group inodes %d %d %d differ", h1.Ino, h2.Ino, h3.Ino)
	}
	if other.Ino == h1.Ino {
		t.Errorf("a file outside the group shares its inode")
	}
	for name, o := range map[string]fuse.EntryOut{"h1": h1, "h2": h2, "d/h3": h3} {
		if o.Nlink != 3 {
			t.Errorf("%s: nlink %d, want 3 (the member gone from the image not counted)", name, o.Nlink)
		}
	}
	if other.Nlink != 1 || solo.Nlink != 1 {
		t.Errorf("nlink of files outside groups: %d %d, want 1", other.Nlink, solo.Nlink)
	}
	// Readdir reports the group's inode too.
	for _, e := range readdir(t, root) {
		if (e.Name == "h1" || e.Name == "h2") && e.Ino != h1.Ino {
			t.Errorf("readdir %s: ino %d, want the group's %d", e.Name, e.Ino, h1.Ino)
		}
	}

	plain := newImage(t, nil, nodes...)
	proot, _ := plain.root(t, Options{})
	_, p1 := lookup(t, proot, "h1")
	_, p2 := lookup(t, proot, "other")
	_, p3 := lookup(t, proot, "solo")
	if p1.Ino != p2.Ino || p1.Ino == p3.Ino {
		t.Errorf("plain commit: equal files' inodes %d %d, other %d", p1.Ino, p2.Ino, p3.Ino)
	}
}

// TestErrnoMapping: what the kernel gets for each failure of the store
// under the mount, and which failures are remembered.
func TestErrnoMapping(t *testing.T) {
	ctx := context.Background()
	t.Run("missing file object is EIO, siblings fine", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		im.objs.Set(im.sums["a/f"], repotest.Fault{Missing: true})
		root, _ := im.root(t, Options{})
		a, _ := lookup(t, root, "a")
		var out fuse.EntryOut
		if _, errno := a.Lookup(ctx, "f", &out); errno != syscall.EIO {
			t.Errorf("lookup a/f: %v, want EIO", errno)
		}
		lookup(t, a, "sub")
	})
	t.Run("damage is remembered", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		im.objs.Set(im.sums["a/f"], repotest.Fault{Missing: true})
		root, _ := im.root(t, Options{})
		a, _ := lookup(t, root, "a")
		var out fuse.EntryOut
		if _, errno := a.Lookup(ctx, "f", &out); errno != syscall.EIO {
			t.Errorf("lookup a/f: %v, want EIO", errno)
		}
		im.objs.Clear(im.sums["a/f"])
		if _, errno := a.Lookup(ctx, "f", &out); errno != syscall.EIO {
			t.Errorf("lookup a/f after the object came back: %v, want EIO (the composed directory keeps the damage)", errno)
		}
	})
	t.Run("transient failure is EIO, then retried", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		im.objs.Set(im.sums["a/f"], repotest.Fault{Transient: 1})
		root, _ := im.root(t, Options{})
		a, _ := lookup(t, root, "a")
		var out fuse.EntryOut
		if _, errno := a.Lookup(ctx, "f", &out); errno != syscall.EIO {
			t.Errorf("lookup a/f: %v, want EIO", errno)
		}
		if _, errno := a.Lookup(ctx, "f", &out); errno != 0 || out.Size != 13 {
			t.Errorf("lookup a/f again: %v, size %d; want it composed now", errno, out.Size)
		}
	})
	t.Run("unavailable and not found is not damage", func(t *testing.T) {
		// A remote store that does not have the object locally and
		// cannot fetch it now says both.
		im := newImage(t, nil, basicNodes...)
		store := &notFoundUnavailable{Faulty: im.objs, bad: im.sums["a/f"], left: 1}
		tree, err := compose.Open(store, mustCommit(t, im), compose.Options{CacheBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		im.tree = tree
		root, _ := im.root(t, Options{})
		a, _ := lookup(t, root, "a")
		var out fuse.EntryOut
		if _, errno := a.Lookup(ctx, "f", &out); errno != syscall.EIO {
			t.Errorf("lookup a/f: %v, want EIO", errno)
		}
		if _, errno := a.Lookup(ctx, "f", &out); errno != 0 {
			t.Errorf("lookup a/f once the object is available: %v", errno)
		}
	})
	t.Run("interrupted is EINTR", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		root, _ := im.root(t, Options{})
		f, _ := lookup(t, root, "a", "f")
		block := make(chan struct{})
		defer close(block)
		im.objs.Set(im.sums["a/f"], repotest.Fault{Block: block})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan syscall.Errno)
		go func() {
			_, _, errno := f.Open(cctx, syscall.O_RDONLY)
			done <- errno
		}()
		deadline := time.Now().Add(10 * time.Second)
		for im.objs.Reads(im.sums["a/f"]) < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // poll: the open reached the store
		}
		cancel()
		if errno := <-done; errno != syscall.EINTR {
			t.Errorf("open interrupted while the object arrives: %v, want EINTR", errno)
		}
	})
	t.Run("content read failures", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		root, _ := im.root(t, Options{})
		f, _ := lookup(t, root, "a", "f")
		im.objs.Set(im.sums["a/f"], repotest.Fault{Transient: 1})
		if _, errno := readAll(t, f, 0, 10); errno != syscall.EIO {
			t.Errorf("open while unavailable: %v, want EIO", errno)
		}
		if b, errno := readAll(t, f, 0, 5); errno != 0 || string(b) != "hello" {
			t.Errorf("read once available: %q, %v", b, errno)
		}
		im.objs.Set(im.sums["a/f"], repotest.Fault{Missing: true})
		if _, errno := readAll(t, f, 0, 10); errno != syscall.EIO {
			t.Errorf("open of a missing object: %v, want EIO", errno)
		}
	})
	t.Run("verify", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		root, _ := im.root(t, Options{Verify: true})
		f, _ := lookup(t, root, "a", "f")
		x, _ := lookup(t, root, "x")
		sum := im.sums["a/f"]
		// Transient: fails this open only.
		im.objs.Set(sum, repotest.Fault{Transient: 1})
		if _, errno := readAll(t, f, 0, 5); errno != syscall.EIO {
			t.Errorf("verify while unavailable: %v, want EIO", errno)
		}
		if b, errno := readAll(t, f, 0, 5); errno != 0 || string(b) != "hello" {
			t.Errorf("open once available: %q, %v (a transient failure was remembered)", b, errno)
		}
		// A mismatch: remembered for the mount.
		im.objs.Set(im.sums["x"], repotest.Fault{Corrupt: true})
		if _, errno := readAll(t, x, 0, 5); errno != syscall.EIO {
			t.Errorf("open of a corrupt object under verify: %v, want EIO", errno)
		}
		im.objs.Clear(im.sums["x"])
		if _, errno := readAll(t, x, 0, 5); errno != syscall.EIO {
			t.Errorf("open of an object that failed verification: %v, want EIO again", errno)
		}
	})
	t.Run("corrupt content without verify reads what the store gives", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		root, _ := im.root(t, Options{})
		f, _ := lookup(t, root, "a", "f")
		im.objs.Set(im.sums["a/f"], repotest.Fault{Corrupt: true})
		if b, errno := readAll(t, f, 0, 1); errno != 0 || len(b) != 1 || b[0] != 'h'^0xff {
			t.Errorf("read: %q, %v", b, errno)
		}
	})
	t.Run("damaged dirtree", func(t *testing.T) {
		im := newImage(t, nil, basicNodes...)
		root, _ := im.root(t, Options{})
		cm, err := im.mem.ReadCommit(ctx, mustCommit(t, im))
		if err != nil {
			t.Fatal(err)
		}
		dt, err := im.mem.ReadDirTree(ctx, cm.RootTree)
		if err != nil {
			t.Fatal(err)
		}
		ad, _ := dt.LookupDir("a")
		im.objs.Set(ad.Tree, repotest.Fault{Corrupt: true})
		a, out := lookup(t, root, "a")
		if out.Nlink != 1 {
			t.Errorf("a with a corrupt dirtree: nlink %d, want 1 (not counted)", out.Nlink)
		}
		var eo fuse.EntryOut
		if _, errno := a.Lookup(ctx, "f", &eo); errno != syscall.EIO {
			t.Errorf("lookup in a directory whose dirtree is corrupt: %v, want EIO", errno)
		}
	})
}

func mustCommit(t *testing.T, im *image) repo.Checksum {
	c, _ := im.tree.Commit()
	return c
}

// notFoundUnavailable fails the first reads of one object with an error
// that wraps both repo.ErrObjectNotFound and repo.ErrUnavailable, as a
// remote store says "not here, and the fetch failed".
type notFoundUnavailable struct {
	*repotest.Faulty
	bad  repo.Checksum
	left int
}

func (s *notFoundUnavailable) ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error) {
	if c == s.bad && s.left > 0 {
		s.left--
		return nil, errors.Join(repo.ErrObjectNotFound, repo.ErrUnavailable)
	}
	return s.Faulty.ReadFileMeta(ctx, c)
}

// The inode limiter counts the inodes the kernel learns (through the
// bridge, as the kernel's LOOKUPs and FORGETs reach it) and asks for
// pruning once past its bound.
func TestInodeLimiter(t *testing.T) {
	var nodes []repotest.Node
	for _, n := range []string{"f0", "f1", "f2", "f3", "f4"} {
		nodes = append(nodes, repotest.Node{Path: n, Data: n})
	}
	im := newImage(t, nil, nodes...)
	root, raw := im.root(t, Options{MaxInodes: 3})
	l := root.fs.limiter
	ids := map[string]uint64{}
	look := func(name string) {
		var out fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}, name, &out); !st.Ok() {
			t.Fatalf("lookup %s: %v", name, st)
		}
		ids[name] = out.NodeId
	}
	for _, n := range []string{"f0", "f1", "f2"} {
		look(n)
	}
	if got := l.count(); got != 3 {
		t.Errorf("%d live inodes after 3 lookups, want 3", got)
	}
	if len(l.kick) != 0 {
		t.Errorf("pruning asked for at the bound")
	}
	look("f3")
	if len(l.kick) != 1 {
		t.Errorf("pruning not asked for past the bound")
	}
	if got := l.count(); got != 4 {
		t.Errorf("%d live inodes after 4 lookups, want 4", got)
	}
	raw.Forget(ids["f1"], 1)
	if got := l.count(); got != 3 {
		t.Errorf("%d live inodes after a forget, want 3", got)
	}
	// The limiter holds the live nodes only, oldest first: a forgotten
	// one is no longer reachable from it.
	if got := listed(l); !slices.Equal(got, []string{"f0", "f2", "f3"}) {
		t.Errorf("the limiter lists %v after f1's forget, want [f0 f2 f3]", got)
	}
	look("f1") // looked up again after its forget: a new inode
	if got := l.count(); got != 4 {
		t.Errorf("%d live inodes after a lookup of a forgotten name, want 4", got)
	}
	// A name the kernel knows, looked up again (as READDIRPLUS does): the
	// bridge keeps its inode, and nothing more is counted.
	id := ids["f2"]
	look("f2")
	if ids["f2"] != id {
		t.Errorf("f2 looked up again got node %d, want %d", ids["f2"], id)
	}
	if got := l.count(); got != 4 {
		t.Errorf("%d live inodes after a second lookup of a known name, want 4", got)
	}
	if _, peak := l.counts(); peak != 4 {
		t.Errorf("peak %d live inodes, want 4", peak)
	}
	// Without a bound, nothing is counted.
	r2, _ := im.root(t, Options{MaxInodes: -1})
	if r2.fs.limiter != nil {
		t.Errorf("MaxInodes -1 made a limiter")
	}
}

// listed returns the names of the nodes in the limiter's list, in order.
func listed(l *inodeLimiter) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for n := l.head; n != nil; n = n.next {
		names = append(names, n.e.Name)
	}
	return names
}

// fileStore gives every content as a file (as the bare modes do), written
// out to a temporary directory on first open.
type fileStore struct {
	*repotest.Faulty
	dir string
}

func (s *fileStore) ContentFiles() bool { return true }

func (s *fileStore) OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error) {
	ct, err := s.Faulty.OpenContent(ctx, c)
	if err != nil {
		return nil, err
	}
	defer ct.Close()
	b := make([]byte, ct.Size())
	if _, err := ct.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// Written once, under a name of its own then renamed: an object
	// being opened by several readers at once is never seen truncated.
	p := filepath.Join(s.dir, c.String())
	if _, err := os.Stat(p); err != nil {
		tmp, err := os.CreateTemp(s.dir, "tmp-")
		if err != nil {
			return nil, err
		}
		_, werr := tmp.Write(b)
		if err := errors.Join(werr, tmp.Close(), os.Rename(tmp.Name(), p)); err != nil {
			os.Remove(tmp.Name())
			return nil, err
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return osContent{f}, nil
}

type osContent struct{ f *os.File }

func (o osContent) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o osContent) Close() error                            { return o.f.Close() }
func (o osContent) File() *os.File                          { return o.f }
func (o osContent) Size() int64 {
	fi, err := o.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Over a store whose contents are files, files open with no message
// (ENOSYS, once, for the kernel) and reads come without a handle: the
// daemon preads the object file, kept open in the fd cache.
func TestZeroMessageOpens(t *testing.T) {
	ctx := context.Background()
	im := newImage(t, nil, basicNodes...)
	fsStore := &fileStore{Faulty: im.objs, dir: t.TempDir()}
	f := newFilesystem(fsStore, im.tree, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	root := f.nodes.root
	if f.fds == nil {
		t.Fatal("no fd cache over a store of files")
	}
	n, _ := lookup(t, root, "a", "f")
	if _, _, errno := n.Open(ctx, syscall.O_RDONLY); errno != syscall.ENOSYS {
		t.Fatalf("open: %v, want ENOSYS (zero-message opens)", errno)
	}
	for _, tc := range []struct {
		off  int64
		want string
	}{{0, "hello"}, {7, "world"}, {13, ""}} {
		res, errno := n.Read(ctx, nil, make([]byte, 5), tc.off)
		if errno != 0 {
			t.Fatalf("read at %d: %v", tc.off, errno)
		}
		b, _ := res.Bytes(make([]byte, 5))
		if string(b) != tc.want {
			t.Errorf("read at %d: %q, want %q", tc.off, b, tc.want)
		}
	}
	if off, errno := n.Lseek(ctx, nil, 20, 3 /* SEEK_DATA */); errno != syscall.ENXIO {
		t.Errorf("SEEK_DATA past the end: %d, %v; want ENXIO", off, errno)
	}
	if got := im.objs.Reads(im.sums["a/f"]); got != 2 { // its metadata, then one open
		t.Errorf("%d reads of the object, want 2: the fd cache keeps it open", got)
	}
	im.objs.Set(im.sums["x"], repotest.Fault{Transient: 1})
	x, _ := lookup(t, root, "x")
	if _, errno := x.Read(ctx, nil, make([]byte, 5), 0); errno != syscall.EIO {
		t.Errorf("read of an unavailable object: %v, want EIO", errno)
	}
	if res, errno := x.Read(ctx, nil, make([]byte, 5), 0); errno != 0 {
		t.Errorf("read once available: %v", errno)
	} else if b, _ := res.Bytes(make([]byte, 5)); string(b) != "x" {
		t.Errorf("read once available: %q", b)
	}
}

// A large read of a zero-message open is answered with the object file
// (go-fuse splices it), which stays held until the reply is written;
// small reads, and the tail of a file, are answered with bytes.
func TestZeroMessageLargeReads(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	im := newImage(t, nil, repotest.Node{Path: "big", Data: string(data)})
	fsStore := &fileStore{Faulty: im.objs, dir: t.TempDir()}
	f := newFilesystem(fsStore, im.tree, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	root := f.nodes.root
	if !f.splice {
		t.Fatal("large reads do not splice over a store of files")
	}
	n, _ := lookup(t, root, "big")
	for _, tc := range []struct {
		off     int64
		size    int
		spliced bool
	}{{0, 256 << 10, true}, {100 << 10, 200 << 10, true}, {200 << 10, 256 << 10, false}, {0, 4096, false}} {
		res, errno := n.Read(ctx, nil, make([]byte, tc.size), tc.off)
		if errno != 0 {
			t.Fatalf("read %d at %d: %v", tc.size, tc.off, errno)
		}
		want := data[tc.off:min(int(tc.off)+tc.size, len(data))]
		fr, spliced := res.(*fileResult)
		if spliced != tc.spliced {
			t.Errorf("read %d at %d: spliced %v, want %v", tc.size, tc.off, spliced, tc.spliced)
		}
		if spliced {
			fd, off, sz := fr.Seekable()
			if int(fd) != int(fr.e.f.Fd()) || off != tc.off || sz != len(want) {
				t.Errorf("read %d at %d: splices %d bytes at %d, want %d at %d", tc.size, tc.off, sz, off, len(want), tc.off)
			}
			if fr.e.refs != 1 {
				t.Errorf("the object file has %d users while its reply is pending, want 1", fr.e.refs)
			}
		} else if s, ok := res.(interface {
			Slices() ([][]byte, fuse.Status)
		}); !ok {
			t.Errorf("read %d at %d: a reply of bytes go-fuse would try to splice (%T)", tc.size, tc.off, res)
		} else if v, _ := s.Slices(); len(v) != 1 || !bytes.Equal(v[0], want) {
			t.Errorf("read %d at %d: slices differ from the file", tc.size, tc.off)
		}
		b, st := res.Bytes(make([]byte, tc.size))
		if !st.Ok() || !bytes.Equal(b, want) {
			t.Errorf("read %d at %d: %d bytes (%v), not the file's %d", tc.size, tc.off, len(b), st, len(want))
		}
		res.Done()
		if spliced && fr.e != nil {
			t.Errorf("Done kept the object file")
		}
	}
	for el := f.fds.lru.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*fdEntry); e.refs != 0 {
			t.Errorf("object file %s left with %d users after every reply", e.sum, e.refs)
		}
	}
}
