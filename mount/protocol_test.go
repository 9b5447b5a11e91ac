package mount

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
)

// testDaemonEnv makes the test binary, started as a daemon by daemonize
// or startHandoff, play one: "die" exits before it answers, "handoff"
// writes on each descriptor of its handoff what it is, "daemon" runs
// RunDaemon.
const testDaemonEnv = "OSTREE_MOUNT_TEST_DAEMON"

func TestMain(m *testing.M) {
	if IsDaemon() {
		switch os.Getenv(testDaemonEnv) {
		case "die":
			os.Exit(3)
		case "handoff":
			env := map[string]string{}
			for _, k := range daemonVars {
				env[k] = os.Getenv(k)
			}
			h, err := parseHandoff(env)
			if err != nil || h == nil {
				fmt.Fprintf(os.Stderr, "handoff: %v\n", err)
				os.Exit(4)
			}
			for name, fd := range map[string]int{"device": h.device, "pin": h.pinFD, "ctl": h.ctlFD} {
				f := os.NewFile(uintptr(fd), name)
				fmt.Fprintf(f, "%s %s", name, h.pinPath)
				f.Close()
			}
			os.Exit(0)
		default:
			if err := RunDaemon(); err != nil {
				fmt.Fprintf(os.Stderr, "daemon: %v\n", err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// within runs f and fails the test if it has not returned by the
// deadline: a protocol step must never hang.
func within[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: hangs", what)
		panic("unreachable")
	}
}

func TestReadyPipe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report func(p *readyPipe)
		want   string // "" for ready
	}{
		{"ready", func(p *readyPipe) { p.report(nil); p.report(errors.New("late")) }, ""},
		{"error", func(p *readyPipe) { p.report(errors.New("mount: commit 1234: not found")) }, "mount: commit 1234: not found"},
		{"closed-unwritten", func(p *readyPipe) { p.f.Close() }, "mount: the daemon exited before the mount was ready (see LOG)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			go tc.report(&readyPipe{f: w})
			err = within(t, "readReady", func() error { return readReady(r, "LOG") })
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
				t.Errorf("readReady: %v, want %q", err, tc.want)
			}
		})
	}
	// No ready pipe (a foreground mount): reports do nothing.
	var none *readyPipe = openReady("")
	none.report(nil)
	if p := openReady("2"); p != nil {
		t.Errorf("openReady(2) = %v: standard streams are not ready pipes", p)
	}
}

// TestDaemonizeReportsDaemonFailure: a daemon that dies before it
// answers, or fails and says why, is reported by daemonize, which
// returns instead of waiting.
func TestDaemonizeReportsDaemonFailure(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	o := Options{Repo: filepath.Join(t.TempDir(), "no-repo"), Rev: "x", Commit: strings.Repeat("ab", 32),
		Mountpoint: t.TempDir(), CacheSize: 1 << 20, LogFile: logPath}

	t.Setenv(testDaemonEnv, "die")
	err := within(t, "daemonize", func() error { return daemonize(o) })
	if err == nil || !strings.Contains(err.Error(), "exited before the mount was ready (see "+logPath+")") {
		t.Errorf("a daemon that died: %v", err)
	}

	t.Setenv(testDaemonEnv, "daemon")
	err = within(t, "daemonize", func() error { return daemonize(o) })
	if err == nil || !strings.Contains(err.Error(), "no-repo") {
		t.Errorf("a daemon whose repository does not open: %v, want its error", err)
	}
}

func TestHandoffEnv(t *testing.T) {
	h := handoff{device: 3, pinFD: 4, ctlFD: 5, pinPath: "/repo/tmp/pins/x.pin"}
	env := map[string]string{}
	for _, kv := range h.env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	got, err := parseHandoff(env)
	if err != nil || got == nil || *got != h {
		t.Fatalf("parseHandoff(%v) = %+v, %v; want %+v", h.env(), got, err, h)
	}
	if got, err := parseHandoff(map[string]string{}); got != nil || err != nil {
		t.Errorf("no handoff: %+v, %v", got, err)
	}
	for _, bad := range []map[string]string{
		{handoffFUSEEnv: "3", handoffPinEnv: "4", handoffCtlEnv: "5"},                              // no pin path
		{handoffFUSEEnv: "3", handoffPinEnv: "x", handoffCtlEnv: "5", handoffPinPathEnv: "/p"},     // not a number
		{handoffFUSEEnv: "1", handoffPinEnv: "4", handoffCtlEnv: "5", handoffPinPathEnv: "/p"},     // stdout
		{handoffFUSEEnv: "3", handoffPinEnv: "4", handoffPinPathEnv: "/p"},                         // no control pipe
		{handoffFUSEEnv: "three", handoffPinEnv: "4", handoffCtlEnv: "5", handoffPinPathEnv: "/p"}, // not a number
	} {
		if got, err := parseHandoff(bad); err == nil || !strings.Contains(err.Error(), "bad daemon handoff") {
			t.Errorf("parseHandoff(%v) = %+v, %v; want an error", bad, got, err)
		}
	}
}

