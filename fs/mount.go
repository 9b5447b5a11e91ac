package fs

import (
	"fmt"
	"log"
	"log/slog"
	"os"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/cache"
	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Options configure a mount.
type Options struct {
	// AllowOther lets other users see the mount (off by default).
	AllowOther bool
	// Suid honours setuid/setgid bits; by default the mount is nosuid.
	// Device nodes are never usable (nodev).
	Suid bool
	// Verify checks every file object's checksum before serving its
	// first byte; a mismatch gives EIO and is logged.
	Verify bool
	// Passthrough hands each opened file to the kernel (FUSE passthrough)
	// when the repository stores plain files and the process may (root):
	// reads bypass the daemon and share the page cache with every other
	// mount of the same objects, but each open(2) is a round trip to the
	// daemon. By default files open with no message at all (the daemon
	// answers OPEN with ENOSYS once) and reads of cold pages come to the
	// daemon, which preads the object file; archive repositories always
	// open through the daemon, which inflates.
	Passthrough bool
	// InflateCacheBytes bounds the cache of inflated archive-mode files.
	InflateCacheBytes int64
	// MaxInodes bounds the inodes the daemon keeps; past it the oldest are
	// offered back to the kernel. 0 means DefaultMaxInodes; -1, no bound.
	MaxInodes int
	// Name is the source shown in /proc/mounts.
	Name   string
	Logger *slog.Logger
	Debug  bool
}

// openObjects bounds the object files kept open for handle-less reads.
const openObjects = 1024

// DefaultMaxInodes keeps the daemon's inode tree, the largest part of its
// memory, to a few tens of megabytes.
const DefaultMaxInodes = 40000

// Server is a running mount.
type Server struct {
	*fuse.Server
	Mountpoint string
}

// MountOptionsFor returns the kernel mount options: always ro and nodev,
// nosuid unless asked, and default_permissions so that the kernel checks
// modes.
func MountOptionsFor(o Options) []string {
	opts := []string{"ro", "nodev", "default_permissions"}
	if o.Suid {
		opts = append(opts, "suid")
	} else {
		opts = append(opts, "nosuid")
	}
	return opts
}

// directMountFlags are the mount(2) flags of a direct (root) mount;
// go-fuse would otherwise use MS_NOSUID|MS_NODEV whatever the options.
func directMountFlags(o Options) uintptr {
	f := uintptr(syscall.MS_RDONLY | syscall.MS_NODEV)
	if !o.Suid {
		f |= syscall.MS_NOSUID
	}
	return f
}

// Mount serves tree at mountpoint and returns once the kernel has the
// mount.
func Mount(mountpoint string, r *repo.Repo, tree *compose.Tree, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.InflateCacheBytes <= 0 {
		o.InflateCacheBytes = 64 << 20
	}
	var ic *cache.Cache[[]byte]
	if r.Mode() == repo.ModeArchive {
		var err error
		if ic, err = cache.New[[]byte](o.InflateCacheBytes); err != nil {
			return nil, err
		}
	}
	f := &filesystem{
		tree:    tree,
		repo:    r,
		log:     o.Logger,
		verify:  o.Verify,
		archive: &inflateCache{c: ic},
	}
	switch {
	case r.Mode() == repo.ModeArchive:
	case o.Passthrough && os.Geteuid() == 0:
		f.passthrough = true
	default:
		f.fds = newFDCache(openObjects, r.OpenContent)
	}
	if o.MaxInodes == 0 {
		o.MaxInodes = DefaultMaxInodes
	}
	if o.MaxInodes > 0 {
		f.limiter = newInodeLimiter(o.MaxInodes)
	}
	root := &node{fs: f, e: tree.Root()}
	timeout := cacheTimeout
	name := o.Name
	if name == "" {
		name = "ostree-mount"
	}
	fo := &fusefs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		NullPermissions: true,
		RootStableAttr:  &fusefs.StableAttr{Ino: rootIno, Gen: 1},
		MountOptions: fuse.MountOptions{
			AllowOther:           o.AllowOther,
			Options:              MountOptionsFor(o),
			FsName:               name,
			Name:                 "ostree-mount",
			DirectMount:          os.Geteuid() == 0,
			DirectMountFlags:     directMountFlags(o),
			EnableSymlinkCaching: true,
			MaxReadAhead:         1 << 20,
			MaxWrite:             1 << 20,
			DisableXAttrs:        !treeHasXattrs(tree),
			Debug:                o.Debug,
		},
	}
	if o.Debug {
		fo.Logger = log.New(os.Stderr, "fuse: ", 0)
	}
	srv, err := fuse.NewServer(&zeroOpendir{fusefs.NewNodeFS(root, fo)}, mountpoint, &fo.MountOptions)
	if err == nil {
		go srv.Serve()
		err = srv.WaitMount()
	}
	if err != nil {
		if ic != nil {
			ic.Close()
		}
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if err := setReadAhead(mountpoint, readAheadKB); err != nil {
		o.Logger.Info("readahead left at the kernel's default", "err", err)
	}
	if f.limiter != nil {
		f.limiter.root = root.EmbeddedInode()
		go f.limiter.run()
	}
	go func() {
		srv.Wait()
		if f.limiter != nil {
			f.limiter.close()
		}
		if f.fds != nil {
			f.fds.close()
		}
	}()
	return &Server{Server: srv, Mountpoint: mountpoint}, nil
}

// readAheadKB is the mount's readahead window. The kernel gives a FUSE
// mount the default 128 KiB whatever the daemon asks, which makes a
// large cold read a series of 128 KiB round trips; 4 MiB keeps several
// 1 MiB reads in flight.
const readAheadKB = 4096

// setReadAhead sets the readahead of the mount's backing device info
// (needs root; the bdi of a FUSE mount is named after its device number).
func setReadAhead(mountpoint string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(p, []byte(fmt.Sprintf("%d\n", kb)), 0)
}

// treeHasXattrs reports whether an image may carry xattrs; only images
// recorded at import as having none let the kernel skip xattr requests.
func treeHasXattrs(t *compose.Tree) bool {
	_, cm := t.Commit()
	if cm == nil {
		return true
	}
	v, ok := cm.Metadata.Get(compose.KeyXattrs)
	if !ok {
		return true
	}
	b, ok := v.Value.(bool)
	return !ok || b
}
