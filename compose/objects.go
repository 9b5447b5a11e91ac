package compose

import (
	"context"

	"github.com/ostree-mount/ostree-mount/repo"
)

// ObjectReader is what composition reads: metadata objects and the
// metadata of content objects, never content. *repo.Repo implements it,
// and so does *repo.Transaction, which also sees what it has staged; a
// remote store that fetches missing objects on demand implements it too.
//
// The error contract:
//   - a missing object wraps repo.ErrObjectNotFound, bad bytes
//     repo.ErrCorrupt or repo.ErrChecksumMismatch. These are permanent
//     (Damaged): the composed directory that needed the object keeps the
//     error on the entry, and is cached so.
//   - an object that cannot be had now (a remote that did not answer)
//     wraps repo.ErrUnavailable, which is never Damaged: the operation
//     fails, nothing is cached, and a retry reads the object again.
//   - reads may block (an object fetched on demand) and must return once
//     ctx ends, with an error wrapping ctx.Err(). Composition that others
//     wait on (a directory composed once for every concurrent caller)
//     runs with a context that the first caller's cancellation does not
//     end.
type ObjectReader interface {
	ReadCommit(ctx context.Context, c repo.Checksum) (*repo.Commit, error)
	ReadDirTree(ctx context.Context, c repo.Checksum) (*repo.DirTree, error)
	ReadDirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error)
	ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error)
}

var (
	_ ObjectReader = (*repo.Repo)(nil)
	_ ObjectReader = (*repo.Transaction)(nil)
)
