package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
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
		&cli.StringFlag{Name: "log-file", Usage: "where a background mount logs (default: /run/ostree-mount/MOUNTPOINT.log, the mountpoint escaped as by systemd-escape --path: /mnt/x-y is mnt-x\\x2dy.log)"},
		&cli.BoolFlag{Name: "debug", Usage: "log every FUSE request"},
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
'ostree-mount REV MOUNTPOINT' is the same command.`,
	Flags:  mountFlags(),
	Action: withRepo(runMount),
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
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large (at most %d bytes)", s, int64(math.MaxInt64))
	}
	return n * mult, nil
}

// checkCacheSize refuses a cache larger than the machine's memory: the
// cache allocates its counters in proportion to its size (about 1 %), so
// a daemon given such a size would die of it after the mount exists.
func checkCacheSize(n int64) error {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil // not known: not checked
	}
	if ram := uint64(si.Totalram) * uint64(si.Unit); ram > 0 && uint64(n) > ram {
		return fmt.Errorf("%d bytes is more than this machine's memory (%d bytes)", n, ram)
	}
	return nil
}

// isMountpoint reports whether path is the mountpoint of a mount.
func isMountpoint(path string) (bool, error) {
	_, ok, err := fs.MountedAt(path)
	return ok, err
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
	if h, err := takeHandoff(); err != nil {
		return err
	} else if h != nil {
		return serveHandoff(c, r, h, rev, mnt)
	}
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
	if err == nil {
		err = checkCacheSize(size)
	}
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	sum, err := resolveOnce(r, rev)
	if err != nil {
		return err
	}
	if !c.Bool("foreground") && os.Getenv(readyFDEnv) == "" {
		if os.Geteuid() == 0 {
			if handled, err := mountViaService(c, sum, rev, mnt, size); handled {
				return err
			}
			return mountAndHandOff(c, r, sum, rev, mnt)
		}
		return daemonize(c, sum, mnt)
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
	pin, err := r.Pin(context.Background(), sum)
	if err != nil {
		ready(err)
		return err
	}
	err = serve(c, r, pin, rev, mnt, size, 0, nil, ready)
	if err != nil {
		ready(err)
	}
	return err
}

// serve mounts commit pin.Commit at mnt, or serves device when it is a
// FUSE descriptor already mounted there, until it is unmounted; it
// releases the pin when it returns.
//
// With a device, serve prepares, then calls mounted, which waits until
// the device is mounted and returns its device number.
func serve(c *cli.Context, r *repo.Repo, pin *repo.Pin, rev, mnt string, cacheSize int64, device int, mounted func() (uint64, error), ready func(error)) error {
	defer pin.Release()
	// The daemon's heap is the metadata cache plus the inodes the kernel
	// holds; a soft limit makes the collector keep RSS near what is live.
	// A daemon starts with the collector off (daemonEnv), since a
	// collection of its first few megabytes would only delay the mount;
	// it runs at 50 % once the mount is served.
	debug.SetMemoryLimit(cacheSize + 48<<20)
	debug.SetGCPercent(-1)
	// Listen before anything else: a signal that arrives as soon as the
	// mount appears must unmount it, not kill the process under it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	o := fsOptions(c, rev)
	o.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	m, err := startMount(r, pin.Commit, mnt, cacheSize, o, func(o *fs.Options) error {
		if device > 0 {
			var err error
			if o.DeviceNumber, err = mounted(); err != nil {
				return err
			}
			o.Device = device
		}
		return nil
	})
	if err != nil {
		return err
	}
	debug.SetGCPercent(50)
	ready(nil)
	go func() {
		<-sigs
		if err := m.srv.Unmount(); err != nil {
			o.Logger.Error("unmount on signal", "err", err)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	m.wait()
	// OSTREE_MOUNT_MEMPROFILE=FILE writes a heap profile at unmount.
	if p := os.Getenv("OSTREE_MOUNT_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	return nil
}

// mounted is a mount being served.
type mounted struct {
	srv   *fs.Server
	tree  *compose.Tree
	cache *compose.Caches
}

// startMount composes commit sum of r and mounts it at mnt with options o
// (o.Logger set). beforeMount runs once the composition is ready, just
// before mounting; it may still change o.
func startMount(r *repo.Repo, sum repo.Checksum, mnt string, cacheSize int64, o fs.Options, beforeMount func(*fs.Options) error) (*mounted, error) {
	ca, err := compose.NewCaches(cacheSize)
	if err != nil {
		return nil, err
	}
	tree, err := compose.Open(r, sum, compose.Options{Caches: ca, Prefetch: prefetchWorkers()})
	if err != nil {
		ca.Close()
		return nil, err
	}
	if beforeMount != nil {
		err = beforeMount(&o)
	}
	var srv *fs.Server
	if err == nil {
		srv, err = fs.Mount(mnt, r, tree, o)
	}
	if err != nil {
		tree.Close()
		ca.Close()
		return nil, err
	}
	return &mounted{srv: srv, tree: tree, cache: ca}, nil
}

// wait returns once the mount is unmounted, and frees what it held.
func (m *mounted) wait() {
	m.srv.Wait()
	m.tree.Close()
	m.cache.Close()
}

func fsOptions(c *cli.Context, rev string) fs.Options {
	return fs.Options{
		AllowOther:  c.Bool("allow-other"),
		Suid:        c.Bool("suid"),
		Verify:      c.Bool("verify"),
		Passthrough: c.Bool("passthrough"),
		Name:        "ostree-mount:" + rev,
		Debug:       c.Bool("debug"),
		SpareP:      true, // a daemon serves one mount
	}
}

// The environment with which mountAndHandOff starts the daemon: the
// descriptors it inherits (/dev/fuse, the pin, and the pipe on which the
// command says when the mount exists) and what they are.
const (
	handoffFUSEEnv    = "OSTREE_MOUNT_FUSE_FD"
	handoffPinEnv     = "OSTREE_MOUNT_PIN_FD"
	handoffPinPathEnv = "OSTREE_MOUNT_PIN_PATH"
	handoffCtlEnv     = "OSTREE_MOUNT_CTL_FD"
)

type handoff struct {
	device  int
	pinFD   int
	pinPath string
	ctlFD   int
}

// takeHandoff reads (and clears) the handoff environment; nil when the
// process is not a daemon started by mountAndHandOff.
func takeHandoff() (*handoff, error) {
	dev := os.Getenv(handoffFUSEEnv)
	if dev == "" {
		return nil, nil
	}
	h := &handoff{pinPath: os.Getenv(handoffPinPathEnv)}
	var err1, err2, err3 error
	h.device, err1 = strconv.Atoi(dev)
	h.pinFD, err2 = strconv.Atoi(os.Getenv(handoffPinEnv))
	h.ctlFD, err3 = strconv.Atoi(os.Getenv(handoffCtlEnv))
	for _, e := range []string{handoffFUSEEnv, handoffPinEnv, handoffPinPathEnv, handoffCtlEnv} {
		os.Unsetenv(e)
	}
	if err1 != nil || err2 != nil || err3 != nil || h.device < 3 || h.pinFD < 3 || h.ctlFD < 3 || h.pinPath == "" {
		return nil, fmt.Errorf("mount: bad daemon handoff (%s=%q)", handoffFUSEEnv, dev)
	}
	return h, nil
}

// mountAndHandOff is a background mount as root. A Go process takes
// milliseconds to start, so this process starts the daemon first, with
// an open /dev/fuse and the pin; while the daemon starts, it checks the
// image and mounts, then tells the daemon the mount exists and returns.
// Like a libfuse filesystem, the mount exists when the command returns
// and the kernel holds its first requests until the daemon answers.
// Everything that can fail on a sound repository fails here, before the
// mount exists.
func mountAndHandOff(c *cli.Context, r *repo.Repo, sum repo.Checksum, rev, mnt string) (err error) {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, null, logPath, err := daemonFiles(c, mnt)
	if err != nil {
		return err
	}
	defer logf.Close()
	defer null.Close()
	pin, err := r.Pin(context.Background(), sum)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			pin.Release()
		} else {
			pin.Disown()
		}
	}()
	dev, err := fs.OpenDevice()
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	defer dev.Close()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return err
	}
	// Closing ctlW without "mounted" tells the daemon to give up.
	defer ctlW.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(daemonEnv(), "OSTREE_REPO="+repoPath(c),
		handoffFUSEEnv+"=3", handoffPinEnv+"=4", handoffCtlEnv+"=5", handoffPinPathEnv+"="+pin.Path())
	cmd.ExtraFiles = []*os.File{dev, pin.File(), ctlR}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	ctlR.Close()
	if err != nil {
		return fmt.Errorf("mount: start daemon (log %s): %w", logPath, err)
	}
	_ = cmd.Process.Release()
	// Check what the daemon will compose first: the commit, its layer
	// commits and the root directory.
	ca, err := compose.NewCaches(1 << 20)
	if err != nil {
		return err
	}
	defer ca.Close()
	tree, err := compose.Open(r, sum, compose.Options{Caches: ca})
	if err != nil {
		return err
	}
	tree.Close()
	devnum, err := fs.MountDevice(dev, mnt, fsOptions(c, rev))
	if err != nil {
		return err
	}
	if _, err = fmt.Fprintf(ctlW, "mounted %d\n", devnum); err != nil {
		_ = fs.DetachIfOurs(mnt, devnum)
		return fmt.Errorf("mount: the daemon exited at start (see %s): %w", logPath, err)
	}
	return nil
}

// serveHandoff is the daemon that mountAndHandOff started: it prepares
// while the command mounts, then serves the mount. If it cannot, it
// detaches the mount rather than leave one that nothing answers (unless
// the mount was unmounted already, and maybe another one made on the
// same directory).
func serveHandoff(c *cli.Context, r *repo.Repo, h *handoff, rev, mnt string) error {
	ctl := os.NewFile(uintptr(h.ctlFD), "control")
	var devnum uint64
	var read bool
	mounted := func() (uint64, error) {
		read = true
		msg, _ := io.ReadAll(ctl)
		ctl.Close()
		if _, err := fmt.Sscanf(string(msg), "mounted %d\n", &devnum); err != nil {
			return 0, errNotMounted
		}
		return devnum, nil
	}
	pin, err := repo.AdoptPin(os.NewFile(uintptr(h.pinFD), "pin"), h.pinPath)
	if err == nil {
		var size int64
		if size, err = parseSize(c.String("cache-size")); err != nil {
			pin.Release()
			err = fmt.Errorf("--cache-size: %w", err)
		} else {
			err = serve(c, r, pin, rev, mnt, size, h.device, mounted, func(error) {})
		}
	}
	if errors.Is(err, errNotMounted) {
		return nil // the command failed, and said why
	}
	if err != nil {
		// Failed before or after the command mounted: never leave a
		// mount that nothing serves (ENOTCONN). The command closes the
		// pipe once it has mounted, or failed to.
		if !read {
			_, _ = mounted()
		}
		if devnum != 0 {
			_ = fs.DetachIfOurs(mnt, devnum)
		}
	}
	return err
}

var errNotMounted = errors.New("the command did not mount")

// commitEnv passes the commit that the command resolved to its daemon,
// which mounts that commit even if the ref has moved since.
const commitEnv = "OSTREE_MOUNT_COMMIT"

func resolveOnce(r *repo.Repo, rev string) (repo.Checksum, error) {
	if v := os.Getenv(commitEnv); v != "" {
		os.Unsetenv(commitEnv)
		sum, err := repo.ParseChecksum(v)
		if err != nil {
			return repo.Checksum{}, fmt.Errorf("mount: %s: %w", commitEnv, err)
		}
		return sum, nil
	}
	return r.Resolve(rev)
}

// daemonEnv is the environment of a daemon: this one, with the collector
// off until serve sets it.
func daemonEnv() []string {
	return append(os.Environ(), "GOGC=off")
}

// defaultLogPath is where a mount's daemon logs without --log-file.
func defaultLogPath(mnt string) string {
	if err := os.MkdirAll("/run/ostree-mount", 0o755); err != nil {
		return os.DevNull
	}
	return filepath.Join("/run/ostree-mount", logName(mnt))
}

// logName names the default log of the mount at mnt (absolute, clean)
// with systemd-escape --path's rules, so that distinct mountpoints have
// distinct logs: "/" separates, "-" and every byte but ASCII letters,
// digits, ":", "_" and a "." not in front become \xXX. "/x-y" is
// x\x2dy.log, "/x/y" x-y.log.
func logName(mnt string) string {
	p := strings.Trim(mnt, "/")
	if p == "" {
		return "-.log"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".log"
}

// daemonFiles opens what a daemon's standard streams become: its log
// (--log-file, or a file under /run/ostree-mount) and /dev/null.
func daemonFiles(c *cli.Context, mnt string) (logf, null *os.File, logPath string, err error) {
	logPath = c.String("log-file")
	if logPath == "" {
		logPath = defaultLogPath(mnt)
	}
	logf, err = os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, "", fmt.Errorf("mount: log file: %w", err)
	}
	null, err = os.Open(os.DevNull)
	if err != nil {
		logf.Close()
		return nil, nil, "", err
	}
	return logf, null, logPath, nil
}

// daemonize runs the mount in a new session and returns once it reports
// that the mount is ready, or why it is not.
func daemonize(c *cli.Context, sum repo.Checksum, mnt string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	logf, null, logPath, err := daemonFiles(c, mnt)
	if err != nil {
		pw.Close()
		pr.Close()
		return err
	}
	defer logf.Close()
	defer null.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(daemonEnv(), readyFDEnv+"=3", "OSTREE_REPO="+repoPath(c), commitEnv+"="+sum.String())
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
	mi, ok, err := fs.MountedAt(abs)
	if err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("umount: %s is not mounted", abs)
	}
	if mi.FSType != fs.FSType {
		return fmt.Errorf("umount: %s is not an ostree-mount mount (filesystem type %s); use umount(8)", abs, mi.FSType)
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
