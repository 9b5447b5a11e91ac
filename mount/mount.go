package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Mount mounts o.Commit (or o.Rev) of o.Repo at o.Mountpoint, an
// absolute path. With o.Foreground it serves the mount until it is
// unmounted; otherwise it returns once the mount exists and a daemon
// serves it: the mount service at o.Socket if one listens (as root), or
// a daemon of its own.
func Mount(o Options) error {
	r, err := repo.Open(o.Repo)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := checkDevice(); err != nil {
		return err
	}
	if err := checkMountpoint(o.Mountpoint); err != nil {
		return err
	}
	if err := resolveRemote(context.Background(), r, &o); err != nil {
		return err
	}
	sum, err := o.commit(r)
	if err != nil {
		return err
	}
	o.Commit = sum.String()
	if !o.Foreground {
		if os.Geteuid() == 0 {
			if o.Socket != "" {
				if handled, err := Request(o.Socket, o); handled {
					return err
				}
			}
			return mountAndHandOff(r, sum, o)
		}
		return daemonize(o)
	}
	pin, err := r.Pin(context.Background(), sum)
	if err != nil {
		return err
	}
	return serve(r, pin, o, slog.New(slog.NewTextHandler(o.logWriter(), nil)), nil, func(error) {})
}

// checkDevice checks that /dev/fuse is the FUSE device.
func checkDevice() error {
	var st unix.Stat_t
	if err := unix.Stat("/dev/fuse", &st); err != nil {
		return fmt.Errorf("mount: /dev/fuse is not available (is the fuse module loaded?): %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 229 {
		return fmt.Errorf("mount: /dev/fuse is not the FUSE device (char 10:229)")
	}
	return nil
}

// checkMountpoint checks that mnt is a directory and no mountpoint.
func checkMountpoint(mnt string) error {
	fi, err := os.Stat(mnt)
	if err != nil {
		return fmt.Errorf("mount: mountpoint %s: %w", mnt, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mount: mountpoint %s is not a directory", mnt)
	}
	if _, ok, err := fs.MountedAt(mnt); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("mount: %s is already a mountpoint", mnt)
	}
	return nil
}

// device is the /dev/fuse descriptor of a handoff, which the command
// mounts: mounted waits until it has and returns the mount's device
// number.
type device struct {
	fd      int
	mounted func() (uint64, error)
}

// serve mounts commit pin.Commit at o.Mountpoint, or serves dev when it
// is not nil, until the mount is unmounted or a signal unmounts it; it
// releases the pin when it returns. ready is told once the mount is
// served, or not told if it fails.
func serve(r *repo.Repo, pin *repo.Pin, o Options, log *slog.Logger, dev *device, ready func(error)) error {
	defer pin.Release()
	// The daemon's heap is the metadata cache plus the inodes the kernel
	// holds; a soft limit makes the collector keep RSS near what is live.
	// A daemon starts with the collector off (daemonCmd), since a
	// collection of its first few megabytes would only delay the mount;
	// it runs at 50 % once the mount is served.
	debug.SetMemoryLimit(o.CacheSize + 48<<20)
	debug.SetGCPercent(-1)
	// Listen before anything else: a signal that arrives as soon as the
	// mount appears must unmount it, not kill the process under it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	fo := o.fsOptions()
	fo.Logger, fo.SpareP = log, true // a daemon serves one mount
	m, err := startMount(r, pin.Commit, o.Rev, o.Mountpoint, o.CacheSize, nil, fo, func(fo *fs.Options) error {
		if dev != nil {
			var err error
			if fo.DeviceNumber, err = dev.mounted(); err != nil {
				return err
			}
			fo.Device = dev.fd
		}
		return nil
	})
	if err != nil {
		return err
	}
	debug.SetGCPercent(50)
	// OSTREE_MOUNT_CPUPROFILE=FILE profiles the daemon's CPU until unmount.
	if p := os.Getenv("OSTREE_MOUNT_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	ready(nil)
	go func() {
		<-sigs
		if err := m.srv.Unmount(); err != nil {
			log.Error("unmount on signal", "err", err)
			_ = unix.Unmount(o.Mountpoint, unix.MNT_DETACH)
		}
	}()
	m.wait()
	// OSTREE_MOUNT_MEMPROFILE=FILE writes a heap profile at unmount.
	writeHeapProfile()
	return nil
}

// writeHeapProfile writes a heap profile to $OSTREE_MOUNT_MEMPROFILE, if
// set.
func writeHeapProfile() {
	if p := os.Getenv("OSTREE_MOUNT_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
}

// mounted is a mount being served.
type mounted struct {
	srv  *fs.Server
	tree *tree
}

// startMount composes commit sum of r (which rev named) and mounts it at
// mnt with options o (o.Logger set), with the metadata caches shared
// (nil: its own of cacheSize bytes). beforeMount runs once the
// composition is ready, just before mounting; it may still change o.
func startMount(r *repo.Repo, sum repo.Checksum, rev, mnt string, cacheSize int64, shared *caches, o fs.Options, beforeMount func(*fs.Options) error) (*mounted, error) {
	t, err := openTree(r, sum, rev, cacheSize, prefetchWorkers(), shared)
	if err != nil {
		return nil, err
	}
	if beforeMount != nil {
		err = beforeMount(&o)
	}
	var srv *fs.Server
	if err == nil {
		srv, err = serveFS(r, t, mnt, o)
	}
	if err != nil {
		t.close()
		return nil, err
	}
	return &mounted{srv: srv, tree: t}, nil
}

// wait returns once the mount is unmounted, and frees what it held.
func (m *mounted) wait() {
	m.srv.Wait()
	m.tree.close()
}

// Unmount detaches a mount of this filesystem; it also cleans up after a
// daemon that died (the mountpoint then reports ENOTCONN). It refuses a
// mount of any other type.
func Unmount(mnt string) error {
	mi, ok, err := fs.MountedAt(mnt)
	if err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("umount: %s is not mounted", mnt)
	}
	if mi.FSType != fs.FSType {
		return fmt.Errorf("umount: %s is not an ostree-mount mount (filesystem type %s); use umount(8)", mnt, mi.FSType)
	}
	err = unix.Unmount(mnt, 0)
	if errors.Is(err, unix.EPERM) {
		out, ferr := execCombined("fusermount3", "-u", mnt)
		if ferr != nil {
			return fmt.Errorf("umount %s: %s", mnt, out)
		}
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("umount %s: target is busy", mnt)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", mnt, err)
	}
	return nil
}
