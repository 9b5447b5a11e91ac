package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Checkout materializes a composed tree at dest, which must not exist:
// files are copied and verified, special files are created with mknod,
// and ownership, modes and xattrs are applied (unless UserMode).
func Checkout(ctx context.Context, r *repo.Repo, t *Tree, dest string, o repo.CheckoutOptions) error {
	return CheckoutEntry(ctx, r, t, t.Root(), dest, o)
}

// CheckoutEntry is Checkout of the composed directory root (an entry of
// t) alone.
func CheckoutEntry(ctx context.Context, r *repo.Repo, t *Tree, root *Entry, dest string, o repo.CheckoutOptions) error {
	if os.Geteuid() != 0 {
		o.UserMode = true
	}
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("checkout %s: destination exists: %w", dest, repo.ErrExists)
	}
	w := &repo.FileWriter{Repo: r, UserMode: o.UserMode}
	type pending struct {
		path string
		meta repo.DirMeta
	}
	var dirs []pending
	var walk func(e *Entry, path string) error
	walk = func(e *Entry, path string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Mkdir(path, 0o700); err != nil {
			return fmt.Errorf("checkout %s: %w", path, err)
		}
		d, err := t.ReadDir(ctx, e)
		if err != nil {
			return err
		}
		for _, c := range d.Entries {
			p := filepath.Join(path, c.Name)
			switch c.Mode & repo.ModeFmt {
			case repo.ModeDir:
				if err := walk(c, p); err != nil {
					return err
				}
			case repo.ModeRegular, repo.ModeSymlink:
				if err := w.WriteFile(c.Object, p); err != nil {
					return err
				}
			default:
				if err := mknod(p, &c.Attr, o.UserMode); err != nil {
					return err
				}
			}
		}
		dirs = append(dirs, pending{path, repo.DirMeta{UID: e.UID, GID: e.GID, Mode: e.Mode, Xattrs: e.Xattrs}})
		return nil
	}
	if err := walk(root, dest); err != nil {
		return err
	}
	for i := range dirs {
		if err := w.FinishDir(dirs[i].path, &dirs[i].meta); err != nil {
			return err
		}
	}
	return nil
}

// mknod creates a device node, fifo or socket placeholder.
func mknod(path string, a *Attr, userMode bool) error {
	mode := a.Mode
	if a.Mode&repo.ModeFmt == repo.ModeSocket {
		mode = repo.ModeRegular | a.Mode&0o7777 // a socket cannot be made by mknod meaningfully
	}
	if err := unix.Mknod(path, mode&^0o7777|0o600, int(a.Rdev)); err != nil {
		return fmt.Errorf("checkout %s: mknod: %w", path, err)
	}
	if !userMode {
		if err := unix.Lchown(path, int(a.UID), int(a.GID)); err != nil {
			return fmt.Errorf("checkout %s: %w", path, err)
		}
		for _, x := range a.Xattrs {
			if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("checkout %s: xattr %s: %w", path, x.Name, err)
			}
		}
	}
	perm := a.Mode & 0o7777
	if userMode {
		perm &^= 0o6000
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, perm, 0); err != nil {
		return fmt.Errorf("checkout %s: %w", path, err)
	}
	return nil
}
