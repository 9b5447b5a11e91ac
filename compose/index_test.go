package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

func TestIndexRoundTrip(t *testing.T) {
	objs := map[repo.Checksum]*repo.FileMeta{
		{1}:    {Mode: repo.ModeRegular | 0o4755, UID: 1, GID: 2, Size: 1 << 40},
		{2}:    {Mode: repo.ModeSymlink | 0o777, Target: "../lib/x"},
		{0xff}: {Mode: repo.ModeRegular | 0o644, Xattrs: []repo.Xattr{{Name: "security.capability", Value: []byte{1, 0, 0, 2}}, {Name: SpecialXattr, Value: []byte("c 1:3")}}},
		{3}:    {Mode: repo.ModeRegular | 0o600, Rdev: 7},
	}
	b := EncodeIndex(objs)
	idx, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Len() != len(objs) {
		t.Fatalf("Len %d, want %d", idx.Len(), len(objs))
	}
	for c, want := range objs {
		got, err := idx.Lookup(c)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", c, got, want)
		}
	}
	if got, err := idx.Lookup(repo.Checksum{9}); got != nil || err != nil {
		t.Errorf("Lookup of an absent object: %+v, %v", got, err)
	}
	if !bytes.Equal(EncodeIndex(objs), b) {
		t.Error("encoding is not deterministic")
	}
}

