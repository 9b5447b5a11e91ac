package tests

// End-to-end tests of the FUSE mount (ostree-mount mount/umount): every
// test mounts through the real binary under its t.TempDir() and unmounts
// in t.Cleanup (mount_fixtures_test.go), and waits by polling with a
// deadline, never by sleeping.
//
// TestMountConcurrentReaders is also meant to pass under the race
// detector, though make e2e runs this package without it:
//
//	go test -race -count=1 -run Concurrent ./tests/

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// privateXattrs are the repository's own xattrs, which a mount must never
// show.
var privateXattrs = []string{"user.ostreemeta", "user.ostree-mount."}

// checkNoPrivateXattrs fails the test if any path of a dump carries one
// of privateXattrs.
func checkNoPrivateXattrs(t testing.TB, what string, lines []string) {
	t.Helper()
	n := 0
	for _, l := range lines {
		for _, x := range privateXattrs {
			if strings.Contains(l, " xattr:"+treecmp.Escape(x)) {
				if n++; n <= 10 {
					t.Errorf("%s shows a repository-private xattr %s: %s", what, x, l)
				}
			}
		}
	}
}

// checkPrivateGetxattr fails the test unless getxattr of the repository's
// private xattrs gives ENODATA on the given paths of a mount (they might
// be answered though listxattr hides them).
func checkPrivateGetxattr(t testing.TB, mnt string, paths ...string) {
	t.Helper()
	names := []string{"user.ostreemeta", "user.ostree-mount.special", "user.ostree-mount.implicit"}
	for _, p := range paths {
		for _, name := range names {
			buf := make([]byte, 4096)
			n, err := unix.Lgetxattr(filepath.Join(mnt, p), name, buf)
			if !errors.Is(err, unix.ENODATA) {
				t.Errorf("getxattr(%s, %s) on the mount: %q, %v; want ENODATA", p, name, buf[:max(n, 0)], err)
			}
		}
	}
}

// hardlinkGroups returns the groups of non-directory paths under root
// that share an inode, each sorted, keyed by its first path.
func hardlinkGroups(t testing.TB, root string) map[string][]string {
	t.Helper()
	byIno := map[uint64][]string{}
	for p, st := range walkPaths(t, root) {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			byIno[st.Ino] = append(byIno[st.Ino], p)
		}
	}
	out := map[string][]string{}
	for _, g := range byIno {
		if len(g) > 1 {
			slices.Sort(g)
			out[g[0]] = g
		}
	}
	return out
}

// checkFileNlinks fails the test for every non-directory whose link count
// on the mount differs from the reference's: cp -a and rsync -H only look
// for hardlinks among files with st_nlink > 1, so a copy of the mount
// would lose them.
func checkFileNlinks(t testing.TB, ref, mnt string) {
	t.Helper()
	want, got := walkPaths(t, ref), walkPaths(t, mnt)
	n := 0
	for _, p := range sortedKeys(want) {
		w, g := want[p], got[p]
		if g == nil || w.Mode&unix.S_IFMT == unix.S_IFDIR {
			continue
		}
		if w.Nlink != g.Nlink {
			if n++; n <= 10 {
				t.Errorf("%s: st_nlink is %d on the mount, %d in the reference rootfs", p, g.Nlink, w.Nlink)
			}
		}
	}
}

// syntheticSource returns the synthetic hardlink image's reference rootfs
// and its import source.
func syntheticSource(t testing.TB) (ref, src string) {
	t.Helper()
	img := syntheticHLImage(t)
	return filepath.Join(img, "ref", "rootfs"), "oci:" + filepath.Join(img, "img") + ":layer4"
}

// 1. The mount of an image, in every import mode and in bare, bare-user
// and archive repositories, is umoci's reference rootfs: types, modes,
// owners, sizes, contents, symlink targets, xattrs, devices, fifos, and
// hardlink groups (exactly the paths umoci made hardlinks share an
// inode, and their st_nlink is the group's size). No repository-private
// xattr shows, through listxattr or getxattr.
func TestMountSameTreeAsReference(t *testing.T) {
	ref, src := syntheticSource(t)
	opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
	want := dumpTree(t, ref, opts)
	// The reference must hold the hardlink group, or the comparison
	// proves nothing about hardlinks.
	groups := hardlinkGroups(t, ref)
	wantGroup := []string{"bin/tool2", "bin/tool2-hl", "usr/lib/tool2-link"}
	if !slices.Equal(groups["bin/tool2"], wantGroup) || len(groups) != 1 {
		t.Fatalf("reference rootfs: hardlink groups %q, want exactly %q", groups, wantGroup)
	}
	cases := []struct{ repoMode, importMode string }{
		{"bare-user", "layered"},
		{"bare-user", "precomposed"},
		{"bare-user", "squashed"},
		{"bare", "layered"},
		{"archive", "layered"},
	}
	for _, c := range cases {
		t.Run(c.repoMode+"/"+c.importMode, func(t *testing.T) {
			rp := importInto(t, t.TempDir(), c.repoMode, src, "img", "--mode", c.importMode)
			mnt := mountRev(t, rp, "img")
			got := dumpTree(t, mnt, opts)
			checkTreesEqual(t, "mount vs umoci unpack", want, got)
			checkNoPrivateXattrs(t, "the mount", got)
			// Without the ignore list too: nothing private at all.
			checkNoPrivateXattrs(t, "the mount", dumpTree(t, mnt, treecmp.Options{}))
			checkPrivateGetxattr(t, mnt, ".", "etc", "etc/hostname", "bin/tool", "dev/null", "dev/loop0", "run/fifo", "var/log/only", "usr/lib")
			if g := hardlinkGroups(t, mnt); !slices.Equal(g["bin/tool2"], wantGroup) || len(g) != 1 {
				t.Errorf("hardlink groups on the mount: %q, want exactly %q", g, wantGroup)
			}
			checkFileNlinks(t, ref, mnt)
		})
	}
}

// 1b. A plain commit made by ostree (not an image) mounts as ostree
// checks it out (compared without hardlink groups).
func TestMountPlainCommit(t *testing.T) {
	src := richTree(t, t.TempDir())
	for _, mode := range []string{"bare", "bare-user"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			rp := filepath.Join(dir, "repo")
			ostreeCmd(t, "init", "--repo="+rp, "--mode="+mode)
			ostreeCmd(t, "commit", "--repo="+rp, "-b", "plain", ts, "--tree=dir="+src)
			co := filepath.Join(dir, "co")
			ostreeCmd(t, "checkout", "--repo="+rp, "plain", co)
			mnt := mountRev(t, rp, "plain")
			opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
			got := dumpTree(t, mnt, opts)
			checkTreesEqual(t, "mount vs ostree checkout", dumpTree(t, co, opts), got)
			checkNoPrivateXattrs(t, "the mount", dumpTree(t, mnt, treecmp.Options{}))
		})
	}
}

