package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// This file holds the supervisor: the process 'ostree-mount serve' is,
// which holds the service's socket and every mount's descriptors, and
// runs the worker that serves them (doc.go, "Mounts that outlive their
// worker").

// heldMount is what the supervisor holds of a mount.
type heldMount struct {
	id      string
	fuse    *os.File
	pin     *os.File // the pin file, locked (repo.AdoptPin put this pid in it)
	pinPath string
}

// close closes the mount's descriptors; with release, it also removes
// its pin file.
func (hm *heldMount) close(release bool) {
	hm.fuse.Close()
	if release {
		os.Remove(hm.pinPath)
	}
	hm.pin.Close()
}

// supervisor is a running supervisor.
type supervisor struct {
	socket, runDir string
	exe            string // the executable an upgrade starts (its path at start)
	log            *slog.Logger
	listener       *os.File // the service's socket, which workers accept on
	ctlLn          *net.UnixListener

	mu       sync.Mutex
	mounts   map[string]*heldMount
	worker   *workerProc // nil while none runs
	gen      int         // workers started
	restarts int         // workers restarted after they died

	policy  restartPolicy
	spawn   chan *exec.Cmd // started by spawner, on one locked thread
	spawned chan error
	// replies are upgrade requests to answer once the next worker is
	// ready.
	replies    []*net.UnixConn
	workerStop time.Duration    // how long a stopping worker may take
	restart    <-chan time.Time // fires when a worker is to be started
}

// workerProc is a running worker.
type workerProc struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	ctl     *net.UnixConn
	exited  chan struct{} // closed once reaped; err is then its status
	err     error
	ready   chan struct{} // closed when it reported ready
}

// Serve runs the mount service on the socket at path until SIGTERM or
// SIGINT: a supervisor that holds the socket and every mount's
// descriptors, and a worker, its child, that serves the mounts; the
// supervisor restarts a worker that dies and, on SIGHUP or 'serve
// --upgrade', replaces itself and its worker with the executable now at
// its path. It logs on log.
func Serve(path string, log io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("serve: needs root: the service mounts with mount(2)")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	lg := slog.New(slog.NewTextHandler(log, nil))
	var s *supervisor
	if p := os.Getenv(supervisorEnv); p != "" {
		os.Unsetenv(supervisorEnv)
		s, err = adoptSupervisor(p, path, lg)
	} else {
		s, err = newSupervisor(path, lg)
	}
	if err != nil {
		return err
	}
	return s.run()
}

func baseSupervisor(socket string, log *slog.Logger) (*supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	s := &supervisor{
		socket: socket, runDir: runDirFor(socket), exe: exe, log: log,
		mounts: map[string]*heldMount{}, policy: defaultRestartPolicy(),
		spawn: make(chan *exec.Cmd), spawned: make(chan error), workerStop: 20 * time.Second,
	}
	go s.spawner()
	return s, nil
}

// newSupervisor listens on socket and makes its run directory afresh.
func newSupervisor(socket string, log *slog.Logger) (*supervisor, error) {
	s, err := baseSupervisor(socket, log)
	if err != nil {
		return nil, err
	}
	ln, err := listenSocket(socket)
	if err != nil {
		return nil, err
	}
	f, err := ln.File()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	s.listener = f
	// A run directory left by a supervisor that died holds the records
	// of mounts that died with it.
	if err := os.RemoveAll(filepath.Join(s.runDir, mountsDir)); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.runDir, mountsDir), 0o700); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := os.Chmod(s.runDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := s.listenCtl(); err != nil {
		return nil, err
	}
	return s, nil
}

// adoptSupervisor is a supervisor re-executed by an upgrade: it takes
// over its predecessor's descriptors, named in the manifest at p.
func adoptSupervisor(p, socket string, log *slog.Logger) (*supervisor, error) {
	m, err := readManifest(p)
	if err != nil {
		return nil, err
	}
	if m.Socket != socket {
		return nil, fmt.Errorf("serve: the upgrade's manifest is for %s, not %s", m.Socket, socket)
	}
	s, err := baseSupervisor(socket, log)
	if err != nil {
		return nil, err
	}
	s.gen, s.restarts = m.Generation, m.Restarts
	inherit := func(fd int, name string) *os.File {
		unix.CloseOnExec(fd)
		return os.NewFile(uintptr(fd), name)
	}
	s.listener = inherit(m.Listener, "listener")
	for _, mm := range m.Mounts {
		s.mounts[mm.ID] = &heldMount{id: mm.ID, fuse: inherit(mm.FUSE, "/dev/fuse"), pin: inherit(mm.Pin, "pin"), pinPath: mm.PinPath}
	}
	if m.Reply > 0 {
		f := inherit(m.Reply, "reply")
		if c, err := fileConn(f); err == nil {
			s.replies = append(s.replies, c)
		}
		f.Close()
	}
	if err := s.listenCtl(); err != nil {
		return nil, err
	}
	s.log.Info("supervisor upgraded", "exe", s.exe, "pid", os.Getpid(), "mounts", len(m.Mounts))
	return s, nil
}

