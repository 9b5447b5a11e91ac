package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// zeroOpendir makes opening a directory cost no message. It answers the
// kernel's first OPENDIR with ENOSYS, after which the kernel opens every
// directory of the mount by itself, keeps its listings cached
// (FOPEN_CACHE_DIR is then the default) and never sends RELEASEDIR; the
// listings it still needs come without a handle, and are served here
// through a handle opened and released in the daemon for that one
// request. Offsets are entry indexes, so a listing resumes where the
// previous request stopped. This saves two round trips per directory of
// every walk.
type zeroOpendir struct {
	fuse.RawFileSystem
}

func (z *zeroOpendir) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.ENOSYS
}

func (z *zeroOpendir) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return z.withHandle(cancel, in, func(in *fuse.ReadIn) fuse.Status { return z.RawFileSystem.ReadDir(cancel, in, out) })
}

func (z *zeroOpendir) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return z.withHandle(cancel, in, func(in *fuse.ReadIn) fuse.Status { return z.RawFileSystem.ReadDirPlus(cancel, in, out) })
}

// withHandle runs a listing request on a handle of its own when the
// kernel sent none.
func (z *zeroOpendir) withHandle(cancel <-chan struct{}, in *fuse.ReadIn, read func(*fuse.ReadIn) fuse.Status) fuse.Status {
	if in.Fh != 0 {
		return read(in)
	}
	var oo fuse.OpenOut
	open := fuse.OpenIn{InHeader: in.InHeader, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}
	if st := z.RawFileSystem.OpenDir(cancel, &open, &oo); !st.Ok() {
		return st
	}
	h := *in
	h.Fh = oo.Fh
	st := read(&h)
	z.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: oo.Fh})
	return st
}