// checkDirNlinks fails the test for every directory under root whose
// st_nlink is not 2 plus its number of subdirectories.
func checkDirNlinks(t testing.TB, root string) int {
	t.Helper()
	paths := walkPaths(t, root)
	subdirs := map[string]uint64{}
	for p, st := range paths {
		if p != "." && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			subdirs[filepath.Dir(p)]++
		}
	}
	n, dirs := 0, 0
	for _, p := range sortedKeys(paths) {
		st := paths[p]
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		dirs++
		if want := 2 + subdirs[p]; uint64(st.Nlink) != want {
			if n++; n <= 10 {
				t.Errorf("directory %s: st_nlink %d, want 2 + %d subdirectories = %d", p, st.Nlink, subdirs[p], want)
			}
		}
	}
	if dirs < 2 {
		t.Fatalf("only %d directories under %s", dirs, root)
	}
	return dirs
}

// 2. Every directory's link count is 2 plus its subdirectories; statfs
// reports non-zero blocks and files.
func TestMountDirNlinkAndStatfs(t *testing.T) {
	_, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	deb := debImage(t)
	for name, mnt := range map[string]string{
		"synthetic":   mountRev(t, rp, "img"),
		"debootstrap": mountRev(t, deb.Repo, deb.Rev),
	} {
		dirs := checkDirNlinks(t, mnt)
		t.Logf("%s: %d directories checked", name, dirs)
		var st unix.Statfs_t
		check(t, unix.Statfs(mnt, &st))
		if st.Blocks == 0 || st.Files == 0 || st.Bsize == 0 {
			t.Errorf("%s: statfs of the mount: blocks=%d files=%d bsize=%d, want non-zero", name, st.Blocks, st.Files, st.Bsize)
		}
		r := mustRunWithin(t, time.Minute, "stat", "-f", "-c", "%b %c", mnt)
		if f := strings.Fields(r.Stdout); len(f) != 2 || f[0] == "0" || f[1] == "0" {
			t.Errorf("%s: stat -f %s: %q, want non-zero blocks and files", name, mnt, r.Stdout)
		}
	}
}

// 3. testing/fstest accepts the mount of the realistic image. TestFS
// reads every file many times over, which is quadratic in file size and
// would take gigabytes on usr/lib, and it would open the device nodes of
// /dev (EACCES on a nodev mount); it runs on subtrees that hold
// absolute, relative and dangling symlinks, nested directories and files
// of every size, after passing on the same subtree of the reference
// rootfs.
func TestMountFSTest(t *testing.T) {
	deb := debImage(t)
	mnt := mountRev(t, deb.Repo, deb.Rev)
	subtrees := []struct {
		dir   string
		files []string
	}{
		{"etc", []string{"passwd", "group", "debian_version", "apt/apt.conf.d/01autoremove", "localtime"}},
		{"usr/lib/dpkg", []string{"methods/apt/desc.apt"}},
		{"usr/share/dpkg", []string{"cputable", "ostable"}},
		{"usr/lib/terminfo", []string{"a/ansi", "l/linux"}},
		{"usr/share/debconf", []string{"confmodule"}},
		{"usr/lib/systemd", []string{"system/apt-daily.timer"}},
	}
	for _, s := range subtrees {
		t.Run(s.dir, func(t *testing.T) {
			if err := fstest.TestFS(os.DirFS(filepath.Join(deb.Ref, s.dir)), s.files...); err != nil {
				t.Fatalf("the reference rootfs fails the test itself, fix the test: %v", clip(err.Error(), 3000))
			}
			start := time.Now()
			if err := fstest.TestFS(os.DirFS(filepath.Join(mnt, s.dir)), s.files...); err != nil {
				t.Errorf("fstest.TestFS on the mount: %v", clip(err.Error(), 6000))
			}
			t.Logf("TestFS %s: %s", s.dir, time.Since(start).Round(time.Millisecond))
		})
	}
}

// 3b. testing/fstest accepts the whole mount of a realistic image, as
// os.DirFS(mountpoint), in layered and precomposed modes: a
// distroless-style image made of real Debian files (slimImage), after
// passing on its umoci unpack.
func TestMountFSTestWholeImage(t *testing.T) {
	img := slimImage(t)
	expected := []string{"etc/passwd", "etc/os-release", "etc/localtime", "usr/share/zoneinfo/Etc/UTC",
		"usr/share/zoneinfo/posix", "usr/share/common-licenses/GPL-3", "var/lib/dpkg/status",
		"app/run.sh", "app/bin/tool-alias", "app/config/conf.d/10-log.toml", "tmp", "home/nonroot"}
	start := time.Now()
	if err := fstest.TestFS(os.DirFS(img.Ref), expected...); err != nil {
		t.Fatalf("the reference rootfs fails the test itself, fix the test: %v", clip(err.Error(), 3000))
	}
	t.Logf("TestFS on the umoci unpack: %s", time.Since(start).Round(time.Millisecond))
	src := "oci:" + img.Layout + ":final"
	for _, mode := range []string{"layered", "precomposed"} {
		t.Run(mode, func(t *testing.T) {
			rp := importInto(t, t.TempDir(), "bare-user", src, "slim", "--mode", mode)
			mnt := mountRev(t, rp, "slim")
			start := time.Now()
			if err := fstest.TestFS(os.DirFS(mnt), expected...); err != nil {
				t.Errorf("fstest.TestFS on the mount: %v", clip(err.Error(), 6000))
			}
			t.Logf("TestFS on the whole mount: %s", time.Since(start).Round(time.Millisecond))
			opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
			checkTreesEqual(t, "mount vs umoci unpack", dumpTree(t, img.Ref, opts), dumpTree(t, mnt, opts))
		})
	}
}

// optsOf returns the per-mount and super options of the mount at mnt.
func optsOf(t testing.TB, mnt string) (opts, super []string) {
	t.Helper()
	m := mountedAt(t, mnt)
	if len(m) != 1 {
		t.Fatalf("%d mounts at %s, want 1", len(m), mnt)
	}
	return m[0].Opts, m[0].SuperOpts
}

