package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/compose"
	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// importLayers imports each tar as a layer commit on top of the previous
// ones, in one transaction, and returns the composed tree.
func importLayers(t *testing.T, r *repo.Repo, layers ...[]byte) (*compose.Tree, []*LayerResult, error) {
	t.Helper()
	return importLayersWith(t, r, compose.Options{}, layers...)
}

// importLayersWith is importLayers with the returned tree opened with o.
func importLayersWith(t *testing.T, r *repo.Repo, o compose.Options, layers ...[]byte) (*compose.Tree, []*LayerResult, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	var commits []repo.Checksum
	var results []*LayerResult
	for i, l := range layers {
		var lower *compose.Tree
		if len(commits) > 0 {
			if lower, err = compose.OpenLayers(tx, commits, compose.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := ImportLayer(ctx, tx, lower, bytes.NewReader(l), DefaultLimits)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		results = append(results, res)
		c, err := WriteLayerCommit(context.Background(), tx, res, "test layer", repo.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tree, err := compose.OpenLayers(r, commits, o)
	if err != nil {
		t.Fatal(err)
	}
	return tree, results, nil
}

// dump lists a composed tree, one line per path:
// "path type perm uid:gid detail".
func dump(t *testing.T, tree *compose.Tree) []string {
	t.Helper()
	var out []string
	var walk func(e *compose.Entry, p string)
	walk = func(e *compose.Entry, p string) {
		kind, detail := "?", ""
		switch e.Mode & repo.ModeFmt {
		case repo.ModeDir:
			kind = "d"
		case repo.ModeRegular:
			kind = "f"
			f, err := tree.Reader().(interface {
				OpenFile(repo.Checksum) (*repo.File, error)
			}).OpenFile(e.Object)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(f.Reader())
			f.Close()
			detail = fmt.Sprintf("%q", b)
		case repo.ModeSymlink:
			kind, detail = "l", e.Target
		case repo.ModeChar:
			kind, detail = "c", fmt.Sprintf("%d", e.Rdev)
		case repo.ModeBlock:
			kind, detail = "b", fmt.Sprintf("%d", e.Rdev)
		case repo.ModeFifo:
			kind = "p"
		}
		for _, x := range e.Xattrs {
			detail = strings.TrimSpace(detail + fmt.Sprintf(" %s=%s", x.Name, x.Value))
		}
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %04o %d:%d %s", p, kind, e.Mode&0o7777, e.UID, e.GID, detail)))
		if kind == "d" {
			d, err := tree.ReadDir(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range d.Entries {
				cp := p + "/" + c.Name
				if p == "/" {
					cp = c.Name
				}
				walk(c, cp)
			}
		}
	}
	walk(tree.Root(), "/")
	sort.Strings(out)
	return out
}

type L = []ct.Entry

func TestWhiteoutRules(t *testing.T) {
	cases := []struct {
		name   string
		layers []L
		want   []string // full dump, root included
		err    string   // an import error containing this
		dep    bool     // some layer depends on its base
	}{
		{
			name:   "whiteout deletes a lower file",
			layers: []L{{ct.File("a", "1"), ct.File("b", "2")}, {ct.Whiteout("a")}},
			want:   []string{"/ d 0755 0:0", "b f 0644 0:0 \"2\""},
		},
		{
			name:   "a whiteout never deletes its own layer's file, whatever the order",
			layers: []L{{ct.File("f", "lower")}, {ct.File("f", "upper"), ct.Whiteout("f")}},
			want:   []string{"/ d 0755 0:0", "f f 0644 0:0 \"upper\""},
		},
		{
			name:   "whiteout then recreate in one layer hides the lower directory",
			layers: []L{{ct.File("d/old", "o")}, {ct.Whiteout("d"), ct.File("d/new", "n")}},
			want:   []string{"/ d 0755 0:0", "d d 0755 0:0", "d/new f 0644 0:0 \"n\""},
		},
		{
			name:   "opaque applies first even when it comes last",
			layers: []L{{ct.File("a/b/c/foo", "x"), ct.File("a/keep", "k")}, {ct.Dir("a/"), ct.File("a/new", "n"), ct.Opaque("a")}},
			want:   []string{"/ d 0755 0:0", "a d 0755 0:0", "a/new f 0644 0:0 \"n\""},
		},
		{
			name:   "opaque before the entries",
			layers: []L{{ct.File("a/old", "x")}, {ct.Opaque("a"), ct.File("a/new", "n")}},
			want:   []string{"/ d 0755 0:0", "a d 0755 0:0", "a/new f 0644 0:0 \"n\""},
		},
		{
			name:   "root opaque clears every lower layer",
			layers: []L{{ct.File("x", "1")}, {ct.File("y", "2")}, {ct.Opaque(""), ct.File("z", "3")}},
			want:   []string{"/ d 0755 0:0", "z f 0644 0:0 \"3\""},
		},
		{
			name:   "dir to file with a whiteout below the file is a no-op whiteout",
			layers: []L{{ct.File("d/inner/x", "x")}, {ct.File("d", "file"), ct.Whiteout("d/inner")}},
			want:   []string{"/ d 0755 0:0", "d f 0644 0:0 \"file\""},
		},
		{
			name:   "dir to symlink with a whiteout through it deletes the target's entry",
			layers: []L{{ct.File("etc/x", "1"), ct.File("etc/y", "2"), ct.File("d/x", "3")}, {ct.Symlink("d", "/etc"), ct.Whiteout("d/x")}},
			want:   []string{"/ d 0755 0:0", "d l 0777 0:0 /etc", "etc d 0755 0:0", "etc/y f 0644 0:0 \"2\""},
		},
		{
			name:   "whiteout below a missing directory is a no-op and creates nothing",
			layers: []L{{ct.File("a", "1")}, {ct.Whiteout("nodir/x"), ct.Opaque("nodir2/sub")}},
			want:   []string{"/ d 0755 0:0", "a f 0644 0:0 \"1\""},
		},
		{
			name:   "a whiteout emptying an implicit directory leaves the directory",
			layers: []L{{ct.File("a/b", "1")}, {ct.Whiteout("a/b")}},
			want:   []string{"/ d 0755 0:0", "a d 0755 0:0"},
		},
		// Directories named as whiteouts, as umoci unpack has them
		// (tests/TestImportWhiteoutDirsLikeUmoci compares with it).
		{
			name:   "a directory named .wh.foo whites foo out",
			layers: []L{{ct.File("foo/lower", "l"), ct.File("keep", "k")}, {ct.Dir(".wh.foo/", ct.Mode(0o700))}},
			want:   []string{"/ d 0755 0:0", "keep f 0644 0:0 \"k\""},
		},
		{
			name:   "a directory named .wh..wh..opq is an opaque marker",
			layers: []L{{ct.File("bar/lower", "l")}, {ct.Dir("bar/.wh..wh..opq/"), ct.File("bar/new", "n")}},
			want:   []string{"/ d 0755 0:0", "bar d 0755 0:0", "bar/new f 0644 0:0 \"n\""},
		},
		{
			name:   "a directory named .wh..wh.orph (aufs metadata) is dropped",
			layers: []L{{ct.File("orph/lower", "l")}, {ct.Dir(".wh..wh.orph/"), ct.Dir("d/.wh..wh.plnk/")}},
			want:   []string{"/ d 0755 0:0", "orph d 0755 0:0", "orph/lower f 0644 0:0 \"l\""},
		},
		{
			name:   "entries below a dropped .wh..wh.orph make it a plain directory",
			layers: []L{{ct.File("orph/lower", "l")}, {ct.Dir(".wh..wh.orph/"), ct.File(".wh..wh.orph/inner", "i")}},
			want:   []string{"/ d 0755 0:0", ".wh..wh.orph d 0755 0:0", ".wh..wh.orph/inner f 0644 0:0 \"i\"", "orph d 0755 0:0", "orph/lower f 0644 0:0 \"l\""},
		},
		{
			name:   "entries below a whiteout directory cannot be stored",
			layers: []L{{ct.Dir(".wh.x/"), ct.File(".wh.x/f", "1")}},
			err:    "both a whiteout and a directory",
		},
		{
			name:   "entries below a whiteout directory cannot be stored, whatever the order",
			layers: []L{{ct.File("x/f", "1")}, {ct.File(".wh..wh..opq/f", "1"), ct.Dir(".wh..wh..opq/")}},
			err:    "both a whiteout and a directory",
		},
		{
			name:   "duplicates: the last one wins, type changes included",
			layers: []L{{ct.File("f", "1"), ct.File("f", "2"), ct.File("x", "file"), ct.Dir("x/"), ct.File("x/in", "i"), ct.File("s", "s"), ct.Symlink("s", "f")}},
			want:   []string{"/ d 0755 0:0", "f f 0644 0:0 \"2\"", "s l 0777 0:0 f", "x d 0755 0:0", "x/in f 0644 0:0 \"i\""},
		},
		{
			name:   "a file replaced by a directory in one layer hides the lower directory",
			layers: []L{{ct.File("x/lower", "l")}, {ct.File("x", "f"), ct.Dir("x/"), ct.File("x/upper", "u")}},
			want:   []string{"/ d 0755 0:0", "x d 0755 0:0", "x/upper f 0644 0:0 \"u\""},
		},
		{
			name:   "a directory replaced by a file across layers",
			layers: []L{{ct.File("d/x", "1")}, {ct.File("d", "f")}},
			want:   []string{"/ d 0755 0:0", "d f 0644 0:0 \"f\""},
		},
		{
			name:   "hardlinks share the old object when the target is replaced later",
			layers: []L{{ct.File("a", "old"), ct.Link("b", "a")}, {ct.File("a", "new")}},
			want:   []string{"/ d 0755 0:0", "a f 0644 0:0 \"new\"", "b f 0644 0:0 \"old\""},
		},
		{
			name:   "hardlink with an absolute target and to a symlink",
			layers: []L{{ct.File("a", "1"), ct.Link("h", "/a"), ct.Symlink("s", "/nowhere"), ct.Link("hs", "s")}},
			want:   []string{"/ d 0755 0:0", "a f 0644 0:0 \"1\"", "h f 0644 0:0 \"1\"", "hs l 0777 0:0 /nowhere", "s l 0777 0:0 /nowhere"},
		},
		{
			name:   "hardlink before its target is an error",
			layers: []L{{ct.Link("b", "a"), ct.File("a", "1")}},
			err:    "does not exist",
		},
		{
			name:   "hardlink to a lower layer's file",
			layers: []L{{ct.File("a", "1")}, {ct.Link("b", "a")}},
			want:   []string{"/ d 0755 0:0", "a f 0644 0:0 \"1\"", "b f 0644 0:0 \"1\""},
			dep:    true,
		},
		{
			name:   "the root as a symlink is rejected",
			layers: []L{{ct.Symlink(".", "/etc")}},
			err:    "root entry must be a directory",
		},
		{
			name:   "dot-dot traversal is rejected",
			layers: []L{{ct.File("../../OUTSIDE/f", "x")}},
			err:    "'..'",
		},
		{
			name:   "absolute paths are made relative",
			layers: []L{{ct.File("/etc/x", "1")}},
			want:   []string{"/ d 0755 0:0", "etc d 0755 0:0", "etc/x f 0644 0:0 \"1\""},
		},
		{
			name:   "a path through an absolute symlink stays inside the root",
			layers: []L{{ct.Symlink("l", "/host/dir"), ct.File("l/f", "x")}},
			want:   []string{"/ d 0755 0:0", "host d 0755 0:0", "host/dir d 0755 0:0", "host/dir/f f 0644 0:0 \"x\"", "l l 0777 0:0 /host/dir"},
		},
		{
			name:   "a path through a lower layer's escaping symlink is clamped at the root",
			layers: []L{{ct.Symlink("l", "../../../../host")}, {ct.File("l/f", "x")}},
			want:   []string{"/ d 0755 0:0", "host d 0755 0:0", "host/f f 0644 0:0 \"x\"", "l l 0777 0:0 ../../../../host"},
			dep:    true,
		},
		{
			name:   "usrmerge: an implicit lib/ follows the lower symlink",
			layers: []L{{ct.Dir("usr/", ct.Mode(0o755)), ct.Dir("usr/lib/", ct.Mode(0o700)), ct.Symlink("lib", "usr/lib")}, {ct.File("lib/x.so", "so")}},
			want:   []string{"/ d 0755 0:0", "lib l 0777 0:0 usr/lib", "usr d 0755 0:0", "usr/lib d 0700 0:0", "usr/lib/x.so f 0644 0:0 \"so\""},
			dep:    true,
		},
		{
			name:   "an explicit lib/ directory replaces the lower symlink",
			layers: []L{{ct.Dir("usr/lib/"), ct.File("usr/lib/old", "o"), ct.Symlink("lib", "usr/lib")}, {ct.Dir("lib/"), ct.File("lib/y", "y")}},
			want:   []string{"/ d 0755 0:0", "lib d 0755 0:0", "lib/y f 0644 0:0 \"y\"", "usr d 0755 0:0", "usr/lib d 0755 0:0", "usr/lib/old f 0644 0:0 \"o\""},
		},
		{
			name:   "a whiteout through a lower symlink deletes inside the image",
			layers: []L{{ct.File("host/victim", "v"), ct.File("host/other", "o"), ct.Symlink("l", "/host")}, {ct.Whiteout("l/victim")}},
			want:   []string{"/ d 0755 0:0", "host d 0755 0:0", "host/other f 0644 0:0 \"o\"", "l l 0777 0:0 /host"},
			dep:    true,
		},
		{
			name:   "metadata-only change of a directory keeps its children",
			layers: []L{{ct.Dir("opt/"), ct.File("opt/a", "a")}, {ct.Dir("opt/", ct.Mode(0o700), ct.Owner(5, 6))}},
			want:   []string{"/ d 0755 0:0", "opt d 0700 5:6", "opt/a f 0644 0:0 \"a\""},
		},
		{
			name:   "an implicit parent keeps the lower directory's metadata",
			layers: []L{{ct.Dir("opt/", ct.Mode(0o700), ct.Owner(5, 6))}, {ct.File("opt/x", "x")}},
			want:   []string{"/ d 0755 0:0", "opt d 0700 5:6", "opt/x f 0644 0:0 \"x\""},
		},
		{
			name:   "the root entry's metadata applies",
			layers: []L{{ct.Dir("./", ct.Mode(0o700)), ct.File("a", "1")}, {ct.File("b", "2")}},
			want:   []string{"/ d 0700 0:0", "a f 0644 0:0 \"1\"", "b f 0644 0:0 \"2\""},
		},
		{
			name:   "devices and fifos keep their type; overlay xattrs are dropped",
			layers: []L{{ct.Char("dev/null", 1, 3), ct.Block("dev/loop0", 7, 0), ct.Char("c00", 0, 0), ct.Fifo("run/fifo"), ct.Dir("o/", ct.Xattr("trusted.overlay.opaque", "y"), ct.Xattr("user.ok", "1"))}},
			want:   []string{"/ d 0755 0:0", "c00 c 0666 0:0 0", "dev d 0755 0:0", "dev/loop0 b 0660 0:0 1792", "dev/null c 0666 0:0 259", "o d 0755 0:0 user.ok=1", "run d 0755 0:0", "run/fifo p 0644 0:0"},
		},
		{
			name:   "S_IFMT bits in the mode field are masked; suid and sticky kept",
			layers: []L{{ct.Dir("t/", ct.Mode(0o41777)), ct.File("t/s", "s", ct.Mode(0o104755))}},
			want:   []string{"/ d 0755 0:0", "t d 1777 0:0", "t/s f 4755 0:0 \"s\""},
		},
		{
			name:   "xattrs from SCHILY and, alone, LIBARCHIVE records; injected side channels dropped",
			layers: []L{{ct.File("a", "1", ct.Xattr("user.b", "2"), ct.Xattr("user.a", "1"), ct.Xattr("user.ostree-mount.special", "c 1:3")), ct.File("b", "2", ct.PAX("LIBARCHIVE.xattr.user.x", "eXk="))}},
			want:   []string{"/ d 0755 0:0", "a f 0644 0:0 \"1\" user.a=1 user.b=2", "b f 0644 0:0 \"2\" user.x=yy"},
		},
		{
			name:   "invalid whiteout names are rejected",
			layers: []L{{ct.File(".wh.", "")}},
			err:    "invalid whiteout",
		},
		{
			name:   "whiteout of dot-dot is rejected",
			layers: []L{{ct.File("x/y/.wh..", "")}},
			err:    "invalid whiteout",
		},
		{
			name:   "whiteout of dot is rejected",
			layers: []L{{ct.File("x/y/.wh...", "")}},
			err:    "invalid whiteout",
		},
		{
			name:   "a directory whited out and recreated in a later layer",
			layers: []L{{ct.File("d/a", "a")}, {ct.Whiteout("d")}, {ct.File("d/b", "b")}},
			want:   []string{"/ d 0755 0:0", "d d 0755 0:0", "d/b f 0644 0:0 \"b\""},
		},
		{
			name:   "a path below a lower file is an error",
			layers: []L{{ct.File("f", "1")}, {ct.File("f/x", "2")}},
			err:    "not a directory",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
			var tars [][]byte
			for _, l := range tc.layers {
				tars = append(tars, ct.Tar(t, l...))
			}
			tree, results, err := importLayers(t, r, tars...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := dump(t, tree)
			sort.Strings(tc.want)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("composed tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			dep := false
			for _, res := range results {
				dep = dep || res.BaseDependent
			}
			if dep != tc.dep {
				t.Errorf("base-dependent %v, want %v", dep, tc.dep)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, _ := r.Begin(ctx)
	defer tx.Abort()
	many := ct.Tar(t, ct.File("a", "1"), ct.File("b", "2"), ct.File("c", "3"))
	lim := DefaultLimits
	lim.MaxEntries = 2
	if _, err := ImportLayer(ctx, tx, nil, bytes.NewReader(many), lim); !errors.Is(err, ErrLimit) {
		t.Errorf("entries: %v", err)
	}
	lim = DefaultLimits
	lim.MaxBytes = 1024
	big := ct.Tar(t, ct.File("big", strings.Repeat("x", 4096)))
	if _, err := ImportLayer(ctx, tx, nil, bytes.NewReader(big), lim); !errors.Is(err, ErrLimit) {
		t.Errorf("bytes: %v", err)
	}
	lim = DefaultLimits
	lim.MaxPathLen = 10
	if _, err := ImportLayer(ctx, tx, nil, bytes.NewReader(ct.Tar(t, ct.File("a/very/long/path", "1"))), lim); !errors.Is(err, ErrLimit) {
		t.Errorf("path length: %v", err)
	}
	loop := ct.Tar(t, ct.Symlink("a", "b"), ct.Symlink("b", "a"), ct.File("a/x", "1"))
	if _, err := ImportLayer(ctx, tx, nil, bytes.NewReader(loop), DefaultLimits); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Errorf("symlink loop: %v", err)
	}
	if _, err := ImportLayer(ctx, tx, nil, bytes.NewReader([]byte("not a tar at all, just some bytes that are not 512 long")), DefaultLimits); !errors.Is(err, ErrBadLayer) {
		t.Errorf("garbage: %v", err)
	}
}

func TestHardlinkGroups(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	tree, _, err := importLayers(t, r,
		ct.Tar(t, ct.File("a", "x"), ct.Link("b", "a"), ct.Link("c", "b"), ct.File("d", "x"), ct.File("e", "y"), ct.Link("f", "e")),
		ct.Tar(t, ct.File("e", "new")))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := func(p string) string {
		e, err := tree.Lookup(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return tree.InodeKey(e, p)
	}
	if ka := key("a"); ka == "" || ka != key("b") || ka != key("c") {
		t.Errorf("a, b, c are one group: %q %q %q", key("a"), key("b"), key("c"))
	}
	if key("d") != "" {
		t.Errorf("d has the same content as a but is no hardlink: %q", key("d"))
	}
	if key("e") == key("f") {
		t.Errorf("e was replaced in layer 2, so f is no longer its hardlink: %q %q", key("e"), key("f"))
	}
}

// TestWriteLayerMatchesImporter: composetest.WriteLayer, with which
// compose's tests make their layer commits, writes the very trees that
// the importer writes for the tars it handles.
func TestWriteLayerMatchesImporter(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	for i, l := range [][]ct.Entry{
		{ct.File("a/b/c/d/f", "1"), ct.File("a/b2/f", "2"), ct.Dir("a/gone/x/"), ct.Dir("e/", ct.Mode(0o700), ct.Owner(3, 4))},
		{ct.Whiteout("a/gone"), ct.Opaque("a/opq"), ct.File("a/opq/new", "4"), ct.Whiteout("a/ghost/nothing")},
		{ct.Dir("./", ct.Mode(0o711)), ct.Char("dev/mem", 1, 1), ct.Block("dev/sda", 8, 0), ct.Fifo("run/p"), ct.Symlink("s", "/a"), ct.File("x", "x", ct.Xattr("user.k", "v"))},
	} {
		tb := ct.Tar(t, l...)
		res, err := ImportLayer(ctx, tx, nil, bytes.NewReader(tb), DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		w, err := ct.WriteLayer(tx, tb)
		if err != nil {
			t.Fatal(err)
		}
		if w.Tree != res.Tree || w.Meta != res.Meta {
			t.Errorf("layer %d: composetest wrote %s/%s, the importer %s/%s", i, w.Tree, w.Meta, res.Tree, res.Meta)
		}
		c, err := WriteLayerCommit(context.Background(), tx, res, "test layer", repo.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		// The importer's commit is composetest's plus the metadata
		// index that it names.
		got, err := tx.ReadCommit(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tx.ReadCommit(ctx, w.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Metadata.String(compose.KeyIndexSum); !ok {
			t.Errorf("layer %d: the importer's commit names no metadata index", i)
		}
		var md repo.Metadata
		for _, e := range got.Metadata {
			if e.Key != compose.KeyIndexSum {
				md = append(md, e)
			}
		}
		got.Metadata = md
		if !reflect.DeepEqual(got, want) {
			t.Errorf("layer %d: composetest's commit %+v, the importer's (without its index) %+v", i, want, got)
		}
	}
}
