package fs

import (
	"container/list"
	"context"
	"os"
	"sync"
	"sync/atomic"

	"github.com/ostree-mount/ostree-mount/repo"
)

// fdCache keeps recently read object files open for reads that come
// without a file handle (zero-message opens), bounded in count. An entry
// evicted while a read uses it is closed when that read ends.
type fdCache struct {
	open func(context.Context, repo.Checksum) (*os.File, error)
	max  int

	mu  sync.Mutex
	m   map[repo.Checksum]*list.Element
	lru list.List // of *fdEntry, most recent first
}

type fdEntry struct {
	sum     repo.Checksum
	f       *os.File
	refs    int
	evicted bool
	// sequential: the file was advised sequential (a large read came).
	sequential atomic.Bool
}

func newFDCache(max int, open func(context.Context, repo.Checksum) (*os.File, error)) *fdCache {
	return &fdCache{open: open, max: max, m: make(map[repo.Checksum]*list.Element)}
}

// get returns the open object file; release it with put.
func (c *fdCache) get(ctx context.Context, sum repo.Checksum) (*fdEntry, error) {
	c.mu.Lock()
	if el, ok := c.m[sum]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*fdEntry)
		e.refs++
		c.mu.Unlock()
		return e, nil
	}
	c.mu.Unlock()
	f, err := c.open(ctx, sum)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[sum]; ok { // opened concurrently: keep the first
		f.Close()
		c.lru.MoveToFront(el)
		e := el.Value.(*fdEntry)
		e.refs++
		return e, nil
	}
	e := &fdEntry{sum: sum, f: f, refs: 1}
	c.m[sum] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		oe := old.Value.(*fdEntry)
		delete(c.m, oe.sum)
		oe.evicted = true
		if oe.refs == 0 {
			oe.f.Close()
		}
	}
	return e, nil
}

// put releases an entry got from get.
func (c *fdCache) put(e *fdEntry) {
	c.mu.Lock()
	e.refs--
	closeIt := e.refs == 0 && e.evicted
	c.mu.Unlock()
	if closeIt {
		e.f.Close()
	}
}

// close closes every cached file.
func (c *fdCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*fdEntry)
		e.evicted = true
		if e.refs == 0 {
			e.f.Close()
		}
	}
	c.lru.Init()
	clear(c.m)
}