// TestParseIndexHostile: bytes that are not an index are refused or, when
// they parse, never make Lookup panic.
func TestParseIndexHostile(t *testing.T) {
	good := EncodeIndex(map[repo.Checksum]*repo.FileMeta{
		{1}: {Mode: repo.ModeSymlink | 0o777, Target: "t"},
		{2}: {Mode: repo.ModeRegular | 0o644, Xattrs: []repo.Xattr{{Name: "user.a", Value: []byte("b")}}},
	})
	for _, b := range [][]byte{nil, good[:15], good[:len(good)-1], append(append([]byte{}, good...), 0), []byte("OMIDX\x00\x00\x02" + strings.Repeat("\x00", 8))} {
		if _, err := ParseIndex(b); err == nil {
			t.Errorf("ParseIndex(%q) succeeded", b)
		}
	}
	swapped := append([]byte{}, good...)
	copy(swapped[16:16+recordSize], good[16+recordSize:16+2*recordSize])
	copy(swapped[16+recordSize:], good[16:16+recordSize])
	if _, err := ParseIndex(swapped); err == nil {
		t.Error("records out of order were accepted")
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		b := append([]byte{}, good...)
		for n := rng.Intn(4) + 1; n > 0; n-- {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		idx, err := ParseIndex(b)
		if err != nil {
			continue
		}
		for j := 0; j < idx.Len(); j++ {
			var c repo.Checksum
			copy(c[:], idx.record(j)[:32])
			_, _ = idx.Lookup(c)
		}
	}
}

// countingReader counts content-object metadata reads and dirtree reads.
type countingReader struct {
	*repo.Repo
	files atomic.Int64
	trees atomic.Int64
}

func (c *countingReader) ReadDirTree(ctx context.Context, s repo.Checksum) (*repo.DirTree, error) {
	c.trees.Add(1)
	return c.Repo.ReadDirTree(ctx, s)
}

func (c *countingReader) ReadFileMeta(ctx context.Context, s repo.Checksum) (*repo.FileMeta, error) {
	c.files.Add(1)
	return c.Repo.ReadFileMeta(ctx, s)
}

// indexLayers writes the layer tars as layer commits that name their
// metadata index, as the importer's do, and returns the commits.
func indexLayers(t *testing.T, r *repo.Repo, layers ...[]byte) []repo.Checksum {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	var commits []repo.Checksum
	for _, l := range layers {
		w, err := ct.WriteLayer(tx, l)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := tx.ReadCommit(ctx, w.Commit)
		if err != nil {
			t.Fatal(err)
		}
		md := cm.Metadata
		var detached repo.Metadata
		if err := AddIndex(ctx, tx, w.Tree, &md, &detached); err != nil {
			t.Fatal(err)
		}
		c, err := tx.WriteCommitFor(w.Tree, w.Meta, &repo.CommitOptions{Timestamp: time.Unix(0, 0), NoParent: true, NoBindings: true, Metadata: md, Detached: detached})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return commits
}

// walk lists every directory of the tree and returns "path mode uid gid
// rdev size target xattrs" lines.
func walk(t *testing.T, tr *Tree) []string {
	t.Helper()
	var out []string
	var rec func(e *Entry, p string)
	rec = func(e *Entry, p string) {
		out = append(out, fmt.Sprintf("%s %o %d %d %d %d %q %v", p, e.Mode, e.UID, e.GID, e.Rdev, e.Size, e.Target, e.Xattrs))
		if !e.IsDir() {
			return
		}
		d, err := tr.ReadDir(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Entries {
			rec(c, p+"/"+c.Name)
		}
	}
	rec(tr.Root(), "")
	return out
}

var indexTestLayers = [][]ct.Entry{
	{ct.File("bin/sh", "sh", ct.Mode(0o4755)), ct.Symlink("bin/ls", "sh"), ct.File("etc/a", "a", ct.Xattr("user.k", "v"), ct.Owner(5, 6)), ct.Char("dev/null", 1, 3)},
	{ct.Whiteout("etc/a"), ct.File("etc/b", "bb"), ct.Fifo("run/p"), ct.Dir("opt/", ct.Mode(0o700))},
}

// indexFixture writes indexTestLayers as layer commits with indexes and
// returns them with the walk of their tree composed from objects.
func indexFixture(t *testing.T) (*repo.Repo, []repo.Checksum, []string) {
	t.Helper()
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	var tars [][]byte
	for _, l := range indexTestLayers {
		tars = append(tars, ct.Tar(t, l...))
	}
	commits := indexLayers(t, r, tars...)
	plain, err := OpenLayers(r, commits, Options{NoIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	return r, commits, walk(t, plain)
}

// plainWalk walks the layers' tree without indexes, through a counter.
func plainWalk(t *testing.T, r *repo.Repo, commits []repo.Checksum) *countingReader {
	t.Helper()
	cr := &countingReader{Repo: r}
	tr, err := OpenLayers(cr, commits, Options{NoIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	walk(t, tr)
	return cr
}

// TestIndexServesAttributes: a tree over layers that name their metadata
// indexes composes every directory without reading a single content
// object, and shows what reading the objects shows.
func TestIndexServesAttributes(t *testing.T) {
	r, commits, want := indexFixture(t)

	cr := &countingReader{Repo: r}
	tr, err := OpenLayers(cr, commits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := walk(t, tr)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with the index:\n%s\nfrom the objects:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := cr.files.Load(); n != 0 {
		t.Errorf("composition read %d content objects' metadata; the index should have served them all", n)
	}

	cr2 := plainWalk(t, r, commits)
	if cr2.files.Load() == 0 {
		t.Error("NoIndex read no content object: the counter counts nothing")
	}
}

// TestIndexTampered: an index whose bytes do not hash to what the commit
// names is not used, a log line says so, and the tree reads objects.
func TestIndexTampered(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	commits := indexLayers(t, r, ct.Tar(t, indexTestLayers[0]...))
	dm, err := r.ReadCommitMeta(commits[0])
	if err != nil {
		t.Fatal(err)
	}
	v, _ := dm.Get(KeyIndex)
	b := v.Value.([]byte)
	// Make every file setuid in the index, leaving the objects alone.
	fake := map[repo.Checksum]*repo.FileMeta{}
	idx, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < idx.Len(); i++ {
		var c repo.Checksum
		copy(c[:], idx.record(i)[:32])
		fm, _ := idx.Lookup(c)
		fm.Mode |= 0o6000
		fake[c] = fm
	}
	v.Value = EncodeIndex(fake)
	dm.Set(KeyIndex, v)
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.SetCommitMeta(commits[0], dm); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var logs []string
	cr := &countingReader{Repo: r}
	tr, err := OpenLayers(cr, commits, Options{Logf: func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(f, a...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := tr.Lookup(context.Background(), "bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/sh mode %o, want 4755 from its object", e.Mode&0o7777)
	}
	if cr.files.Load() == 0 {
		t.Error("the tampered index was used")
	}
	if len(logs) != 1 || !strings.Contains(logs[0], commits[0].String()) || !strings.Contains(logs[0], "sha256") {
		t.Errorf("logs %q: want one line naming the commit and the sha256 mismatch", logs)
	}
}

// TestIndexOnlyImportMade: a commit that import did not make is served
// from its objects even when it names an index.
func TestIndexOnlyImportMade(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: 1}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := tx.WriteDirTree(&repo.DirTree{Files: []repo.TreeFile{{Name: "f", Checksum: f}}})
	dmc, _ := tx.WriteDirMeta(&repo.DirMeta{Mode: repo.ModeDir | 0o755})
	b := EncodeIndex(map[repo.Checksum]*repo.FileMeta{f: {Mode: repo.ModeRegular | 0o4755}})
	var md, detached repo.Metadata
	md.SetString(KeyIndexSum, IndexSum(b))
	detached.Set(KeyIndex, repoBytes(b))
	c, err := tx.WriteCommitFor(dt, dmc, &repo.CommitOptions{NoParent: true, NoBindings: true, Metadata: md, Detached: detached})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(r, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := tr.Lookup(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode&0o7777 != 0o644 {
		t.Errorf("mode %o: a plain commit's index was honoured", e.Mode&0o7777)
	}
}

func repoBytes(b []byte) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("ay"), Value: b}
}

// TestIndexTreesRoundTrip: a version 2 index gives back its dirtrees, and
// refuses one whose bytes were changed.
func TestIndexTreesRoundTrip(t *testing.T) {
	d1 := &repo.DirTree{Files: []repo.TreeFile{{Name: "a", Checksum: repo.Checksum{1}}}}
	d2 := &repo.DirTree{Dirs: []repo.TreeDir{{Name: "sub", Tree: d1.Checksum(), Meta: repo.Checksum{2}}}}
	trees := map[repo.Checksum][]byte{d1.Checksum(): d1.Marshal(), d2.Checksum(): d2.Marshal()}
	objs := map[repo.Checksum]*repo.FileMeta{{1}: {Mode: repo.ModeRegular | 0o644, Size: 3}}
	b := EncodeIndexTrees(objs, trees)
	idx, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Len() != 1 || idx.Trees() != 2 {
		t.Fatalf("%d files and %d trees, want 1 and 2", idx.Len(), idx.Trees())
	}
	for _, want := range []*repo.DirTree{d1, d2} {
		got, err := idx.LookupTree(want.Checksum())
		if err != nil || got == nil || got.Checksum() != want.Checksum() {
			t.Errorf("LookupTree %s: %+v, %v; want %+v", want.Checksum(), got, err, want)
		}
	}
	if fm, err := idx.Lookup(repo.Checksum{1}); err != nil || fm == nil || fm.Size != 3 {
		t.Errorf("Lookup in a version 2 index: %+v, %v", fm, err)
	}
	if got, err := idx.LookupTree(repo.Checksum{7}); got != nil || err != nil {
		t.Errorf("LookupTree of an absent tree: %+v, %v", got, err)
	}
	if !bytes.Equal(EncodeIndexTrees(objs, trees), b) {
		t.Error("encoding is not deterministic")
	}
	bad := append([]byte{}, b...)
	bad[len(bad)-1] ^= 0xff // the last tree's last byte
	idx, err = ParseIndex(bad)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range []repo.Checksum{d1.Checksum(), d2.Checksum()} {
		if _, err := idx.LookupTree(c); errors.Is(err, ErrBadIndex) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d trees refused after a byte of one changed, want 1", n)
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 20000; i++ {
		m := append([]byte{}, b...)
		for k := rng.Intn(4) + 1; k > 0; k-- {
			m[rng.Intn(len(m))] = byte(rng.Intn(256))
		}
		idx, err := ParseIndex(m)
		if err != nil {
			continue
		}
		for j := 0; j < idx.Trees(); j++ {
			var c repo.Checksum
			copy(c[:], idx.treeRecord(j)[:32])
			_, _ = idx.LookupTree(c)
		}
	}
}

// TestIndexServesTrees: once a layer's index is loaded (in the background,
// after the first directory needs it), its directories are composed
// without reading dirtree objects.
func TestIndexServesTrees(t *testing.T) {
	r, commits, _ := indexFixture(t)
	plain, err := OpenLayers(r, commits, Options{NoIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	want := walk(t, plain)

	cr := &countingReader{Repo: r}
	tr, err := OpenLayers(cr, commits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Load the indexes (a first directory would start that).
	for _, s := range tr.indexes {
		tr.loadIndex(s)
		if s.idx == nil || s.idx.Trees() == 0 {
			t.Fatalf("layer commit %s: no index with trees", s.commit)
		}
	}
	before := cr.trees.Load()
	got := walk(t, tr)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with the index:\n%s\nfrom the objects:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := cr.trees.Load() - before; n != 0 {
		t.Errorf("the walk read %d dirtree objects; the indexes hold them all", n)
	}
	cr2 := plainWalk(t, r, commits)
	if cr2.trees.Load() == 0 {
		t.Error("NoIndex read no dirtree: the counter counts nothing")
	}
}

// remoteReader is a countingReader whose objects all look remote.
type remoteReader struct{ *countingReader }

func (remoteReader) LocalObject(repo.ObjectType, repo.Checksum) bool { return false }

// TestIndexBeforeFetch: over a reader whose dirtrees would have to be
// fetched, a mount's tree (which loads indexes in the background) waits
// for the layer's index rather than read a dirtree object, from the root
// on.
func TestIndexBeforeFetch(t *testing.T) {
	r, commits, _ := indexFixture(t)
	cr := &countingReader{Repo: r}
	tr, err := OpenLayers(remoteReader{cr}, commits, Options{Prefetch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	walk(t, tr)
	if n := cr.trees.Load(); n != 0 {
		t.Errorf("%d dirtree objects read over a remote reader; the indexes hold them all", n)
	}
}

// Lookups find every record and nothing else, whatever the count (the
// bucket table over the sorted checksums is sized to it).
func TestIndexLookupEveryCount(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 17, 1000, 5000} {
		objs := map[repo.Checksum]*repo.FileMeta{}
		for i := range n {
			objs[repo.SumBytes([]byte(fmt.Sprint("object ", i)))] = &repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(i)}
		}
		idx, err := ParseIndex(EncodeIndex(objs))
		if err != nil {
			t.Fatalf("%d objects: %v", n, err)
		}
		for c, fm := range objs {
			got, err := idx.Lookup(c)
			if err != nil || got == nil || got.Size != fm.Size {
				t.Fatalf("%d objects: lookup %s: %v, %v", n, c, got, err)
			}
		}
		for i := range 200 {
			if got, _ := idx.Lookup(repo.SumBytes([]byte(fmt.Sprint("absent ", i)))); got != nil {
				t.Fatalf("%d objects: an absent checksum was found", n)
			}
		}
		var zero, ones repo.Checksum
		for i := range ones {
			ones[i] = 0xff
		}
		if got, _ := idx.Lookup(zero); got != nil {
			t.Fatalf("%d objects: the zero checksum was found", n)
		}
		if got, _ := idx.Lookup(ones); got != nil {
			t.Fatalf("%d objects: the all-ones checksum was found", n)
		}
	}
}
