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
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// DefaultSocket is where the mount service listens and where a mount
// looks for it.
const DefaultSocket = "/run/ostree-mount/mount.sock"

// Reply is the service's answer to a request (an Options).
type Reply struct {
	Error string `json:"error,omitempty"`
}

// maxRequest bounds a request's size.
const maxRequest = 1 << 16

// requestTimeout bounds how long a request may take, from the connection.
const requestTimeout = 10 * time.Minute

// serviceBase is the service's memory limit without mounts. The mounts
// share one set of metadata caches of serviceCacheBytes, whose keys are
// content-derived, so that N mounts of one image hold its composed
// directories once; each mount adds mountOverhead (its inodes, request
// buffers and goroutines).
const (
	serviceBase       = 64 << 20
	serviceCacheBytes = 64 << 20
	mountOverhead     = 2 << 20
	// serviceMaxInodes bounds each mount's inodes (fs.Options.MaxInodes)
	// unless the request sets it: an inode costs about 100 bytes in fs's
	// node table (plus the kernel's own), and the kernel holds every one
	// a walk met until told to forget them (fs.DefaultMaxInodes would be
	// 4 MB a mount). Forgotten entries are looked up again from the
	// shared caches, a round trip each.
	serviceMaxInodes = 1024
	// serviceMaxRequest is each mount's largest request
	// (fs.Options.MaxRequest) unless the request sets it, and
	// serviceReaders how many requests it reads at once
	// (fs.Options.Readers): go-fuse keeps a buffer of it for each, idle
	// or not, up to three a mount by default, which at 1 MiB was most of
	// a mount's memory.
	serviceMaxRequest = 128 << 10
	serviceReaders    = 2
)

// service is a running mount service.
type service struct {
	mu     sync.Mutex
	mounts map[string]*mounted // by mountpoint; nil while being mounted
	// detached holds mounts no longer at their path (umount, or umount
	// -l with files open) whose servers have not ended yet: the path is
	// free for a new mount.
	detached map[*mounted]bool
	budget   int64 // the memory limit of all mounts
	closing  bool  // shutting down: no new mounts
	wg       sync.WaitGroup
	log      *slog.Logger
	uid      uint32                // the only peer allowed (root)
	mount    func(o Options) error // s.mountOne; tests replace it
	caches   *caches               // shared by every mount; made by the first
	// handlers counts the requests being answered.
	handlers sync.WaitGroup
	// store is the supervisor's fd store that every mount is handed to,
	// and runDir where the mounts' records are (nil, "": mounts made
	// by fs alone, in tests).
	store  *fdStore
	runDir string
}

// IsWorker reports whether this process is a worker of the mount
// service (or a probe of its protocol), which must run RunWorker
// instead of its command line.
func IsWorker() bool { return os.Getenv(manifestEnv) != "" || os.Getenv(probeEnv) != "" }

