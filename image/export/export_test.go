package export

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ostree-mount/ostree-mount/compose"
	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/image"
	"github.com/ostree-mount/ostree-mount/image/imagetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

func TestParseDest(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Dest
		bad  bool
	}{
		{in: "oci:/a/b", want: Dest{"oci", "/a/b", ""}},
		{in: "oci:/a/b:v1", want: Dest{"oci", "/a/b", "v1"}},
		{in: "oci:/a:b/c", want: Dest{"oci", "/a:b/c", ""}}, // "b/c" is no tag
		{in: "oci-archive:x.tar:latest", want: Dest{"oci-archive", "x.tar", "latest"}},
		{in: "docker-archive:x.tar", want: Dest{"docker-archive", "x.tar", ""}},
		{in: "docker-archive:x.tar:example/img:v2", want: Dest{"docker-archive", "x.tar", "example/img:v2"}},
		{in: "docker-archive:x.tar:example/img", want: Dest{"docker-archive", "x.tar", "example/img:latest"}},
		{in: "docker://host/img", bad: true},
		{in: "/just/a/path", bad: true},
		{in: "oci:", bad: true},
	} {
		got, err := ParseDest(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseDest(%q) = %+v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseDest(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// importImage imports layer tars as a gzip image and returns the repo,
// the manifest commit and the tars.
func importImage(t *testing.T, r *repo.Repo, ref string, tars ...[]byte) *image.ImportResult {
	t.Helper()
	var ls []*imagetest.Layer
	for _, tb := range tars {
		ls = append(ls, imagetest.Gzip(tb))
	}
	res, err := image.Import(context.Background(), r, imagetest.New(ref+":t", ls...), image.ImportOptions{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

// TestExportReproduces: an exported layout holds the stored config and
// layers that decompress to the imported tars, byte for byte.
func TestExportReproduces(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	tars := [][]byte{
		ct.Tar(t, ct.Dir("etc/"), ct.File("etc/a", "alpha"), ct.Symlink("l", "etc/a"), ct.File("big", strings.Repeat("x", 3<<20))),
		ct.Tar(t, ct.Whiteout("etc/a"), ct.File("etc/b", "beta"), ct.Link("h", "big")),
	}
	res := importImage(t, r, "img", tars...)
	dir := t.TempDir()
	out, err := Export(context.Background(), r, res.Commit, Dest{Transport: "oci", Path: dir, Tag: "x"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	readJSON(t, filepath.Join(dir, "blobs", "sha256", out.Manifest.Encoded()), &m)
	if len(m.Layers) != len(tars) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(tars))
	}
	for i, l := range m.Layers {
		f, err := os.Open(filepath.Join(dir, "blobs", "sha256", l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if sha(got) != sha(tars[i]) || out.Layers[i].DiffID.String() != sha(tars[i]) {
			t.Errorf("layer %d: tar %s (reported %s), imported %s", i, sha(got), out.Layers[i].DiffID, sha(tars[i]))
		}
	}
}

// TestExportWrongRecord: a record that does not replay the layer's tar
// (here another layer's) fails the export with ErrDiffID, and no layer
// blob is left.
func TestExportWrongRecord(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	a := importImage(t, r, "a", ct.Tar(t, ct.File("f", "one")))
	b := importImage(t, r, "b", ct.Tar(t, ct.File("f", "two"), ct.File("g", "three")))
	ctx := context.Background()
	other, err := r.ReadCommitMeta(b.Layers[0].Commit)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := other.Get(compose.KeyTarSplit)
	if !ok {
		t.Fatal("layer commit without a record")
	}
	md, err := r.ReadCommitMeta(a.Layers[0].Commit)
	if err != nil {
		t.Fatal(err)
	}
	md.Set(compose.KeyTarSplit, rec)
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.SetCommitMeta(a.Layers[0].Commit, md); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = Export(ctx, r, a.Commit, Dest{Transport: "oci", Path: dir}, Options{})
	if !errors.Is(err, ErrDiffID) {
		t.Fatalf("export with another layer's record: %v, want ErrDiffID", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(ents) != 0 {
		t.Errorf("a failed export left %d files in blobs/sha256", len(ents))
	}
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
