package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
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