// 4. The mounted realistic image serves as a container rootfs: a bind
// mount of it works, and chroot runs a shell, id and dpkg -l (exec and
// mmap of shared libraries). It is nosuid and nodev unless --suid, a
// setuid binary keeps its bit in stat, and allow_other appears only with
// --allow-other.
func TestMountContainerRootfs(t *testing.T) {
	deb := debImage(t)
	mnt := mountRev(t, deb.Repo, deb.Rev)

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	check(t, os.Mkdir(rootfs, 0o755))
	mustRunWithin(t, time.Minute, "mount", "--bind", mnt, rootfs)
	bound := true
	t.Cleanup(func() {
		if bound {
			run("umount", "-l", rootfs)
		}
	})
	want, err := os.ReadFile(filepath.Join(deb.Ref, "etc/debian_version"))
	check(t, err)
	if got, err := os.ReadFile(filepath.Join(rootfs, "etc/debian_version")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("etc/debian_version through the bind mount: %q, %v; want %q", got, err, want)
	}
	mustRunWithin(t, time.Minute, "umount", rootfs)
	bound = false
	if len(mountedAt(t, rootfs)) != 0 {
		t.Errorf("umount %s left it mounted", rootfs)
	}

	r := mustRunWithin(t, time.Minute, "chroot", mnt, "/bin/sh", "-c", "ls / && id")
	if !strings.Contains(r.Stdout, "usr\n") || !strings.Contains(r.Stdout, "uid=0(root)") {
		t.Errorf("chroot ls / && id: unexpected output:\n%s", r.Stdout)
	}
	r = mustRunWithin(t, time.Minute, "chroot", mnt, "dpkg", "-l")
	if !regexp.MustCompile(`(?m)^ii +dpkg +`).MatchString(r.Stdout) || !regexp.MustCompile(`(?m)^ii +libc6:amd64 +`).MatchString(r.Stdout) {
		t.Errorf("chroot dpkg -l: dpkg or libc6 not listed as installed:\n%s", clip(r.Stdout, 3000))
	}

	// A setuid binary keeps its bit.
	var suid []string
	for p, st := range walkPaths(t, deb.Ref) {
		if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&unix.S_ISUID != 0 {
			suid = append(suid, p)
		}
	}
	if len(suid) == 0 {
		t.Fatal("the reference rootfs has no setuid binary")
	}
	slices.Sort(suid)
	for _, p := range suid {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, p), &st); err != nil || st.Mode&unix.S_ISUID == 0 {
			t.Errorf("%s: setuid in the reference, mode %o on the mount (%v)", p, st.Mode, err)
		}
	}

	opts, super := optsOf(t, mnt)
	if !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
		t.Errorf("default mount: options %q, want nosuid and nodev", opts)
	}
	if slices.Contains(super, "allow_other") || slices.Contains(opts, "allow_other") {
		t.Errorf("default mount: allow_other without --allow-other: %q %q", opts, super)
	}
	smnt := mountRev(t, deb.Repo, deb.Rev, "--suid")
	opts, super = optsOf(t, smnt)
	if slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
		t.Errorf("--suid: options %q, want nodev without nosuid", opts)
	}
	if slices.Contains(super, "allow_other") {
		t.Errorf("--suid: allow_other without --allow-other: %q", super)
	}
	amnt := mountRev(t, deb.Repo, deb.Rev, "--allow-other")
	opts, super = optsOf(t, amnt)
	if !slices.Contains(super, "allow_other") && !slices.Contains(opts, "allow_other") {
		t.Errorf("--allow-other: options %q / %q lack allow_other", opts, super)
	}
	if !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
		t.Errorf("--allow-other: options %q, want nosuid and nodev", opts)
	}
}

// readFullAt reads len(b) bytes at off, or up to the end of the file.
func readFullAt(f *os.File, b []byte, off int64) (int, error) {
	n, err := f.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkReadSemantics checks reads of the special-files image mounted at
// mnt against its reference rootfs ref.
func checkReadSemantics(t *testing.T, mnt, ref string) {
	rnd := rand.New(rand.NewPCG(7, 7))
	for _, rel := range []string{spRandom, spSparse, spEmpty, spSmall} {
		want, err := os.ReadFile(filepath.Join(ref, rel))
		check(t, err)
		p := filepath.Join(mnt, rel)
		f, err := os.Open(p)
		if err != nil {
			t.Errorf("open %s: %v", rel, err)
			continue
		}
		fi, err := f.Stat()
		check(t, err)
		if fi.Size() != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", rel, fi.Size(), len(want))
		}

		// pread at random offsets, at the end and past it.
		offs := []int64{0, int64(len(want)), int64(len(want)) + 4096}
		for i := 0; i < 48; i++ {
			offs = append(offs, rnd.Int64N(int64(len(want))+1))
		}
		if rel == spSparse {
			offs = append(offs, spSparseOff2-10, spSparseOff2+(100<<10)-10, 64<<10-1)
		}
		for _, off := range offs {
			buf := make([]byte, 1+rnd.IntN(256<<10))
			n, err := readFullAt(f, buf, off)
			end := min(off+int64(len(buf)), int64(len(want)))
			var exp []byte
			if off < int64(len(want)) {
				exp = want[off:end]
			}
			if err != nil || !bytes.Equal(buf[:n], exp) {
				t.Errorf("%s: pread(%d bytes at %d): %d bytes, %v; want %d bytes equal to the source (got sha256 %s, want %s)",
					rel, len(buf), off, n, err, len(exp), sha256Of(buf[:n]), sha256Of(exp))
				break
			}
		}

		// mmap.
		if len(want) > 0 {
			m, err := unix.Mmap(int(f.Fd()), 0, len(want), unix.PROT_READ, unix.MAP_SHARED)
			if err != nil {
				t.Errorf("%s: mmap: %v", rel, err)
			} else {
				if !bytes.Equal(m, want) {
					t.Errorf("%s: mmap content differs from the source (sha256 %s, want %s)", rel, sha256Of(m), sha256Of(want))
				}
				check(t, unix.Munmap(m))
			}
		}

		// Seek.
		seekRead := func(off int64, whence int, wantPos int64) {
			t.Helper()
			pos, err := f.Seek(off, whence)
			if err != nil || pos != wantPos {
				t.Errorf("%s: Seek(%d, %d) = %d, %v; want %d", rel, off, whence, pos, err, wantPos)
				return
			}
			buf := make([]byte, 5000)
			n, err := io.ReadFull(f, buf)
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				err = nil
			}
			exp := want[min(wantPos, int64(len(want))):min(wantPos+5000, int64(len(want)))]
			if err != nil || !bytes.Equal(buf[:n], exp) {
				t.Errorf("%s: read after Seek to %d: %d bytes, %v; want %d bytes of the source", rel, wantPos, n, err, len(exp))
			}
		}
		size := int64(len(want))
		seekRead(size/2, io.SeekStart, size/2)
		seekRead(-min(size, 3000), io.SeekEnd, size-min(size, 3000))
		seekRead(0, io.SeekStart, 0)
		seekRead(min(size, 100), io.SeekCurrent, min(size, 5000)+min(size, 100))
		if pos, err := f.Seek(0, io.SeekEnd); err != nil || pos != size {
			t.Errorf("%s: Seek(0, SeekEnd) = %d, %v; want %d", rel, pos, err, size)
		}
		f.Close()

		// O_DIRECT, with an aligned buffer and aligned offsets.
		checkODirect(t, p, rel, want)

		// cp --sparse=always uses SEEK_DATA and SEEK_HOLE.
		if rel != spSmall {
			out := filepath.Join(t.TempDir(), "copy")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, "cp", "--sparse=always", p, out)
			start := time.Now()
			b, err := cmd.CombinedOutput()
			timedOut := ctx.Err() != nil
			cancel()
			if timedOut {
				t.Errorf("%s: cp --sparse=always did not finish within 30s (a SEEK_DATA/SEEK_HOLE loop?)", rel)
			} else if err != nil {
				t.Errorf("%s: cp --sparse=always: %v\n%s", rel, err, b)
			} else if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: cp --sparse=always made a copy that differs from the source (%d bytes, sha256 %s; want %s), %v", rel, len(got), sha256Of(got), sha256Of(want), err)
			} else {
				t.Logf("%s: cp --sparse=always in %s", rel, time.Since(start).Round(time.Millisecond))
			}
		}
	}
	checkReadOnly(t, mnt)
}

