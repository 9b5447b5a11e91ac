package fs

import (
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/cache"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Open opens a regular file's object. Content objects are verified
// first when the mount was made with --verify.
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
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
	obj := n.e.Object
	if n.fs.verify {
		if errno := n.fs.verifyObject(obj, n.path); errno != 0 {
			return nil, 0, errno
		}
	}
	if n.fs.repo.Mode() != repo.ModeArchive {
		// The composed entry has the metadata already: just open the bytes.
		of, err := n.fs.repo.OpenContent(obj)
		if err != nil {
			return nil, 0, n.fs.toErrno(err, "open /"+n.path)
		}
		return &fileHandle{f: of, fd: int(of.Fd()), passthrough: n.fs.passthrough}, fuse.FOPEN_KEEP_CACHE, 0
	}
	f, err := n.fs.repo.OpenFile(obj)
	if err != nil {
		return nil, 0, n.fs.toErrno(err, "open /"+n.path)
	}
	h := &archiveHandle{fs: n.fs, f: f, size: n.e.Size}
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

var (
	_ = (fusefs.NodeReader)((*node)(nil))
	_ = (fusefs.NodeLseeker)((*node)(nil))
)

// Read serves a read: through its handle when the file was opened, else
// (zero-message opens) from the object file, verified first under
// --verify.
func (n *node) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if r, ok := fh.(fusefs.FileReader); ok {
		return r.Read(ctx, dest, off)
	}
	e, errno := n.content()
	if errno != 0 {
		return nil, errno
	}
	defer n.fs.fds.put(e)
	fd := int(e.f.Fd())
	m, err := unix.Pread(fd, dest, off)
	if err != nil {
		return nil, n.fs.toErrno(err, "read /"+n.path)
	}
	if len(dest) >= readAheadFrom && m == len(dest) {
		// A large read is the kernel's readahead of a sequential reader:
		// have the disk fetch what comes next while this reply travels.
		_ = unix.Fadvise(fd, off+int64(m), readAhead, unix.FADV_WILLNEED)
	}
	return fuse.ReadResultData(dest[:m]), 0
}

// Reads of readAheadFrom bytes or more start the object's readahead of
// the next readAhead bytes.
const (
	readAheadFrom = 128 << 10
	readAhead     = 8 << 20
)

// Lseek implements SEEK_DATA and SEEK_HOLE, as Read does.
func (n *node) Lseek(ctx context.Context, fh fusefs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if l, ok := fh.(fusefs.FileLseeker); ok {
		return l.Lseek(ctx, off, whence)
	}
	e, errno := n.content()
	if errno != 0 {
		return 0, errno
	}
	defer n.fs.fds.put(e)
	return seekData(int(e.f.Fd()), off, whence)
}

var _ = (fusefs.NodeFlusher)((*node)(nil))

// Flush has nothing to do on a read-only filesystem. ENOSYS tells the
// kernel so once, and it stops sending FLUSH on every close(2).
func (n *node) Flush(ctx context.Context, fh fusefs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// content returns the open object file of a regular file read without a
// handle.
func (n *node) content() (*fdEntry, syscall.Errno) {
	if n.fs.fds == nil || n.e.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, syscall.EBADF
	}
	if n.fs.verify {
		if errno := n.fs.verifyObject(n.e.Object, n.path); errno != 0 {
			return nil, errno
		}
	}
	e, err := n.fs.fds.get(n.e.Object)
	if err != nil {
		return nil, n.fs.toErrno(err, "open /"+n.path)
	}
	return e, 0
}

// verifyObject checks an object once per mount; a mismatch is logged and
// every open of it fails with EIO.
func (f *filesystem) verifyObject(c repo.Checksum, path string) syscall.Errno {
	if v, ok := f.verified.Load(c); ok {
		if v != nil {
			return syscall.EIO
		}
		return 0
	}
	err := f.repo.VerifyFile(c)
	if err != nil {
		f.log.Error("object failed verification", "path", "/"+path, "object", c.String(), "err", err)
		f.verified.Store(c, err)
		return syscall.EIO
	}
	f.verified.Store(c, nil)
	return 0
}

