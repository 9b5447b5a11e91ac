package main

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
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// defaultSocket is where 'ostree-mount serve' listens and where a mount
// looks for it.
const defaultSocket = "/run/ostree-mount/mount.sock"

func socketFlag() cli.Flag {
	return &cli.StringFlag{Name: "socket", Value: defaultSocket, EnvVars: []string{"OSTREE_MOUNT_SOCKET"},
		Usage: "the socket of the mount service ('ostree-mount serve'); a background mount as root asks it first"}
}

var _ = register(&cli.Command{
	Name:  "serve",
	Usage: "serve mounts from one long-lived process, so that a mount starts no process",
	Description: `Listens on --socket for mount requests from 'ostree-mount mount' (as
root, without -f), and serves every mount it makes from this process until
each is unmounted. A mount then costs no process start (two otherwise), at
the price of isolation: if this process dies, all its mounts die with it.
Each mount is pinned and logged as a mount of its own daemon would be.
SIGTERM or SIGINT unmounts them all and exits. Only root may connect.
A stale socket at --socket (one nobody accepts on) is replaced; a live one,
or anything that is not a socket, is an error and is left alone.`,
	Flags:  []cli.Flag{socketFlag()},
	Action: runServe,
})

// mountRequest is what a mount command sends to the service; the reply
// is a mountReply.
type mountRequest struct {
	Repo        string `json:"repo"`
	Commit      string `json:"commit"`
	Rev         string `json:"rev"`
	Mountpoint  string `json:"mountpoint"`
	CacheSize   int64  `json:"cache_size"`
	AllowOther  bool   `json:"allow_other,omitempty"`
	Suid        bool   `json:"suid,omitempty"`
	Verify      bool   `json:"verify,omitempty"`
	Passthrough bool   `json:"passthrough,omitempty"`
	Debug       bool   `json:"debug,omitempty"`
	LogFile     string `json:"log_file,omitempty"`
}

type mountReply struct {
	Error string `json:"error,omitempty"`
}

// serviceBase is the service's memory limit without mounts; each mount
// adds its cache size and 48 MiB, as its own daemon's limit would.
const serviceBase = 64 << 20

// service is a running 'ostree-mount serve'.
type service struct {
	mu      sync.Mutex
	mounts  map[string]*mounted // by mountpoint
	budget  int64               // the memory limit of all mounts
	closing bool                // shutting down: no new mounts
	wg      sync.WaitGroup
}

