package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/mount"
)

func mountFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, Usage: "stay attached until unmounted"},
		&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount"},
		&cli.BoolFlag{Name: "suid", Usage: "honour setuid/setgid bits (the mount is nosuid otherwise; always nodev)"},
		&cli.BoolFlag{Name: "verify", Usage: "verify each file object's checksum before serving it (EIO on mismatch)"},
		&cli.StringFlag{Name: "cache-size", Value: "64M", Usage: "bytes of composed-directory metadata to cache (K, M, G suffixes)"},
		&cli.BoolFlag{Name: "io-uring", Value: true, Usage: "as root, serve requests over io_uring, one ring per CPU, when the kernel offers it (Linux 6.14+, fuse module parameter enable_uring=Y); --io-uring=false keeps them on /dev/fuse"},
		&cli.BoolFlag{Name: "passthrough", Usage: "hand opened files to the kernel (FUSE passthrough, as root): reads bypass the daemon and share page cache with other mounts, but every open is a round trip (default: opens cost no round trip)"},
		&cli.StringFlag{Name: "log-file", Usage: "where a background mount logs (default: /run/ostree-mount/MOUNTPOINT.log as root, $XDG_RUNTIME_DIR/ostree-mount/MOUNTPOINT.log otherwise, the mountpoint escaped as by systemd-escape --path: /mnt/x-y is mnt-x\\x2dy.log)"},
		&cli.BoolFlag{Name: "debug", Usage: "log every FUSE request"},
		&cli.StringFlag{Name: "o", Usage: mountOptsUsage},
		socketFlag(),
	}
}

var _ = register(&cli.Command{
	Name:      "mount",
	Usage:     "mount a commit read-only; an image is composed lazily from its layers",
	ArgsUsage: "REV MOUNTPOINT",
	Description: revHelp + `
Returns once the mount exists, as mount(8) does, leaving a daemon that
serves it until 'ostree-mount umount MOUNTPOINT', umount(8), fusermount3 -u,
or SIGTERM/SIGINT. The commit stays pinned against prune while mounted.
As root, the command checks the image, mounts, and hands the mount and the
pin to the daemon it started, without waiting for the daemon to be up: the
first access to the mount waits for it, as with libfuse filesystems.
'ostree-mount REV MOUNTPOINT' is the same command.

REV may be REMOTE:REF for a remote of the repository's config: the ref is
mounted lazily, fetching its commits now (verified with the remote's
signature policy, marked partial, refs/remotes/REMOTE/REF set) and the
directories and files it reads on demand. A ref already local is used as
it is.`,
	Flags:  mountFlags(),
	Action: runMount,
})

var _ = register(&cli.Command{
	Name:      "umount",
	Usage:     "unmount a mount made by ostree-mount (also one whose daemon died)",
	ArgsUsage: "MOUNTPOINT",
	Description: `Refuses a mount that is not an ostree-mount mount (filesystem type
` + fs.FSType + ` in /proc/self/mountinfo): use umount(8) for those.`,
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageError(c, "umount: want MOUNTPOINT")
		}
		abs, err := filepath.Abs(c.Args().First())
		if err != nil {
			return err
		}
		return mount.Unmount(abs)
	},
})

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M or G suffix", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large (at most %d bytes)", s, int64(math.MaxInt64))
	}
	return n * mult, nil
}

func runMount(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageError(c, "mount: want REV MOUNTPOINT")
	}
	o, err := mountOptions(c, c.Args().Get(0), c.Args().Get(1))
	if err != nil {
		return err
	}
	return mount.Mount(o)
}

// mountOptions is the mount of rev at mnt that the flags ask for.
func mountOptions(c *cli.Context, rev, mnt string) (mount.Options, error) {
	o := mount.Options{
		Rev: rev, LogFile: c.String("log-file"), Foreground: c.Bool("foreground"),
		Socket: c.String("socket"), Log: c.App.ErrWriter,
		FS: fs.Options{
			AllowOther: c.Bool("allow-other"), Suid: c.Bool("suid"), Verify: c.Bool("verify"),
			Passthrough: c.Bool("passthrough"), Debug: c.Bool("debug"), NoURing: !c.Bool("io-uring"),
		},
	}
	var err error
	if o.Mountpoint, err = filepath.Abs(mnt); err != nil {
		return o, err
	}
	o.CacheSize, err = parseSize(c.String("cache-size"))
	if err == nil {
		err = mount.CheckCacheSize(o.CacheSize)
	}
	if err != nil {
		return o, fmt.Errorf("--cache-size: %w", err)
	}
	rp := repoPath(c)
	if c.IsSet("o") {
		// mount -t fuse.ostree-mount -o repo=PATH,... REV MOUNTPOINT
		r, err := applyMountOpts(&o, c.String("o"))
		if err != nil {
			return o, err
		}
		if r != "" {
			rp = r
		}
	}
	if o.Repo, err = filepath.Abs(rp); err != nil {
		return o, err
	}
	return o, nil
}
