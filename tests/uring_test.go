package tests

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// uringParam is the fuse module's switch for FUSE over io_uring.
const uringParam = "/sys/module/fuse/parameters/enable_uring"

// withURing sets the fuse module's enable_uring for the test and puts it
// back after. A kernel built without it (before 6.14) fails the test: the
// machine this project is developed and tested on has it.
func withURing(t *testing.T) {
	t.Helper()
	old, err := os.ReadFile(uringParam)
	if err != nil {
		t.Fatalf("this kernel has no FUSE over io_uring (%v): the tests need Linux 6.14 or later, built with CONFIG_FUSE_IO_URING", err)
	}
	check(t, os.WriteFile(uringParam, []byte("Y\n"), 0))
	t.Cleanup(func() { _ = os.WriteFile(uringParam, old, 0) })
}

// TestMountOverIOURing mounts the realistic image and a tree of large
// files, symlinks and xattrs with FUSE over io_uring (one ring per CPU,
// fs/uring.go) and with every request on /dev/fuse (--io-uring=false):
// both pass fstest.TestFS, equal the umoci unpack and the source tree in
// metadata, xattrs and content, and the daemon's log says which
// transport served, with the count of requests the rings answered.
func TestMountOverIOURing(t *testing.T) {
	withURing(t)
	img := slimImage(t)
	rp := importInto(t, t.TempDir(), "bare-user", "oci:"+img.Layout+":final", "slim", "--mode", "layered")
	src := t.TempDir()
	big := make([]byte, 5<<20+12345) // reads of 128 KiB and more leave the ring's thread
	_, _ = rand.Read(big)
	check(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))
	check(t, os.WriteFile(filepath.Join(src, "small"), []byte("small\n"), 0o600))
	check(t, os.Symlink("big", filepath.Join(src, "link")))
	check(t, os.MkdirAll(filepath.Join(src, "d/e"), 0o755))
	check(t, unix.Setxattr(filepath.Join(src, "small"), "user.k", []byte("v1"), 0))
	check(t, unix.Setxattr(filepath.Join(src, "d"), "user.dir", []byte("v2"), 0))
	om(t, "commit", "--repo", rp, "-b", "files", src)

	for _, mode := range []struct {
		name  string
		flags []string
		rings bool
	}{{"io_uring", nil, true}, {"dev-fuse", []string{"--io-uring=false"}, false}} {
		t.Run(mode.name, func(t *testing.T) {
			mnt := newMountpoint(t)
			logPath := mountAt(t, rp, "slim", mnt, mode.flags...)
			if err := fstest.TestFS(os.DirFS(mnt), "etc/passwd", "usr/share/zoneinfo/posix", "app/run.sh"); err != nil {
				t.Errorf("fstest.TestFS: %v", clip(err.Error(), 4000))
			}
			opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
			checkTreesEqual(t, "mount vs umoci unpack", dumpTree(t, img.Ref, opts), dumpTree(t, mnt, opts))

			fm := newMountpoint(t)
			flog := mountAt(t, rp, "files", fm, mode.flags...)
			checkTreesEqual(t, "mount vs source", dumpTree(t, src, opts), dumpTree(t, fm, opts))
			for _, p := range []string{"big", "link"} {
				got, err := os.ReadFile(filepath.Join(fm, p))
				if err != nil || !bytes.Equal(got, big) {
					t.Errorf("read %s: %d bytes, %v; want the %d bytes written", p, len(got), err, len(big))
				}
			}
			// A read at an offset, not from the start.
			f, err := os.Open(filepath.Join(fm, "big"))
			check(t, err)
			buf := make([]byte, 300<<10)
			n, err := f.ReadAt(buf, 1<<20+7)
			f.Close()
			if err != nil || !bytes.Equal(buf[:n], big[1<<20+7:1<<20+7+n]) {
				t.Errorf("pread of big at 1 MiB + 7: %d bytes, %v, or wrong bytes", n, err)
			}
			v := make([]byte, 16)
			if n, err := unix.Getxattr(filepath.Join(fm, "small"), "user.k", v); err != nil || string(v[:n]) != "v1" {
				t.Errorf("getxattr small user.k: %q, %v", v[:max(n, 0)], err)
			}
			if _, err := os.Stat(filepath.Join(fm, "nonexistent")); !os.IsNotExist(err) {
				t.Errorf("stat of a name the tree lacks: %v, want ENOENT", err)
			}
			unmount(t, mnt) // waits for the daemon to exit: its log is whole
			unmount(t, fm)
			for _, lp := range []string{logPath, flog} {
				log := readLog(lp)
				if got := strings.Contains(log, "serving over io_uring"); got != mode.rings {
					t.Errorf("the log says serving over io_uring: %v, want %v\n%s", got, mode.rings, log)
				}
				if mode.rings && (!strings.Contains(log, "io_uring rings stopped") || strings.Contains(log, "requests=0")) {
					t.Errorf("the rings answered no requests, or did not stop:\n%s", log)
				}
			}
		})
	}
}
