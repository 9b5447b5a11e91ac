package mount

import (
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
)

// ctlConns returns both ends of a control socketpair as connections.
func ctlConns(t *testing.T) (sup, worker *net.UnixConn) {
	t.Helper()
	sup, wf, err := ctlPair()
	if err != nil {
		t.Fatal(err)
	}
	worker, err = fileConn(wf)
	wf.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close(); worker.Close() })
	return sup, worker
}

// sameFile fails unless a and b are descriptors of one file.
func sameFile(t *testing.T, what string, a, b *os.File) {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a.Fd()), &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(b.Fd()), &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Dev != sb.Dev || sa.Ino != sb.Ino {
		t.Errorf("%s: received descriptor is another file", what)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCtlMessages: a message and its descriptors arrive whole and apart
// from the next, the descriptors close-on-exec and of the same files; a
// message whose descriptors do not fit is refused and leaks none; the
// other end's close reads as errEOF.
func TestCtlMessages(t *testing.T) {
	sup, worker := ctlConns(t)
	a, err := os.CreateTemp(t.TempDir(), "fuse")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.CreateTemp(t.TempDir(), "pin")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	msgs := []ctlMsg{
		{Op: "add", ID: "0123456789abcdef", Pin: "/repo/pins/x.pin"},
		{Op: "drop", ID: "0123456789abcdef"},
		{Op: "ready", Resumed: 3, Failed: 1},
	}
	if err := sendMsg(worker, msgs[0], a, b); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[1:] {
		if err := sendMsg(worker, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range msgs {
		got, files, err := recvMsg(sup)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: %+v, want %+v", i, got, want)
		}
		if i == 0 {
			if len(files) != 2 {
				t.Fatalf("add carried %d descriptors, want 2", len(files))
			}
			sameFile(t, "fuse", a, files[0])
			sameFile(t, "pin", b, files[1])
			for _, f := range files {
				flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
				if err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Errorf("received descriptor not close-on-exec (%#x, %v)", flags, err)
				}
			}
		} else if len(files) != 0 {
			t.Errorf("message %d carried %d descriptors, want none", i, len(files))
		}
		closeFiles(files)
	}

	// More descriptors than a message may carry: refused by sendMsg,
	// and, sent raw, cut by the kernel and refused by recvMsg, which
	// closes those that came.
	many := []*os.File{a, a, a, a, a}
	if err := sendMsg(worker, ctlMsg{Op: "add"}, many...); err == nil {
		t.Error("sendMsg of five descriptors: want an error")
	}
	before := openFDs(t)
	fds := []int{int(a.Fd()), int(a.Fd()), int(a.Fd()), int(a.Fd()), int(a.Fd()), int(a.Fd()), int(a.Fd()), int(a.Fd())}
	if err := unix.Sendmsg(int(fdOf(t, worker)), []byte(`{"op":"add"}`), unix.UnixRights(fds...), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, files, err := recvMsg(sup); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("a message of eight descriptors: %v (%d files), want truncated", err, len(files))
	}
	if n := openFDs(t); n != before {
		t.Errorf("%d descriptors open after a refused message, %d before", n, before)
	}

	worker.Close()
	if _, _, err := recvMsg(sup); !errors.Is(err, errEOF) && !errors.Is(err, io.EOF) {
		t.Errorf("after the worker's end closed: %v, want errEOF", err)
	}
}

// fdOf is the descriptor of c (for a raw sendmsg).
func fdOf(t *testing.T, c *net.UnixConn) uintptr {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := raw.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := manifest{Socket: "/run/x.sock", RunDir: dir, Listener: 3, Control: 4, Generation: 7, Mounts: []manifestMount{
		{ID: "0123456789abcdef", FUSE: 5, Pin: 6, PinPath: "/r/pins/a.pin"},
		{ID: "fedcba9876543210", FUSE: 7, Pin: 8, PinPath: "/r/pins/b.pin"},
	}}
	p, err := writeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest %s: %v, %v; want mode 0600", p, fi, err)
	}
	got, err := readManifest(p)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("readManifest: %+v, %v; want %+v", got, err, m)
	}
	for name, bad := range map[string]manifest{
		"no-listener": {Socket: "/s", RunDir: dir},
		"stdin-fuse":  {Socket: "/s", RunDir: dir, Listener: 3, Mounts: []manifestMount{{ID: "0123456789abcdef", FUSE: 0, Pin: 6, PinPath: "/p"}}},
		"path-id":     {Socket: "/s", RunDir: dir, Listener: 3, Mounts: []manifestMount{{ID: "../../etc/passwd", FUSE: 5, Pin: 6, PinPath: "/p"}}},
		"no-pin-path": {Socket: "/s", RunDir: dir, Listener: 3, Mounts: []manifestMount{{ID: "0123456789abcdef", FUSE: 5, Pin: 6}}},
	} {
		p, err := writeManifest(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readManifest(p); err == nil {
			t.Errorf("%s: readManifest accepted %+v", name, bad)
		}
	}
	if _, err := readManifest(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing manifest: %v, want ErrNotExist", err)
	}
}

func TestMountRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id := newID()
	if !validID(id) {
		t.Fatalf("newID() = %q, not a valid id", id)
	}
	rec := mountRecord{Options: Options{Repo: "/repo", Commit: strings.Repeat("ab", 32), Rev: "origin:main",
		Mountpoint: "/mnt/x", CacheSize: 1 << 20}, Devnum: 123, Pin: "/repo/pins/x.pin"}
	rec.Options.FS.MaxInodes = 77
	if err := writeRecord(dir, id, rec); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{mountDir(dir, id), filepath.Join(mountDir(dir, id), fsStateDir)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory of mode 0700", d, fi, err)
		}
	}
	got, err := readRecord(dir, id)
	if err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("readRecord: %+v, %v; want %+v", got, err, rec)
	}
	if _, err := readRecord(dir, newID()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no record: %v, want ErrNotExist", err)
	}
}

func TestRestartPolicy(t *testing.T) {
	p := restartPolicy{minUptime: time.Second, freeRestarts: 3, firstDelay: 100 * time.Millisecond, maxDelay: time.Second}
	quick := 10 * time.Millisecond
	var got []time.Duration
	for range 8 {
		got = append(got, p.next(quick))
	}
	want := []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delays after quick deaths: %v, want %v", got, want)
	}
	// A worker that lived long enough resets the count.
	if d := p.next(2 * time.Second); d != 0 {
		t.Errorf("after a worker that lived 2s: %v, want 0", d)
	}
	if d := p.next(quick); d != 0 {
		t.Errorf("the second quick death after a reset: %v, want 0", d)
	}
	// Workers that live a second each are never held back.
	p = defaultRestartPolicy()
	for i := range 100 {
		if d := p.next(time.Second); d != 0 {
			t.Fatalf("death %d after 1s of uptime: delay %v, want none", i, d)
		}
	}
}

// pinLike makes a file named as a pin of the given commit, locked as
// repo.Pin locks it.
func pinLike(t *testing.T, dir string) (*os.File, string) {
	t.Helper()
	p := filepath.Join(dir, strings.Repeat("cd", 32)+".0123.pin")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s\n%d\n", strings.Repeat("cd", 32), 1)
	return f, p
}

// TestSupervisorHoldsDescriptors: the supervisor's side of the control
// socketpair, against a worker played here by several goroutines at
// once through fdStore: each add is held (the pin file then names the
// supervisor), a duplicate id is refused, each drop closes what was
// held, and "ready" is told.
func TestSupervisorHoldsDescriptors(t *testing.T) {
	sup, worker := ctlConns(t)
	s := &supervisor{mounts: map[string]*heldMount{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w := &workerProc{ctl: sup, ready: make(chan struct{}), started: time.Now()}
	served := make(chan struct{})
	go func() { s.serveWorker(w); close(served) }()
	store := &fdStore{conn: worker}

	dir := t.TempDir()
	const n = 8
	ids := make([]string, n)
	pins := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i] = newID()
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		pf, pp := pinLike(t, sub)
		pins[i] = pp
		fuse, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pf.Close()
			defer fuse.Close()
			errs <- store.call(ctlMsg{Op: "add", ID: ids[i], Pin: pp}, fuse, pf)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("add: %v", err)
		}
	}
	if got := s.status().Mounts; got != n {
		t.Fatalf("the supervisor holds %d mounts, want %d", got, n)
	}
	for _, p := range pins {
		if b, err := os.ReadFile(p); err != nil || !strings.HasSuffix(string(b), fmt.Sprintf("\n%d\n", os.Getpid())) {
			t.Errorf("pin %s says %q (%v), want the supervisor's pid", p, b, err)
		}
	}
	// The pins stay locked by the supervisor although the "worker"
	// closed its descriptors.
	for _, p := range pins {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err == nil {
			t.Errorf("pin %s is not locked while the supervisor holds it", p)
		}
		f.Close()
	}
	pf, pp := pinLike(t, t.TempDir())
	defer pf.Close()
	if err := store.call(ctlMsg{Op: "add", ID: ids[0], Pin: pp}, pf, pf); err == nil || !strings.Contains(err.Error(), "held already") {
		t.Errorf("add of a held id: %v, want a refusal", err)
	}
	if err := store.call(ctlMsg{Op: "add", ID: newID(), Pin: pp}, pf); err == nil {
		t.Error("add with one descriptor: want a refusal")
	}
	before := openFDs(t)
	for _, id := range ids {
		if err := store.call(ctlMsg{Op: "drop", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.status().Mounts; got != 0 {
		t.Errorf("%d mounts held after dropping all", got)
	}
	if got := openFDs(t); got != before-2*n {
		t.Errorf("%d descriptors open after %d drops, %d before: want %d", got, n, before, before-2*n)
	}
	if err := store.call(ctlMsg{Op: "ready", Resumed: 0}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.ready:
	default:
		t.Error("ready not told")
	}
	if err := store.call(ctlMsg{Op: "ping"}); err != nil {
		t.Errorf("ping: %v", err)
	}
	if err := store.call(ctlMsg{Op: "bogus"}); err == nil {
		t.Error("an unknown request: want an error")
	}
	sup.Close()
	if err := store.call(ctlMsg{Op: "ping"}); err == nil {
		t.Error("ping of a supervisor whose end is closed: want an error")
	}
	worker.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("serveWorker does not return when the worker's end closes")
	}
}
