package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// MutableTree is a directory being built for a commit: file entries name
// content objects, directory entries are subtrees, and Meta names the
// directory's dirmeta. Write stores the dirtrees bottom-up.
type MutableTree struct {
	Meta  Checksum
	Files map[string]Checksum
	Dirs  map[string]*MutableTree
}

// NewMutableTree returns an empty tree with the given dirmeta.
func NewMutableTree(meta Checksum) *MutableTree {
	return &MutableTree{Meta: meta, Files: map[string]Checksum{}, Dirs: map[string]*MutableTree{}}
}

// Write stores the tree's dirtree objects, children first, and returns the
// root dirtree checksum.
func (t *MutableTree) Write(tx *Transaction) (Checksum, error) {
	dt := &DirTree{Files: make([]TreeFile, 0, len(t.Files)), Dirs: make([]TreeDir, 0, len(t.Dirs))}
	for name, c := range t.Files {
		dt.Files = append(dt.Files, TreeFile{Name: name, Checksum: c})
	}
	for name, sub := range t.Dirs {
		c, err := sub.Write(tx)
		if err != nil {
			return c, err
		}
		dt.Dirs = append(dt.Dirs, TreeDir{Name: name, Tree: c, Meta: sub.Meta})
	}
	return tx.WriteDirTree(dt)
}

// Modifier rewrites metadata on its way into a commit, as the options of
// `ostree commit` do. It applies to every entry, the root included.
type Modifier struct {
	OwnerUID, OwnerGID *uint32
	// Canonical is --canonical-permissions: uid and gid 0, files and
	// directories masked to 0755 (symlinks unchanged), no xattrs.
	Canonical bool
	NoXattrs  bool
	// CheckXattrs, if set, sees the xattrs each entry would be committed
	// with (after the other settings) and may refuse them; rel is the
	// entry's path in the tree.
	CheckXattrs func(rel string, xs []Xattr) error
}

// check runs CheckXattrs.
func (m *Modifier) check(rel string, xs []Xattr) error {
	if m == nil || m.CheckXattrs == nil || len(xs) == 0 {
		return nil
	}
	return m.CheckXattrs(rel, xs)
}

// dropsXattrs reports whether xattrs need not be read at all.
func (m *Modifier) dropsXattrs() bool { return m != nil && (m.Canonical || m.NoXattrs) }

// apply rewrites uid, gid, mode and xattrs.
func (m *Modifier) apply(uid, gid, mode *uint32, xs *[]Xattr) {
	if m == nil {
		return
	}
	// The owner overrides come first and canonical permissions last, as in
	// libostree's commit modifier: in a bare-user-only repository, 0:0 wins.
	if m.OwnerUID != nil {
		*uid = *m.OwnerUID
	}
	if m.OwnerGID != nil {
		*gid = *m.OwnerGID
	}
	if m.NoXattrs {
		*xs = nil
	}
	if m.Canonical {
		*uid, *gid = 0, 0
		if *mode&ModeFmt != ModeSymlink {
			*mode = *mode&ModeFmt | *mode&0o755
		}
		*xs = nil
	}
}

// effectiveModifier forces canonical permissions in bare-user-only repos.
func (r *Repo) effectiveModifier(m *Modifier) *Modifier {
	if r.mode != ModeBareUserOnly {
		return m
	}
	out := Modifier{Canonical: true}
	if m != nil {
		out = *m
		out.Canonical = true
	}
	return &out
}

// CommitDir stores the directory tree at dir (not following symlinks) and
// returns it as a MutableTree. Regular files are hashed and written in
// parallel. Names and symlink targets that are not UTF-8, and devices,
// fifos and sockets, are errors naming the path. The first error stops
// the walk and the files not yet started.
func (tx *Transaction) CommitDir(ctx context.Context, dir string, mod *Modifier) (*MutableTree, error) {
	mod = tx.r.effectiveModifier(mod)
	// The walk runs here, and hands each file to the group: hashing and
	// writing is most of the work, and the limit keeps GOMAXPROCS×2 of
	// them in flight so that one blocked on the disk does not idle a CPU.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	w := &dirWalker{tx: tx, mod: mod, ctx: gctx, g: g}
	root, err := w.walkDir(dir, "/")
	// A file's error comes first: the walk sees only the cancellation it
	// caused.
	if gerr := g.Wait(); gerr != nil {
		return nil, gerr
	}
	if err != nil {
		return nil, err
	}
	return root, nil
}

