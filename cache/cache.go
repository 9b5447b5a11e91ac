package cache

import (
	"context"
	"fmt"
	"sync"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache maps string keys to values of type V, bounded by total cost.
type Cache[V any] struct {
	rc *ristretto.Cache[string, V]

	mu       sync.Mutex
	inflight map[string]*call[V]
}

type call[V any] struct {
	done chan struct{}
	val  V
	cost int64
	err  error
}

// New returns a cache holding at most maxBytes of cost.
func New[V any](maxBytes int64) (*Cache[V], error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("cache size %d: must be positive", maxBytes)
	}
	// Ristretto wants about ten counters per item it may hold; our items
	// (composed directories, file attributes) average a few KiB, and
	// counters cost memory of their own.
	counters := maxBytes / 256
	if counters < 1000 {
		counters = 1000
	}
	rc, err := ristretto.NewCache(&ristretto.Config[string, V]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
		Metrics:            true,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Cache[V]{rc: rc, inflight: map[string]*call[V]{}}, nil
}

// Get returns a cached value.
func (c *Cache[V]) Get(key string) (V, bool) { return c.rc.Get(key) }

// Set offers a value to the cache; it may be dropped.
func (c *Cache[V]) Set(key string, v V, cost int64) { c.rc.Set(key, v, cost) }

// GetOrLoad returns the cached value of key, or runs load once for all
// concurrent callers and offers its result to the cache. A load error is
// returned to every waiter and not cached. A waiter whose ctx ends stops
// waiting; the load goes on for the others.
func (c *Cache[V]) GetOrLoad(ctx context.Context, key string, load func() (V, int64, error)) (V, error) {
	if v, ok := c.rc.Get(key); ok {
		return v, nil
	}
	c.mu.Lock()
	// Re-check under the lock: a load may have finished since the Get.
	if v, ok := c.rc.Get(key); ok {
		c.mu.Unlock()
		return v, nil
	}
	if cl, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.val, cl.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	cl := &call[V]{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()

	cl.val, cl.cost, cl.err = load()
	if cl.err == nil {
		c.rc.Set(key, cl.val, cl.cost)
		// Let the buffered Set land before the call is forgotten, so that a
		// caller arriving next finds the value (if it was admitted).
		c.rc.Wait()
	}
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	close(cl.done)
	return cl.val, cl.err
}

// Wait blocks until buffered Sets are applied.
func (c *Cache[V]) Wait() { c.rc.Wait() }

// Close stops the cache's goroutines.
func (c *Cache[V]) Close() { c.rc.Close() }

// Metrics reports hits, misses and the current cost.
func (c *Cache[V]) Metrics() (hits, misses uint64, cost uint64) {
	if m := c.rc.Metrics; m != nil {
		return m.Hits(), m.Misses(), m.CostAdded() - m.CostEvicted()
	}
	return 0, 0, 0
}
