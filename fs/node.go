package fs

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ostree-mount/ostree-mount/compose"
)

// filesystem is the state shared by every node of a mount.
type filesystem struct {
	tree        *compose.Tree
	objs        Objects
	log         *slog.Logger
	passthrough bool
	splice      bool // large reads splice from the object file (fileResult)
	verify      bool
	verified    sync.Map // repo.Checksum -> error (nil: good)
	limiter     *inodeLimiter
	fds         *fdCache // zero-message opens; nil when files are opened
	warm        *warmer  // with fds, unless Options.NoWarm
	nodes       *nodeTable
	handles     *handleTable
	backings    *backings
	journal     *journal  // nil: no State
	inflight    *inflight // nil: no State
	server      *fuse.Server
}

// node is a composed entry that the kernel knows by its node ID, which
// is its inode number.
type node struct {
	fs  *filesystem
	e   *compose.Entry
	ino uint64
	// parent is the directory the node was first found in (nil for the
	// root). A hardlink has several; its path is the first's.
	parent *node
	// dirPath is a directory's path, slash-separated, "" for the root. A
	// file's is its parent's and its name (path): most nodes are files.
	dirPath string
	// lookups is the kernel's lookup count, as FORGET will return it
	// (nodeTable.mu). A revived node's is unknown: its predecessor's
	// kernel count is lost, and any FORGET drops it.
	lookups uint64
	revived bool
	// The limiter's list of the nodes the kernel holds (prune.go),
	// guarded by its mutex.
	prev, next *node
}

// rootIno is the root directory's inode number (and FUSE_ROOT_ID).
const rootIno = 1

// inoFor derives a child's inode number: from its hardlink key when it has
// one, else from the parent's number and its name.
func inoFor(parent uint64, name, key string) uint64 {
	h := fnv.New64a()
	if key != "" {
		h.Write([]byte{'k'})
		h.Write([]byte(key))
	} else {
		var b [9]byte
		b[0] = 'p'
		for i := 0; i < 8; i++ {
			b[1+i] = byte(parent >> (8 * i))
		}
		h.Write(b[:])
		h.Write([]byte(name))
	}
	ino := h.Sum64() &^ (1 << 63)
	if ino <= rootIno {
		ino += 2
	}
	return ino
}

// path returns the node's path: a directory's own, a file's under the
// parent it was first found in.
func (n *node) path() string {
	if n.e.IsDir() || n.parent == nil {
		return n.dirPath
	}
	return childPath(n.parent.dirPath, n.e.Name)
}

func childPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// dir composes this directory.
func (n *node) dir(ctx context.Context) (*compose.Dir, syscall.Errno) {
	d, err := n.fs.tree.ReadDir(ctx, n.e)
	if err != nil {
		return nil, n.fs.toErrno(err, "readdir /"+n.dirPath)
	}
	return d, 0
}

// childIno is the inode number of entry c of this directory.
func (n *node) childIno(c *compose.Entry) uint64 {
	return inoFor(n.ino, c.Name, n.fs.tree.InodeKey(c, childPath(n.dirPath, c.Name)))
}

// child gives the kernel entry c of this directory: its attributes in
// out, and its node, counted as one more lookup.
func (n *node) child(ctx context.Context, c *compose.Entry, out *fuse.EntryOut) (*node, syscall.Errno) {
	p := childPath(n.dirPath, c.Name)
	ino := inoFor(n.ino, c.Name, n.fs.tree.InodeKey(c, p))
	if errno := n.fs.fillAttr(ctx, c, p, ino, &out.Attr); errno != 0 {
		return nil, errno
	}
	ch := n.fs.nodes.looked(n, c, ino)
	out.NodeId = ino
	out.Generation = 1
	out.SetEntryTimeout(cacheTimeout)
	out.SetAttrTimeout(cacheTimeout)
	return ch, 0
}

// Lookup finds a name in the composed directory and gives it to the
// kernel (one more lookup of its node).
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*node, syscall.Errno) {
	d, errno := n.dir(ctx)
	if errno != 0 {
		return nil, errno
	}
	c, ok := d.Lookup(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, c, out)
}