// RunWorker is a worker of the mount service, started by its supervisor
// (Serve) with the service's socket, the control socketpair and the
// descriptors of the mounts to serve again, all named in its manifest.
// It serves those mounts and the mounts requested on the socket until
// SIGTERM or SIGINT (or the supervisor's death), then unmounts them all;
// on SIGUSR1 it stops accepting and exits once its requests are
// answered, leaving the mounts to its successor. It logs on log.
func RunWorker(log io.Writer) error {
	if os.Getenv(probeEnv) != "" {
		fmt.Println(probeReply)
		return nil
	}
	p := os.Getenv(manifestEnv)
	os.Unsetenv(manifestEnv)
	m, err := readManifest(p)
	if err != nil {
		return err
	}
	cf := os.NewFile(uintptr(m.Control), "control")
	ctl, err := fileConn(cf)
	cf.Close()
	if err != nil {
		return err
	}
	lf := os.NewFile(uintptr(m.Listener), "listener")
	l, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return fmt.Errorf("worker: listener: %w", err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		return fmt.Errorf("worker: the listener is not a unix socket")
	}
	ln.SetUnlinkOnClose(false)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	// The collector runs at GOGC 50, so that the heap of many mounts,
	// mostly their inodes, does not double between collections, and
	// under a limit of serviceBase plus the shared caches and
	// mountOverhead for each mount.
	debug.SetGCPercent(gcPercent())
	debug.SetMemoryLimit(serviceBase)
	s := newService(slog.New(slog.NewTextHandler(log, nil)))
	s.store = &fdStore{conn: ctl}
	s.runDir = m.RunDir
	resumed, failed := s.resumeAll(m.Mounts)
	if err := s.store.call(ctlMsg{Op: "ready", Resumed: resumed, Failed: failed}); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	handover := make(chan bool, 1)
	go func() {
		sig := <-sigs
		handover <- sig == syscall.SIGUSR1
		if sig != syscall.SIGUSR1 {
			// OSTREE_MOUNT_MEMPROFILE=FILE writes a heap profile of the
			// service and its mounts before they are unmounted.
			writeHeapProfile()
		}
		ln.Close()
	}()
	s.log.Info("worker serving", "socket", m.Socket, "pid", os.Getpid(), "generation", m.Generation, "resumed", resumed, "failed", failed)
	s.accept(ln)
	if <-handover {
		// The mounts are the next worker's: answer the requests being
		// answered, and go without unmounting anything.
		s.handlers.Wait()
		s.log.Info("worker handing over", "pid", os.Getpid())
		os.Exit(0)
	}
	s.stop()
	// A supervisor that died (this worker was told by its parent-death
	// signal, which may come while the supervisor's other threads still
	// exit) no longer answers: no one else cleans up after it.
	_ = ctl.SetDeadline(time.Now().Add(5 * time.Second))
	if err := s.store.call(ctlMsg{Op: "ping"}); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.log.Info("worker stopped: the supervisor is gone", "pid", os.Getpid())
		os.Remove(m.Socket)
		os.RemoveAll(m.RunDir)
	}
	return nil
}

// accept answers the connections on ln until it is closed.
func (s *service) accept(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, say: the mounts are still served.
			s.log.Error("accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(conn)
		}()
	}
}

func newService(log *slog.Logger) *service {
	s := &service{mounts: map[string]*mounted{}, detached: map[*mounted]bool{}, budget: serviceBase, log: log}
	s.mount = s.mountOne
	return s
}

// stop unmounts every mount and waits until all are gone.
func (s *service) stop() {
	s.mu.Lock()
	s.closing = true
	for mnt, m := range s.mounts {
		if m == nil {
			continue // being mounted: it unmounts itself on seeing closing
		}
		if mi, ok, _ := fs.MountedAt(mnt); !ok || mi.FSType != fs.FSType {
			continue // unmounted already; its goroutine is finishing
		}
		if err := m.srv.Unmount(); err != nil {
			s.log.Error("unmount", "mountpoint", mnt, "err", err)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}
	s.mu.Unlock()
	all := make(chan struct{})
	go func() { s.wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(stopWait):
		// Mounts unmounted lazily (umount -l) whose files are still
		// open: they end when this process and the supervisor close
		// their descriptors, and the kernel then fails those files'
		// reads (ENOTCONN) rather than leave them waiting for a server.
		s.mu.Lock()
		s.log.Error("stopping with detached mounts still open", "mounts", len(s.mounts)+len(s.detached))
		s.mu.Unlock()
		return
	}
	if s.caches != nil {
		s.caches.Close()
	}
}

// stopWait bounds how long stop waits for mounts that it cannot unmount.
const stopWait = 5 * time.Second

// sharedCaches returns the mounts' caches, made on first use; s.mu held.
func (s *service) sharedCaches() (*caches, error) {
	if s.caches == nil {
		ca, err := newCaches(serviceCacheBytes)
		if err != nil {
			return nil, err
		}
		s.caches = ca
		s.budget += serviceCacheBytes
		debug.SetMemoryLimit(s.budget)
	}
	return s.caches, nil
}

// composed reports how many directories the shared caches have composed.
func (s *service) composed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caches == nil {
		return 0
	}
	return s.caches.Composed()
}