// TestHandoffDescriptors: the daemon that startHandoff starts finds
// /dev/fuse, the pin and the control pipe at the descriptors its
// environment names (here, pipes stand in for all three).
func TestHandoffDescriptors(t *testing.T) {
	t.Setenv(testDaemonEnv, "handoff")
	var readers, writers []*os.File
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers, writers = append(readers, r), append(writers, w)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	o := Options{Repo: "/r", Rev: "x", Mountpoint: "/m", CacheSize: 1}
	err = startHandoff(o, null, os.Stderr, writers[0], writers[1], "/repo/pins/p", writers[2])
	for _, w := range writers {
		w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"device /repo/pins/p", "pin /repo/pins/p", "ctl /repo/pins/p"} {
		got := within(t, "read", func() string { b, _ := io.ReadAll(readers[i]); return string(b) })
		if got != want {
			t.Errorf("descriptor %d: %q, want %q", 3+i, got, want)
		}
	}
}

func TestControlPipe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w io.Writer)
		want  uint64 // 0: errNotMounted
	}{
		{"mounted", func(w io.Writer) { _ = writeMounted(w, 0x2f) }, 0x2f},
		{"closed-unwritten", func(io.Writer) {}, 0},
		{"garbage", func(w io.Writer) { io.WriteString(w, "mount 12\n") }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			go func() { tc.write(w); w.Close() }()
			type res struct {
				n   uint64
				err error
			}
			got := within(t, "readMounted", func() res { n, err := readMounted(r); return res{n, err} })
			if tc.want != 0 && (got.err != nil || got.n != tc.want) || tc.want == 0 && !errors.Is(got.err, errNotMounted) {
				t.Errorf("readMounted = %d, %v; want %d", got.n, got.err, tc.want)
			}
		})
	}
}

// socketpair returns two connected unix stream connections.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
		t.Cleanup(func() { c.Close() })
	}
	return conns[0], conns[1]
}

// fakeService is a service whose mounts are recorded, not made; it lets
// this process's uid connect.
func fakeService(fail error) (*service, *[]Options) {
	s := newService(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.uid = uint32(os.Getuid())
	var mu sync.Mutex
	var got []Options
	s.mount = func(o Options) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, o)
		return fail
	}
	return s, &got
}

// serveOne runs s.handle on srv and returns a channel closed when it
// returns.
func serveOne(s *service, srv *net.UnixConn) chan struct{} {
	done := make(chan struct{})
	go func() { s.handle(srv); close(done) }()
	return done
}

// requestWithin is request, which must not hang.
func requestWithin(t *testing.T, conn *net.UnixConn, o Options) (Reply, error) {
	t.Helper()
	type result struct {
		rep Reply
		err error
	}
	res := within(t, "request", func() result { r, e := request(conn, o); return result{r, e} })
	return res.rep, res.err
}

func waitDone(t *testing.T, done chan struct{}) {
	t.Helper()
	within(t, "handle", func() bool { <-done; return true })
}

