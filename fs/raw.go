package fs

import (
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ostree-mount/ostree-mount/compose"
)

// rawFS is the FUSE protocol side of a mount: go-fuse's server reads the
// kernel's requests and calls these, which find the node by its ID in
// the node table (table.go) and answer from it. It is ours rather than
// go-fuse's node bridge so that node IDs are inode numbers and the node
// table can be rebuilt by a successor (journal.go), and a node costs
// what this package keeps of it and no more.
//
// Operations the filesystem does not have are go-fuse's defaults
// (ENOSYS), which for a read-only tree is the answer: OPENDIR, FLUSH
// and, with zero-message opens, OPEN are refused once, and the kernel
// stops sending them.
type rawFS struct {
	fuse.RawFileSystem
	f *filesystem
	// noBacking is set once registering a backing file fails (not root,
	// or a kernel without passthrough): files are then read through the
	// daemon.
	noBacking atomic.Bool
}

func newRawFS(f *filesystem) *rawFS {
	return &rawFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), f: f}
}

func (r *rawFS) String() string { return "ostree-mount" }

func (r *rawFS) Init(s *fuse.Server) { r.f.server = s }

func status(errno syscall.Errno) fuse.Status { return fuse.Status(errno) }

// request returns a request's context and the node it names, revived
// when a predecessor gave it.
func (r *rawFS) request(cancel <-chan struct{}, h *fuse.InHeader) (*fuse.Context, *node, syscall.Errno) {
	ctx := &fuse.Context{Caller: h.Caller, Cancel: cancel}
	n, errno := r.f.nodes.get(ctx, h.NodeId)
	return ctx, n, errno
}

// Lookup and ReadDirPlus give the kernel nodes: they flush the journal
// before their replies. The other operations give none (a revived node
// is in the journal already).
func (r *rawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(h.Unique))
	defer r.f.journal.flush()
	ctx, p, errno := r.request(cancel, h)
	if errno != 0 {
		return status(errno)
	}
	_, errno = p.Lookup(ctx, name, out)
	if errno == syscall.ENOENT {
		// A negative entry, cached as long as the others.
		*out = fuse.EntryOut{}
		out.SetEntryTimeout(cacheTimeout)
		return fuse.OK
	}
	return status(errno)
}

func (r *rawFS) Forget(nodeid, nlookup uint64) { r.f.nodes.forget(nodeid, nlookup) }

func (r *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(in.Unique))
	ctx, n, errno := r.request(cancel, &in.InHeader)
	if errno != 0 {
		return status(errno)
	}
	return status(n.Getattr(ctx, out))
}

// SetAttr refuses every change: the filesystem is read-only.
func (r *rawFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return fuse.EROFS
}

func (r *rawFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	defer r.f.inflight.end(r.f.inflight.begin(h.Unique))
	ctx, n, errno := r.request(cancel, h)
	if errno != 0 {
		return nil, status(errno)
	}
	b, errno := n.Readlink(ctx)
	return b, status(errno)
}

func (r *rawFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	defer r.f.inflight.end(r.f.inflight.begin(h.Unique))
	ctx, n, errno := r.request(cancel, h)
	if errno != 0 {
		return 0, status(errno)
	}
	sz, errno := n.Getxattr(ctx, attr, dest)
	return sz, status(errno)
}

func (r *rawFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	defer r.f.inflight.end(r.f.inflight.begin(h.Unique))
	ctx, n, errno := r.request(cancel, h)
	if errno != 0 {
		return 0, status(errno)
	}
	sz, errno := n.Listxattr(ctx, dest)
	return sz, status(errno)
}

func (r *rawFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(h.Unique))
	ctx := &fuse.Context{Caller: h.Caller, Cancel: cancel}
	return status(r.f.nodes.root.Statfs(ctx, out))
}