// checkODirect reads a file with O_DIRECT at 4096-aligned offsets into an
// aligned buffer.
func checkODirect(t *testing.T, p, rel string, want []byte) {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Errorf("%s: open O_DIRECT: %v", rel, err)
		return
	}
	defer unix.Close(fd)
	const bufSize = 128 << 10
	buf, err := unix.Mmap(-1, 0, bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	check(t, err)
	defer unix.Munmap(buf)
	size := int64(len(want))
	offs := []int64{0, 4096, size &^ 4095, (size / 2) &^ 4095}
	if rel == spSparse {
		offs = append(offs, spSparseOff2&^4095, (spSparseOff2+(100<<10))&^4095)
	}
	for _, off := range offs {
		n, err := unix.Pread(fd, buf, off)
		exp := want[min(off, size):min(off+bufSize, size)]
		if err != nil || !bytes.Equal(buf[:max(n, 0)], exp) {
			t.Errorf("%s: O_DIRECT pread(%d bytes at %d) = %d, %v; want %d bytes equal to the source", rel, bufSize, off, n, err, len(exp))
		}
	}
}

// checkReadOnly checks that every kind of write fails with EROFS.
func checkReadOnly(t *testing.T, mnt string) {
	t.Helper()
	file := filepath.Join(mnt, spSmall)
	dir := filepath.Join(mnt, "data")
	openClose := func(p string, flag int) error {
		f, err := os.OpenFile(p, flag, 0o644)
		if err == nil {
			f.Close()
		}
		return err
	}
	ops := []struct {
		what string
		do   func() error
	}{
		{"open O_WRONLY", func() error { return openClose(file, os.O_WRONLY) }},
		{"open O_RDWR", func() error { return openClose(file, os.O_RDWR) }},
		{"open O_RDONLY|O_TRUNC", func() error { return openClose(file, os.O_RDONLY|os.O_TRUNC) }},
		{"open O_WRONLY|O_APPEND", func() error { return openClose(file, os.O_WRONLY|os.O_APPEND) }},
		{"creat", func() error { return openClose(filepath.Join(dir, "new"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(dir, "newdir"), 0o755) }},
		{"unlink", func() error { return os.Remove(file) }},
		{"rmdir", func() error { return unix.Rmdir(dir) }},
		{"rename", func() error { return os.Rename(file, filepath.Join(dir, "renamed")) }},
		{"link", func() error { return os.Link(file, filepath.Join(dir, "hl")) }},
		{"symlink", func() error { return os.Symlink("x", filepath.Join(dir, "sl")) }},
		{"mknod fifo", func() error { return unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644) }},
		{"chmod", func() error { return os.Chmod(file, 0o600) }},
		{"chown", func() error { return os.Chown(file, 1, 1) }},
		{"utimes", func() error { return os.Chtimes(file, time.Unix(1, 0), time.Unix(1, 0)) }},
		{"setxattr", func() error { return unix.Setxattr(file, "user.x", []byte("1"), 0) }},
		{"removexattr", func() error { return unix.Removexattr(file, "user.x") }},
		{"truncate", func() error { return os.Truncate(file, 0) }},
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || st.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("statfs of the mount: flags %#x, %v; want ST_RDONLY", st.Flags, err)
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on the mount: %v, want EROFS", op.what, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "small file\n" {
		t.Errorf("after the write attempts, %s holds %q, %v", spSmall, b, err)
	}
}

// 5. Reads of a 3 MiB random file, a 64 MiB sparse file, an empty file:
// pread at random offsets, mmap, Seek, O_DIRECT and cp --sparse=always
// give the source's bytes, and every write fails with EROFS, in bare,
// bare-user and archive repositories, with zero-message opens (the
// default) and with --passthrough.
func TestMountReadSemantics(t *testing.T) {
	img := specialImage(t)
	ref := filepath.Join(img, "ref", "rootfs")
	src := "oci:" + filepath.Join(img, "img") + ":special"
	for _, mode := range []string{"bare", "bare-user", "archive"} {
		rp := importInto(t, t.TempDir(), mode, src, "special")
		for _, flags := range [][]string{nil, {"--passthrough"}} {
			name := mode + "/zero-open"
			if len(flags) > 0 {
				name = mode + "/passthrough"
			}
			t.Run(name, func(t *testing.T) {
				mnt := mountRev(t, rp, "special", flags...)
				checkReadSemantics(t, mnt, ref)
			})
		}
	}
}

// 6. 32 goroutines read random files of the mounted realistic image for
// a bounded time, each byte compared with the reference rootfs.
func TestMountConcurrentReaders(t *testing.T) {
	deb := debImage(t)
	mnt := mountRev(t, deb.Repo, deb.Rev)
	files := regularFilesOf(t, deb.Ref)
	if len(files) < 1000 {
		t.Fatalf("only %d regular files in the reference rootfs", len(files))
	}
	const workers, perWorker = 32, 150
	deadline := time.Now().Add(5 * time.Second)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []string
		reads  atomic.Int64
		nbytes atomic.Int64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 0x6d6f756e74))
			for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
				rel := files[rnd.IntN(len(files))]
				want, err := os.ReadFile(filepath.Join(deb.Ref, rel))
				if err != nil {
					fail("reference %s: %v", rel, err)
					return
				}
				f, err := os.Open(filepath.Join(mnt, rel))
				if err != nil {
					fail("open %s on the mount: %v", rel, err)
					return
				}
				// Alternate whole reads and reads at a random offset.
				var got []byte
				off := int64(0)
				if i%2 == 1 && len(want) > 0 {
					off = rnd.Int64N(int64(len(want)))
					got = make([]byte, len(want)-int(off))
					var n int
					n, err = readFullAt(f, got, off)
					got = got[:n]
				} else {
					got, err = io.ReadAll(f)
				}
				f.Close()
				if err != nil {
					fail("read %s on the mount: %v", rel, err)
					return
				}
				if !slices.Equal(got, want[off:]) {
					fail("%s at offset %d: %d bytes read differ from the reference's %d", rel, off, len(got), len(want)-int(off))
					return
				}
				reads.Add(1)
				nbytes.Add(int64(len(got)))
			}
		}(w)
	}
	wg.Wait()
	for i, e := range errs {
		if i < 20 {
			t.Error(e)
		}
	}
	if reads.Load() < workers {
		t.Errorf("only %d files read in total", reads.Load())
	}
	t.Logf("%d files, %d bytes read by %d goroutines", reads.Load(), nbytes.Load(), workers)
}

// inodesOf maps every path under root to its inode number.
func inodesOf(t testing.TB, root string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for p, st := range walkPaths(t, root) {
		out[p] = st.Ino
	}
	return out
}