// fileHandle reads an object file that holds the content as it is (bare
// modes), with pread, or passes it through to the kernel.
type fileHandle struct {
	f           *os.File
	fd          int
	passthrough bool
}

var (
	_ = (fusefs.FileReader)((*fileHandle)(nil))
	_ = (fusefs.FileLseeker)((*fileHandle)(nil))
	_ = (fusefs.FileReleaser)((*fileHandle)(nil))
	_ = (fusefs.FilePassthroughFder)((*fileHandle)(nil))
)

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := unix.Pread(h.fd, dest, off)
	if err != nil {
		return nil, fusefs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Lseek implements SEEK_DATA and SEEK_HOLE on the object file; ENXIO past
// the end, so that cp's sparse-file loop ends.
func (h *fileHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return seekData(h.fd, off, whence)
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

func (h *fileHandle) PassthroughFd() (int, bool) { return h.fd, h.passthrough }

func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	return 0
}

// inflateCache holds the inflated content of small archive-mode files,
// bounded in bytes.
type inflateCache struct {
	c *cache.Cache[[]byte]
}

// smallFile is the size up to which archive-mode files are inflated whole
// into the cache; larger ones are streamed.
const smallFile = 4 << 20

// archiveHandle reads a deflated (archive mode) object: small files from
// the inflate cache, larger ones by streaming, restarting the stream when
// a read goes backwards.
type archiveHandle struct {
	fs   *filesystem
	f    *repo.File
	size int64

	mu  sync.Mutex
	r   io.Reader
	pos int64
}

var (
	_ = (fusefs.FileReader)((*archiveHandle)(nil))
	_ = (fusefs.FileLseeker)((*archiveHandle)(nil))
	_ = (fusefs.FileReleaser)((*archiveHandle)(nil))
)

func (h *archiveHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= h.size {
		return fuse.ReadResultData(nil), 0
	}
	if h.size <= smallFile {
		b, err := h.fs.archive.c.GetOrLoad(ctx, string(h.f.Checksum[:]), func() ([]byte, int64, error) {
			b, err := io.ReadAll(io.LimitReader(h.f.Reader(), h.size+1))
			if err == nil && int64(len(b)) != h.size {
				err = fmt.Errorf("object %s inflates to %d bytes, header says %d: %w", h.f.Checksum, len(b), h.size, repo.ErrCorrupt)
			}
			return b, int64(len(b)) + 64, err
		})
		if err != nil {
			return nil, h.fs.toErrno(err, "read")
		}
		return fuse.ReadResultData(b[off:min(off+int64(len(dest)), int64(len(b)))]), 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r == nil || off < h.pos {
		h.r, h.pos = h.f.Reader(), 0
	}
	if off > h.pos {
		n, err := io.CopyN(io.Discard, h.r, off-h.pos)
		h.pos += n
		if err != nil {
			return nil, h.fs.toErrno(flateErr(err), "read")
		}
	}
	want := dest[:min(int64(len(dest)), h.size-off)]
	n, err := io.ReadFull(h.r, want)
	h.pos += int64(n)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, h.fs.toErrno(flateErr(err), "read")
	}
	return fuse.ReadResultData(want[:n]), 0
}

func flateErr(err error) error {
	var ce flate.CorruptInputError
	if errors.As(err, &ce) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", repo.ErrCorrupt, err)
	}
	return err
}

// Lseek: archive objects have no holes.
func (h *archiveHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	switch whence {
	case unix.SEEK_DATA:
		if int64(off) >= h.size {
			return 0, syscall.ENXIO
		}
		return off, 0
	case unix.SEEK_HOLE:
		if int64(off) >= h.size {
			return 0, syscall.ENXIO
		}
		return uint64(h.size), 0
	}
	return 0, syscall.EINVAL
}

func (h *archiveHandle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	return 0
}
