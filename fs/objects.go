package fs

import (
	"context"
	"fmt"
	"os"

	"github.com/hanwen/go-fuse/v2/splice"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Objects is what a mount reads file content through. *repo.Repo
// implements it; so does a remote store that fetches missing objects on
// demand, and the fakes of repo/repotest.
//
// The error contract is repo.Content's. In the errno the kernel gets
// (toErrno): a missing, corrupt or mismatching object is EIO (and logged
// as damage, and under --verify remembered for the mount); an object
// unavailable for now (repo.ErrUnavailable) is EIO for this request only;
// a request whose context ended (the reader was interrupted) is EINTR.
// Calls may block while an object arrives and must return once ctx ends.
type Objects interface {
	// OpenContent opens a regular file object's content, unverified.
	OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error)
	// VerifyContent checks a content object against its checksum
	// (Options.Verify).
	VerifyContent(ctx context.Context, c repo.Checksum) error
	// ContentFiles reports whether every content OpenContent returns is
	// a repo.ContentFile. The mount then opens files with no message to
	// the daemon and reads them with pread (or passes them through);
	// else it opens every file through the daemon and reads with ReadAt.
	ContentFiles() bool
}

// Statfser is implemented by Objects that can report the numbers of the
// filesystem holding them, for statfs(2) of the mount.
type Statfser interface {
	Statfs() (unix.Statfs_t, error)
}

var (
	_ Objects  = (*repo.Repo)(nil)
	_ Statfser = (*repo.Repo)(nil)
)

// newFilesystem sets up the state of a mount of tree, without the kernel.
func newFilesystem(objs Objects, tree *compose.Tree, o Options) *filesystem {
	f := &filesystem{
		tree:     tree,
		objs:     objs,
		log:      o.Logger,
		verify:   o.Verify,
		handles:  newHandleTable(),
		backings: newBackings(),
	}
	f.nodes = newNodeTable(f)
	switch {
	case !objs.ContentFiles():
	case o.Passthrough && os.Geteuid() == 0:
		f.passthrough = true
	default:
		f.fds = newFDCache(openObjects, func(ctx context.Context, c repo.Checksum) (*os.File, error) {
			ct, err := objs.OpenContent(ctx, c)
			if err != nil {
				return nil, err
			}
			cf, ok := ct.(repo.ContentFile)
			if !ok {
				ct.Close()
				return nil, fmt.Errorf("file %s: the store gave no file: %w", c, repo.ErrUnsupported)
			}
			return cf.File(), nil
		})
	}
	// Large reads splice from the object file when a reply fits a pipe.
	f.splice = f.fds != nil && o.maxRequest()+spliceSlack <= splice.MaxPipeSize()
	if f.fds != nil && !o.NoWarm {
		f.warm = newWarmer(f)
	}
	if o.MaxInodes == 0 {
		o.MaxInodes = DefaultMaxInodes
	}
	if o.MaxInodes > 0 {
		f.limiter = newInodeLimiter(o.MaxInodes)
	}
	return f
}

// spliceSlack is what a spliced reply takes in its pipe beyond its
// payload: its header and the page go-fuse keeps free.
const spliceSlack = 8 << 10
