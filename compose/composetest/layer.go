package composetest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// The names of package compose's schema that WriteLayer writes. This
// package cannot import compose, whose own tests import it; compose's
// tests check that the names agree.
const (
	SpecialXattr      = "user.ostree-mount.special"
	ImplicitXattr     = "user.ostree-mount.implicit"
	ImplicitParent    = "1"
	ImplicitWhiteouts = "w"
	KeyXattrs         = "ostree-mount.has-xattrs"
)

// Layer is a layer commit written by WriteLayer.
type Layer struct {
	Commit, Tree, Meta repo.Checksum
}

type wnode struct {
	dir      bool
	explicit bool
	meta     repo.DirMeta
	kids     map[string]*wnode
	sum      repo.Checksum
}

// WriteLayer stores a layer tar as a layer commit of package compose's
// schema: whiteouts and opaque markers as empty 0644 files of their
// names, devices and fifos as empty files carrying SpecialXattr, parents
// without an entry of their own as implicit directories. It is meant for
// the well-formed tars of tests: it follows no symlink, makes no hardlink
// and checks no limit (package image's importer does, for real images).
func WriteLayer(tx *repo.Transaction, layer []byte) (*Layer, error) {
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
			s := "p"
			switch hdr.Typeflag {
			case tar.TypeChar:
				s = fmt.Sprintf("c %d:%d", hdr.Devmajor, hdr.Devminor)
			case tar.TypeBlock:
				s = fmt.Sprintf("b %d:%d", hdr.Devmajor, hdr.Devminor)
			}
			fm.Xattrs = repo.NormalizeXattrs(append(fm.Xattrs, repo.Xattr{Name: SpecialXattr, Value: []byte(s)}))
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
	md.Set(KeyXattrs, gvariant.Variant{Type: gvariant.MustParseType("b"), Value: hasXattrs})
	c, err := tx.WriteCommitFor(tree, meta, &repo.CommitOptions{Subject: "test layer", Timestamp: time.Unix(0, 0), NoParent: true, NoBindings: true, Metadata: md})
	if err != nil {
		return nil, err
	}
	return &Layer{Commit: c, Tree: tree, Meta: meta}, nil
}