func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(in.Unique))
	ctx, n, errno := r.request(cancel, &in.InHeader)
	if errno != 0 {
		return status(errno)
	}
	fh, flags, errno := n.Open(ctx, in.Flags)
	if errno != 0 {
		return status(errno)
	}
	out.OpenFlags = flags
	if fh.passthrough && fh.fd >= 0 && !r.noBacking.Load() {
		id, err := r.f.backings.acquire(n.ino, fh.fd, func(fd int) (int32, error) {
			id, errno := r.f.server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
			if errno != 0 {
				return 0, errno
			}
			return id, nil
		})
		if err != nil {
			r.noBacking.Store(true)
			r.f.log.Warn("passthrough refused by the kernel: files are read through the daemon", "err", err)
		} else {
			fh.backing = id
			out.BackingID = id
			out.OpenFlags = (out.OpenFlags | fuse.FOPEN_PASSTHROUGH) &^ fuse.FOPEN_KEEP_CACHE
		}
	}
	out.Fh = r.f.handles.add(fh)
	return fuse.OK
}

// handle returns the handle a request names, or none for a read without
// one (zero-message opens). A handle this server does not know is a
// predecessor's: the file is opened again under the kernel's number.
func (r *rawFS) handle(ctx *fuse.Context, n *node, fh uint64) (*fileHandle, syscall.Errno) {
	if fh == 0 {
		return nil, 0
	}
	if h := r.f.handles.get(fh, n.ino); h != nil {
		return h, 0
	}
	if n.e.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, syscall.EBADF
	}
	h, errno := n.openHandle(ctx)
	if errno != 0 {
		return nil, errno
	}
	return r.f.handles.adopt(fh, h), 0
}

func (r *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	defer r.f.inflight.end(r.f.inflight.begin(in.Unique))
	ctx, n, errno := r.request(cancel, &in.InHeader)
	if errno != 0 {
		return nil, status(errno)
	}
	h, errno := r.handle(ctx, n, in.Fh)
	if errno != 0 {
		return nil, status(errno)
	}
	res, errno := n.Read(ctx, h, buf[:min(len(buf), int(in.Size))], int64(in.Offset))
	return res, status(errno)
}

func (r *rawFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(in.Unique))
	ctx, n, errno := r.request(cancel, &in.InHeader)
	if errno != 0 {
		return status(errno)
	}
	h, errno := r.handle(ctx, n, in.Fh)
	if errno != 0 {
		return status(errno)
	}
	off, errno := n.Lseek(ctx, h, in.Offset, in.Whence)
	out.Offset = off
	return status(errno)
}

func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	h := r.f.handles.remove(in.Fh)
	if h == nil {
		return // a predecessor's handle, never read here
	}
	if h.backing != 0 {
		r.f.backings.release(h.ino, func(id int32) {
			if errno := r.f.server.UnregisterBackingFd(id); errno != 0 {
				r.f.log.Warn("passthrough: closing a backing file", "path", "/"+h.path, "err", errno)
			}
		})
	}
	h.release()
}

// ReadDir and ReadDirPlus list a directory without a handle: OPENDIR is
// refused (go-fuse's default ENOSYS), after which the kernel opens every
// directory of the mount by itself, keeps its listings cached and never
// sends RELEASEDIR. This saves two round trips per directory of a walk.
func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(in.Unique))
	ctx, n, errno := r.request(cancel, &in.InHeader)
	if errno != 0 {
		return status(errno)
	}
	return status(n.Readdir(ctx, in.Offset, func(_ *compose.Entry, de fuse.DirEntry) bool {
		return out.AddDirEntry(de)
	}))
}

func (r *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	defer r.f.inflight.end(r.f.inflight.begin(in.Unique))
	defer r.f.journal.flush()
	ctx, n, errno := r.request(cancel, &in.InHeader)
	if errno != 0 {
		return status(errno)
	}
	return status(n.Readdir(ctx, in.Offset, func(c *compose.Entry, de fuse.DirEntry) bool {
		eo := out.AddDirLookupEntry(de)
		if eo == nil {
			return false
		}
		if _, errno := n.child(ctx, c, eo); errno != 0 {
			// Node ID 0: the kernel takes the name alone, and looks
			// it up when it needs it (getting the error then).
			*eo = fuse.EntryOut{}
		}
		return true
	}))
}

// Flush has nothing to do on a read-only filesystem. ENOSYS tells the
// kernel so once, and it stops sending FLUSH on every close(2)
// (go-fuse's default answers OK, and close would cost a round trip).
func (r *rawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.ENOSYS }
