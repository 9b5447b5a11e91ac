package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// toErrno maps an error to the errno the kernel gets. It is the only
// place that does: wrapped errors are matched with errors.Is (go-fuse's
// own ToErrno would turn them into ENOSYS). Anything unexpected is EIO and
// is logged.
func (f *filesystem) toErrno(err error, what string) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, compose.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, compose.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	case errors.Is(err, repo.ErrUnavailable):
		// Before the errno match: a remote's errno (ECONNREFUSED) is not
		// the file's.
		f.log.Warn("object unavailable", "op", what, "err", err)
		return syscall.EIO
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, repo.ErrChecksumMismatch), errors.Is(err, repo.ErrCorrupt), errors.Is(err, repo.ErrObjectNotFound):
		f.log.Error("corrupt or missing object", "op", what, "err", err)
		return syscall.EIO
	}
	f.log.Error("I/O error", "op", what, "err", err)
	return syscall.EIO
}
