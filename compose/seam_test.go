package compose

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// memImage stores nodes in mem as a precomposed image commit with the
// given hardlink groups (path -> leader).
func memImage(t *testing.T, mem *repotest.MemStore, links map[string]string, nodes ...repotest.Node) repo.Checksum {
	t.Helper()
	tree, meta, err := mem.PutTree(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	cm := &repo.Commit{RootTree: tree, RootMeta: meta}
	cm.Metadata.SetString(KeyMode, ModePrecomposed)
	if links != nil {
		cm.Metadata.Set(KeyHardlinks, linksVariant(links))
	}
	c, err := mem.PutCommit(cm)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Trees sharing one set of caches keep their link counts apart: two
// images whose hardlink groups have the same leader path in the same
// layer, of different sizes.
func TestSharedCachesLinkCounts(t *testing.T) {
	mem := repotest.NewMemStore()
	one := memImage(t, mem, map[string]string{"a": "a", "b": "a"},
		repotest.Node{Path: "a", Data: "1"}, repotest.Node{Path: "b", Data: "1"})
	two := memImage(t, mem, map[string]string{"a": "a", "b": "a", "c": "a"},
		repotest.Node{Path: "a", Data: "2"}, repotest.Node{Path: "b", Data: "2"}, repotest.Node{Path: "c", Data: "2"})
	caches, err := NewCaches(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer caches.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		commit repo.Checksum
		want   int
	}{{one, 2}, {two, 3}} {
		tree, err := Open(mem, tc.commit, Options{Caches: caches})
		if err != nil {
			t.Fatal(err)
		}
		e, err := tree.Lookup(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		n, err := tree.LinkCount(ctx, e, "a")
		if err != nil {
			t.Fatal(err)
		}
		if n != tc.want {
			t.Errorf("image %s: link count of a %d, want %d", tc.commit.Str(), n, tc.want)
		}
		tree.Close()
	}
}

// An object that is unavailable for now fails the composition that needs
// it, and is read again next time; one that is missing is damage, kept on
// its entry. An error wrapping both (a remote store: not here, and the
// fetch failed) is not damage.
func TestUnavailableIsNotDamage(t *testing.T) {
	ctx := context.Background()
	mem := repotest.NewMemStore()
	c := memImage(t, mem, nil, repotest.Node{Path: "d/f", Data: "f"}, repotest.Node{Path: "d/g", Data: "g"})
	fsum, err := repo.FileChecksum(&repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: 1}, strings.NewReader("f"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		err    error
		damage bool
	}{
		{"unavailable", repo.ErrUnavailable, false},
		{"not found and unavailable", errors.Join(repo.ErrObjectNotFound, repo.ErrUnavailable), false},
		{"not found", repo.ErrObjectNotFound, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if Damaged(tc.err) != tc.damage {
				t.Errorf("Damaged(%v) = %v", tc.err, !tc.damage)
			}
			r := &failOnce{ObjectReader: mem, bad: fsum, err: tc.err, left: 1}
			tree, err := Open(r, c, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			_, err = tree.Lookup(ctx, "d/f")
			if tc.damage {
				// Composed, with the damage on the entry, and kept so.
				if err != nil {
					t.Fatalf("lookup d/f: %v", err)
				}
				e, _ := tree.Lookup(ctx, "d/f")
				if !errors.Is(e.Err(), tc.err) {
					t.Errorf("d/f: entry error %v, want %v", e.Err(), tc.err)
				}
				return
			}
			if !errors.Is(err, repo.ErrUnavailable) {
				t.Fatalf("lookup d/f: %v, want ErrUnavailable", err)
			}
			e, err := tree.Lookup(ctx, "d/f")
			if err != nil || e.Err() != nil || e.Size != 1 {
				t.Errorf("lookup d/f again: %v, entry %v; want it composed once the object is back", err, e)
			}
		})
	}
}

type failOnce struct {
	ObjectReader
	bad  repo.Checksum
	err  error
	left int
}

func (f *failOnce) ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error) {
	if c == f.bad && f.left > 0 {
		f.left--
		return nil, f.err
	}
	return f.ObjectReader.ReadFileMeta(ctx, c)
}