// 7. A remount gives every path the same inode number; after kill -9 of
// the daemon the mountpoint reports ENOTCONN, ostree-mount umount removes
// the dead mount, and a new mount on it works.
func TestMountRemountAndCrash(t *testing.T) {
	deb := debImage(t)
	mnt := newMountpoint(t)
	mountAt(t, deb.Repo, deb.Rev, mnt)
	first := inodesOf(t, mnt)
	unmount(t, mnt)
	mountAt(t, deb.Repo, deb.Rev, mnt)
	second := inodesOf(t, mnt)
	if len(first) < 1000 || len(first) != len(second) {
		t.Errorf("%d paths at the first mount, %d at the second", len(first), len(second))
	}
	n := 0
	for _, p := range sortedKeys(first) {
		if first[p] != second[p] {
			if n++; n <= 10 {
				t.Errorf("%s: inode %d at the first mount, %d at the second", p, first[p], second[p])
			}
		}
	}
	if n > 0 {
		t.Errorf("%d of %d paths changed inode numbers across a remount", n, len(first))
	}

	pid := daemonPid(t, mnt)
	check(t, syscall.Kill(pid, syscall.SIGKILL))
	// The connection is gone once listing the root fails with ENOTCONN.
	waitFor(t, 10*time.Second, "listing the mountpoint to fail with ENOTCONN after kill -9", func() bool {
		_, err := os.ReadDir(mnt)
		return errors.Is(err, syscall.ENOTCONN)
	})
	waitFor(t, 10*time.Second, "the killed daemon to be gone", func() bool { return len(daemonPids(mnt)) == 0 })
	if _, err := os.ReadFile(filepath.Join(mnt, "etc/passwd")); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("read of etc/passwd on the dead mount: %v, want ENOTCONN", err)
	}
	// stat(2) of the mountpoint itself must tell that the mount is dead,
	// as scripts and mountpoint(1) rely on it; the root's attributes are
	// cached for a second, so it may take that long.
	waitFor(t, 5*time.Second, "stat(2) of the dead mountpoint to report ENOTCONN", func() bool {
		_, err := os.Stat(mnt)
		return errors.Is(err, syscall.ENOTCONN)
	})
	if r := run("stat", mnt); r.Code == 0 || !strings.Contains(r.Stderr, "Transport endpoint is not connected") {
		t.Errorf("stat(1) of the dead mount: want 'Transport endpoint is not connected':\n%s", r)
	}
	om(t, "umount", mnt)
	if m := mountedAt(t, mnt); len(m) != 0 {
		t.Fatalf("ostree-mount umount of the dead mount left it in mountinfo: %s", m[0].Line)
	}
	if _, err := os.Stat(mnt); err != nil {
		t.Errorf("stat of the mountpoint after umount: %v", err)
	}
	mountAt(t, deb.Repo, deb.Rev, mnt)
	want, err := os.ReadFile(filepath.Join(deb.Ref, "etc/passwd"))
	check(t, err)
	if got, err := os.ReadFile(filepath.Join(mnt, "etc/passwd")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("etc/passwd on the new mount: %q, %v", got, err)
	}
	if inodesOf(t, mnt)["usr/bin/dpkg"] != first["usr/bin/dpkg"] {
		t.Errorf("usr/bin/dpkg has another inode number after the crash and remount")
	}
}

// 8. A mounted image survives the deletion of its ref and a prune (the
// mount pins it); once unmounted, the next prune deletes it.
func TestMountPruneWhileMounted(t *testing.T) {
	ref, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	sum := resolveRev(t, rp, "img")
	commitObj := filepath.Join(rp, "objects", objName(sum, "commit"))
	before := repoObjects(t, rp)
	mnt := mountRev(t, rp, "img")

	om(t, "refs", "--repo", rp, "--delete", "img")
	rep := runPrune(t, rp)
	if rep.Deleted != 0 || rep.WeakRefs != 0 {
		t.Errorf("prune while the image is mounted deleted %d objects and %d weak refs, want none:\n%s", rep.Deleted, rep.WeakRefs, rep.Out)
	}
	if gone := setMinus(keySet(before), keySet(repoObjects(t, rp))); len(gone) != 0 {
		t.Errorf("prune while mounted deleted %d objects: %q", len(gone), clip(strings.Join(sortedKeys(gone), " "), 2000))
	}
	opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
	checkTreesEqual(t, "mount after the prune vs umoci unpack", dumpTree(t, ref, opts), dumpTree(t, mnt, opts))

	unmount(t, mnt)
	rep = runPrune(t, rp)
	after := repoObjects(t, rp)
	if rep.Deleted == 0 || len(after) >= len(before) {
		t.Errorf("prune after the unmount: deleted %d objects, %d objects before, %d after; want the image deleted:\n%s", rep.Deleted, len(before), len(after), rep.Out)
	}
	if _, err := os.Stat(commitObj); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the image's commit object is still there after the prune: %v", err)
	}
	t.Logf("objects: %d before, %d after the last prune (%d deleted)", len(before), len(after), rep.Deleted)
}

func keySet[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// runTimeout runs a command with a timeout; Code is -1 if it was killed.
func runTimeout(timeout time.Duration, name string, args ...string) cmdResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cmdResult{Args: append([]string{name}, args...), Err: err, Dur: time.Since(start), Code: -1, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case ctx.Err() != nil:
		r.Err = fmt.Errorf("killed after %v: %w", timeout, err)
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	}
	return r
}

// mustRunWithin runs a command with a timeout (it may touch a mount that
// hangs) and fails the test unless it exits 0.
func mustRunWithin(t testing.TB, timeout time.Duration, name string, args ...string) cmdResult {
	t.Helper()
	r := runTimeout(timeout, name, args...)
	if r.Code != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
	return r
}

// checkFailed checks that a mount command failed cleanly: non-zero exit
// within its deadline, an error naming every wanted word (any case), no
// mount at mnt and no daemon left.
func checkFailed(t *testing.T, r cmdResult, mnt string, words ...string) {
	t.Helper()
	if r.Code <= 0 {
		t.Errorf("mount must fail with a non-zero exit status:\n%s", r)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(r.Stderr), strings.ToLower(w)) {
			t.Errorf("the error does not mention %q:\n%s", w, r)
		}
	}
	if m := mountedAt(t, mnt); len(m) != 0 {
		t.Errorf("a failed mount left a mount at %s: %s", mnt, m[0].Line)
	}
	if !poll(5*time.Second, func() bool { return len(daemonPids(mnt)) == 0 }) {
		t.Errorf("a failed mount left a process: pids %v", daemonPids(mnt))
	}
	t.Logf("%s", strings.TrimSpace(r.Stderr))
}

