package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Open opens a regular file's content. Content objects are verified
// first when the mount was made with --verify.
func (n *node) Open(ctx context.Context, flags uint32) (*fileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.e.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, 0, syscall.EINVAL
	}
	if n.fs.fds != nil {
		// Zero-message opens: ENOSYS tells the kernel to stop sending
		// OPEN and RELEASE for files on this mount and to keep their
		// page cache; reads come without a handle (see Read).
		return nil, 0, syscall.ENOSYS
	}
	h, errno := n.openHandle(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

// openHandle opens the node's content for reads through a handle: at
// OPEN, or for a handle that a predecessor opened (the kernel still
// holds it; the content is the same).
func (n *node) openHandle(ctx context.Context) (*fileHandle, syscall.Errno) {
	obj, path := n.e.Object, n.path()
	if n.fs.verify {
		if errno := n.fs.verifyObject(ctx, obj, path); errno != 0 {
			return nil, errno
		}
	}
	// The composed entry has the metadata already: just open the bytes.
	c, err := n.fs.objs.OpenContent(ctx, obj)
	if err != nil {
		return nil, n.fs.toErrno(err, "open /"+path)
	}
	h := &fileHandle{fs: n.fs, ino: n.ino, path: path, c: c, fd: -1, size: n.e.Size}
	if cf, ok := c.(repo.ContentFile); ok {
		h.fd, h.passthrough = int(cf.File().Fd()), n.fs.passthrough
	}
	return h, 0
}

// Read serves a read: through its handle when the file was opened, else
// (zero-message opens) from the object file, verified first under
// --verify.
func (n *node) Read(ctx context.Context, fh *fileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if fh != nil {
		return fh.Read(ctx, dest, off)
	}
	if off == 0 {
		n.fs.warm.read(n.path())
	}
	e, errno := n.content(ctx)
	if errno != 0 {
		return nil, errno
	}
	fd := int(e.f.Fd())
	if len(dest) >= readAheadFrom && !e.sequential.Load() {
		// A large read is the kernel's readahead of a sequential reader:
		// the object file is advised sequential, once, which doubles its
		// own readahead. (A FADV_WILLNEED of the next megabytes on every
		// read cost the daemon twice the CPU of a cold read: each call
		// walks the page cache of the whole window again.)
		e.sequential.Store(true)
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
	}
	if sz := min(int64(len(dest)), n.e.Size-off); n.fs.splice && sz >= readAheadFrom {
		// go-fuse splices the bytes from the object file to the
		// kernel, through a pipe: no copy in the daemon. The file is
		// released when the reply is written (fileResult.Done).
		return &fileResult{fds: n.fs.fds, e: e, off: off, sz: int(sz)}, 0
	}
	defer n.fs.fds.put(e)
	m, err := unix.Pread(fd, dest, off)
	if err != nil {
		return nil, n.fs.toErrno(err, "read /"+n.path())
	}
	return dataResult(dest[:m]), 0
}

// sliceResult is a reply of bytes in memory, which go-fuse writes with
// writev (it takes its Slices method for its own vectored results),
// never trying to splice them.
type sliceResult struct{ b []byte }

func dataResult(b []byte) fuse.ReadResult { return &sliceResult{b} }

func (r *sliceResult) Bytes([]byte) ([]byte, fuse.Status) { return r.b, fuse.OK }
func (r *sliceResult) Size() int                          { return len(r.b) }
func (r *sliceResult) Done()                              {}
func (r *sliceResult) Slices() ([][]byte, fuse.Status)    { return [][]byte{r.b}, fuse.OK }

// fileResult is a reply of sz bytes of an open object file from off,
// which go-fuse splices (its Seekable method), or reads into its buffer
// with Bytes when it cannot. Done, once the reply is written, releases
// the file.
type fileResult struct {
	fds *fdCache
	e   *fdEntry
	off int64
	sz  int
}

func (r *fileResult) Seekable() (uintptr, int64, int) { return r.e.f.Fd(), r.off, r.sz }
func (r *fileResult) Size() int                       { return r.sz }

func (r *fileResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	n, err := unix.Pread(int(r.e.f.Fd()), buf[:min(len(buf), r.sz)], r.off)
	if err != nil {
		return nil, fuse.ToStatus(err)
	}
	return buf[:n], fuse.OK
}

func (r *fileResult) Done() {
	if r.e != nil {
		r.fds.put(r.e)
		r.e = nil
	}
}

// readAheadFrom is the size from which a read is taken for readahead.
const readAheadFrom = 128 << 10

// Lseek implements SEEK_DATA and SEEK_HOLE, as Read does.
func (n *node) Lseek(ctx context.Context, fh *fileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if fh != nil {
		return fh.Lseek(ctx, off, whence)
	}
	e, errno := n.content(ctx)
	if errno != 0 {
		return 0, errno
	}
	defer n.fs.fds.put(e)
	return seekData(int(e.f.Fd()), off, whence)
}

// content returns the open object file of a regular file read without a
// handle.
func (n *node) content(ctx context.Context) (*fdEntry, syscall.Errno) {
	if n.fs.fds == nil || n.e.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, syscall.EBADF
	}
	if n.fs.verify {
		if errno := n.fs.verifyObject(ctx, n.e.Object, n.path()); errno != 0 {
			return nil, errno
		}
	}
	e, err := n.fs.fds.get(ctx, n.e.Object)
	if err != nil {
		return nil, n.fs.toErrno(err, "open /"+n.path())
	}
	return e, 0
}

