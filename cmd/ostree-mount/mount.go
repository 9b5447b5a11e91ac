package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/cache"
	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// readyFDEnv names the inherited pipe on which a background mount reports
// that it is ready (or why it failed).
const readyFDEnv = "OSTREE_MOUNT_READY_FD"

func mountFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, Usage: "stay attached until unmounted"},
		&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount"},
		&cli.BoolFlag{Name: "suid", Usage: "honour setuid/setgid bits (the mount is nosuid otherwise; always nodev)"},
		&cli.BoolFlag{Name: "verify", Usage: "verify each file object's checksum before serving it (EIO on mismatch)"},
		&cli.StringFlag{Name: "cache-size", Value: "64M", Usage: "bytes of composed-directory metadata to cache (K, M, G suffixes)"},
		&cli.BoolFlag{Name: "passthrough", Usage: "hand opened files to the kernel (FUSE passthrough, as root): reads bypass the daemon and share page cache with other mounts, but every open is a round trip (default: opens cost no round trip)"},
		&cli.StringFlag{Name: "log-file", Usage: "where a background mount logs (default: /run/ostree-mount/<mountpoint>.log)"},
		&cli.BoolFlag{Name: "debug", Usage: "log every FUSE request"},
	}
}

var _ = register(&cli.Command{
	Name:      "mount",
	Usage:     "mount a commit read-only; an image is composed lazily from its layers",
	ArgsUsage: "REV MOUNTPOINT",
	Description: revHelp + `
Returns once the mount is ready, as mount(8) does, leaving a daemon that
serves it until 'ostree-mount umount MOUNTPOINT', umount(8), fusermount3 -u,
or SIGTERM/SIGINT. The commit stays pinned against prune while mounted.
'ostree-mount REV MOUNTPOINT' is the same command.`,
	Flags:  mountFlags(),
	Action: withRepo(runMount),
})

var _ = register(&cli.Command{
	Name:      "umount",
	Usage:     "unmount a mount made by ostree-mount (also one whose daemon died)",
	ArgsUsage: "MOUNTPOINT",
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageError(c, "umount: want MOUNTPOINT")
		}
		return unmount(c.Args().First())
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
	return n * mult, nil
}

// isMountpoint reports whether path is the mountpoint of a mount.
func isMountpoint(path string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true, nil
		}
	}
	return false, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func runMount(c *cli.Context, r *repo.Repo) error {
	if c.NArg() != 2 {
		return usageError(c, "mount: want REV MOUNTPOINT")
	}
	rev, mnt := c.Args().Get(0), c.Args().Get(1)
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return err
	}
	mnt = abs
	var st unix.Stat_t
	if err := unix.Stat("/dev/fuse", &st); err != nil {
		return fmt.Errorf("mount: /dev/fuse is not available (is the fuse module loaded?): %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 229 {
		return fmt.Errorf("mount: /dev/fuse is not the FUSE device (char 10:229)")
	}
	fi, err := os.Stat(mnt)
	if err != nil {
		return fmt.Errorf("mount: mountpoint %s: %w", mnt, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mount: mountpoint %s is not a directory", mnt)
	}
	if ok, err := isMountpoint(mnt); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("mount: %s is already a mountpoint", mnt)
	}
	size, err := parseSize(c.String("cache-size"))
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	sum, err := r.Resolve(rev)
	if err != nil {
		return err
	}
	if !c.Bool("foreground") && os.Getenv(readyFDEnv) == "" {
		return daemonize(c, mnt)
	}
	ready := func(err error) {}
	if fdStr := os.Getenv(readyFDEnv); fdStr != "" {
		os.Unsetenv(readyFDEnv)
		fd, _ := strconv.Atoi(fdStr)
		pipe := os.NewFile(uintptr(fd), "ready")
		ready = func(err error) {
			if err != nil {
				fmt.Fprintf(pipe, "error: %v\n", err)
			} else {
				fmt.Fprintln(pipe, "ready")
			}
			pipe.Close()
		}
	}
	err = serve(c, r, sum, rev, mnt, size, ready)
	if err != nil {
		ready(err)
	}
	return err
}