// flipByte inverts one byte of a file.
func flipByte(t testing.TB, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	check(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	check(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	check(t, err)
}

// 9. Failed mounts exit non-zero with a clear message and leave no
// mount and no process behind.
func TestMountFailures(t *testing.T) {
	_, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	mountCmd := func(repoPath, rev, mnt string, flags ...string) cmdResult {
		args := append([]string{"--repo", repoPath, "mount"}, flags...)
		return runTimeout(60*time.Second, binary, append(args, rev, mnt)...)
	}

	t.Run("missing-ref", func(t *testing.T) {
		mnt := newMountpoint(t)
		cleanupMount(t, mnt, "")
		checkFailed(t, mountCmd(rp, "no/such/ref", mnt), mnt, "no/such/ref", "not found")
	})
	t.Run("mountpoint-missing", func(t *testing.T) {
		mnt := filepath.Join(t.TempDir(), "absent")
		cleanupMount(t, mnt, "")
		checkFailed(t, mountCmd(rp, "img", mnt), mnt, mnt, "no such file or directory")
		if _, err := os.Lstat(mnt); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed mount created the mountpoint: %v", err)
		}
	})
	t.Run("mountpoint-is-file", func(t *testing.T) {
		mnt := filepath.Join(t.TempDir(), "file")
		check(t, os.WriteFile(mnt, []byte("x"), 0o644))
		cleanupMount(t, mnt, "")
		checkFailed(t, mountCmd(rp, "img", mnt), mnt, mnt, "not a directory")
	})
	t.Run("already-mounted", func(t *testing.T) {
		mnt := mountRev(t, rp, "img")
		r := mountCmd(rp, "img", mnt)
		if r.Code <= 0 || !strings.Contains(strings.ToLower(r.Stderr), "already") {
			t.Errorf("a second mount on %s: want a failure saying it is already mounted:\n%s", mnt, r)
		}
		if m := mountedAt(t, mnt); len(m) != 1 {
			t.Errorf("%d mounts at %s after the refused second mount, want 1", len(m), mnt)
		}
		if pids := daemonPids(mnt); len(pids) != 1 {
			t.Errorf("%d processes serve %s after the refused second mount, want 1", len(pids), mnt)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "etc/hostname")); err != nil || string(b) != "host2\n" {
			t.Errorf("the first mount no longer works: %q, %v", b, err)
		}
	})
	// /dev/fuse replaced by /dev/null, or absent, in a private mount
	// namespace; the check that nothing is mounted runs inside it.
	for name, setup := range map[string]string{
		"dev-fuse-is-dev-null": `mount --bind /dev/null /dev/fuse`,
		"dev-fuse-absent":      `mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3`,
	} {
		t.Run(name, func(t *testing.T) {
			mnt := newMountpoint(t)
			cleanupMount(t, mnt, "")
			script := setup + ` || exit 90
"$1" --repo "$2" mount img "$3"; rc=$?
if grep -q " $3 " /proc/self/mountinfo; then echo "LEFT A MOUNT" >&2; umount -l "$3"; exit 91; fi
exit $rc`
			r := runTimeout(60*time.Second, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", binary, rp, mnt)
			if r.Code == 90 {
				t.Fatalf("cannot set up the namespace:\n%s", r)
			}
			if r.Code == 91 {
				t.Errorf("the failed mount left a mount in its namespace:\n%s", r)
			}
			checkFailed(t, r, mnt, "/dev/fuse")
		})
	}
	t.Run("repo-locked", func(t *testing.T) {
		lrp := importInto(t, t.TempDir(), "bare-user", src, "img")
		check(t, setConfigKey(lrp, "core", "lock-timeout-secs", "1"))
		r, err := repo.Open(lrp)
		check(t, err)
		defer r.Close()
		unlock, err := r.Lock(context.Background(), repo.LockExclusive)
		check(t, err)
		defer unlock()
		mnt := newMountpoint(t)
		cleanupMount(t, mnt, "")
		res := mountCmd(lrp, "img", mnt)
		checkFailed(t, res, mnt, "lock")
		if res.Dur > 20*time.Second {
			t.Errorf("the mount took %v to give up on the lock; lock-timeout-secs=1", res.Dur)
		}
	})
	t.Run("repo-corrupt", func(t *testing.T) {
		crp := importInto(t, t.TempDir(), "bare-user", src, "img")
		sum := resolveRev(t, crp, "img")
		p := filepath.Join(crp, "objects", objName(sum, "commit"))
		fi, err := os.Stat(p)
		check(t, err)
		flipByte(t, p, fi.Size()/2)
		mnt := newMountpoint(t)
		cleanupMount(t, mnt, "")
		checkFailed(t, mountCmd(crp, "img", mnt), mnt, "checksum mismatch")
	})
}

// findObjectByContent returns the path of the bare-user file object
// holding exactly content.
func findObjectByContent(t testing.TB, repoPath string, content []byte) string {
	t.Helper()
	var found []string
	for rel := range repoObjects(t, repoPath) {
		if !strings.HasSuffix(rel, ".file") {
			continue
		}
		p := filepath.Join(repoPath, "objects", rel)
		if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(content)) {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, content) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d file objects hold the content, want 1: %q", len(found), found)
	}
	return found[0]
}

// 10. With --verify, a corrupted file object gives EIO and is logged by
// checksum while other files read fine; without it, the wrong bytes are
// served.
func TestMountVerify(t *testing.T) {
	img := specialImage(t)
	ref := filepath.Join(img, "ref", "rootfs")
	rp := importInto(t, t.TempDir(), "bare-user", "oci:"+filepath.Join(img, "img")+":special", "special")
	want, err := os.ReadFile(filepath.Join(ref, spUnique))
	check(t, err)
	obj := findObjectByContent(t, rp, want)
	rel, _ := filepath.Rel(filepath.Join(rp, "objects"), obj)
	sum := strings.TrimSuffix(strings.ReplaceAll(rel, "/", ""), ".file")
	flipByte(t, obj, 1000)
	corrupt := slices.Clone(want)
	corrupt[1000] ^= 0xff

	mnt := newMountpoint(t)
	logPath := mountAt(t, rp, "special", mnt, "--verify")
	_, err = os.ReadFile(filepath.Join(mnt, spUnique))
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("reading the corrupt file with --verify: %v, want EIO", err)
	}
	for _, rel := range []string{spRandom, spSmall, spEmpty} {
		w, err := os.ReadFile(filepath.Join(ref, rel))
		check(t, err)
		if got, err := os.ReadFile(filepath.Join(mnt, rel)); err != nil || !bytes.Equal(got, w) {
			t.Errorf("%s with --verify: %d bytes, %v; want the source's %d bytes", rel, len(got), err, len(w))
		}
	}
	// The log names the object; the daemon may write it just after
	// answering.
	if !poll(5*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte(sum))
	}) {
		t.Errorf("the log file does not name the corrupt object %s:\n%s", sum, readLog(logPath))
	}

	plain := mountRev(t, rp, "special")
	got, err := os.ReadFile(filepath.Join(plain, spUnique))
	if err != nil || !bytes.Equal(got, corrupt) {
		t.Errorf("without --verify the corrupt file must read as the object's (wrong) bytes: %d bytes, equal to the corrupt object: %v, %v", len(got), bytes.Equal(got, corrupt), err)
	}
}

