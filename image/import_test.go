package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/ostree-mount/ostree-mount/compose"
	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/image/imagetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// importT imports img into r and fails the test on error.
func importT(t *testing.T, r *repo.Repo, img *imagetest.Image, o ImportOptions) *ImportResult {
	t.Helper()
	res, err := Import(context.Background(), r, img, o)
	if err != nil {
		t.Fatalf("import %s: %v", img.Name(), err)
	}
	return res
}

func diffID(t *testing.T, l *imagetest.Layer) digest.Digest {
	t.Helper()
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readRef returns the commit of a ref, or the zero checksum if it does
// not exist.
func readRef(t *testing.T, r *repo.Repo, n repo.RefName) repo.Checksum {
	t.Helper()
	c, err := r.ReadRef(n)
	if errors.Is(err, repo.ErrRefNotFound) {
		return repo.Checksum{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestImportLayerReuse imports images one after the other into one
// repository and checks, layer by layer, whether the layer was reused
// (its blob never opened) or imported, and which weak ref names it.
func TestImportLayerReuse(t *testing.T) {
	base := func() []byte {
		return ct.Tar(t, ct.Dir("usr/"), ct.Dir("usr/lib/"), ct.Symlink("lib", "usr/lib"), ct.File("etc/os", "base"))
	}
	other := func() []byte { return ct.Tar(t, ct.Dir("lib/"), ct.File("etc/os", "other")) }
	third := func() []byte {
		return ct.Tar(t, ct.Dir("usr/"), ct.Dir("usr/lib/"), ct.Symlink("lib", "usr/lib"), ct.File("etc/os", "third"))
	}
	indep := func() []byte { return ct.Tar(t, ct.File("opt/app", "app")) }
	dep := func() []byte { return ct.Tar(t, ct.File("lib/x.so", "so")) } // through base's lib symlink
	type want struct {
		reused bool
		weak   string // "layer" or "chain": the weak ref that names the layer commit
		sameAs [2]int // [image, layer] of an earlier import with the same commit; {-1} for none
	}
	none := [2]int{-1, -1}
	imgs := []struct {
		layers []*imagetest.Layer
		want   []want
	}{
		// 0: everything new.
		{[]*imagetest.Layer{imagetest.Gzip(base()), imagetest.Gzip(indep()), imagetest.Gzip(dep())},
			[]want{{false, "layer", none}, {false, "layer", none}, {false, "chain", none}}},
		// 1: the same layers as other blobs (plain, zstd): reused by
		// diff_id and, for the dependent one, by chain ID.
		{[]*imagetest.Layer{imagetest.Plain(base()), imagetest.Zstd(indep()), imagetest.Plain(dep())},
			[]want{{true, "layer", [2]int{0, 0}}, {true, "layer", [2]int{0, 1}}, {true, "chain", [2]int{0, 2}}}},
		// 2: the independent layer on another base is reused; the
		// dependent one is not (its chain differs): imported again, it
		// resolves differently and gets a chain ref of its own.
		{[]*imagetest.Layer{imagetest.Gzip(other()), imagetest.Gzip(indep()), imagetest.Gzip(dep())},
			[]want{{false, "layer", none}, {true, "layer", [2]int{0, 1}}, {false, "layer", none}}},
		// 3: image 2's commit of that layer (by diff_id) does not fit a
		// base where lib is a symlink: imported again, on a chain ref.
		{[]*imagetest.Layer{imagetest.Gzip(third()), imagetest.Gzip(dep())},
			[]want{{false, "layer", none}, {false, "chain", none}}},
	}
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	var results []*ImportResult
	for i, im := range imgs {
		res := importT(t, r, imagetest.New(fmt.Sprintf("img%d:t", i), im.layers...), ImportOptions{})
		results = append(results, res)
		if len(res.Layers) != len(im.layers) {
			t.Fatalf("image %d: %d layer reports", i, len(res.Layers))
		}
		var chain digest.Digest
		for j, l := range im.layers {
			w, rep := im.want[j], res.Layers[j]
			d := diffID(t, l)
			if chain == "" {
				chain = d
			} else {
				chain = digest.FromString(chain.String() + " " + d.String())
			}
			if rep.Reused != w.reused || rep.DiffID != d || rep.Index != j {
				t.Errorf("image %d layer %d: report %+v, want reused %v", i, j, rep, w.reused)
			}
			if opens := l.Opens(); w.reused && opens != 0 || !w.reused && opens != 1 {
				t.Errorf("image %d layer %d: blob opened %d times (reused %v)", i, j, opens, w.reused)
			}
			if w.reused && rep.Bytes != 0 || !w.reused && rep.Bytes != int64(len(l.Blob())) {
				t.Errorf("image %d layer %d: %d bytes read of %d", i, j, rep.Bytes, len(l.Blob()))
			}
			if w.sameAs != none && rep.Commit != results[w.sameAs[0]].Layers[w.sameAs[1]].Commit {
				t.Errorf("image %d layer %d: commit %s, want image %d layer %d's", i, j, rep.Commit, w.sameAs[0], w.sameAs[1])
			}
			if w.sameAs == none {
				for pi, pr := range results[:i] {
					for pj, pl := range pr.Layers {
						if pl.Commit == rep.Commit {
							t.Errorf("image %d layer %d: commit %s is image %d layer %d's", i, j, rep.Commit, pi, pj)
						}
					}
				}
			}
			byLayer, byChain := readRef(t, r, layerRef(d)), readRef(t, r, chainRef(chain))
			switch w.weak {
			case "layer":
				if byLayer != rep.Commit {
					t.Errorf("image %d layer %d: %s = %s, want %s", i, j, layerRef(d), byLayer, rep.Commit)
				}
				if !byChain.IsZero() {
					t.Errorf("image %d layer %d: unexpected %s", i, j, chainRef(chain))
				}
			case "chain":
				if byChain != rep.Commit {
					t.Errorf("image %d layer %d: %s = %s, want %s", i, j, chainRef(chain), byChain, rep.Commit)
				}
				cm, err := r.ReadCommit(t.Context(), rep.Commit)
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := cm.Metadata.String(compose.KeyChainID); got != chain.String() {
					t.Errorf("image %d layer %d: %s = %q, want %s", i, j, compose.KeyChainID, got, chain)
				}
			}
		}
	}
	// Every image composes to what its layers say: image 2's lib is a
	// directory, so its x.so is in lib/, not usr/lib/.
	for i, res := range results {
		tree, err := compose.Open(r, res.Commit, compose.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := "usr/lib/x.so"
		if i == 2 {
			want = "lib/x.so"
		}
		if e, err := tree.Lookup(context.Background(), want); err != nil || e.IsDir() {
			t.Errorf("image %d: %s: %v", i, want, err)
		}
	}
}

// TestImportModes imports one image in each mode and checks the manifest
// commit: its related list (the layer commits, base first, named by
// diff_id) and its tree, which for precomposed and squashed is the
// layered composition, hardlinks, whiteouts and devices included.
func TestImportModes(t *testing.T) {
	layers := [][]byte{
		ct.Tar(t, ct.File("a/keep", "k"), ct.File("a/gone", "g"), ct.File("h1", "x"), ct.Link("h2", "h1"), ct.Char("dev/null", 1, 3), ct.Dir("o/"), ct.File("o/old", "o")),
		ct.Tar(t, ct.Whiteout("a/gone"), ct.Opaque("o"), ct.File("o/new", "n"), ct.Symlink("s", "a/keep")),
		ct.Tar(t, ct.File("a/keep", "k2", ct.Mode(0o600), ct.Owner(1, 2)), ct.Link("h3", "s")),
	}
	newImage := func() *imagetest.Image {
		var ls []*imagetest.Layer
		for _, l := range layers {
			ls = append(ls, imagetest.Gzip(l))
		}
		return imagetest.New("modes:t", ls...)
	}
	ctx := context.Background()
	type composed struct {
		dump  []string
		links map[string]string // path -> the first path of its inode group
	}
	look := func(t *testing.T, r *repo.Repo, c repo.Checksum) composed {
		tree, err := compose.Open(r, c, compose.Options{})
		if err != nil {
			t.Fatal(err)
		}
		groups := map[string][]string{}
		for _, p := range []string{"h1", "h2", "h3", "s", "a/keep", "o/new"} {
			e, err := tree.Lookup(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if k := tree.InodeKey(e, p); k != "" {
				groups[k] = append(groups[k], p)
			}
		}
		links := map[string]string{}
		for _, g := range groups {
			sort.Strings(g)
			for _, p := range g {
				links[p] = g[0]
			}
		}
		return composed{dump(t, tree), links}
	}
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	layered := importT(t, r, newImage(), ImportOptions{Ref: "img/layered"})
	want := look(t, r, layered.Commit)
	if len(want.links) != 2 || want.links["h2"] != "h1" || want.links["h1"] != "h1" {
		t.Errorf("layered hardlink groups %v, want h1 and h2", want.links)
	}
	for _, mode := range []string{compose.ModeLayered, compose.ModePrecomposed, compose.ModeSquashed} {
		t.Run(mode, func(t *testing.T) {
			img := newImage()
			res := importT(t, r, img, ImportOptions{Ref: "img/" + mode + "2", Mode: mode})
			cm, err := r.ReadCommit(t.Context(), res.Commit)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := cm.Metadata.String(compose.KeyMode); got != mode {
				t.Errorf("%s = %q", compose.KeyMode, got)
			}
			var wantRel []repo.Related
			if mode != compose.ModeSquashed {
				for i, l := range res.Layers {
					wantRel = append(wantRel, repo.Related{Name: diffID(t, imagetest.Gzip(layers[i])).String(), Commit: l.Commit})
					if l.Commit != layered.Layers[i].Commit || !l.Reused {
						t.Errorf("layer %d: commit %s (reused %v), want the layered import's %s", i, l.Commit, l.Reused, layered.Layers[i].Commit)
					}
				}
			}
			if fmt.Sprint(cm.Related) != fmt.Sprint(wantRel) {
				t.Errorf("related %v, want %v", cm.Related, wantRel)
			}
			got := look(t, r, res.Commit)
			if strings.Join(got.dump, "\n") != strings.Join(want.dump, "\n") {
				t.Errorf("tree:\n%s\nwant the layered composition:\n%s", strings.Join(got.dump, "\n"), strings.Join(want.dump, "\n"))
			}
			if fmt.Sprint(got.links) != fmt.Sprint(want.links) {
				t.Errorf("hardlink groups %v, want %v", got.links, want.links)
			}
			if mode == compose.ModeLayered && res.Commit != layered.Commit {
				t.Errorf("the same image imported twice: commits %s and %s", layered.Commit, res.Commit)
			}
		})
	}
}

// repoState lists a repository's refs and objects.
func repoState(t *testing.T, r *repo.Repo) string {
	t.Helper()
	var out []string
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		out = append(out, "ref "+ref.Name.String()+" "+ref.Commit.String())
	}
	if err := r.ListObjects(func(o repo.ObjectName) error {
		out = append(out, fmt.Sprintf("object %v %s", o.Type, o.Checksum))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Staging directories and files of transactions.
	if err := filepath.WalkDir(filepath.Join(r.Path(), "tmp"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, "tmp "+p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestImportFailureLeavesNothing: an import that fails at any layer, or
// before, leaves the repository as it was: no ref, no commit, no object,
// no staging file.
func TestImportFailureLeavesNothing(t *testing.T) {
	good := func() *imagetest.Layer {
		return imagetest.Gzip(ct.Tar(t, ct.File("a", "1"), ct.File("big", strings.Repeat("b", 2<<20))))
	}
	errBlob := errors.New("blob unavailable")
	cases := []struct {
		name   string
		layers []*imagetest.Layer
		o      ImportOptions
		want   error  // errors.Is
		text   string // in the error
	}{
		{"a bad tar in the second layer", []*imagetest.Layer{good(), imagetest.Plain([]byte("not a tar, and not 512 bytes long either"))}, ImportOptions{}, ErrBadLayer, "layer 1"},
		{"an unreadable blob", []*imagetest.Layer{good(), imagetest.Failing(ct.Tar(t, ct.File("x", "1")), errBlob)}, ImportOptions{}, errBlob, "layer 1"},
		{"a layer over the limits", []*imagetest.Layer{good(), imagetest.Gzip(ct.Tar(t, ct.File("1", "1"), ct.File("2", "2"), ct.File("3", "3")))}, ImportOptions{Limits: Limits{MaxEntries: 2, MaxBytes: 1 << 30, MaxPathLen: 100, MaxDepth: 10, MaxSymlinkHops: 5}}, ErrLimit, "entries"},
		{"too many layers", []*imagetest.Layer{good(), good()}, ImportOptions{Limits: func() Limits { l := DefaultLimits; l.MaxLayers = 1; return l }()}, ErrLimit, "--max-layers"},
		{"a weak ref", []*imagetest.Layer{good()}, ImportOptions{Ref: "refs/weak/x"}, nil, "strong ref"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
			importT(t, r, imagetest.New("before", imagetest.Gzip(ct.Tar(t, ct.File("old", "o")))), ImportOptions{})
			before := repoState(t, r)
			_, err := Import(context.Background(), r, imagetest.New("failing:t", tc.layers...), tc.o)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.want, tc.text)
			}
			if after := repoState(t, r); after != before {
				t.Errorf("repository changed by a failed import:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
}

func TestDefaultRef(t *testing.T) {
	d := digest.FromString("m")
	for _, c := range []struct{ name, want string }{
		{"example/final:latest", "image/example/final/latest"},
		{"", "image/sha256/" + d.Encoded()},
		{"a b/.hidden:-x", "image/a_b/_.hidden/_-x"},
		{"//", "image/sha256/" + d.Encoded()},
	} {
		if got := DefaultRef(c.name, d); got != c.want {
			t.Errorf("DefaultRef(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestLayerCommitIgnoresBlob: the same layers as other blobs (gzip,
// zstd, uncompressed), imported into fresh repositories, give the same
// layer commits and the same weak refs: a layer commit depends on the
// uncompressed tar and its base only, so an image recompressed by an
// export and a registry push comes back to the same commits.
func TestLayerCommitIgnoresBlob(t *testing.T) {
	tars := [][]byte{
		ct.Tar(t, ct.Dir("usr/"), ct.Symlink("lib", "usr"), ct.File("etc/os", "base")),
		ct.Tar(t, ct.File("lib/x.so", "so"), ct.Whiteout("etc/os")), // depends on its base
	}
	var want []repo.Related
	var wantRefs string
	for k, wrap := range []func([]byte) *imagetest.Layer{imagetest.Gzip, imagetest.Zstd, imagetest.Plain} {
		var ls []*imagetest.Layer
		for _, tb := range tars {
			ls = append(ls, wrap(tb))
		}
		r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
		res := importT(t, r, imagetest.New("blob:t", ls...), ImportOptions{Ref: "img"})
		cm, err := r.ReadCommit(t.Context(), res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		refs, err := r.ListRefs(repo.RefWeak)
		if err != nil {
			t.Fatal(err)
		}
		var weak []string
		for _, ref := range refs {
			weak = append(weak, ref.Name.String()+" "+ref.Commit.String())
		}
		if k == 0 {
			want, wantRefs = cm.Related, strings.Join(weak, "\n")
			if len(weak) != 2 || !strings.Contains(wantRefs, "/chain/") {
				t.Fatalf("weak refs %v, want a layer and a chain ref", weak)
			}
			continue
		}
		if fmt.Sprint(cm.Related) != fmt.Sprint(want) {
			t.Errorf("blobs %d: related %v, want %v", k, cm.Related, want)
		}
		if got := strings.Join(weak, "\n"); got != wantRefs {
			t.Errorf("blobs %d: weak refs\n%s\nwant\n%s", k, got, wantRefs)
		}
	}
}
