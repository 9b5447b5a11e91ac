package compose

import (
	"sync"

	"github.com/ostree-mount/ostree-mount/repo"
)

// dirTreeCache keeps the most recently read dirtrees, parsed. Composing a
// directory reads its subdirectories' dirtrees to count their own
// subdirectories (the link count), and a walk composes those
// subdirectories right after; this saves reading and hashing each dirtree
// twice. It is bounded in count, first in first out, and part of
// Caches: trees that share their caches share it too.
type dirTreeCache struct {
	mu   sync.Mutex
	m    map[repo.Checksum]*repo.DirTree
	ring []repo.Checksum
	next int
}

// dirTreeCacheSize is how many dirtrees are kept: a few directory levels
// of a walk.
const dirTreeCacheSize = 1024

func newDirTreeCache() *dirTreeCache {
	return &dirTreeCache{m: make(map[repo.Checksum]*repo.DirTree, dirTreeCacheSize), ring: make([]repo.Checksum, 0, dirTreeCacheSize)}
}

func (c *dirTreeCache) get(sum repo.Checksum) (*repo.DirTree, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dt, ok := c.m[sum]
	return dt, ok
}

func (c *dirTreeCache) add(sum repo.Checksum, dt *repo.DirTree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sum]; ok {
		return
	}
	if len(c.ring) < dirTreeCacheSize {
		c.ring = append(c.ring, sum)
	} else {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = sum
		c.next = (c.next + 1) % dirTreeCacheSize
	}
	c.m[sum] = dt
}
