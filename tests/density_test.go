package tests

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// lockedBuffer is a bytes.Buffer that a process writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// composedRe matches the count of directories composed that the service
// logs with each mount and unmount.
var composedRe = regexp.MustCompile(`msg=(mounted|unmounted) mountpoint=(\S+) .*composed=(\d+)`)

// serviceComposed returns the count the service last logged for mnt.
func serviceComposed(t *testing.T, log, what, mnt string) (uint64, bool) {
	t.Helper()
	var n uint64
	found := false
	for _, m := range composedRe.FindAllStringSubmatch(log, -1) {
		if m[1] == what && m[2] == mnt {
			v, err := strconv.ParseUint(m[3], 10, 64)
			check(t, err)
			n, found = v, true
		}
	}
	return n, found
}

// service is an `ostree-mount serve` the test started; it is killed at
// the test's end.
type service struct {
	cmd    *exec.Cmd
	log    *lockedBuffer // its stderr
	exited chan error    // its exit, once (put it back after reading)
}

// startService starts `ostree-mount serve` on sock and waits for its
// socket.
func startService(t *testing.T, sock string) *service {
	t.Helper()
	return startServiceExe(t, binary, sock)
}

// startServiceExe starts `EXE serve` on sock (EXE a copy of the binary)
// and waits for its socket.
func startServiceExe(t *testing.T, exe, sock string) *service {
	t.Helper()
	s := &service{cmd: exec.Command(exe, "serve", "--socket", sock), log: &lockedBuffer{}, exited: make(chan error, 1)}
	s.cmd.Stderr = s.log
	// The worker, the supervisor's child, writes to the same pipe: a
	// worker outliving a killed supervisor must not hold up the cleanup.
	s.cmd.WaitDelay = 10 * time.Second
	check(t, s.cmd.Start())
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	waitFor(t, 10*time.Second, "the service's socket", func() bool {
		fi, err := os.Stat(sock)
		return err == nil && fi.Mode()&os.ModeSocket != 0
	})
	return s
}

// TestServiceSharesCaches mounts one image ten times through the mount
// service and walks every mount: the service composes the image's
// directories for the first walk only, since its mounts share one set of
// content-keyed metadata caches. With a cache per mount, each walk
// composes them all again.
func TestServiceSharesCaches(t *testing.T) {
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	om(t, "commit", "--repo", rp, "-b", "go", filepath.Join(goTree(t), "src"))

	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startService(t, sock)
	svcLog := svc.log

	walk := func(mnt string) int {
		r := run("find", mnt, "-printf", "%p %s %m\n")
		if r.Code != 0 {
			t.Fatalf("find %s:\n%s", mnt, r)
		}
		return bytes.Count([]byte(r.Stdout), []byte("\n"))
	}
	const n = 10
	mnts := make([]string, n)
	for i := range mnts {
		mnts[i] = newMountpoint(t)
		cleanupMount(t, mnts[i], "")
		om(t, "--repo", rp, "mount", "--socket", sock, "go", mnts[i])
	}
	entries := walk(mnts[0])
	// The first walk's count: what the service logs when it unmounts
	// the first mount (the other mounts keep the caches in use).
	unmount(t, mnts[0])
	var first uint64
	waitFor(t, 10*time.Second, "the service to log the first unmount", func() bool {
		var ok bool
		first, ok = serviceComposed(t, svcLog.String(), "unmounted", mnts[0])
		return ok
	})
	if first < 100 {
		t.Fatalf("the first walk of %d entries composed %d directories, want hundreds\n%s", entries, first, svcLog.String())
	}
	for _, m := range mnts[1:] {
		if got := walk(m); got != entries {
			t.Errorf("find %s: %d entries, the first mount had %d", m, got, entries)
		}
	}
	last := mnts[n-1]
	unmount(t, last)
	var total uint64
	waitFor(t, 10*time.Second, "the service to log the last unmount", func() bool {
		var ok bool
		total, ok = serviceComposed(t, svcLog.String(), "unmounted", last)
		return ok
	})
	// The same content again: nothing, or next to nothing should a
	// cache have turned an entry away, is composed again.
	if total > first+first/10 {
		t.Errorf("walking %d more mounts of the image composed %d more directories (the first walk composed %d): the mounts do not share their caches\n%s",
			n-1, total-first, first, svcLog.String())
	}
	t.Logf("%d entries; the first walk composed %d directories, %d more walks composed %d", entries, first, n-1, total-first)
}

// inodesRe matches the inode counts the service logs when it unmounts.
var inodesRe = regexp.MustCompile(`msg=unmounted mountpoint=(\S+) .*inodes_peak=(\d+) inodes_bound=(\d+)`)

