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
	cache *compose.Caches
	objs  objects   // r, or a lazy store over it (objectsFor)
	done  io.Closer // releases objs
}

// openTree composes commit sum of r with cacheSize bytes of metadata
// cache and prefetch workers: the commit, its layer commits and its root
// directory are read now.
func openTree(r *repo.Repo, sum repo.Checksum, cacheSize int64, prefetch int) (*tree, error) {
	ca, err := compose.NewCaches(cacheSize)
	if err != nil {
		return nil, err
	}
	objs, done, err := objectsFor(r, sum)
	if err != nil {
		ca.Close()
		return nil, err
	}
	t, err := compose.Open(objs, sum, compose.Options{Caches: ca, Prefetch: prefetch, NoIndex: noIndex(), Logf: func(f string, a ...any) { slog.Warn(fmt.Sprintf(f, a...)) }})
	if err != nil {
		done.Close()
		ca.Close()
		return nil, err
	}
	return &tree{t: t, cache: ca, objs: objs, done: done}, nil
}

// noIndex reports whether OSTREE_MOUNT_NO_INDEX asks to compose without
// the layers' metadata indexes (every file's attributes from its object),
// for benchmarks that measure what the index saves.
func noIndex() bool { return os.Getenv("OSTREE_MOUNT_NO_INDEX") != "" }

func (t *tree) close() {
	t.t.Close()
	t.cache.Close()
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
