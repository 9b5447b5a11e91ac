package compose

import (
	"github.com/ostree-mount/ostree-mount/cache"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Caches are the caches composition fills, one per kind of value. Their
// keys are content-derived (object checksums, directory keys that name
// the layer directories composed), so one set may serve several trees,
// even of different images.
type Caches struct {
	dirs    *cache.Cache[*Dir]          // composed directories, by Entry.key
	subdirs *cache.Cache[int]           // subdirectory counts, by Entry.key
	links   *cache.Cache[int]           // hardlink groups' link counts
	metas   *cache.Cache[*repo.DirMeta] // dirmetas, by checksum
	indexes *cache.Cache[*Index]        // metadata indexes, by sha256
	dts     *dirTreeCache               // recently read dirtrees, by checksum
}

// DefaultCacheBytes is the budget of the caches a tree makes for itself.
const DefaultCacheBytes = 64 << 20

// NewCaches makes a set of caches holding about maxBytes in all: most of
// it for composed directories, which are what a walk needs again.
func NewCaches(maxBytes int64) (*Caches, error) {
	dirs, err := cache.New[*Dir](max(maxBytes-maxBytes/4-maxBytes/8, 1))
	if err != nil {
		return nil, err
	}
	metas, _ := cache.New[*repo.DirMeta](max(maxBytes/8, 1))
	subdirs, _ := cache.New[int](max(maxBytes/16, 1))
	links, _ := cache.New[int](max(maxBytes/16, 1))
	indexes, _ := cache.New[*Index](max(maxBytes/8, 1))
	return &Caches{dirs: dirs, subdirs: subdirs, links: links, metas: metas, indexes: indexes, dts: newDirTreeCache()}, nil
}

// Close stops the caches' goroutines; no tree may use them after.
func (c *Caches) Close() {
	c.dirs.Close()
	c.subdirs.Close()
	c.links.Close()
	c.metas.Close()
	c.indexes.Close()
}

// Composed reports how many directories have been composed into these
// caches (a composed directory found in them is not counted again): a
// second walk of an image whose directories the caches still hold
// composes none.
func (c *Caches) Composed() uint64 { return c.dirs.Loads() }
