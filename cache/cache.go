package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache maps string keys to values of type V, bounded by total cost.
type Cache[V any] struct {
	// rc is built in the background (see New) and set, under mu, before
	// ready is closed.
	rc        *ristretto.Cache[string, V]
	ready     chan struct{}
	cfg       *ristretto.Config[string, V]
	buildOnce sync.Once
	// early holds the Sets made before rc was built; they are applied
	// when it is. earlyCost is their total cost.
	early     map[string]earlySet[V]
	earlyCost int64
	maxBytes  int64

	mu       sync.Mutex
	inflight map[string]*call[V]

	loads atomic.Uint64 // loads GetOrLoad ran
}

type earlySet[V any] struct {
	val  V
	cost int64
}

// The cache starts building its ristretto part once it holds buildAfter
// entries (or a sixteenth of its budget); until it is built it keeps at
// most maxEarly entries (and an eighth of its budget).
const (
	buildAfter = 256
	maxEarly   = 4096
)

type call[V any] struct {
	done chan struct{}
	val  V
	cost int64
	err  error
}

// New returns a cache holding at most maxBytes of cost.
//
// Ristretto's counters and sketches take milliseconds to allocate and
// fault in, which a mount would pay before serving its first request; so
// the cache first keeps its entries in a plain map and builds them in the
// background once it holds a few hundred entries (or on Wait or Close).
// The map's entries then move to ristretto.
func New[V any](maxBytes int64) (*Cache[V], error) {
	c, cfg, err := newUnbuilt[V](maxBytes)
	if err != nil {
		return nil, err
	}
	c.cfg = cfg
	return c, nil
}

// startBuild builds the ristretto part in the background, once.
func (c *Cache[V]) startBuild() {
	c.buildOnce.Do(func() {
		if c.cfg != nil {
			go c.build(c.cfg)
		}
	})
}

// newUnbuilt returns a cache whose ristretto part build(cfg) makes.
func newUnbuilt[V any](maxBytes int64) (*Cache[V], *ristretto.Config[string, V], error) {
	if maxBytes <= 0 {
		return nil, nil, fmt.Errorf("cache size %d: must be positive", maxBytes)
	}
	// Ristretto wants about ten counters per item it may hold; our items
	// (composed directories, file attributes) average a few KiB, and
	// counters cost memory of their own.
	counters := maxBytes / 256
	if counters < 1000 {
		counters = 1000
	}
	cfg := &ristretto.Config[string, V]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
		Metrics:            true,
	}
	// Validate the configuration now, so that the background build
	// cannot fail.
	if cfg.NumCounters <= 0 || cfg.MaxCost <= 0 || cfg.BufferItems <= 0 {
		return nil, nil, fmt.Errorf("cache: bad configuration %+v", *cfg)
	}
	return &Cache[V]{ready: make(chan struct{}), maxBytes: maxBytes, inflight: map[string]*call[V]{}}, cfg, nil
}

func (c *Cache[V]) build(cfg *ristretto.Config[string, V]) {
	rc, err := ristretto.NewCache(cfg)
	if err != nil {
		// Unreachable with the configuration New checked; a cache that
		// never fills is still correct.
		panic(fmt.Sprintf("cache: %v", err))
	}
	c.mu.Lock()
	c.rc = rc
	for k, e := range c.early {
		rc.Set(k, e.val, e.cost)
	}
	c.early, c.earlyCost = nil, 0
	close(c.ready)
	c.mu.Unlock()
}

// built returns the ristretto cache, or nil while it is being built.
func (c *Cache[V]) built() *ristretto.Cache[string, V] {
	select {
	case <-c.ready:
		return c.rc
	default:
		return nil
	}
}

// Get returns a cached value.
func (c *Cache[V]) Get(key string) (V, bool) {
	if rc := c.built(); rc != nil {
		return rc.Get(key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rc != nil {
		return c.rc.Get(key)
	}
	e, ok := c.early[key]
	return e.val, ok
}

// Set offers a value to the cache; it may be dropped.
func (c *Cache[V]) Set(key string, v V, cost int64) {
	if rc := c.built(); rc != nil {
		rc.Set(key, v, cost)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rc != nil {
		c.rc.Set(key, v, cost)
		return
	}
	if _, ok := c.early[key]; ok {
		return
	}
	if len(c.early) >= maxEarly || c.earlyCost+cost > c.maxBytes/8 {
		c.startBuild()
		return
	}
	if c.early == nil {
		c.early = map[string]earlySet[V]{}
	}
	c.early[key] = earlySet[V]{v, cost}
	c.earlyCost += cost
	if len(c.early) >= buildAfter || c.earlyCost > c.maxBytes/16 {
		c.startBuild()
	}
}

// GetOrLoad returns the cached value of key, or runs load once for all
// concurrent callers and offers its result to the cache. A load error is
// returned to every waiter and not cached. A waiter whose ctx ends stops
// waiting; the load goes on for the others.
func (c *Cache[V]) GetOrLoad(ctx context.Context, key string, load func() (V, int64, error)) (V, error) {
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	c.mu.Lock()
	// Re-check under the lock: a load may have finished since the Get.
	if c.rc != nil {
		if v, ok := c.rc.Get(key); ok {
			c.mu.Unlock()
			return v, nil
		}
	} else if e, ok := c.early[key]; ok {
		c.mu.Unlock()
		return e.val, nil
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

	c.loads.Add(1)
	cl.val, cl.cost, cl.err = load()
	if cl.err == nil {
		c.Set(key, cl.val, cl.cost)
		// Let the buffered Set land before the call is forgotten, so that a
		// caller arriving next finds the value (if it was admitted).
		if rc := c.built(); rc != nil {
			rc.Wait()
		}
	}
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	close(cl.done)
	return cl.val, cl.err
}

// Wait blocks until the cache is built and buffered Sets are applied.
func (c *Cache[V]) Wait() {
	c.startBuild()
	<-c.ready
	c.rc.Wait()
}

// Close stops the cache's goroutines.
func (c *Cache[V]) Close() {
	c.startBuild()
	<-c.ready
	c.rc.Close()
}

// Loads reports how many loads GetOrLoad has run: the values it had to
// make because no caller had made them, or they had been evicted.
func (c *Cache[V]) Loads() uint64 { return c.loads.Load() }

// Metrics reports hits, misses and the current cost.
func (c *Cache[V]) Metrics() (hits, misses uint64, cost uint64) {
	rc := c.built()
	if rc == nil {
		return 0, 0, 0
	}
	if m := rc.Metrics; m != nil {
		return m.Hits(), m.Misses(), m.CostAdded() - m.CostEvicted()
	}
	return 0, 0, 0
}