// fillAttr sets stat data; a directory's link count needs its subdirectories.
//
// An entry whose own metadata is damaged (compose.Entry.Err) fails; a
// directory whose dirtrees are damaged, so that its subdirectories cannot
// be counted, gets link count 1: the convention for "not counted" (btrfs,
// many FUSE filesystems). fts (find, du, rm -r) subtracts 2 from a
// directory's link count to know how many subdirectories remain to be
// found, and takes 1 (giving -1) as "unknown", stat'ing every entry; a
// count of 2 would claim there are none.
func (f *filesystem) fillAttr(ctx context.Context, e *compose.Entry, p string, ino uint64, out *fuse.Attr) syscall.Errno {
	if err := e.Err(); err != nil {
		return f.toErrno(err, "stat /"+p)
	}
	out.Ino = ino
	out.Mode = e.Mode
	out.Uid, out.Gid = e.UID, e.GID
	out.Rdev = uint32(e.Rdev)
	out.Size = uint64(e.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 4096
	out.Nlink = 1
	if !e.IsDir() {
		n, err := f.tree.LinkCount(ctx, e, p)
		if err != nil {
			return f.toErrno(err, "stat /"+p)
		}
		out.Nlink = uint32(n)
	} else {
		n, err := f.tree.Subdirs(ctx, e)
		switch {
		case compose.Damaged(err):
			f.log.Warn("directory's subdirectories not counted: link count 1", "path", "/"+p, "err", err)
			out.Nlink = 1
		case err != nil:
			return f.toErrno(err, "stat /"+p)
		default:
			out.Nlink = 2 + uint32(n)
		}
		out.Size = 4096
		out.Blocks = 8
	}
	return 0
}

// Getattr reports the entry's stat data.
//
// The root's attributes are cached for a second only: the kernel asks for
// them at most once a second, and stat(2) of the mountpoint of a dead
// daemon reports ENOTCONN soon after, as scripts expect.
func (n *node) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if n.ino == rootIno {
		out.SetTimeout(rootAttrTimeout)
	} else {
		out.SetTimeout(cacheTimeout)
	}
	return n.fs.fillAttr(ctx, n.e, n.path(), n.ino, &out.Attr)
}

// rootAttrTimeout is how long the kernel may cache the root's attributes.
const rootAttrTimeout = time.Second

// Readlink returns a symlink's target.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.e.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	return []byte(n.e.Target), 0
}

// Getxattr answers from the entry's metadata, in memory.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range n.e.Xattrs {
		if x.Name == attr {
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

// Listxattr lists the entry's xattrs.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	size := 0
	for _, x := range n.e.Xattrs {
		size += len(x.Name) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, x := range n.e.Xattrs {
		off += copy(dest[off:], x.Name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

// Statfs reports the numbers of the filesystem that holds the objects,
// when the store says (Statfser); else only the name length.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.NameLen = 255
	sf, ok := n.fs.objs.(Statfser)
	if !ok {
		return 0
	}
	st, err := sf.Statfs()
	if err != nil {
		return n.fs.toErrno(err, "statfs")
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	return 0
}

// Readdir lists the composed directory from entry index off (offsets
// are entry indexes, so they are stable), calling add for each entry
// until it reports the reply full. A listing from its start composes
// the subdirectories ahead and remembers the listing for warming: a
// walk descends next, and reads the files it lists.
func (n *node) Readdir(ctx context.Context, off uint64, add func(c *compose.Entry, de fuse.DirEntry) bool) syscall.Errno {
	d, errno := n.dir(ctx)
	if errno != 0 {
		return errno
	}
	if off == 0 {
		n.fs.tree.Prefetch(d)
		n.fs.warm.listed(n.dirPath, d)
	}
	if off > uint64(len(d.Entries)) {
		return syscall.EINVAL
	}
	for i := int(off); i < len(d.Entries); i++ {
		c := d.Entries[i]
		de := fuse.DirEntry{Name: c.Name, Mode: c.Mode & syscall.S_IFMT, Ino: n.childIno(c), Off: uint64(i + 1)}
		if !add(c, de) {
			break
		}
	}
	return 0
}

// Timeouts for entries and attributes: the content never changes.
const cacheTimeout = 24 * time.Hour