// dirWalker walks a directory for CommitDir. ctx is the group's: it ends
// at the first error of a file.
type dirWalker struct {
	tx  *Transaction
	mod *Modifier
	ctx context.Context
	g   *errgroup.Group
	mu  sync.Mutex // guards the Files maps the group fills
}

func (w *dirWalker) readXattrs(path string) ([]Xattr, error) {
	if w.mod.dropsXattrs() {
		return nil, nil
	}
	return listXattrs(path, true)
}

func (w *dirWalker) walkDir(path, rel string) (*MutableTree, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("commit %s: %w", rel, err)
	}
	xs, err := w.readXattrs(path)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", rel, err)
	}
	uid, gid, mode := st.Uid, st.Gid, st.Mode
	w.mod.apply(&uid, &gid, &mode, &xs)
	if err := w.mod.check(rel, xs); err != nil {
		return nil, err
	}
	meta, err := w.tx.WriteDirMeta(&DirMeta{UID: uid, GID: gid, Mode: mode, Xattrs: xs})
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", rel, err)
	}
	t := NewMutableTree(meta)
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", rel, err)
	}
	for _, e := range ents {
		name := e.Name()
		crel := filepath.Join(rel, name)
		if err := ValidateFilename(name); err != nil {
			return nil, fmt.Errorf("commit %q: %w", crel, err)
		}
		cpath := filepath.Join(path, name)
		switch e.Type() {
		case fs.ModeDir:
			sub, err := w.walkDir(cpath, crel)
			if err != nil {
				return nil, err
			}
			t.Dirs[name] = sub
		case fs.ModeSymlink, 0:
			if err := w.ctx.Err(); err != nil {
				return nil, err
			}
			w.g.Go(func() error {
				if err := w.ctx.Err(); err != nil {
					return err
				}
				c, err := w.commitFile(cpath, crel)
				if err != nil {
					return err
				}
				w.mu.Lock()
				t.Files[name] = c
				w.mu.Unlock()
				return nil
			})
		default:
			return nil, fmt.Errorf("commit %q: unsupported file type %s: %w", crel, e.Type(), ErrUnsupported)
		}
	}
	return t, nil
}

// commitFile writes one regular file or symlink.
func (w *dirWalker) commitFile(path, rel string) (Checksum, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) {
		// A symlink.
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return Checksum{}, fmt.Errorf("commit %s: %w", rel, err)
		}
		target, err := os.Readlink(path)
		if err != nil {
			return Checksum{}, fmt.Errorf("commit %s: %w", rel, err)
		}
		xs, err := w.readXattrs(path)
		if err != nil {
			return Checksum{}, fmt.Errorf("commit %s: %w", rel, err)
		}
		m := FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Target: target, Xattrs: xs}
		w.mod.apply(&m.UID, &m.GID, &m.Mode, &m.Xattrs)
		if err := w.mod.check(rel, m.Xattrs); err != nil {
			return Checksum{}, err
		}
		c, err := w.tx.WriteFile(&m, nil)
		if err != nil {
			return c, fmt.Errorf("commit %q: %w", rel, err)
		}
		return c, nil
	}
	if err != nil {
		return Checksum{}, fmt.Errorf("commit %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Checksum{}, fmt.Errorf("commit %s: %w", rel, err)
	}
	if st.Mode&ModeFmt != ModeRegular {
		return Checksum{}, fmt.Errorf("commit %q: unsupported file type %#o: %w", rel, st.Mode&ModeFmt, ErrUnsupported)
	}
	var xs []Xattr
	if !w.mod.dropsXattrs() {
		if xs, err = flistXattrs(fd); err != nil {
			return Checksum{}, fmt.Errorf("commit %s: %w", rel, err)
		}
	}
	m := FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: xs, Size: st.Size}
	w.mod.apply(&m.UID, &m.GID, &m.Mode, &m.Xattrs)
	if err := w.mod.check(rel, m.Xattrs); err != nil {
		return Checksum{}, err
	}
	c, err := w.tx.WriteFile(&m, f)
	if err != nil {
		return c, fmt.Errorf("commit %s: %w", rel, err)
	}
	return c, nil
}