// listenCtl listens on the supervisor's control socket.
func (s *supervisor) listenCtl() error {
	p := filepath.Join(s.runDir, ctlSocketName)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("serve: %w", err)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	s.ctlLn = ln
	_ = os.WriteFile(filepath.Join(s.runDir, "pid"), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
	return nil
}

// spawner starts the workers from one locked thread: a worker's parent
// death signal (SIGTERM, which makes it unmount everything and exit)
// fires when the thread that forked it ends, and a locked thread ends
// with the process only.
func (s *supervisor) spawner() {
	runtime.LockOSThread()
	for cmd := range s.spawn {
		s.spawned <- cmd.Start()
	}
}

// ctlRequest is a request on the supervisor's control socket.
type ctlRequest struct {
	Op string `json:"op"` // "upgrade" or "status"
}

// Status is what the supervisor says of itself ('serve --status', and
// the answer to an upgrade).
type Status struct {
	Error      string `json:"error,omitempty"`
	Supervisor int    `json:"supervisor"`
	Exe        string `json:"exe"`
	Worker     int    `json:"worker"` // 0: none runs
	Generation int    `json:"generation"`
	Restarts   int    `json:"restarts"`
	Mounts     int    `json:"mounts"`
}

type ctlCall struct {
	req  ctlRequest
	conn *net.UnixConn
}

// acceptCtl accepts on the control socket and passes each request on.
func (s *supervisor) acceptCtl(calls chan<- ctlCall) {
	for {
		c, err := s.ctlLn.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() {
			var req ctlRequest
			if err := checkPeer(c, 0); err != nil {
				_ = json.NewEncoder(c).Encode(Status{Error: err.Error()})
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := json.NewDecoder(io.LimitReader(c, maxRequest)).Decode(&req); err != nil {
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			calls <- ctlCall{req: req, conn: c}
		}()
	}
}

func (s *supervisor) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Supervisor: os.Getpid(), Exe: s.exe, Generation: s.gen, Restarts: s.restarts, Mounts: len(s.mounts)}
	if s.worker != nil {
		st.Worker = s.worker.pid
	}
	return st
}

func (s *supervisor) answer(c *net.UnixConn, err error) {
	if c == nil {
		return
	}
	st := s.status()
	if err != nil {
		st.Error = err.Error()
	}
	_ = json.NewEncoder(c).Encode(st)
	c.Close()
}

// run supervises workers until SIGTERM or SIGINT.
func (s *supervisor) run() error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	calls := make(chan ctlCall)
	go s.acceptCtl(calls)
	s.log.Info("serving mounts", "socket", s.socket, "supervisor", os.Getpid(), "run_dir", s.runDir)
	if err := s.startWorker(); err != nil {
		s.workerDied(nil)
	}
	for {
		var exited, ready <-chan struct{}
		if w := s.worker; w != nil {
			exited = w.exited
			if len(s.replies) > 0 {
				ready = w.ready
			}
		}
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.upgrade(nil)
				continue
			}
			s.shutdown()
			return nil
		case c := <-calls:
			switch c.req.Op {
			case "upgrade":
				s.upgrade(c.conn)
			case "status":
				s.answer(c.conn, nil)
			default:
				s.answer(c.conn, fmt.Errorf("serve: unknown request %q", c.req.Op))
			}
		case <-ready:
			for _, c := range s.replies {
				s.answer(c, nil)
			}
			s.replies = nil
		case <-exited:
			s.workerDied(s.worker)
		case <-s.restart:
			s.restart = nil
			if err := s.startWorker(); err != nil {
				s.workerDied(nil)
			}
		}
	}
}