func serve(c *cli.Context, r *repo.Repo, sum repo.Checksum, rev, mnt string, cacheSize int64, ready func(error)) error {
	ctx := context.Background()
	// The daemon's heap is the metadata cache plus the inodes the kernel
	// holds; a soft limit makes the collector keep RSS near what is live.
	debug.SetMemoryLimit(cacheSize + 48<<20)
	debug.SetGCPercent(50)
	pin, err := r.Pin(ctx, sum)
	if err != nil {
		return err
	}
	defer pin.Release()
	ca, err := cache.New[any](cacheSize)
	if err != nil {
		return err
	}
	defer ca.Close()
	tree, err := compose.Open(r, sum, compose.Options{Cache: ca, Prefetch: prefetchWorkers()})
	if err != nil {
		return err
	}
	defer tree.Close()
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	// Listen before mounting: a signal that arrives as soon as the mount
	// appears must unmount it, not kill the process under it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	srv, err := fs.Mount(mnt, r, tree, fs.Options{
		AllowOther:  c.Bool("allow-other"),
		Suid:        c.Bool("suid"),
		Verify:      c.Bool("verify"),
		Passthrough: c.Bool("passthrough"),
		Name:        "ostree-mount:" + rev,
		Logger:      logger,
		Debug:       c.Bool("debug"),
	})
	if err != nil {
		return err
	}
	ready(nil)
	go func() {
		<-sigs
		if err := srv.Unmount(); err != nil {
			logger.Error("unmount on signal", "err", err)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	srv.Wait()
	// OSTREE_MOUNT_MEMPROFILE=FILE writes a heap profile at unmount.
	if p := os.Getenv("OSTREE_MOUNT_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	return nil
}

// daemonize runs the mount in a new session and returns once it reports
// that the mount is ready, or why it is not.
func daemonize(c *cli.Context, mnt string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	logPath := c.String("log-file")
	if logPath == "" {
		if err := os.MkdirAll("/run/ostree-mount", 0o755); err == nil {
			logPath = filepath.Join("/run/ostree-mount", strings.ReplaceAll(strings.Trim(mnt, "/"), "/", "-")+".log")
		} else {
			logPath = os.DevNull
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("mount: log file: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3", "OSTREE_REPO="+repoPath(c))
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return fmt.Errorf("mount: start daemon: %w", err)
	}
	pw.Close()
	msg, _ := io.ReadAll(pr)
	pr.Close()
	s := strings.TrimSpace(string(msg))
	if s == "ready" {
		_ = cmd.Process.Release()
		return nil
	}
	_ = cmd.Wait()
	if e, ok := strings.CutPrefix(s, "error: "); ok {
		return errors.New(e)
	}
	return fmt.Errorf("mount: the daemon exited before the mount was ready (see %s)", logPath)
}

// unmount detaches a mount; it also cleans up after a daemon that died
// (the mountpoint then reports ENOTCONN).
func unmount(mnt string) error {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return err
	}
	if ok, err := isMountpoint(abs); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("umount: %s is not mounted", abs)
	}
	err = unix.Unmount(abs, 0)
	if errors.Is(err, unix.EPERM) {
		out, ferr := exec.Command("fusermount3", "-u", abs).CombinedOutput()
		if ferr != nil {
			return fmt.Errorf("umount %s: %s", abs, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("umount %s: target is busy", abs)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", abs, err)
	}
	return nil
}

// prefetchWorkers is how many directories the daemon composes ahead of a
// walk; OSTREE_MOUNT_PREFETCH overrides it (0 disables), for benchmarks.
func prefetchWorkers() int {
	if v, err := strconv.Atoi(os.Getenv("OSTREE_MOUNT_PREFETCH")); err == nil && v >= 0 {
		return v
	}
	return 4
}