// bigLayerTar writes a layer tar of dirs×subdirs×files small files
// (every 97th with an xattr) and returns the number of entries.
func bigLayerTar(t testing.TB, p string, dirs, subdirs, files int) int {
	t.Helper()
	f, err := os.Create(p)
	check(t, err)
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	n, i := 0, 0
	hdr := func(h *tar.Header) {
		h.Uid, h.Gid, h.ModTime, h.Format = 0, 0, time.Unix(1600000000, 0), tar.FormatPAX
		check(t, tw.WriteHeader(h))
		n++
	}
	for d := 0; d < dirs; d++ {
		hdr(&tar.Header{Name: fmt.Sprintf("d%03d/", d), Typeflag: tar.TypeDir, Mode: 0o755})
		for s := 0; s < subdirs; s++ {
			hdr(&tar.Header{Name: fmt.Sprintf("d%03d/s%02d/", d, s), Typeflag: tar.TypeDir, Mode: 0o755})
			for k := 0; k < files; k++ {
				body := []byte(fmt.Sprintf("file %d\n", i))
				h := &tar.Header{Name: fmt.Sprintf("d%03d/s%02d/f%03d", d, s, k), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}
				if i%97 == 0 {
					h.PAXRecords = map[string]string{"SCHILY.xattr.user.idx": strconv.Itoa(i)}
				}
				hdr(h)
				_, err := tw.Write(body)
				check(t, err)
				i++
			}
		}
	}
	check(t, tw.Close())
	check(t, bw.Flush())
	check(t, f.Close())
	return n
}

// statusKB returns a field of /proc/PID/status in kB.
func statusKB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			n, err := strconv.ParseInt(f[0], 10, 64)
			check(t, err)
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// 11. The daemon serving an image of 100k entries stays under 150 MB of
// RSS after a walk of every entry (default cache).
func TestMountMemory(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	layer := filepath.Join(dir, "layer.tar")
	const dirs, subdirs, files = 100, 10, 100
	entries := bigLayerTar(t, layer, dirs, subdirs, files)
	mustRun(t, "bash", "-e", "-c", `cd "$1" && umoci init --layout img && umoci new --image img:base0 && umoci raw add-layer --image img:base0 --tag big layer.tar`, "big", dir)
	check(t, os.Remove(layer))
	rp := importInto(t, dir, "bare-user", "oci:"+filepath.Join(dir, "img")+":big", "big")
	t.Logf("image of %d entries built and imported in %s", entries, time.Since(start).Round(time.Millisecond))

	mnt := mountRev(t, rp, "big")
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "find", mnt, "-printf", "%s %m\n")
	var lines countingWriter
	cmd.Stdout = &lines
	out, err := cmd.StderrPipe()
	check(t, err)
	check(t, cmd.Start())
	errOut, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("find: %v\n%s", err, errOut)
	}
	if want := int64(entries + 1); lines.n != want {
		t.Errorf("find listed %d entries, want %d", lines.n, want)
	}
	nx := 0
	for i := 0; i < dirs*subdirs*files; i += 97 {
		p := filepath.Join(mnt, fmt.Sprintf("d%03d/s%02d/f%03d", i/(subdirs*files), i/files%subdirs, i%files))
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(p, "user.idx", buf)
		if err != nil || string(buf[:n]) != strconv.Itoa(i) {
			t.Fatalf("%s: user.idx = %q, %v; want %d", p, buf[:max(n, 0)], err, i)
		}
		if _, err := unix.Llistxattr(p, buf); err != nil {
			t.Fatalf("%s: listxattr: %v", p, err)
		}
		nx++
	}
	pid := daemonPid(t, mnt)
	rss, hwm := statusKB(t, pid, "VmRSS"), statusKB(t, pid, "VmHWM")
	t.Logf("walked %d entries and %d xattrs in %s; daemon VmRSS %.1f MB, VmHWM %.1f MB",
		lines.n, nx, time.Since(start).Round(time.Millisecond), float64(rss)/1024, float64(hwm)/1024)
	if rss*1024 >= 150e6 {
		t.Errorf("daemon VmRSS %.1f MB after walking %d entries, want < 150 MB", float64(rss)*1024/1e6, entries)
	}
	start = time.Now()
	unmount(t, mnt)
	t.Logf("unmounted in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	check(t, os.RemoveAll(rp))
	t.Logf("repository removed in %s", time.Since(start).Round(time.Millisecond))
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n += int64(bytes.Count(b, []byte{'\n'}))
	return len(b), nil
}

// 12. A foreground mount unmounts cleanly and exits 0 on SIGTERM and on
// SIGINT: once after it has served a read, then several times with the
// signal sent as soon as the mount shows in mountinfo (as a service
// manager stopping it right after start would), since the moment the
// signal arrives matters.
func TestMountSignals(t *testing.T) {
	_, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			for round := 0; round < 8; round++ {
				name, afterRead := "at-once", round == 0
				if afterRead {
					name = "after-read"
				}
				if !t.Run(fmt.Sprintf("%s-%d", name, round), func(t *testing.T) { signalRound(t, rp, sig, afterRead) }) {
					break
				}
			}
		})
	}
}

func signalRound(t *testing.T, rp string, sig syscall.Signal, afterRead bool) {
	mnt := newMountpoint(t)
	cleanupMount(t, mnt, "")
	cmd := exec.Command(binary, "--repo", rp, "mount", "-f", "img", mnt)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	check(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if exited {
			return
		}
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("the foreground mount did not exit within 5s of SIGKILL (stuck on a request to its own mount); aborting its FUSE connection")
			abortFuseConn(t, mnt)
			<-done
		}
	})
	// Poll every millisecond, without backoff, to signal as early as a
	// watcher of mountinfo could.
	for deadline := time.Now().Add(10 * time.Second); len(mountedAt(t, mnt)) == 0; time.Sleep(time.Millisecond) {
		select {
		case err := <-done:
			exited = true
			t.Fatalf("the foreground mount exited before mounting: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the foreground mount did not appear in mountinfo within 10s")
		}
	}
	if afterRead {
		if b, err := os.ReadFile(filepath.Join(mnt, "etc/hostname")); err != nil || string(b) != "host2\n" {
			t.Errorf("read through the foreground mount: %q, %v", b, err)
		}
	}
	check(t, cmd.Process.Signal(sig))
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("after %v the foreground mount exited with %v, want status 0 (a signal's default action means it came before the daemon handled it)\n%s", sig, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the foreground mount did not exit within 10s of %v", sig)
	}
	if m := mountedAt(t, mnt); len(m) != 0 {
		t.Errorf("after %v, mountinfo still lists %s: %s", sig, mnt, m[0].Line)
	}
}