func runServe(c *cli.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("serve: needs root: the service mounts with mount(2)")
	}
	path, err := filepath.Abs(c.String("socket"))
	if err != nil {
		return err
	}
	ln, err := listenSocket(path)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// The collector runs when the heap nears the sum of the mounts'
	// budgets (serviceBase when there are none), not every few megabytes:
	// each mount allocates megabytes of request buffers as it starts, and
	// collections at a small heap made a mount take 5 to 18 ms instead of
	// 3. The limit bounds the service's memory as the daemons' do theirs.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(serviceBase)
	s := &service{mounts: map[string]*mounted{}, budget: serviceBase}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	go func() {
		<-sigs
		ln.Close()
	}()
	log.Info("serving mounts", "socket", path)
	for {
		conn, err := ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if err != nil {
			// Out of descriptors, say: the mounts are still served.
			log.Error("accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go s.handle(conn, log)
	}
	os.Remove(path)
	s.mu.Lock()
	s.closing = true
	for mnt, m := range s.mounts {
		if m == nil {
			continue // being mounted: it unmounts itself on seeing closing
		}
		if mi, ok, _ := fs.MountedAt(mnt); !ok || mi.FSType != "fuse.ostree-mount" {
			continue // unmounted already; its goroutine is finishing
		}
		if err := m.srv.Unmount(); err != nil {
			log.Error("unmount", "mountpoint", mnt, "err", err)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
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
	old := unix.Umask(0o077)
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

func (s *service) handle(conn *net.UnixConn, log *slog.Logger) {
	defer conn.Close()
	reply := func(err error) {
		var r mountReply
		if err != nil {
			r.Error = err.Error()
		}
		_ = json.NewEncoder(conn).Encode(r)
	}
	if err := checkPeerRoot(conn); err != nil {
		reply(err)
		return
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Minute))
	var req mountRequest
	if err := json.NewDecoder(io.LimitReader(conn, 1<<16)).Decode(&req); err != nil {
		reply(fmt.Errorf("serve: bad request: %w", err))
		return
	}
	start := time.Now()
	err := s.mount(req)
	if err != nil {
		log.Error("mount", "mountpoint", req.Mountpoint, "rev", req.Rev, "err", err)
	} else {
		log.Info("mounted", "mountpoint", req.Mountpoint, "rev", req.Rev, "commit", req.Commit, "took", time.Since(start))
	}
	reply(err)
}

// checkPeerRoot refuses a client that is not root: a request names a
// repository and a mountpoint, and the service mounts as root.
func checkPeerRoot(conn *net.UnixConn) error {
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
	if cred.Uid != 0 {
		return fmt.Errorf("serve: uid %d may not mount through the service (root only)", cred.Uid)
	}
	return nil
}

// mount serves one request: pin, compose and mount, as a daemon would.
func (s *service) mount(req mountRequest) (err error) {
	sum, err := repo.ParseChecksum(req.Commit)
	if err != nil {
		return fmt.Errorf("serve: commit: %w", err)
	}
	if !filepath.IsAbs(req.Mountpoint) || !filepath.IsAbs(req.Repo) {
		return fmt.Errorf("serve: the repository and mountpoint must be absolute paths")
	}
	if req.CacheSize <= 0 {
		return fmt.Errorf("serve: cache size %d: must be positive", req.CacheSize)
	}
	logPath := req.LogFile
	if logPath == "" {
		logPath = defaultLogPath(req.Mountpoint)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("mount: log file: %w", err)
	}
	r, err := repo.Open(req.Repo)
	if err != nil {
		logf.Close()
		return err
	}
	pin, err := r.Pin(context.Background(), sum)
	if err != nil {
		r.Close()
		logf.Close()
		return err
	}
	o := fs.Options{
		AllowOther:  req.AllowOther,
		Suid:        req.Suid,
		Verify:      req.Verify,
		Passthrough: req.Passthrough,
		Name:        "ostree-mount:" + req.Rev,
		Debug:       req.Debug,
		Logger:      slog.New(slog.NewTextHandler(logf, nil)),
	}
	release := func() {
		pin.Release()
		r.Close()
		logf.Close()
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		return errors.New("serve: the service is stopping")
	}
	if _, ok := s.mounts[req.Mountpoint]; ok {
		s.mu.Unlock()
		release()
		return fmt.Errorf("mount: %s is already a mountpoint", req.Mountpoint)
	}
	// Reserved: the service waits for this mount from now on.
	s.mounts[req.Mountpoint] = nil
	s.wg.Add(1)
	s.budget += req.CacheSize + 48<<20
	debug.SetMemoryLimit(s.budget)
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		delete(s.mounts, req.Mountpoint)
		s.budget -= req.CacheSize + 48<<20
		debug.SetMemoryLimit(s.budget)
		s.mu.Unlock()
		release()
		s.wg.Done()
	}
	m, err := startMount(r, sum, req.Mountpoint, req.CacheSize, o, nil)
	if err != nil {
		done()
		return err
	}
	s.mu.Lock()
	s.mounts[req.Mountpoint] = m
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

// mountViaService asks the mount service at the --socket path to mount;
// handled is false when no service listens there.
func mountViaService(c *cli.Context, sum repo.Checksum, rev, mnt string, cacheSize int64) (handled bool, err error) {
	conn, err := net.Dial("unix", c.String("socket"))
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return false, nil
		}
		return true, fmt.Errorf("mount: the mount service at %s: %w", c.String("socket"), err)
	}
	defer conn.Close()
	repoAbs, err := filepath.Abs(repoPath(c))
	if err != nil {
		return true, err
	}
	logPath := c.String("log-file")
	if logPath != "" {
		if logPath, err = filepath.Abs(logPath); err != nil {
			return true, err
		}
	}
	req := mountRequest{
		Repo: repoAbs, Commit: sum.String(), Rev: rev, Mountpoint: mnt, CacheSize: cacheSize,
		AllowOther: c.Bool("allow-other"), Suid: c.Bool("suid"), Verify: c.Bool("verify"),
		Passthrough: c.Bool("passthrough"), Debug: c.Bool("debug"), LogFile: logPath,
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return true, fmt.Errorf("mount: the mount service at %s: %w", c.String("socket"), err)
	}
	var rep mountReply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		return true, fmt.Errorf("mount: the mount service at %s did not answer: %w", c.String("socket"), err)
	}
	if rep.Error != "" {
		return true, errors.New(rep.Error)
	}
	return true, nil
}