// workerDied logs the death of w (nil: a worker that did not start) and
// restarts one, at once or after the restart policy's delay (s.restart
// fires then).
func (s *supervisor) workerDied(w *workerProc) {
	var up time.Duration
	if w != nil {
		up = time.Since(w.started)
		s.log.Warn("worker died", "pid", w.pid, "status", exitStatus(w.err), "uptime", up.Round(time.Millisecond))
		w.ctl.Close()
		s.mu.Lock()
		s.worker = nil
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.restarts++
	s.mu.Unlock()
	d := s.policy.next(up)
	if d == 0 {
		if err := s.startWorker(); err == nil {
			return
		}
		d = max(s.policy.next(0), s.policy.firstDelay)
	}
	s.log.Warn("worker keeps dying: restarting it later", "delay", d)
	s.restart = time.After(d)
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit 0"
}

// startWorker starts a worker with the listener and every mount held.
func (s *supervisor) startWorker() error {
	ctl, wend, err := ctlPair()
	if err != nil {
		s.log.Error("worker", "err", err)
		return err
	}
	defer wend.Close()
	s.mu.Lock()
	s.gen++
	files := []*os.File{s.listener, wend}
	m := manifest{Socket: s.socket, RunDir: s.runDir, Listener: 3, Control: 4, Generation: s.gen}
	ids := make([]string, 0, len(s.mounts))
	for id := range s.mounts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		hm := s.mounts[id]
		files = append(files, hm.fuse, hm.pin)
		m.Mounts = append(m.Mounts, manifestMount{ID: id, FUSE: 3 + len(files) - 2, Pin: 3 + len(files) - 1, PinPath: hm.pinPath})
	}
	s.mu.Unlock()
	p, err := writeManifest(m)
	if err != nil {
		ctl.Close()
		s.log.Error("worker", "err", err)
		return err
	}
	// /proc/self/exe: the worker is this supervisor's executable, even
	// if another was renamed over its path since (an upgrade replaces
	// both).
	cmd := exec.Command("/proc/self/exe", "serve", "--socket", s.socket)
	cmd.Args[0] = s.exe
	cmd.Env = append(os.Environ(), manifestEnv+"="+p)
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.spawn <- cmd
	if err := <-s.spawned; err != nil {
		ctl.Close()
		s.log.Error("worker: start", "err", err)
		return err
	}
	w := &workerProc{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), ctl: ctl, exited: make(chan struct{}), ready: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	go s.serveWorker(w)
	s.mu.Lock()
	s.worker = w
	s.mu.Unlock()
	s.log.Info("worker started", "pid", w.pid, "generation", m.Generation, "mounts", len(m.Mounts))
	return nil
}

// serveWorker answers w's requests on the control socketpair until it
// closes.
func (s *supervisor) serveWorker(w *workerProc) {
	readyOnce := sync.OnceFunc(func() { close(w.ready) })
	for {
		m, files, err := recvMsg(w.ctl)
		if err != nil {
			return
		}
		var rerr error
		switch m.Op {
		case "add":
			rerr = s.add(m, files)
		case "drop":
			closeFiles(files)
			s.drop(m.ID)
		case "ping":
			closeFiles(files)
		case "ready":
			closeFiles(files)
			s.log.Info("worker ready", "pid", w.pid, "resumed", m.Resumed, "failed", m.Failed, "took", time.Since(w.started).Round(time.Microsecond))
			readyOnce()
		default:
			closeFiles(files)
			rerr = fmt.Errorf("unknown request %q", m.Op)
		}
		r := ctlMsg{Op: "ok"}
		if rerr != nil {
			r = ctlMsg{Op: "error", Error: rerr.Error()}
		}
		if err := sendMsg(w.ctl, r); err != nil {
			return
		}
	}
}

// add holds a new mount's descriptors: files are its /dev/fuse and its
// pin.
func (s *supervisor) add(m ctlMsg, files []*os.File) error {
	if len(files) != 2 || !validID(m.ID) {
		closeFiles(files)
		return fmt.Errorf("add: want a mount id and two descriptors")
	}
	// The pin file names its holder: this process, from now on.
	if _, err := repo.AdoptPin(files[1], m.Pin); err != nil {
		closeFiles(files)
		return err
	}
	hm := &heldMount{id: m.ID, fuse: files[0], pin: files[1], pinPath: m.Pin}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mounts[m.ID]; ok {
		hm.close(false)
		return fmt.Errorf("add: mount %s is held already", m.ID)
	}
	s.mounts[m.ID] = hm
	return nil
}

// drop closes what the supervisor held of mount id (the worker removes
// its pin file).
func (s *supervisor) drop(id string) {
	s.mu.Lock()
	hm := s.mounts[id]
	delete(s.mounts, id)
	s.mu.Unlock()
	if hm != nil {
		hm.close(false)
	}
}

