package cache

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetOrLoadSingleFlight(t *testing.T) {
	c, err := New[string](1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var loads atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]string, 32)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err := c.GetOrLoad(context.Background(), "k", func() (string, int64, error) {
				loads.Add(1)
				<-release
				return "value", 5, nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}(i)
	}
	// Let every goroutine reach the cache before the load finishes: the
	// loader blocks until released, so all callers are either waiting on
	// the in-flight call or will find the cached value.
	for loads.Load() == 0 {
		waitRunnable()
	}
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("loader ran %d times", n)
	}
	if n := c.Loads(); n != 1 {
		t.Errorf("Loads() = %d, want 1", n)
	}
	if _, err := c.GetOrLoad(context.Background(), "k", func() (string, int64, error) { return "other", 5, nil }); err != nil || c.Loads() != 1 {
		t.Errorf("a cached key loaded again: Loads() = %d, err %v", c.Loads(), err)
	}
	for i, r := range results {
		if r != "value" {
			t.Errorf("caller %d got %q", i, r)
		}
	}
}

func TestGetOrLoadErrorNotCached(t *testing.T) {
	c, _ := New[int](1 << 20)
	defer c.Close()
	boom := errors.New("boom")
	if _, err := c.GetOrLoad(context.Background(), "k", func() (int, int64, error) { return 0, 1, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	v, err := c.GetOrLoad(context.Background(), "k", func() (int, int64, error) { return 7, 1, nil })
	if err != nil || v != 7 {
		t.Fatalf("second load %v %v", v, err)
	}
}

func TestCostBound(t *testing.T) {
	c, _ := New[[]byte](64 << 10)
	defer c.Close()
	for i := 0; i < 1000; i++ {
		b := make([]byte, 1024)
		c.Set(string(rune(i)), b, int64(len(b)))
	}
	c.Wait()
	_, _, cost := c.Metrics()
	if cost == 0 {
		t.Fatal("nothing was admitted")
	}
	if cost > 64<<10 {
		t.Errorf("cost %d exceeds the 64 KiB budget", cost)
	}
}

func TestNewRejectsZero(t *testing.T) {
	if _, err := New[int](0); err == nil {
		t.Error("zero budget accepted")
	}
}

// Before its ristretto part is built, the cache serves what was Set from
// memory, loads single-flight, and hands it all over once built.
func TestBeforeBuilt(t *testing.T) {
	c, cfg, err := newUnbuilt[string](1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache hit")
	}
	c.Set("a", "A", 1)
	if v, ok := c.Get("a"); !ok || v != "A" {
		t.Fatalf("Get before build = %q, %v", v, ok)
	}
	loads := 0
	for range 2 {
		v, err := c.GetOrLoad(context.Background(), "b", func() (string, int64, error) { loads++; return "B", 1, nil })
		if err != nil || v != "B" {
			t.Fatalf("GetOrLoad = %q, %v", v, err)
		}
	}
	if loads != 1 {
		t.Errorf("loaded %d times before build", loads)
	}
	if h, m, cost := c.Metrics(); h+m+cost != 0 {
		t.Errorf("metrics before build: %d %d %d", h, m, cost)
	}
	built := make(chan struct{})
	go func() { c.build(cfg); close(built) }()
	c.Wait()
	<-built
	defer c.Close()
	for k, want := range map[string]string{"a": "A", "b": "B"} {
		if v, ok := c.Get(k); !ok || v != want {
			t.Errorf("Get(%q) after build = %q, %v", k, v, ok)
		}
	}
	if c.early != nil {
		t.Error("early sets kept after build")
	}
}

// The cache keeps its first entries in a map and builds its ristretto
// part once it holds buildAfter of them, moving them over.
func TestBuildsAfterEntries(t *testing.T) {
	c, err := New[int](64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buildAfter - 1 {
		c.Set(strconv.Itoa(i), i, 1)
	}
	if c.built() != nil {
		t.Fatal("built before buildAfter entries")
	}
	if v, ok := c.Get("7"); !ok || v != 7 {
		t.Fatalf("Get from the early map = %d, %v", v, ok)
	}
	c.Set("last", -1, 1)
	select {
	case <-c.ready:
	case <-time.After(30 * time.Second):
		t.Fatal("not built 30 s after buildAfter entries")
	}
	defer c.Close()
	c.Wait()
	for i := range buildAfter - 1 {
		if v, ok := c.Get(strconv.Itoa(i)); !ok || v != i {
			t.Fatalf("after build Get(%d) = %d, %v", i, v, ok)
		}
	}
}