func TestServiceRequest(t *testing.T) {
	req := Options{
		Repo: "/srv/repo", Commit: strings.Repeat("0a", 32), Rev: "img:latest", Mountpoint: "/mnt/x",
		CacheSize: 64 << 20, LogFile: "/var/log/x.log",
		FS:         fs.Options{AllowOther: true, Verify: true, Passthrough: true, Debug: true, MaxInodes: 7},
		Foreground: true, Socket: "/s", Log: os.Stderr, // the caller's: not sent
	}
	want := req
	want.Foreground, want.Socket, want.Log = false, "", nil

	t.Run("good", func(t *testing.T) {
		s, got := fakeService(nil)
		cli, srv := socketpair(t)
		done := serveOne(s, srv)
		rep, err := requestWithin(t, cli, req)
		waitDone(t, done)
		if err != nil || rep.Error != "" {
			t.Fatalf("request: %+v, %v", rep, err)
		}
		if len(*got) != 1 || !reflect.DeepEqual((*got)[0], want) {
			t.Errorf("the service was asked for %+v, want %+v", *got, want)
		}
	})
	t.Run("mount-fails", func(t *testing.T) {
		s, _ := fakeService(errors.New("mount: /mnt/x is already a mountpoint"))
		cli, srv := socketpair(t)
		done := serveOne(s, srv)
		rep, err := requestWithin(t, cli, req)
		waitDone(t, done)
		if err != nil || rep.Error != "mount: /mnt/x is already a mountpoint" {
			t.Errorf("request: %+v, %v", rep, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		s, got := fakeService(nil)
		cli, srv := socketpair(t)
		done := serveOne(s, srv)
		if _, err := io.WriteString(cli, `{"repo": 12}`+"\n"); err != nil {
			t.Fatal(err)
		}
		var rep Reply
		if err := json.NewDecoder(cli).Decode(&rep); err != nil || !strings.Contains(rep.Error, "serve: bad request") {
			t.Errorf("reply %+v, %v; want a bad request", rep, err)
		}
		waitDone(t, done)
		if len(*got) != 0 {
			t.Errorf("a malformed request mounted %+v", *got)
		}
	})
	t.Run("client-disconnects", func(t *testing.T) {
		s, got := fakeService(nil)
		cli, srv := socketpair(t)
		done := serveOne(s, srv)
		if _, err := io.WriteString(cli, `{"repo": "/srv/repo", "commit": `); err != nil {
			t.Fatal(err)
		}
		cli.Close()
		waitDone(t, done)
		if len(*got) != 0 {
			t.Errorf("half a request mounted %+v", *got)
		}
	})
	t.Run("wrong-uid", func(t *testing.T) {
		s, got := fakeService(nil)
		s.uid = uint32(os.Getuid()) + 1
		cli, srv := socketpair(t)
		done := serveOne(s, srv)
		rep, err := requestWithin(t, cli, req)
		waitDone(t, done)
		if err != nil || !strings.Contains(rep.Error, fmt.Sprintf("uid %d may not mount through the service", os.Getuid())) {
			t.Errorf("request from uid %d to a service for uid %d: %+v, %v", os.Getuid(), s.uid, rep, err)
		}
		if len(*got) != 0 {
			t.Errorf("a refused client mounted %+v", *got)
		}
	})
}

// TestRequestSocket: Request over a real socket; a missing or stale
// socket means no service (not handled), and a relative log file is made
// absolute for the service.
func TestRequestSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mount.sock")
	o := Options{Repo: "/r", Commit: strings.Repeat("0a", 32), Rev: "x", Mountpoint: "/m", CacheSize: 1, LogFile: "x.log"}
	if handled, err := Request(path, o); handled || err != nil {
		t.Errorf("no socket: handled %v, %v", handled, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if handled, err := Request(path, o); handled || err != nil {
		t.Errorf("stale socket: handled %v, %v", handled, err)
	}
	ln, err := listenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, got := fakeService(errors.New("no room"))
	go func() {
		if c, err := ln.AcceptUnix(); err == nil {
			s.handle(c)
		}
	}()
	type result struct {
		handled bool
		err     error
	}
	res := within(t, "Request", func() result { h, e := Request(path, o); return result{h, e} })
	if !res.handled || res.err == nil || res.err.Error() != "no room" {
		t.Errorf("Request: %+v, want handled and the service's error", res)
	}
	wd, _ := os.Getwd()
	if len(*got) != 1 || (*got)[0].LogFile != filepath.Join(wd, "x.log") {
		t.Errorf("the service got %+v, want the log file absolute", *got)
	}
}

// TestServiceValidates: the service refuses a request it cannot trust
// before it opens anything.
func TestServiceValidates(t *testing.T) {
	s := newService(slog.New(slog.NewTextHandler(io.Discard, nil)))
	good := Options{Repo: "/r", Commit: strings.Repeat("0a", 32), Mountpoint: "/m", CacheSize: 1}
	for want, o := range map[string]Options{
		"serve: commit":                  {Repo: "/r", Commit: "zz", Mountpoint: "/m", CacheSize: 1},
		"must be absolute paths":         {Repo: "r", Commit: good.Commit, Mountpoint: "/m", CacheSize: 1},
		"must be absolute paths ":        {Repo: "/r", Commit: good.Commit, Mountpoint: "m", CacheSize: 1},
		"cache size 0: must be positive": {Repo: "/r", Commit: good.Commit, Mountpoint: "/m"},
	} {
		if err := s.mountOne(o); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("mountOne(%+v): %v, want %q", o, err, want)
		}
	}
}

// TestFSOptionsOwned: what a request says of the descriptor to serve,
// the logger or the process's Ps is not taken.
func TestFSOptionsOwned(t *testing.T) {
	o := Options{Rev: "img", FS: fs.Options{Device: 3, DeviceNumber: 9, SpareP: true, Logger: slog.Default(), Suid: true, State: "/etc", Resume: true}}
	f := o.fsOptions()
	if f.Device != 0 || f.DeviceNumber != 0 || f.SpareP || f.Logger != nil || !f.Suid || f.Name != "ostree-mount:img" || f.State != "" || f.Resume {
		t.Errorf("fsOptions() = %+v", f)
	}
}
