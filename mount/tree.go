package mount

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// This file holds every call into compose.Open, compose.NewCaches, fs.Mount and
// fs.MountDevice, the seam between the lifecycle and what it serves.

// tree is a composed commit and the cache behind it.
type tree struct {
	t     *compose.Tree
	cache *compose.Caches // nil: shared, not this tree's to close
	objs  objects         // r, or a lazy store over it (objectsFor)
	done  io.Closer       // releases objs
}

// caches are the metadata caches of composition, which the mount
// service shares between its mounts.
type caches = compose.Caches

// newCaches makes a set of metadata caches of cacheSize bytes.
func newCaches(cacheSize int64) (*caches, error) {
	return compose.NewCaches(cacheSize)
}

// openTree composes commit sum of r, which rev named, with prefetch
// workers: the commit, its layer commits and its root directory are read
// now. Its metadata cache is shared when not nil (the mount service's),
// else one of cacheSize bytes of its own.
func openTree(r *repo.Repo, sum repo.Checksum, rev string, cacheSize int64, prefetch int, shared *caches) (*tree, error) {
	ca, own := shared, (*compose.Caches)(nil)
	if ca == nil {
		var err error
		if ca, err = newCaches(cacheSize); err != nil {
			return nil, err
		}
		own = ca
	}
	closeOwn := func() {
		if own != nil {
			own.Close()
		}
	}
	objs, done, err := objectsFor(r, sum, rev)
	if err != nil {
		closeOwn()
		return nil, err
	}
	t, err := compose.Open(objs, sum, compose.Options{Caches: ca, Prefetch: prefetch, NoIndex: noIndex(), Logf: func(f string, a ...any) { slog.Warn(fmt.Sprintf(f, a...)) }})
	if err != nil {
		done.Close()
		closeOwn()
		return nil, err
	}
	return &tree{t: t, cache: own, objs: objs, done: done}, nil
}

// noIndex reports whether OSTREE_MOUNT_NO_INDEX asks to compose without
// the layers' metadata indexes (every file's attributes from its object),
// for benchmarks that measure what the index saves.
func noIndex() bool { return os.Getenv("OSTREE_MOUNT_NO_INDEX") != "" }

func (t *tree) close() {
	t.t.Close()
	if t.cache != nil {
		t.cache.Close()
	}
	t.done.Close()
}

// serveFS serves t at mnt (or on o.Device, already mounted there).
func serveFS(r *repo.Repo, t *tree, mnt string, o fs.Options) (*fs.Server, error) {
	return fs.Mount(mnt, t.objs, t.t, o)
}

// mountDevice mounts dev, a /dev/fuse descriptor, at mnt and returns the
// mount's device number; nothing serves it yet.
func mountDevice(dev *os.File, mnt string, o fs.Options) (uint64, error) {
	return fs.MountDevice(dev, mnt, o)
}