// TestMountHandoff: as root, the command mounts, hands /dev/fuse and the
// pin to the daemon it started, and returns without waiting for it.
//   - When it returns, the mount is listed and its commit pinned by the
//     daemon (the pin file names the daemon, not the exited command);
//     the first access waits for the daemon and succeeds.
//   - Unmounted at once, before the daemon may have started, the mount
//     leaves no daemon and no pin behind, and the directory mounts again.
//   - A manifest whose layer commit is missing fails before anything is
//     mounted, pinned or left running.
func TestMountHandoff(t *testing.T) {
	ref, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	sum := resolveRev(t, rp, "img")
	want, err := os.ReadFile(filepath.Join(ref, "etc/hostname"))
	check(t, err)
	livePins := func() []repo.PinInfo {
		r, err := repo.Open(rp)
		check(t, err)
		defer r.Close()
		pins, err := r.ListPins(false)
		check(t, err)
		return pins
	}

	mnt := newMountpoint(t)
	mountAt(t, rp, "img", mnt)
	if got, err := os.ReadFile(filepath.Join(mnt, "etc/hostname")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("etc/hostname right after the mount returned: %q, %v", got, err)
	}
	pid := daemonPid(t, mnt)
	pins := livePins()
	if len(pins) != 1 || !pins[0].Live || pins[0].Commit.String() != sum {
		t.Fatalf("pins while mounted: %+v, want one live pin of %s", pins, sum)
	}
	b, err := os.ReadFile(pins[0].Path)
	check(t, err)
	if wantPin := fmt.Sprintf("%s\n%d\n", sum, pid); string(b) != wantPin {
		t.Errorf("pin file %q, want %q (owned by the daemon)", b, wantPin)
	}
	unmount(t, mnt)
	waitFor(t, 10*time.Second, "the daemon to exit after umount", func() bool { return len(daemonPids(mnt)) == 0 })
	if p := pinFiles(t, rp); len(p) != 0 {
		t.Errorf("pin files left after umount: %q", p)
	}

	for i := range 5 {
		r := omRun("--repo", rp, "mount", "img", mnt)
		if r.Code != 0 {
			t.Fatalf("mount %d: %s", i, r)
		}
		check(t, unix.Unmount(mnt, 0))
		waitFor(t, 10*time.Second, "the daemon of a mount unmounted at once to exit", func() bool { return len(daemonPids(mnt)) == 0 })
		if p := pinFiles(t, rp); len(p) != 0 {
			t.Fatalf("pin files left by a mount unmounted at once: %q", p)
		}
		if m := mountedAt(t, mnt); len(m) != 0 {
			t.Fatalf("a mount unmounted at once is still listed: %s", m[0].Line)
		}
	}
	mountAt(t, rp, "img", mnt)
	if got, err := os.ReadFile(filepath.Join(mnt, "etc/hostname")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("etc/hostname after remounting: %q, %v", got, err)
	}

	brp := importInto(t, t.TempDir(), "bare-user", src, "img")
	r, err := repo.Open(brp)
	check(t, err)
	bsum, err := repo.ParseChecksum(resolveRev(t, brp, "img"))
	check(t, err)
	c, err := r.ReadCommit(context.TODO(), bsum)
	check(t, err)
	r.Close()
	if len(c.Related) == 0 {
		t.Fatal("the image's manifest commit names no layers")
	}
	layer := c.Related[len(c.Related)-1].Commit.String()
	check(t, os.Remove(filepath.Join(brp, "objects", objName(layer, "commit"))))
	bmnt := newMountpoint(t)
	cleanupMount(t, bmnt, "")
	checkFailed(t, omRun("--repo", brp, "mount", "img", bmnt), bmnt, layer[:10])
	if p := pinFiles(t, brp); len(p) != 0 {
		t.Errorf("pin files left by the failed mount: %q", p)
	}
}

// TestMountService: 'ostree-mount serve' serves the mounts that root's
// mount commands ask of it, from its own process.
//   - A mount through it starts no daemon; the tree equals umoci's unpack,
//     and the one live pin is the service's.
//   - Two mounts at once; unmounting one releases its pin only.
//   - An error (a corrupt commit) comes back to the command, and nothing
//     is mounted or pinned.
//   - A second service on the same socket is refused.
//   - SIGTERM unmounts the rest, removes the socket and exits 0; then a
//     mount command, finding no service, starts its own daemon.
func TestMountService(t *testing.T) {
	ref, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	sock := filepath.Join(t.TempDir(), "mount.sock")
	s := startService(t, sock)
	svc, svcErr, exited := s.cmd, s.log, s.exited
	if fi, _ := os.Stat(sock); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	livePins := func() []repo.PinInfo {
		r, err := repo.Open(rp)
		check(t, err)
		defer r.Close()
		pins, err := r.ListPins(false)
		check(t, err)
		return pins
	}

	mnt1, mnt2 := newMountpoint(t), newMountpoint(t)
	for _, m := range []string{mnt1, mnt2} {
		cleanupMount(t, m, "")
		om(t, "--repo", rp, "mount", "--socket", sock, "img", m)
		if pids := daemonPids(m); len(pids) != 0 {
			t.Errorf("a mount through the service started daemons %v", pids)
		}
	}
	opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
	checkTreesEqual(t, "a mount through the service vs umoci unpack", dumpTree(t, ref, opts), dumpTree(t, mnt1, opts))
	pins := livePins()
	if len(pins) != 2 {
		t.Fatalf("%d pins with two mounts, want 2: %+v", len(pins), pins)
	}
	for _, p := range pins {
		b, err := os.ReadFile(p.Path)
		check(t, err)
		if !p.Live || !strings.HasSuffix(string(b), fmt.Sprintf("\n%d\n", svc.Process.Pid)) {
			t.Errorf("pin %s (live %v) says %q, want the service's pid %d", p.Path, p.Live, b, svc.Process.Pid)
		}
	}
	unmount(t, mnt1)
	waitFor(t, 10*time.Second, "the unmounted mount's pin to go", func() bool { return len(livePins()) == 1 })
	if b, err := os.ReadFile(filepath.Join(mnt2, "etc/hostname")); err != nil || string(b) != "host2\n" {
		t.Errorf("the other mount after one was unmounted: %q, %v", b, err)
	}

	crp := importInto(t, t.TempDir(), "bare-user", src, "img")
	csum := resolveRev(t, crp, "img")
	p := filepath.Join(crp, "objects", objName(csum, "commit"))
	fi, err := os.Stat(p)
	check(t, err)
	flipByte(t, p, fi.Size()/2)
	bad := newMountpoint(t)
	cleanupMount(t, bad, "")
	checkFailed(t, omRun("--repo", crp, "mount", "--socket", sock, "img", bad), bad, "checksum mismatch")
	if p := pinFiles(t, crp); len(p) != 0 {
		t.Errorf("pins left by the failed mount: %q", p)
	}

	if r := run(binary, "serve", "--socket", sock); r.Code == 0 || !strings.Contains(r.Stderr, "already listens") {
		t.Errorf("a second service on the same socket: want a refusal:\n%s", r)
	}

	check(t, svc.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("the service exited with %v after SIGTERM\n%s", err, svcErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the service did not exit within 20s of SIGTERM")
	}
	if m := mountedAt(t, mnt2); len(m) != 0 {
		t.Errorf("the service exited leaving %s mounted", mnt2)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is left after the service exited: %v", err)
	}
	if p := pinFiles(t, rp); len(p) != 0 {
		t.Errorf("pins left after the service exited: %q", p)
	}
	om(t, "--repo", rp, "mount", "--socket", sock, "img", mnt2)
	if pids := daemonPids(mnt2); len(pids) != 1 {
		t.Errorf("without a service, the mount has daemons %v, want one", pids)
	}
}