// listenSocket listens on path, root-only, after removing a socket that
// nothing listens on any more.
func listenSocket(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	// Only a stale socket (one that nobody accepts on) is replaced: a
	// regular file or anything else at path is left alone.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("serve: %s exists and is not a socket (%s); not replacing it", path, fi.Mode().Type())
		}
		conn, err := net.Dial("unix", path)
		switch {
		case err == nil:
			conn.Close()
			return nil, fmt.Errorf("serve: %s is already served: a service already listens on it", path)
		case errors.Is(err, syscall.ECONNREFUSED):
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("serve: stale socket: %w", err)
			}
		default:
			return nil, fmt.Errorf("serve: %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("serve: %w", err)
	}
	// The socket is born 0600 (0777 less the umask), so that no one sees
	// it with other permissions, however briefly.
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("serve: %w", err)
	}
	return ln, nil
}

// handle answers one connection: one request, one reply.
func (s *service) handle(conn *net.UnixConn) {
	defer conn.Close()
	reply := func(err error) {
		var r Reply
		if err != nil {
			r.Error = err.Error()
		}
		_ = json.NewEncoder(conn).Encode(r)
	}
	if err := checkPeer(conn, s.uid); err != nil {
		reply(err)
		return
	}
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	var o Options
	if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&o); err != nil {
		reply(fmt.Errorf("serve: bad request: %w", err))
		return
	}
	start := time.Now()
	err := s.mount(o)
	if err != nil {
		s.log.Error("mount", "mountpoint", o.Mountpoint, "rev", o.Rev, "err", err)
	} else {
		s.log.Info("mounted", "mountpoint", o.Mountpoint, "rev", o.Rev, "commit", o.Commit, "took", time.Since(start), "composed", s.composed())
	}
	reply(err)
}

// checkPeer refuses a client whose uid is not uid (root): a request
// names a repository and a mountpoint, and the service mounts as root.
func checkPeer(conn *net.UnixConn, uid uint32) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("serve: peer credentials: %w", cerr)
	}
	if cred.Uid != uid {
		return fmt.Errorf("serve: uid %d may not mount through the service (root only)", cred.Uid)
	}
	return nil
}

// mountOne serves one request: pin, compose and mount, as a daemon
// would; in a worker, it records the mount and hands its descriptors to
// the supervisor before it answers.
func (s *service) mountOne(o Options) error { return s.serveMount(o, nil) }

// resumption is a mount that a worker serves again: the descriptors the
// supervisor held for it and its record.
type resumption struct {
	id   string
	fuse *os.File // owned: closed by serveMount
	rec  mountRecord
}

// resumeAll serves again the mounts of a worker's manifest, a few at a
// time, and returns how many it resumed and how many it could not (each
// of which it detached and dropped).
func (s *service) resumeAll(mounts []manifestMount) (resumed, failed int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, mm := range mounts {
		fuse := os.NewFile(uintptr(mm.FUSE), "/dev/fuse")
		// The supervisor keeps the pin; this worker removes its file
		// when the mount ends (the record names it).
		unix.Close(mm.Pin)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := s.resume(mm, fuse)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				s.log.Error("resume", "id", mm.ID, "err", err)
				return
			}
			resumed++
		}()
	}
	wg.Wait()
	return resumed, failed
}

// resume serves mount mm again on fuse; a mount it cannot serve is
// detached, so that nothing waits on it for ever, and dropped.
func (s *service) resume(mm manifestMount, fuse *os.File) error {
	start := time.Now()
	rec, err := readRecord(s.runDir, mm.ID)
	if err == nil {
		err = s.serveMount(rec.Options, &resumption{id: mm.ID, fuse: fuse, rec: rec})
		if err == nil {
			s.log.Info("resumed", "mountpoint", rec.Options.Mountpoint, "rev", rec.Options.Rev, "took", time.Since(start))
			return nil
		}
		_ = fs.DetachIfOurs(rec.Options.Mountpoint, rec.Devnum)
		os.Remove(rec.Pin)
	} else {
		fuse.Close()
	}
	_ = s.store.call(ctlMsg{Op: "drop", ID: mm.ID})
	os.RemoveAll(mountDir(s.runDir, mm.ID))
	return err
}