// TestServiceInodeBound walks, twice, a mount through the service of an
// image of many times more entries than a mount's inode bound (the
// service's default), reading every file: both walks equal the source
// tree, metadata and content, although the kernel is made to forget most
// entries as the walk goes and looks them up again on the second. The
// inodes the mount held at once, which are most of its memory, stay
// within three times the bound (a twelfth of the entries): the daemon
// drops what the kernel forgets.
func TestServiceInodeBound(t *testing.T) {
	src := filepath.Join(goTree(t), "src")
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	om(t, "commit", "--repo", rp, "-b", "go", src)

	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startService(t, sock)
	svcLog := svc.log

	mnt := newMountpoint(t)
	cleanupMount(t, mnt, "")
	om(t, "--repo", rp, "mount", "--socket", sock, "go", mnt)
	opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
	want := dumpTree(t, src, opts)
	for _, walk := range []string{"first", "second"} {
		checkTreesEqual(t, walk+" walk of the mount vs the source tree", want, dumpTree(t, mnt, opts))
	}
	unmount(t, mnt)
	var peak, bound int
	waitFor(t, 10*time.Second, "the service to log the unmount", func() bool {
		for _, m := range inodesRe.FindAllStringSubmatch(svcLog.String(), -1) {
			if m[1] == mnt {
				peak, _ = strconv.Atoi(m[2])
				bound, _ = strconv.Atoi(m[3])
				return true
			}
		}
		return false
	})
	t.Logf("%d entries; the mount held at most %d inodes, bound %d", len(want), peak, bound)
	if bound <= 0 || len(want) < 8*bound {
		t.Fatalf("the service's inode bound is %d for %d entries: the walk does not go past it\n%s", bound, len(want), svcLog.String())
	}
	if peak < bound/2 {
		t.Errorf("the mount held at most %d inodes in a walk of %d entries: the counts do not count", peak, len(want))
	}
	// The kernel forgets what it is asked to as its FORGETs come, while
	// the walk goes on: 1.7 times the bound measured on an idle machine.
	if peak > 3*bound {
		t.Errorf("the mount held up to %d inodes, its bound is %d: pruning does not keep up, or forgotten nodes are kept", peak, bound)
	}
}

// TestServiceRemountAtOnce unmounts a service's mount with umount(8) and
// mounts again at the same path at once, as scripts do: the service
// learns of an unmount only when the kernel ends the mount's connection,
// and must not take the path for still mounted until then. Then the same
// after `umount -l` with a file of the old mount still open: the old mount
// lives on, detached, until that file closes, and the path is free.
func TestServiceRemountAtOnce(t *testing.T) {
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	src := t.TempDir()
	check(t, os.WriteFile(filepath.Join(src, "f"), []byte("content\n"), 0o644))
	check(t, os.WriteFile(filepath.Join(src, "g"), []byte("never read before the service stops\n"), 0o644))
	om(t, "commit", "--repo", rp, "-b", "t", src)
	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startService(t, sock)
	mnt := newMountpoint(t)
	cleanupMount(t, mnt, "")
	readF := func() {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(mnt, "f"))
		if err != nil || string(b) != "content\n" {
			t.Fatalf("read %s/f: %q, %v\n%s", mnt, b, err, svc.log.String())
		}
	}
	for i := 0; i < 10; i++ {
		om(t, "--repo", rp, "mount", "--socket", sock, "t", mnt)
		readF()
		if r := run("umount", mnt); r.Code != 0 {
			t.Fatalf("umount %s:\n%s", mnt, r)
		}
	}
	// detached mounts rev at mnt, opens name in it and unmounts it with
	// umount -l: the mount lives on, detached, while the file is open.
	detached := func(name string) *os.File {
		t.Helper()
		om(t, "--repo", rp, "mount", "--socket", sock, "t", mnt)
		f, err := os.Open(filepath.Join(mnt, name))
		check(t, err)
		// Closed on failure too: the detached mount ends with its last file.
		t.Cleanup(func() { f.Close() })
		if r := run("umount", "-l", mnt); r.Code != 0 {
			t.Fatalf("umount -l %s:\n%s", mnt, r)
		}
		return f
	}
	old := detached("f")
	om(t, "--repo", rp, "mount", "--socket", sock, "t", mnt)
	readF()
	b, err := io.ReadAll(old)
	if err != nil || string(b) != "content\n" {
		t.Fatalf("read of the detached mount's open file: %q, %v", b, err)
	}
	check(t, old.Close())
	unmount(t, mnt)
	// 12 mounts, each logged once as unmounted: the detached one too,
	// once its last file closed.
	waitFor(t, 10*time.Second, "the service to log 12 unmounts", func() bool {
		return strings.Count(svc.log.String(), "msg=unmounted mountpoint="+mnt+" ") == 12
	})

	// A detached mount with a file open when the service stops: the
	// service does not wait for it for ever, and the file's reads then
	// fail rather than hang.
	g := detached("g")
	check(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-svc.exited:
		svc.exited <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("the service did not stop within 30s with a detached mount open\n%s", svc.log.String())
	}
	read := make(chan error, 1)
	go func() { _, err := io.ReadAll(g); read <- err }()
	select {
	case err := <-read:
		if !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
			t.Errorf("read of a detached mount's file after the service stopped: %v, want ENOTCONN", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a read of a detached mount's file hangs after the service stopped")
	}
}