// verifyObject checks an object once per mount; a mismatch (or a missing
// or corrupt object) is logged and every open of it fails with EIO. Other
// failures (an object unavailable for now, a cancelled request) fail this
// open only: the next one verifies again.
func (f *filesystem) verifyObject(ctx context.Context, c repo.Checksum, path string) syscall.Errno {
	if v, ok := f.verified.Load(c); ok {
		if v != nil {
			return syscall.EIO
		}
		return 0
	}
	err := f.objs.VerifyContent(ctx, c)
	if err != nil && !compose.Damaged(err) {
		return f.toErrno(err, "verify /"+path)
	}
	if err != nil {
		f.log.Error("object failed verification", "path", "/"+path, "object", c.String(), "err", err)
		f.verified.Store(c, err)
		return syscall.EIO
	}
	f.verified.Store(c, nil)
	return 0
}

// fileHandle reads an opened content: with pread on its file when it has
// one (bare modes; the file may then be passed through to the kernel),
// else through its ReadAt (archive mode inflates, a remote store may
// fetch).
type fileHandle struct {
	fs          *filesystem
	ino         uint64 // the node it reads
	path        string
	c           repo.Content
	fd          int // -1: no file
	size        int64
	passthrough bool
	backing     int32 // the kernel's backing file ID (passthrough), 0: none
}

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h.fd >= 0 {
		n, err := unix.Pread(h.fd, dest, off)
		if err != nil {
			return nil, h.fs.toErrno(err, "read /"+h.path)
		}
		return dataResult(dest[:n]), 0
	}
	return readContent(ctx, h.fs, h.c, h.size, dest, off, h.path)
}

// readContent reads a content that has no file, of the given size.
func readContent(ctx context.Context, f *filesystem, c repo.Content, size int64, dest []byte, off int64, path string) (fuse.ReadResult, syscall.Errno) {
	if off >= size {
		return dataResult(nil), 0
	}
	if err := ctx.Err(); err != nil {
		return nil, f.toErrno(err, "read /"+path)
	}
	want := dest[:min(int64(len(dest)), size-off)]
	n, err := c.ReadAt(want, off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(want)) {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("content is %d bytes, shorter than its %d: %w: %w", off+int64(n), size, repo.ErrCorrupt, err)
		}
		return nil, f.toErrno(err, "read /"+path)
	}
	return dataResult(want[:n]), 0
}

// Lseek implements SEEK_DATA and SEEK_HOLE on the object file; ENXIO past
// the end, so that cp's sparse-file loop ends. A content without a file
// has no holes.
func (h *fileHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	if h.fd >= 0 {
		return seekData(h.fd, off, whence)
	}
	return seekNoHoles(h.size, off, whence)
}

func seekData(fd int, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(fd, int64(off), int(whence))
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return 0, errno
		}
		return 0, syscall.EIO
	}
	return uint64(n), 0
}

func seekNoHoles(size int64, off uint64, whence uint32) (uint64, syscall.Errno) {
	switch whence {
	case unix.SEEK_DATA:
		if int64(off) >= size {
			return 0, syscall.ENXIO
		}
		return off, 0
	case unix.SEEK_HOLE:
		if int64(off) >= size {
			return 0, syscall.ENXIO
		}
		return uint64(size), 0
	}
	return 0, syscall.EINVAL
}

// release closes the handle's content.
func (h *fileHandle) release() {
	h.c.Close()
}
