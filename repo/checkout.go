package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// CheckoutOptions control Checkout.
type CheckoutOptions struct {
	// UserMode is ostree's -U: no chown, no xattrs, and setuid/setgid bits
	// stripped. It is forced when the process is not root.
	UserMode bool
}

// Checkout materializes the tree of commit c (or of the subdirectory
// subpath) at dest, which must not exist. Every file's content is verified
// against its checksum as it is copied. Directories get mtime 0, like
// ostree's.
func (r *Repo) Checkout(ctx context.Context, c Checksum, subpath, dest string, o CheckoutOptions) error {
	cm, err := r.ReadCommit(ctx, c)
	if err != nil {
		return err
	}
	tree, meta, err := r.ResolvePath(cm.RootTree, cm.RootMeta, subpath)
	if err != nil {
		return err
	}
	// Like ostree: a non-root user, and any bare-user-only repository,
	// check out in user mode.
	if os.Geteuid() != 0 || r.mode == ModeBareUserOnly {
		o.UserMode = true
	}
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("checkout %s: destination exists: %w", dest, ErrExists)
	}
	w := &FileWriter{Repo: r, UserMode: o.UserMode}
	return w.checkoutTree(ctx, tree, meta, dest)
}

// ResolvePath walks a slash-separated path from a root dirtree and
// returns the directory's dirtree and dirmeta.
func (r *Repo) ResolvePath(tree, meta Checksum, p string) (Checksum, Checksum, error) {
	for _, name := range splitPath(p) {
		dt, err := r.ReadDirTree(context.TODO(), tree)
		if err != nil {
			return tree, meta, err
		}
		d, ok := dt.LookupDir(name)
		if !ok {
			return tree, meta, fmt.Errorf("path %s: no such directory: %w", p, ErrObjectNotFound)
		}
		tree, meta = d.Tree, d.Meta
	}
	return tree, meta, nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// FileWriter materializes objects into a real directory tree. It is used
// by Checkout and by the composer's checkout of layered images.
type FileWriter struct {
	Repo     *Repo
	UserMode bool
}

// WriteFile creates path from content object c: a symlink or a regular
// file with the object's ownership, mode and xattrs. The content is
// verified as it is copied; on a mismatch the file is removed.
func (w *FileWriter) WriteFile(c Checksum, path string) error {
	f, err := w.Repo.OpenFile(c)
	if err != nil {
		return err
	}
	m := f.Meta
	f.Close()
	if m.IsSymlink() {
		if err := os.Symlink(m.Target, path); err != nil {
			return fmt.Errorf("checkout %s: %w", path, err)
		}
		if w.UserMode {
			return nil
		}
		if err := unix.Lchown(path, int(m.UID), int(m.GID)); err != nil {
			return fmt.Errorf("checkout %s: %w", path, err)
		}
		for _, x := range m.Xattrs {
			if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("checkout %s: xattr %s: %w", path, x.Name, err)
			}
		}
		return nil
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", path, err)
	}
	fail := func(err error) error {
		out.Close()
		os.Remove(path)
		return err
	}
	if _, err := w.Repo.CopyFile(c, out); err != nil {
		return fail(fmt.Errorf("checkout %s: %w", path, err))
	}
	if err := w.applyMeta(int(out.Fd()), m.UID, m.GID, m.Mode, m.Xattrs); err != nil {
		return fail(fmt.Errorf("checkout %s: %w", path, err))
	}
	if err := out.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("checkout %s: %w", path, err)
	}
	return nil
}

// applyMeta sets ownership, xattrs and mode on an open file or directory.
func (w *FileWriter) applyMeta(fd int, uid, gid, mode uint32, xs []Xattr) error {
	perm := mode & 0o7777
	if w.UserMode {
		// As ostree checkout -U: files lose setuid/setgid and get u+r so
		// that the user can read what they checked out; directories keep
		// their bits (a setgid directory stays one).
		if mode&ModeFmt != ModeDir {
			perm = perm&^0o6000 | 0o400
		}
		return unix.Fchmod(fd, perm)
	}
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("xattr %s: %w", x.Name, err)
		}
	}
	return unix.Fchmod(fd, perm) // after chown, which clears setuid
}

// FinishDir applies a dirmeta to a directory created earlier, once its
// children are written, and sets its mtime to 0.
func (w *FileWriter) FinishDir(path string, m *DirMeta) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := w.applyMeta(fd, m.UID, m.GID, m.Mode, m.Xattrs); err != nil {
		return fmt.Errorf("checkout %s: %w", path, err)
	}
	ts := []unix.Timespec{{Sec: 0}, {Sec: 0}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("checkout %s: %w", path, err)
	}
	return nil
}

type dirJob struct {
	path string
	meta *DirMeta
}

// checkoutTree writes a tree at dest: the walk makes the directories, in
// order, and hands each file to a group that writes GOMAXPROCS×2 at a
// time. The first error stops the walk and the files not yet started.
func (w *FileWriter) checkoutTree(ctx context.Context, tree, meta Checksum, dest string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	var dirs []dirJob
	var walk func(tree, meta Checksum, path string) error
	walk = func(tree, meta Checksum, path string) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		dm, err := w.Repo.ReadDirMeta(ctx, meta)
		if err != nil {
			return err
		}
		if err := os.Mkdir(path, 0o700); err != nil {
			return fmt.Errorf("checkout %s: %w", path, err)
		}
		dt, err := w.Repo.ReadDirTree(ctx, tree)
		if err != nil {
			return err
		}
		for _, f := range dt.Files {
			c, p := f.Checksum, filepath.Join(path, f.Name)
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				return w.WriteFile(c, p)
			})
		}
		for _, d := range dt.Dirs {
			if err := walk(d.Tree, d.Meta, filepath.Join(path, d.Name)); err != nil {
				return err
			}
		}
		dirs = append(dirs, dirJob{path, dm})
		return nil
	}
	err := walk(tree, meta, dest)
	// A file's error comes first: the walk sees only the cancellation it
	// caused.
	if gerr := g.Wait(); gerr != nil {
		return gerr
	}
	if err != nil {
		return err
	}
	// Children before parents (dirs is in post-order), so that a read-only
	// directory mode is applied only after its contents exist.
	for _, d := range dirs {
		if err := w.FinishDir(d.path, d.meta); err != nil {
			return err
		}
	}
	return nil
}

// LookupFile returns the content object at path p of a tree.
func (r *Repo) LookupFile(tree Checksum, p string) (Checksum, error) {
	parts := splitPath(p)
	if len(parts) == 0 {
		return Checksum{}, fmt.Errorf("path %q: is a directory", p)
	}
	for i, name := range parts {
		dt, err := r.ReadDirTree(context.TODO(), tree)
		if err != nil {
			return Checksum{}, err
		}
		if i == len(parts)-1 {
			if f, ok := dt.LookupFile(name); ok {
				return f.Checksum, nil
			}
			if _, ok := dt.LookupDir(name); ok {
				return Checksum{}, fmt.Errorf("path %s: is a directory", p)
			}
			return Checksum{}, fmt.Errorf("path %s: %w", p, ErrObjectNotFound)
		}
		d, ok := dt.LookupDir(name)
		if !ok {
			return Checksum{}, fmt.Errorf("path %s: %w", p, ErrObjectNotFound)
		}
		tree = d.Tree
	}
	return Checksum{}, errors.New("unreachable")
}