// stopWorker asks the worker to stop with sig and waits until it has
// exited, killing it after s.workerStop.
func (s *supervisor) stopWorker(sig os.Signal) {
	w := s.worker
	if w == nil {
		return
	}
	_ = w.cmd.Process.Signal(sig)
	select {
	case <-w.exited:
	case <-time.After(s.workerStop):
		s.log.Error("worker did not stop: killing it", "pid", w.pid, "signal", sig)
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
	w.ctl.Close()
	s.mu.Lock()
	s.worker = nil
	s.mu.Unlock()
}

// shutdown stops the worker, which unmounts every mount, then detaches
// whatever is left and removes the socket and the run directory.
func (s *supervisor) shutdown() {
	s.log.Info("stopping: unmounting every mount")
	// A worker restarting after a crash is started now, so that it
	// unmounts cleanly what it resumes.
	if s.worker == nil && len(s.mounts) > 0 {
		_ = s.startWorker()
	}
	s.stopWorker(syscall.SIGTERM)
	s.ctlLn.Close()
	s.mu.Lock()
	left := s.mounts
	s.mounts = map[string]*heldMount{}
	s.mu.Unlock()
	for id, hm := range left {
		if rec, err := readRecord(s.runDir, id); err == nil {
			_ = fs.DetachIfOurs(rec.Options.Mountpoint, rec.Devnum)
			s.log.Warn("detached a mount the worker left", "mountpoint", rec.Options.Mountpoint)
		}
		hm.close(true)
	}
	os.Remove(s.socket)
	os.RemoveAll(s.runDir)
	s.listener.Close()
	writeHeapProfile()
}

// upgrade replaces the worker, and this supervisor, with the executable
// at s.exe: it checks that the new executable speaks this protocol, lets
// the worker finish the mount requests it has and exit (the mounts stay:
// the kernel queues their requests, and the next worker has the kernel
// send again those the old one had read), and re-executes itself with
// every descriptor. reply, if not nil, is answered once the new worker
// is ready, or with the error.
func (s *supervisor) upgrade(reply *net.UnixConn) {
	s.log.Info("upgrade", "exe", s.exe)
	if err := probe(s.exe); err != nil {
		s.log.Error("upgrade refused", "err", err)
		s.answer(reply, fmt.Errorf("upgrade: %w", err))
		return
	}
	s.stopWorker(syscall.SIGUSR1)
	err := s.reexec(reply)
	// Still here: execve failed. Serve on with this executable.
	s.log.Error("upgrade: re-executing the supervisor failed; restarting the worker", "err", err)
	if reply != nil {
		s.replies = append(s.replies, reply)
	}
	if serr := s.startWorker(); serr != nil {
		s.workerDied(nil)
	}
}

// probe runs exe as a probe: it must answer probeReply at once.
func probe(exe string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s does not run: %w", exe, err)
	}
	if strings.TrimSpace(string(out)) != probeReply {
		return fmt.Errorf("%s speaks another supervisor protocol (%q)", exe, strings.TrimSpace(string(out)))
	}
	return nil
}

// reexec executes s.exe in this process with its descriptors (kept open
// across execve) and a manifest of them; it returns only if execve
// fails, the descriptors close-on-exec again.
func (s *supervisor) reexec(reply *net.UnixConn) error {
	s.mu.Lock()
	m := manifest{Socket: s.socket, RunDir: s.runDir, Listener: int(s.listener.Fd()), Generation: s.gen, Restarts: s.restarts}
	keep := []int{m.Listener}
	for id, hm := range s.mounts {
		mm := manifestMount{ID: id, FUSE: int(hm.fuse.Fd()), Pin: int(hm.pin.Fd()), PinPath: hm.pinPath}
		m.Mounts = append(m.Mounts, mm)
		keep = append(keep, mm.FUSE, mm.Pin)
	}
	s.mu.Unlock()
	if reply != nil {
		if f, err := reply.File(); err == nil {
			defer f.Close()
			m.Reply = int(f.Fd())
			keep = append(keep, m.Reply)
		}
	}
	p, err := writeManifest(m)
	if err != nil {
		return err
	}
	for _, fd := range keep {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	defer func() {
		for _, fd := range keep {
			unix.CloseOnExec(fd)
		}
	}()
	env := append(os.Environ(), supervisorEnv+"="+p)
	s.ctlLn.Close()
	err = syscall.Exec(s.exe, os.Args, env)
	if lerr := s.listenCtl(); lerr != nil {
		s.log.Error("control socket", "err", lerr)
	}
	return err
}

// Upgrade asks the supervisor of the service at socket to upgrade
// ('serve --upgrade') and returns its status once the new worker is
// ready.
func Upgrade(socket string) (Status, error) { return ctlCallOf(socket, "upgrade") }

// ServiceStatus asks the supervisor of the service at socket how it is.
func ServiceStatus(socket string) (Status, error) { return ctlCallOf(socket, "status") }

func ctlCallOf(socket, op string) (Status, error) {
	var st Status
	socket, err := filepath.Abs(socket)
	if err != nil {
		return st, err
	}
	p := filepath.Join(runDirFor(socket), ctlSocketName)
	c, err := net.Dial("unix", p)
	if err != nil {
		return st, fmt.Errorf("serve: no supervisor of %s answers on %s: %w", socket, p, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if err := json.NewEncoder(c).Encode(ctlRequest{Op: op}); err != nil {
		return st, fmt.Errorf("serve: %s: %w", op, err)
	}
	if err := json.NewDecoder(c).Decode(&st); err != nil {
		return st, fmt.Errorf("serve: %s: the supervisor did not answer: %w", op, err)
	}
	if st.Error != "" {
		return st, errors.New(st.Error)
	}
	return st, nil
}
