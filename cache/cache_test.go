package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
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
