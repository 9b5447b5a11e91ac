package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
)

// The composition tests describe their layers as tars (composetest) and
// need them as layer commits. The importer, which makes layer commits of
// real images, lives above this package (image/), so these tests write
// them with writeLayer: a plain writer of the layer commit schema for the
// well-formed tars of the tests (no symlink resolution, no hardlinks, no
// limits). The importer's own tests (image/) check that it writes the
// same schema.

// testLayer is a layer commit written by writeLayer.
type testLayer struct {
	Commit, Tree, Meta repo.Checksum
}

// importLayers writes each tar as a layer commit, in one transaction,
// and returns the composed tree.
func importLayers(t *testing.T, r *repo.Repo, layers ...[]byte) (*Tree, []*testLayer, error) {
	t.Helper()
	return importLayersWith(t, r, Options{}, layers...)
}

// importLayersWith is importLayers with the returned tree opened with o.
func importLayersWith(t *testing.T, r *repo.Repo, o Options, layers ...[]byte) (*Tree, []*testLayer, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	var commits []repo.Checksum
	var results []*testLayer
	for i, l := range layers {
		res, err := writeLayer(tx, l)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		results = append(results, res)
		commits = append(commits, res.Commit)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tree, err := OpenLayers(r, commits, o)
	if err != nil {
		t.Fatal(err)
	}
	return tree, results, nil
}

type wnode struct {
	dir      bool
	explicit bool
	meta     repo.DirMeta
	kids     map[string]*wnode
	sum      repo.Checksum
}

// writeLayer stores a layer tar as a layer commit: whiteouts and opaque
// markers as empty 0644 files of their names, devices and fifos as empty
// files carrying SpecialXattr, parents without an entry of their own as
// implicit directories.
func writeLayer(tx *repo.Transaction, layer []byte) (*testLayer, error) {
	root := &wnode{dir: true, kids: map[string]*wnode{}}
	hasXattrs := false
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var parts []string
		for _, c := range strings.Split(hdr.Name, "/") {
			if c != "" && c != "." {
				parts = append(parts, c)
			}
		}
		var xs []repo.Xattr
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xs = append(xs, repo.Xattr{Name: name, Value: []byte(v)})
			}
		}
		xs = repo.NormalizeXattrs(xs)
		hasXattrs = hasXattrs || len(xs) > 0
		uid, gid, perm := uint32(hdr.Uid), uint32(hdr.Gid), uint32(hdr.Mode)&0o7777
		d := root
		for _, c := range parts[:max(len(parts)-1, 0)] {
			k := d.kids[c]
			if k == nil {
				k = &wnode{dir: true, kids: map[string]*wnode{}}
				d.kids[c] = k
			}
			d = k
		}
		if len(parts) == 0 {
			root.explicit, root.meta = true, repo.DirMeta{UID: uid, GID: gid, Mode: repo.ModeDir | perm, Xattrs: xs}
			continue
		}
		base := parts[len(parts)-1]
		fm := &repo.FileMeta{UID: uid, GID: gid, Mode: repo.ModeRegular | perm, Xattrs: xs}
		var content io.Reader = strings.NewReader("")
		switch {
		case strings.HasPrefix(base, ".wh."):
			fm = &repo.FileMeta{Mode: repo.ModeRegular | 0o644}
		case hdr.Typeflag == tar.TypeDir:
			k := d.kids[base]
			if k == nil || !k.dir {
				k = &wnode{dir: true, kids: map[string]*wnode{}}
				d.kids[base] = k
			}
			k.explicit, k.meta = true, repo.DirMeta{UID: uid, GID: gid, Mode: repo.ModeDir | perm, Xattrs: xs}
			continue
		case hdr.Typeflag == tar.TypeReg:
			fm.Size, content = hdr.Size, tr
		case hdr.Typeflag == tar.TypeSymlink:
			fm.Mode, fm.Target, content = repo.ModeSymlink|0o777, hdr.Linkname, nil
		case hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock || hdr.Typeflag == tar.TypeFifo:
			s := Special{Type: 'p'}
			if hdr.Typeflag != tar.TypeFifo {
				s = Special{Type: 'c', Major: uint32(hdr.Devmajor), Minor: uint32(hdr.Devminor)}
				if hdr.Typeflag == tar.TypeBlock {
					s.Type = 'b'
				}
			}
			fm.Xattrs = repo.NormalizeXattrs(append(fm.Xattrs, repo.Xattr{Name: SpecialXattr, Value: []byte(s.String())}))
		default:
			return nil, fmt.Errorf("entry %q: type %q not supported by the test writer", hdr.Name, hdr.Typeflag)
		}
		sum, err := tx.WriteFile(fm, content)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		d.kids[base] = &wnode{sum: sum}
	}
	var write func(n *wnode) (tree, meta repo.Checksum, real bool, err error)
	write = func(n *wnode) (tree, meta repo.Checksum, real bool, err error) {
		dt := &repo.DirTree{}
		names := make([]string, 0, len(n.kids))
		for name := range n.kids {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			k := n.kids[name]
			if !k.dir {
				dt.Files = append(dt.Files, repo.TreeFile{Name: name, Checksum: k.sum})
				real = real || !strings.HasPrefix(name, ".wh.")
				continue
			}
			t, m, r, err := write(k)
			if err != nil {
				return tree, meta, false, err
			}
			real = real || r
			dt.Dirs = append(dt.Dirs, repo.TreeDir{Name: name, Tree: t, Meta: m})
		}
		if tree, err = tx.WriteDirTree(dt); err != nil {
			return
		}
		dm := n.meta
		if !n.explicit {
			kind := ImplicitParent
			if !real {
				kind = ImplicitWhiteouts
			}
			dm = repo.DirMeta{Mode: repo.ModeDir | 0o755, Xattrs: []repo.Xattr{{Name: ImplicitXattr, Value: []byte(kind)}}}
		}
		meta, err = tx.WriteDirMeta(&dm)
		return tree, meta, real || n.explicit, err
	}
	tree, meta, _, err := write(root)
	if err != nil {
		return nil, err
	}
	var md repo.Metadata
	md.Set(KeyXattrs, BoolVariant(hasXattrs))
	c, err := tx.WriteCommitFor(tree, meta, &repo.CommitOptions{Subject: "test layer", Timestamp: time.Unix(0, 0), NoParent: true, NoBindings: true, Metadata: md})
	if err != nil {
		return nil, err
	}
	return &testLayer{Commit: c, Tree: tree, Meta: meta}, nil
}
