package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// The environment of a daemon. optionsEnv carries its Options as JSON;
// readyFDEnv names the ready pipe of a daemon that mounts itself; the
// handoff variables name what a daemon started by mountAndHandOff
// inherits: /dev/fuse, the pin (and its path) and the control pipe.
const (
	optionsEnv        = "OSTREE_MOUNT_OPTIONS"
	readyFDEnv        = "OSTREE_MOUNT_READY_FD"
	handoffFUSEEnv    = "OSTREE_MOUNT_FUSE_FD"
	handoffPinEnv     = "OSTREE_MOUNT_PIN_FD"
	handoffPinPathEnv = "OSTREE_MOUNT_PIN_PATH"
	handoffCtlEnv     = "OSTREE_MOUNT_CTL_FD"
)

var daemonVars = []string{optionsEnv, readyFDEnv, handoffFUSEEnv, handoffPinEnv, handoffPinPathEnv, handoffCtlEnv}

// IsDaemon reports whether this process is a daemon that Mount started,
// which must run RunDaemon instead of its command line.
func IsDaemon() bool { return os.Getenv(optionsEnv) != "" }

// RunDaemon serves the mount that the process that started it prepared,
// until it is unmounted. It logs on standard error (the mount's log).
func RunDaemon() error {
	env := map[string]string{}
	for _, k := range daemonVars {
		env[k] = os.Getenv(k)
		os.Unsetenv(k)
	}
	ready := openReady(env[readyFDEnv])
	err := runDaemon(env, ready)
	ready.report(err)
	return err
}

func runDaemon(env map[string]string, ready *readyPipe) error {
	var o Options
	if err := json.Unmarshal([]byte(env[optionsEnv]), &o); err != nil {
		return fmt.Errorf("mount: bad daemon options (%s): %w", optionsEnv, err)
	}
	o.Log = os.Stderr
	h, err := parseHandoff(env)
	if err != nil {
		return err
	}
	if h != nil {
		return serveHandoff(h, o)
	}
	r, err := repo.Open(o.Repo)
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := o.commit(r)
	if err != nil {
		return err
	}
	pin, err := r.Pin(context.Background(), sum)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(o.logWriter(), nil))
	return serve(r, pin, o, log, nil, ready.report)
}

// The ready pipe: a daemon that mounts itself writes "ready" or "error:
// MESSAGE" on it, once, and closes it; its command reads until EOF.
type readyPipe struct{ f *os.File }

// openReady returns the ready pipe numbered fd ("": none, a nil pipe).
func openReady(fd string) *readyPipe {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return nil
	}
	return &readyPipe{f: os.NewFile(uintptr(n), "ready")}
}

// report says err (nil: ready) and closes the pipe; after the first
// report, or on a nil pipe, it does nothing.
func (p *readyPipe) report(err error) {
	if p == nil || p.f == nil {
		return
	}
	writeReady(p.f, err)
	p.f.Close()
	p.f = nil
}

// writeReady writes the message for err (nil: ready).
func writeReady(w io.Writer, err error) {
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
	} else {
		fmt.Fprintln(w, "ready")
	}
}

// readReady reads the ready pipe until EOF: nil when the daemon is
// ready, the daemon's error, or an error naming logPath when the daemon
// closed the pipe (exited) without a word.
func readReady(r io.Reader, logPath string) error {
	msg, _ := io.ReadAll(r)
	s := strings.TrimSpace(string(msg))
	if s == "ready" {
		return nil
	}
	if e, ok := strings.CutPrefix(s, "error: "); ok {
		return errors.New(e)
	}
	return fmt.Errorf("mount: the daemon exited before the mount was ready (see %s)", logPath)
}

// daemonCmd is the command that starts a daemon for o, with its standard
// streams and extra descriptors (3, 4, ...) and vars in its environment.
// Its arguments are this process's, for ps.
func daemonCmd(o Options, stdin, logf *os.File, files []*os.File, vars ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	// The collector is off until serve sets it.
	cmd.Env = append(os.Environ(), "GOGC=off", optionsEnv+"="+o.encode())
	cmd.Env = append(cmd.Env, vars...)
	cmd.ExtraFiles = files
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, nil
}

