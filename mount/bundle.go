package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/image/bundle"
	"github.com/ostree-mount/ostree-mount/repo"
)

// The layout of a bundle directory.
const (
	// BundleMarker names the file that says a directory is a bundle
	// made by MakeBundle; RemoveBundle refuses a directory without it.
	BundleMarker = "ostree-mount-bundle.json"
	bundleConfig = "config.json"
	bundleRootfs = "rootfs"
	// A writable bundle's image mount (the overlay's lower layer) and
	// the overlay's upper and work directories.
	bundleLower = "lower"
	bundleUpper = "upper"
	bundleWork  = "work"
)

// BundleOptions describes a bundle.
type BundleOptions struct {
	// Mount is the image's mount; its Mountpoint is set by MakeBundle,
	// and it is always a background mount.
	Mount Options
	// Dir is the bundle directory (absolute): it must not exist, or be
	// empty.
	Dir string
	// Writable makes DIR/rootfs an overlay with the image below and its
	// upper and work directories in Dir.
	Writable bool
}

// bundleMarker is the content of BundleMarker.
type bundleMarker struct {
	Rev      string `json:"rev"`
	Commit   string `json:"commit"`
	Writable bool   `json:"writable"`
}

// MakeBundle makes an OCI runtime bundle of o.Mount's image at o.Dir:
// config.json from the image config (package bundle) and rootfs, the
// image mounted in the background (or, writable, an overlay on it). It
// returns once the bundle is ready; on failure it leaves nothing mounted
// and removes what it made.
func MakeBundle(o BundleOptions) (err error) {
	if o.Writable && os.Geteuid() != 0 {
		return fmt.Errorf("bundle %s: --writable needs root (it mounts a kernel overlayfs)", o.Dir)
	}
	if o.Writable && strings.ContainsAny(o.Dir, ",:\\") {
		return fmt.Errorf("bundle %s: a writable bundle's path may not contain ',', ':' or '\\' (overlayfs options)", o.Dir)
	}
	r, err := repo.Open(o.Mount.Repo)
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := o.Mount.commit(r)
	if err != nil {
		return err
	}
	// The config and the mount are of the same commit, whatever the ref
	// does meanwhile.
	o.Mount.Commit = sum.String()
	o.Mount.Foreground = false
	if err := makeBundleDir(o.Dir); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = RemoveBundle(o.Dir)
		}
	}()
	mk := bundleMarker{Rev: o.Mount.Rev, Commit: o.Mount.Commit, Writable: o.Writable}
	if err := writeJSON(filepath.Join(o.Dir, BundleMarker), mk); err != nil {
		return err
	}
	rootMode, err := writeBundleConfig(r, sum, o)
	if err != nil {
		return err
	}
	rootfs := filepath.Join(o.Dir, bundleRootfs)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	mo := o.Mount
	mo.Mountpoint = rootfs
	if o.Writable {
		mo.Mountpoint = filepath.Join(o.Dir, bundleLower)
		for _, d := range []string{bundleLower, bundleUpper, bundleWork} {
			if err := os.Mkdir(filepath.Join(o.Dir, d), 0o755); err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
		}
		// The overlay's root takes the upper directory's attributes:
		// give it the image root's.
		upper := filepath.Join(o.Dir, bundleUpper)
		if err := os.Chown(upper, int(rootMode.uid), int(rootMode.gid)); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := unix.Chmod(upper, rootMode.mode&0o7777); err != nil {
			return fmt.Errorf("bundle: chmod %s: %w", upper, err)
		}
	}
	if err := Mount(mo); err != nil {
		return fmt.Errorf("bundle %s: %w", o.Dir, err)
	}
	if !o.Writable {
		return nil
	}
	flags := uintptr(unix.MS_NODEV)
	if !o.Mount.FS.Suid {
		flags |= unix.MS_NOSUID
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", mo.Mountpoint,
		filepath.Join(o.Dir, bundleUpper), filepath.Join(o.Dir, bundleWork))
	if err := unix.Mount("ostree-mount:"+o.Mount.Rev, rootfs, "overlay", flags, data); err != nil {
		return fmt.Errorf("bundle %s: mount overlay on %s: %w", o.Dir, rootfs, err)
	}
	return nil
}

// makeBundleDir creates dir, or checks that it is an empty directory.
func makeBundleDir(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("bundle: %w", err)
	}
	if fi, err := os.Lstat(dir); err != nil {
		return fmt.Errorf("bundle: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("bundle: %s is not a directory", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("bundle: %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("bundle: %s is not empty", dir)
	}
	return nil
}

// rootAttr is the image root's owner and mode.
type rootAttr struct {
	uid, gid uint32
	mode     uint32
}

// writeBundleConfig writes o.Dir/config.json for commit sum and returns
// the image root's attributes.
func writeBundleConfig(r *repo.Repo, sum repo.Checksum, o BundleOptions) (rootAttr, error) {
	t, err := openTree(r, sum, o.Mount.Rev, 8<<20, 0, nil)
	if err != nil {
		return rootAttr{}, err
	}
	defer t.close()
	root := t.t.Root()
	ra := rootAttr{uid: root.UID, gid: root.GID, mode: root.Mode}
	spec, err := bundle.Generate(context.Background(), t.t, r, bundle.Options{Writable: o.Writable})
	if err != nil {
		return ra, fmt.Errorf("bundle: %s: %w", o.Mount.Rev, err)
	}
	return ra, writeJSON(filepath.Join(o.Dir, bundleConfig), spec)
}

// writeJSON writes v to p as indented JSON, as umoci writes config.json.
func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// RemoveBundle unmounts a bundle made by MakeBundle, the overlay first,
// then the image (also when the image's daemon died), and deletes dir.
// It refuses a directory without BundleMarker, and leaves dir in place
// when anything is still mounted in it (a running container: busy).
func RemoveBundle(dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, BundleMarker)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("bundle --remove: %s is not a bundle made by ostree-mount (no %s)", dir, BundleMarker)
		}
		return fmt.Errorf("bundle --remove: %w", err)
	}
	rootfs, lower := filepath.Join(dir, bundleRootfs), filepath.Join(dir, bundleLower)
	for _, mnt := range []string{rootfs, lower} {
		if err := unmountBundlePart(mnt); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bundle --remove: %w", err)
	}
	return nil
}

// unmountBundlePart unmounts what a bundle mounted at mnt, the overlay or
// the image, until nothing is mounted there; it refuses any other mount.
func unmountBundlePart(mnt string) error {
	for range 8 {
		mi, ok, err := fs.MountedAt(mnt)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch mi.FSType {
		case fs.FSType:
			err = Unmount(mnt)
		case "overlay":
			if err = unix.Unmount(mnt, 0); errors.Is(err, unix.EBUSY) {
				err = fmt.Errorf("umount %s: target is busy (a container still running?)", mnt)
			} else if err != nil {
				err = fmt.Errorf("umount %s: %w", mnt, err)
			}
		default:
			err = fmt.Errorf("%s is a mount of type %s, not one of this bundle's", mnt, mi.FSType)
		}
		if err != nil {
			return fmt.Errorf("bundle --remove: %w", err)
		}
	}
	return fmt.Errorf("bundle --remove: %s: still mounted", mnt)
}