// serveMount pins, composes and serves the mount o: a new one (res nil)
// or, in a worker, one that a previous worker served (res).
func (s *service) serveMount(o Options, res *resumption) (err error) {
	if res != nil {
		defer res.fuse.Close()
	}
	sum, err := repo.ParseChecksum(o.Commit)
	if err != nil {
		return fmt.Errorf("serve: commit: %w", err)
	}
	if !filepath.IsAbs(o.Mountpoint) || !filepath.IsAbs(o.Repo) {
		return fmt.Errorf("serve: the repository and mountpoint must be absolute paths")
	}
	if o.CacheSize <= 0 {
		return fmt.Errorf("serve: cache size %d: must be positive", o.CacheSize)
	}
	logPath := o.LogFile
	if logPath == "" {
		logPath = defaultLogPath(o.Mountpoint)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("mount: log file: %w", err)
	}
	r, err := repo.Open(o.Repo)
	if err != nil {
		logf.Close()
		return err
	}
	// The pin: a new one, or the one the supervisor holds for a resumed
	// mount, whose file this worker removes at the end.
	var pin *repo.Pin
	var pinPath string
	var unpin func()
	if res == nil {
		if pin, err = r.Pin(context.Background(), sum); err != nil {
			r.Close()
			logf.Close()
			return err
		}
		pinPath, unpin = pin.Path(), func() { _ = pin.Release() }
	} else {
		pinPath = res.rec.Pin
		unpin = func() { os.Remove(pinPath) }
	}
	fo := o.fsOptions()
	fo.Logger = slog.New(slog.NewTextHandler(logf, nil))
	if fo.MaxInodes == 0 {
		fo.MaxInodes = serviceMaxInodes
	}
	if fo.MaxRequest == 0 {
		fo.MaxRequest = serviceMaxRequest
	}
	if fo.Readers == 0 {
		fo.Readers = serviceReaders
	}
	id := newID()
	if res != nil {
		id = res.id
	}
	forget := func() {
		if s.store != nil {
			os.RemoveAll(mountDir(s.runDir, id))
		}
	}
	release := func() {
		unpin()
		r.Close()
		logf.Close()
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		return errors.New("serve: the service is stopping")
	}
	if old, ok := s.mounts[o.Mountpoint]; ok {
		if old == nil || stillMounted(old) {
			s.mu.Unlock()
			release()
			return fmt.Errorf("mount: %s is already a mountpoint", o.Mountpoint)
		}
		// Unmounted by the kernel (umount(8) right before this request),
		// its server not ended yet: it ends on its own.
		delete(s.mounts, o.Mountpoint)
		s.detached[old] = true
	}
	shared, err := s.sharedCaches()
	if err != nil {
		s.mu.Unlock()
		release()
		return err
	}
	// Reserved: the service waits for this mount from now on.
	s.mounts[o.Mountpoint] = nil
	s.wg.Add(1)
	s.budget += mountOverhead
	debug.SetMemoryLimit(s.budget)
	s.mu.Unlock()
	var m *mounted
	// handed: the supervisor holds the mount's descriptors, and drops
	// them when it ends.
	handed := res != nil
	done := func() {
		s.mu.Lock()
		if s.detached[m] {
			delete(s.detached, m)
		} else {
			delete(s.mounts, o.Mountpoint)
		}
		s.budget -= mountOverhead
		debug.SetMemoryLimit(s.budget)
		s.mu.Unlock()
		if handed {
			if err := s.store.call(ctlMsg{Op: "drop", ID: id}); err != nil {
				s.log.Error("drop", "mountpoint", o.Mountpoint, "err", err)
			}
		}
		forget()
		// The count of directories composed so far in the shared caches:
		// a walk of an image another mount walked composes none. The
		// inode counts tell what the mount held at most.
		// Revived: node IDs of a predecessor's served again from the
		// journal; stale: IDs that neither knew (ESTALE).
		var in fs.InodeStats
		var revived, stale int64
		if m != nil {
			in, revived, stale = m.srv.Inodes(), m.srv.Revived(), m.srv.Stale()
		}
		s.log.Info("unmounted", "mountpoint", o.Mountpoint, "composed", s.composed(),
			"inodes_peak", in.Peak, "inodes_bound", in.Bound, "revived", revived, "stale", stale)
		release()
		s.wg.Done()
	}
	// In a worker the mount is made here, on a /dev/fuse descriptor the
	// supervisor is handed (a new mount), or served again on the one it
	// held (res); fs serves a duplicate, which it closes at the end.
	var dev *os.File
	var devnum uint64
	before := func(fo *fs.Options) error {
		if s.store == nil {
			return nil
		}
		if res != nil {
			dev, devnum = res.fuse, res.rec.Devnum
		} else {
			var err error
			if dev, err = fs.OpenDevice(); err != nil {
				return fmt.Errorf("mount: %w", err)
			}
			if devnum, err = mountDevice(dev, o.Mountpoint, *fo); err != nil {
				return err
			}
			if err := writeRecord(s.runDir, id, mountRecord{Options: o, Devnum: devnum, Pin: pinPath}); err != nil {
				return err
			}
		}
		fd, err := unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fmt.Errorf("mount: %w", err)
		}
		fo.Device, fo.DeviceNumber = fd, devnum
		*fo = withState(*fo, filepath.Join(mountDir(s.runDir, id), fsStateDir), res != nil)
		return nil
	}
	m, err = startMount(r, sum, o.Rev, o.Mountpoint, o.CacheSize, shared, fo, before)
	if err == nil && s.store != nil && res == nil {
		// The supervisor holds the mount from now on; the worker's own
		// descriptor goes (fs serves its duplicate).
		err = s.store.call(ctlMsg{Op: "add", ID: id, Pin: pinPath}, dev, pin.File())
		if err != nil {
			_ = m.srv.Unmount()
			m.wait()
			m = nil
		}
		handed = err == nil
	}
	if res == nil && dev != nil {
		dev.Close()
	}
	if err != nil {
		if res == nil && devnum != 0 {
			_ = fs.DetachIfOurs(o.Mountpoint, devnum)
		}
		done()
		return err
	}
	s.mu.Lock()
	s.mounts[o.Mountpoint] = m
	closing := s.closing
	s.mu.Unlock()
	go func() {
		m.wait()
		done()
	}()
	if closing {
		_ = m.srv.Unmount()
		return errors.New("serve: the service is stopping")
	}
	return nil
}

