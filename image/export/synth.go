package export

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// synthTar writes a tar of a stored tree (a layer commit's, or a
// squashed image's composed one) in path order with mtime 0: whiteout
// files stay .wh. entries, implicit directories get no entry, special
// files become devices and fifos again, and members of a hardlink group
// (links: path -> group leader) after the first become hardlinks.
func synthTar(ctx context.Context, r *repo.Repo, tree, meta repo.Checksum, links map[string]string, w io.Writer) error {
	tw := tar.NewWriter(w)
	first := map[string]string{} // group leader -> path written as the file
	epoch := time.Unix(0, 0)
	hdrBase := func(name string, mode uint32, uid, gid uint32, xs []repo.Xattr) *tar.Header {
		h := &tar.Header{Name: name, Mode: int64(mode & 0o7777), Uid: int(uid), Gid: int(gid), ModTime: epoch, Format: tar.FormatPAX}
		for _, x := range xs {
			if compose.DroppedXattr(x.Name) {
				continue
			}
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
		return h
	}
	var walk func(tree, meta repo.Checksum, path string) error
	walk = func(tree, meta repo.Checksum, path string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		dm, err := r.ReadDirMeta(ctx, meta)
		if err != nil {
			return err
		}
		if compose.ImplicitKind(dm) == "" {
			name := path + "/"
			if path == "" {
				name = "./"
			}
			h := hdrBase(name, dm.Mode, dm.UID, dm.GID, dm.Xattrs)
			h.Typeflag = tar.TypeDir
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		dt, err := r.ReadDirTree(ctx, tree)
		if err != nil {
			return err
		}
		// Files and directories, merged in name order.
		fi, di := 0, 0
		for fi < len(dt.Files) || di < len(dt.Dirs) {
			if di == len(dt.Dirs) || (fi < len(dt.Files) && dt.Files[fi].Name < dt.Dirs[di].Name) {
				f := dt.Files[fi]
				fi++
				p := join(path, f.Name)
				if err := writeFile(ctx, r, tw, f.Checksum, p, links, first, hdrBase); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				continue
			}
			d := dt.Dirs[di]
			di++
			if err := walk(d.Tree, d.Meta, join(path, d.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(tree, meta, ""); err != nil {
		return err
	}
	return tw.Close()
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func writeFile(ctx context.Context, r *repo.Repo, tw *tar.Writer, sum repo.Checksum, p string, links, first map[string]string,
	hdrBase func(string, uint32, uint32, uint32, []repo.Xattr) *tar.Header) error {
	fm, err := r.ReadFileMeta(ctx, sum)
	if err != nil {
		return err
	}
	if leader, ok := links[p]; ok {
		if target, ok := first[leader]; ok {
			h := hdrBase(p, fm.Mode, fm.UID, fm.GID, nil)
			h.Typeflag, h.Linkname = tar.TypeLink, target
			return tw.WriteHeader(h)
		}
		first[leader] = p
	}
	h := hdrBase(p, fm.Mode, fm.UID, fm.GID, fm.Xattrs)
	if fm.IsSymlink() {
		h.Typeflag, h.Linkname = tar.TypeSymlink, fm.Target
		return tw.WriteHeader(h)
	}
	for _, x := range fm.Xattrs {
		if x.Name != compose.SpecialXattr {
			continue
		}
		s, err := compose.ParseSpecial(x.Value)
		if err != nil {
			return err
		}
		switch s.Type {
		case 'c':
			h.Typeflag = tar.TypeChar
		case 'b':
			h.Typeflag = tar.TypeBlock
		default:
			h.Typeflag = tar.TypeFifo
		}
		h.Devmajor, h.Devminor = int64(s.Major), int64(s.Minor)
		return tw.WriteHeader(h)
	}
	h.Typeflag, h.Size = tar.TypeReg, fm.Size
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if fm.Size == 0 {
		return nil
	}
	c, err := r.OpenContent(ctx, sum)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = io.Copy(tw, io.NewSectionReader(c, 0, fm.Size))
	return err
}

// readLinks decodes a commit's compose.KeyHardlinks.
func readLinks(md repo.Metadata) map[string]string {
	v, ok := md.Get(compose.KeyHardlinks)
	if !ok {
		return nil
	}
	arr, _ := v.Value.([]any)
	m := map[string]string{}
	for _, e := range arr {
		if de, ok := e.(gvariant.DictEntry); ok {
			k, _ := de.Key.(string)
			v, _ := de.Value.(string)
			m[k] = v
		}
	}
	return m
}