// daemonFiles opens what a daemon's standard streams become: its log
// (o.LogFile, or a file under /run/ostree-mount) and /dev/null.
func daemonFiles(o Options) (logf, null *os.File, logPath string, err error) {
	logPath = o.LogFile
	if logPath == "" {
		logPath = defaultLogPath(o.Mountpoint)
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
func daemonize(o Options) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	logf, null, logPath, err := daemonFiles(o)
	if err != nil {
		pw.Close()
		return err
	}
	defer logf.Close()
	defer null.Close()
	cmd, err := daemonCmd(o, null, logf, []*os.File{pw}, readyFDEnv+"=3")
	if err == nil {
		err = cmd.Start()
	}
	pw.Close()
	if err != nil {
		return fmt.Errorf("mount: start daemon: %w", err)
	}
	if err := readReady(pr, logPath); err != nil {
		_ = cmd.Wait()
		return err
	}
	_ = cmd.Process.Release()
	return nil
}

// handoff is what a daemon started by mountAndHandOff inherits.
type handoff struct {
	device  int // /dev/fuse, which the command mounts
	pinFD   int
	pinPath string
	ctlFD   int // the control pipe: "mounted DEVNUM", then EOF
}

// env is the daemon's environment for h.
func (h handoff) env() []string {
	return []string{
		handoffFUSEEnv + "=" + strconv.Itoa(h.device), handoffPinEnv + "=" + strconv.Itoa(h.pinFD),
		handoffCtlEnv + "=" + strconv.Itoa(h.ctlFD), handoffPinPathEnv + "=" + h.pinPath,
	}
}

// parseHandoff reads a handoff from a daemon's environment; nil when
// there is none (a daemon that mounts itself).
func parseHandoff(env map[string]string) (*handoff, error) {
	dev := env[handoffFUSEEnv]
	if dev == "" {
		return nil, nil
	}
	h := &handoff{pinPath: env[handoffPinPathEnv]}
	var err1, err2, err3 error
	h.device, err1 = strconv.Atoi(dev)
	h.pinFD, err2 = strconv.Atoi(env[handoffPinEnv])
	h.ctlFD, err3 = strconv.Atoi(env[handoffCtlEnv])
	if err1 != nil || err2 != nil || err3 != nil || h.device < 3 || h.pinFD < 3 || h.ctlFD < 3 || h.pinPath == "" {
		return nil, fmt.Errorf("mount: bad daemon handoff (%s=%q)", handoffFUSEEnv, dev)
	}
	return h, nil
}

// startHandoff starts the daemon of a handoff: it inherits dev, the pin
// and the control pipe's reading end.
func startHandoff(o Options, null, logf, dev, pinFile *os.File, pinPath string, ctlR *os.File) error {
	h := handoff{device: 3, pinFD: 4, ctlFD: 5, pinPath: pinPath}
	cmd, err := daemonCmd(o, null, logf, []*os.File{dev, pinFile, ctlR}, h.env()...)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	_ = cmd.Process.Release()
	return nil
}

// The control pipe of a handoff: the command writes "mounted DEVNUM"
// once it has mounted, and closes it; closing it unwritten tells the
// daemon to give up.

func writeMounted(w io.Writer, devnum uint64) error {
	_, err := fmt.Fprintf(w, "mounted %d\n", devnum)
	return err
}

// errNotMounted: the command closed the control pipe without mounting.
var errNotMounted = errors.New("the command did not mount")

// readMounted reads the control pipe until EOF.
func readMounted(r io.Reader) (uint64, error) {
	msg, _ := io.ReadAll(r)
	var devnum uint64
	if _, err := fmt.Sscanf(string(msg), "mounted %d\n", &devnum); err != nil {
		return 0, errNotMounted
	}
	return devnum, nil
}

// mountAndHandOff is a background mount as root. A Go process takes
// milliseconds to start, so this process starts the daemon first, with
// an open /dev/fuse and the pin; while the daemon starts, it checks the
// image and mounts, then tells the daemon the mount exists and returns.
// Like a libfuse filesystem, the mount exists when the command returns
// and the kernel holds its first requests until the daemon answers.
// Everything that can fail on a sound repository fails here, before the
// mount exists.
func mountAndHandOff(r *repo.Repo, sum repo.Checksum, o Options) (err error) {
	logf, null, logPath, err := daemonFiles(o)
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
	err = startHandoff(o, null, logf, dev, pin.File(), pin.Path(), ctlR)
	ctlR.Close()
	if err != nil {
		return fmt.Errorf("mount: start daemon (log %s): %w", logPath, err)
	}
	// Check what the daemon will compose first: the commit, its layer
	// commits and the root directory.
	t, err := openTree(r, sum, o.Rev, 1<<20, 0, nil)
	if err != nil {
		return err
	}
	t.close()
	devnum, err := mountDevice(dev, o.Mountpoint, o.fsOptions())
	if err != nil {
		return err
	}
	if err = writeMounted(ctlW, devnum); err != nil {
		_ = fs.DetachIfOurs(o.Mountpoint, devnum)
		return fmt.Errorf("mount: the daemon exited at start (see %s): %w", logPath, err)
	}
	return nil
}

// serveHandoff is the daemon that mountAndHandOff started: it prepares
// while the command mounts, then serves the mount. If it cannot, it
// detaches the mount rather than leave one that nothing answers (unless
// the mount was unmounted already, and maybe another one made on the
// same directory).
func serveHandoff(h *handoff, o Options) error {
	ctl := os.NewFile(uintptr(h.ctlFD), "control")
	var devnum uint64
	var read bool
	mounted := func() (uint64, error) {
		read = true
		var err error
		devnum, err = readMounted(ctl)
		ctl.Close()
		return devnum, err
	}
	err := serveHandedOff(h, o, mounted)
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
			_ = fs.DetachIfOurs(o.Mountpoint, devnum)
		}
	}
	return err
}

func serveHandedOff(h *handoff, o Options, mounted func() (uint64, error)) error {
	pin, err := repo.AdoptPin(os.NewFile(uintptr(h.pinFD), "pin"), h.pinPath)
	if err != nil {
		return err
	}
	if err := CheckCacheSize(o.CacheSize); err != nil {
		pin.Release()
		return fmt.Errorf("--cache-size: %w", err)
	}
	r, err := repo.Open(o.Repo)
	if err != nil {
		pin.Release()
		return err
	}
	defer r.Close()
	log := slog.New(slog.NewTextHandler(o.logWriter(), nil))
	return serve(r, pin, o, log, &device{fd: h.device, mounted: mounted}, func(error) {})
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

func execCombined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
