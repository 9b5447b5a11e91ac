package compose

import (
	"context"
	"testing"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// nestedLayers: a base with directories four levels deep and a second
// layer that deletes one (a whiteout), hides another's content (opaque)
// and adds one that holds only a whiteout (not a directory of the image).
func nestedLayers(t *testing.T, o Options) *Tree {
	t.Helper()
	r := repotest.NewRepo(t, repo.ModeBareUser)
	tree, _, err := importLayersWith(t, r, o,
		ct.Tar(t, ct.File("a/b/c/d/f", "1"), ct.File("a/b2/f", "2"), ct.Dir("a/gone/x/"), ct.File("a/opq/sub/f", "3"), ct.Dir("e/")),
		ct.Tar(t, ct.Whiteout("a/gone"), ct.Opaque("a/opq"), ct.File("a/opq/new", "4"), ct.Whiteout("a/ghost/nothing")))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// The subdirectory counts taken when a parent is composed equal the
// directories its composition lists, whiteouts and opaque markers
// applied, at every level, the root included.
func TestSubdirCounts(t *testing.T) {
	tree := nestedLayers(t, Options{})
	ctx := context.Background()
	checked := 0
	var walk func(e *Entry, p string)
	walk = func(e *Entry, p string) {
		n, err := tree.Subdirs(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		d, err := tree.ReadDir(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, c := range d.Entries {
			if c.IsDir() {
				want++
				walk(c, p+c.Name+"/")
			}
		}
		if n != want {
			t.Errorf("%s: Subdirs %d, its listing has %d directories", p, n, want)
		}
		checked++
	}
	walk(tree.Root(), "/")
	// /, a, a/b, a/b/c, a/b/c/d, a/b2, a/opq, e: a/gone is deleted,
	// a/opq/sub hidden, a/ghost holds only a whiteout.
	if checked != 8 {
		t.Errorf("%d directories walked, want 8", checked)
	}
}

// Prefetching a listed directory composes its subdirectories and theirs
// (two levels), and nothing deeper.
func TestPrefetchLevels(t *testing.T) {
	tree := nestedLayers(t, Options{Prefetch: 2})
	defer tree.Close()
	ctx := context.Background()
	// Keys are content-derived: the same layers imported elsewhere give
	// the same keys, found without touching this tree's cache.
	other := nestedLayers(t, Options{})
	root, err := tree.ReadDir(ctx, tree.Root())
	if err != nil {
		t.Fatal(err)
	}
	tree.Prefetch(root)
	tree.prefetch.wait()
	cached := func(p string) bool {
		t.Helper()
		e, err := other.Lookup(ctx, p)
		if err != nil {
			t.Fatalf("lookup %s: %v", p, err)
		}
		_, ok := tree.caches.dirs.Get(e.key)
		return ok
	}
	for _, p := range []string{"a", "e", "a/b", "a/b2", "a/opq"} {
		if !cached(p) {
			t.Errorf("%s was not prefetched", p)
		}
	}
	for _, p := range []string{"a/b/c", "a/b/c/d"} {
		if cached(p) {
			t.Errorf("%s (more than two levels below the listed root) was prefetched", p)
		}
	}
}

// Close stops the workers, and the tree still composes on demand.
func TestPrefetchClose(t *testing.T) {
	tree := nestedLayers(t, Options{Prefetch: 3})
	ctx := context.Background()
	root, err := tree.ReadDir(ctx, tree.Root())
	if err != nil {
		t.Fatal(err)
	}
	tree.Prefetch(root)
	tree.Close()
	tree.Prefetch(root) // ignored after Close
	if _, err := tree.Lookup(ctx, "a/b/c/d/f"); err != nil {
		t.Errorf("lookup after Close: %v", err)
	}
}

func TestDirTreeCacheBounded(t *testing.T) {
	c := newDirTreeCache()
	var sums []repo.Checksum
	for i := 0; i < dirTreeCacheSize+10; i++ {
		var s repo.Checksum
		s[0], s[1] = byte(i), byte(i>>8)
		sums = append(sums, s)
		c.add(s, &repo.DirTree{})
	}
	if len(c.m) != dirTreeCacheSize {
		t.Errorf("%d dirtrees kept, want %d", len(c.m), dirTreeCacheSize)
	}
	if _, ok := c.get(sums[0]); ok {
		t.Error("the oldest dirtree is still kept")
	}
	if _, ok := c.get(sums[len(sums)-1]); !ok {
		t.Error("the newest dirtree is not kept")
	}
}
