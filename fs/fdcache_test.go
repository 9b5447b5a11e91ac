package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
)

// objects makes n files and an open function over them that counts opens.
func objects(t *testing.T, n int) (sums []repo.Checksum, open func(context.Context, repo.Checksum) (*os.File, error), opens *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	opens = new(atomic.Int64)
	paths := map[repo.Checksum]string{}
	for i := 0; i < n; i++ {
		var s repo.Checksum
		s[0], s[1] = byte(i), byte(i>>8)
		p := filepath.Join(dir, s.String())
		if err := os.WriteFile(p, []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		paths[s] = p
		sums = append(sums, s)
	}
	open = func(_ context.Context, s repo.Checksum) (*os.File, error) {
		p, ok := paths[s]
		if !ok {
			return nil, os.ErrNotExist
		}
		opens.Add(1)
		return os.Open(p)
	}
	return sums, open, opens
}

func isClosed(f *os.File) bool {
	_, err := f.Stat()
	return errors.Is(err, os.ErrClosed)
}

func TestFDCacheBoundedAndReused(t *testing.T) {
	sums, open, opens := objects(t, 5)
	c := newFDCache(3, open)
	var first []*os.File
	for _, s := range sums {
		e, err := c.get(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, e.f)
		c.put(e)
	}
	if c.lru.Len() != 3 || len(c.m) != 3 {
		t.Errorf("%d files kept open, want 3", c.lru.Len())
	}
	if !isClosed(first[0]) || !isClosed(first[1]) {
		t.Error("the least recently used files were not closed")
	}
	e, err := c.get(context.Background(), sums[4])
	if err != nil {
		t.Fatal(err)
	}
	if e.f != first[4] || opens.Load() != 5 {
		t.Errorf("a cached object was opened again (%d opens)", opens.Load())
	}
	c.put(e)
	if _, err := c.get(context.Background(), repo.Checksum{0xff}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing object: %v, want ErrNotExist", err)
	}
	c.close()
	if !isClosed(first[4]) {
		t.Error("close left a file open")
	}
}

// A file evicted while a read holds it stays open until that read ends.
func TestFDCacheEvictedWhileInUse(t *testing.T) {
	sums, open, _ := objects(t, 3)
	c := newFDCache(1, open)
	held, err := c.get(context.Background(), sums[0])
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.get(context.Background(), sums[1]) // evicts sums[0]
	if err != nil {
		t.Fatal(err)
	}
	c.put(e)
	if isClosed(held.f) {
		t.Fatal("a file in use was closed on eviction")
	}
	buf := make([]byte, 1)
	if n, err := held.f.ReadAt(buf, 0); n != 1 || buf[0] != 0 {
		t.Fatalf("read of the held file: %d, %v", n, err)
	}
	c.put(held)
	if !isClosed(held.f) {
		t.Error("an evicted file was not closed when its last user let go")
	}
}

func TestFDCacheConcurrent(t *testing.T) {
	sums, open, _ := objects(t, 64)
	c := newFDCache(8, open)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 1)
			for i := 0; i < 500; i++ {
				k := (w*31 + i*7) % len(sums)
				e, err := c.get(context.Background(), sums[k])
				if err != nil {
					t.Error(err)
					return
				}
				if n, err := e.f.ReadAt(buf, 0); n != 1 || buf[0] != byte(k) {
					t.Errorf("object %d read %d bytes %v: %v", k, n, buf, err)
				}
				c.put(e)
			}
		}(w)
	}
	wg.Wait()
	if c.lru.Len() > 8 {
		t.Errorf("%d files open after the run, bound 8", c.lru.Len())
	}
	c.close()
}