// stillMounted reports whether m is still the mount at its path; a
// mountinfo that cannot be read counts as yes.
func stillMounted(m *mounted) bool {
	mi, ok, err := fs.MountedAt(m.srv.Mountpoint)
	return err != nil || (ok && mi.Dev == m.srv.Dev)
}

// Request asks the mount service at socket to make the mount o
// (o.Commit resolved, o.Repo absolute); handled is false when no service
// listens there.
func Request(socket string, o Options) (handled bool, err error) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return false, nil
		}
		return true, fmt.Errorf("mount: the mount service at %s: %w", socket, err)
	}
	defer conn.Close()
	if o.LogFile != "" {
		if o.LogFile, err = filepath.Abs(o.LogFile); err != nil {
			return true, err
		}
	}
	rep, err := request(conn, o)
	if err != nil {
		return true, fmt.Errorf("mount: the mount service at %s: %w", socket, err)
	}
	if rep.Error != "" {
		return true, errors.New(rep.Error)
	}
	return true, nil
}

// request sends o on conn and reads the service's reply. A service that
// refuses the client answers before it reads, and may close before the
// request is written: its answer is still read.
func request(conn io.ReadWriter, o Options) (Reply, error) {
	var rep Reply
	werr := json.NewEncoder(conn).Encode(o)
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		if werr != nil {
			return rep, werr
		}
		return rep, fmt.Errorf("did not answer: %w", err)
	}
	return rep, nil
}

// gcPercent is the service's GOGC; OSTREE_MOUNT_SERVICE_GOGC overrides
// it, for benchmarks.
func gcPercent() int {
	if v, err := strconv.Atoi(os.Getenv("OSTREE_MOUNT_SERVICE_GOGC")); err == nil {
		return v
	}
	return 50
}
