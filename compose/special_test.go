package compose

import (
	"context"
	"testing"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// Side-channel xattrs mean something only in commits that import made:
// the same tree committed without import's metadata shows plain files
// carrying the xattrs as data, even through a cache shared with an
// image's tree.
func TestSideChannelsOnlyInImportCommits(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	lr, err := ct.WriteLayer(tx, ct.Tar(t, ct.Char("dev/mem", 1, 1), ct.File("a/b/f", "f")))
	if err != nil {
		t.Fatal(err)
	}
	layer := lr.Commit
	commit := func(md repo.Metadata) repo.Checksum {
		c, err := tx.WriteCommitFor(lr.Tree, lr.Meta, &repo.CommitOptions{NoParent: true, NoBindings: true, Metadata: md})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var squashedMD repo.Metadata
	squashedMD.SetString(KeyMode, ModeSquashed)
	plain, squashed := commit(repo.Metadata{}), commit(squashedMD)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]repo.Checksum{{squashed, plain, layer}, {plain, squashed, layer}} {
		c, err := NewCaches(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, sum := range order {
			tree, err := Open(r, sum, Options{Caches: c})
			if err != nil {
				t.Fatal(err)
			}
			e, err := tree.Lookup(ctx, "dev/mem")
			if err != nil {
				t.Fatal(err)
			}
			fm, _ := r.ReadCommit(context.Background(), sum)
			trusted := ImportMade(fm)
			if trusted != (sum != plain) {
				t.Errorf("ImportMade(%s) = %v", sum.Str(), trusted)
			}
			hasX := false
			for _, x := range e.Xattrs {
				hasX = hasX || x.Name == SpecialXattr
			}
			if trusted && (e.Mode&repo.ModeFmt != repo.ModeChar || e.Rdev == 0 || hasX) {
				t.Errorf("import commit %s: dev/mem mode %#o rdev %#x xattrs %v: want the device, marker hidden", sum.Str(), e.Mode, e.Rdev, e.Xattrs)
			}
			if !trusted && (e.Mode&repo.ModeFmt != repo.ModeRegular || e.Rdev != 0 || !hasX) {
				t.Errorf("plain commit: dev/mem mode %#o rdev %#x xattrs %v: want a regular file keeping its xattr", e.Mode, e.Rdev, e.Xattrs)
			}
			// An implicit parent (a/) of a plain commit is an ordinary
			// directory with its xattr.
			a, err := tree.Lookup(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if !trusted && len(a.Xattrs) == 0 {
				t.Errorf("plain commit: a/ lost its xattrs")
			}
			if trusted && len(a.Xattrs) != 0 {
				t.Errorf("import commit: a/ shows %v", a.Xattrs)
			}
		}
	}
}
