package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// damagedReader fails the reads of chosen objects, as a repository with
// those objects deleted (ErrObjectNotFound) or corrupted (ErrCorrupt).
type damagedReader struct {
	ObjectReader
	bad map[repo.Checksum]error
}

func (d *damagedReader) fail(kind string, c repo.Checksum) error {
	if err, ok := d.bad[c]; ok {
		return fmt.Errorf("%s %s: %w", kind, c, err)
	}
	return nil
}

func (d *damagedReader) ReadDirTree(ctx context.Context, c repo.Checksum) (*repo.DirTree, error) {
	if err := d.fail("dirtree", c); err != nil {
		return nil, err
	}
	return d.ObjectReader.ReadDirTree(ctx, c)
}

func (d *damagedReader) ReadDirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error) {
	if err := d.fail("dirmeta", c); err != nil {
		return nil, err
	}
	return d.ObjectReader.ReadDirMeta(ctx, c)
}

func (d *damagedReader) ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error) {
	if err := d.fail("file", c); err != nil {
		return nil, err
	}
	return d.ObjectReader.ReadFileMeta(ctx, c)
}

// TestDamageContained: a damaged object fails only what needs it. The
// tree is
//
//	a/ sub/ x     (a's dirtree corrupt in one case, sub's in another)
//	b/            (its own dirmeta: 0700 1:1, missing)
//	c/ g/         (g's dirmeta, 0711 2:2, missing: read for c's link count)
//	f, lost       (lost's file object missing)
func TestDamageContained(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	good, _, err := importLayers(t, r, ct.Tar(t,
		ct.Dir("a"), ct.Dir("a/sub"), ct.File("a/sub/x", "x"),
		ct.Dir("b", ct.Mode(0o700), ct.Owner(1, 1)),
		ct.Dir("c"), ct.Dir("c/g", ct.Mode(0o711), ct.Owner(2, 2)),
		ct.File("f", "sibling"), ct.File("lost", "lost content"),
	))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := func(p string) *Entry {
		e, err := good.Lookup(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, sub, b, g, lost := at("a"), at("a/sub"), at("b"), at("c/g"), at("lost")
	bad := map[repo.Checksum]error{
		a.dirs[0].tree:   repo.ErrCorrupt,
		sub.dirs[0].tree: repo.ErrObjectNotFound,
		b.dirs[0].meta:   repo.ErrObjectNotFound,
		g.dirs[0].meta:   repo.ErrObjectNotFound,
		lost.Object:      repo.ErrObjectNotFound,
	}
	for _, m := range []repo.Checksum{b.dirs[0].meta, g.dirs[0].meta} {
		if m == good.Root().dirs[0].meta || m == a.dirs[0].meta {
			t.Fatal("test tree: the damaged dirmetas must not be shared")
		}
	}
	// The same layers, read through the damage.
	open := func() *Tree {
		tree, err := newTree(&damagedReader{r, bad}, repo.Checksum{}, nil, true, good.Root().dirs, good.trusted, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tree
	}
	tree := open()
	root, err := tree.ReadDir(ctx, tree.Root())
	if err != nil {
		t.Fatalf("listing the parent of damaged objects: %v", err)
	}
	var names []string
	for _, e := range root.Entries {
		names = append(names, e.Name)
	}
	if fmt.Sprint(names) != "[a b c f lost]" {
		t.Fatalf("root lists %v, want [a b c f lost]", names)
	}
	entry := func(d *Dir, name string) *Entry {
		e, ok := d.Lookup(name)
		if !ok {
			t.Fatalf("%s not listed", name)
		}
		return e
	}

	// The sibling file reads.
	f := entry(root, "f")
	if f.Err() != nil || f.Size != 7 {
		t.Fatalf("sibling f: err %v, size %d", f.Err(), f.Size)
	}
	fh, err := r.OpenFile(f.Object)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(fh.Reader())
	fh.Close()
	if string(content) != "sibling" {
		t.Fatalf("sibling f reads %q", content)
	}

	// a: its attributes are known, its dirtree is not: no subdirectory
	// count, and its listing fails with the damage.
	ea := entry(root, "a")
	if ea.Err() != nil || !ea.IsDir() || ea.Mode&0o7777 != 0o755 {
		t.Fatalf("a: err %v mode %o", ea.Err(), ea.Mode)
	}
	if _, err := tree.Subdirs(ctx, ea); !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("Subdirs(a): %v, want ErrCorrupt", err)
	}
	if _, err := tree.ReadDir(ctx, ea); !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("ReadDir(a): %v, want ErrCorrupt", err)
	}
	if _, err := tree.Lookup(ctx, "a/sub"); !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("Lookup(a/sub): %v, want ErrCorrupt", err)
	}

	// b: listed as a directory, its own stat and listing fail.
	eb := entry(root, "b")
	if !errors.Is(eb.Err(), repo.ErrObjectNotFound) || !eb.IsDir() {
		t.Fatalf("b: err %v mode %o, want ErrObjectNotFound on a directory", eb.Err(), eb.Mode)
	}
	if _, err := tree.ReadDir(ctx, eb); !errors.Is(err, repo.ErrObjectNotFound) {
		t.Errorf("ReadDir(b): %v, want ErrObjectNotFound", err)
	}
	if _, err := tree.Subdirs(ctx, eb); !errors.Is(err, repo.ErrObjectNotFound) {
		t.Errorf("Subdirs(b): %v, want ErrObjectNotFound", err)
	}

	// c: its subdirectory g, whose dirmeta is missing, is counted and
	// listed, with the damage on g alone.
	ec := entry(root, "c")
	if n, err := tree.Subdirs(ctx, ec); err != nil || n != 1 {
		t.Errorf("Subdirs(c) = %d, %v; want 1", n, err)
	}
	dc, err := tree.ReadDir(ctx, ec)
	if err != nil {
		t.Fatalf("ReadDir(c): %v", err)
	}
	if eg := entry(dc, "g"); !errors.Is(eg.Err(), repo.ErrObjectNotFound) || !eg.IsDir() {
		t.Errorf("c/g: err %v mode %o, want ErrObjectNotFound on a directory", eg.Err(), eg.Mode)
	}

	// lost: listed, with an unknown type and the damage.
	if el := entry(root, "lost"); !errors.Is(el.Err(), repo.ErrObjectNotFound) || el.Mode != 0 {
		t.Errorf("lost: err %v mode %o, want ErrObjectNotFound, mode 0", el.Err(), el.Mode)
	}

	// sub, below an intact a: listed in a, its own listing fails.
	delete(bad, a.dirs[0].tree)
	tree = open()
	ea, err = tree.Lookup(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	da, err := tree.ReadDir(ctx, ea)
	if err != nil {
		t.Fatalf("listing the parent of a missing dirtree: %v", err)
	}
	es := entry(da, "sub")
	if es.Err() != nil || !es.IsDir() {
		t.Fatalf("a/sub: err %v mode %o", es.Err(), es.Mode)
	}
	if _, err := tree.ReadDir(ctx, es); !errors.Is(err, repo.ErrObjectNotFound) {
		t.Errorf("ReadDir(a/sub): %v, want ErrObjectNotFound", err)
	}
}
