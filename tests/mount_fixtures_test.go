package tests

// Fixtures and helpers of the mount tests (mount_test.go):
//
//   - images: the synthetic image of oci-layers.md §4 with a hardlink
//     group that survives every layer (syntheticHLImage), a realistic
//     debootstrap image imported into a shared bare-user repository
//     (debImage), and an image of special files for read semantics
//     (specialImage); each is built once per test binary run, with its
//     reference rootfs from `umoci unpack`;
//   - mounts: mountAt mounts through the real binary and registers a
//     cleanup that unmounts (ostree-mount umount, then umount -l) and
//     waits for the daemon, so that a failing test never leaves a mount
//     or a process behind;
//   - probes: /proc/self/mountinfo entries, the daemon's pid, polling with
//     a deadline.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---- images ----

// syntheticHLScript is the synthetic image recipe of oci-layers.md §4
// (every file type and whiteout kind) plus a hardlink group that survives
// all layers: bin/tool2 (setgid), bin/tool2-hl and usr/lib/tool2-link, all
// made in layer 1 and never touched again. bin/tool and bin/tool-hl are a
// group in layer 1 only (tool-hl is deleted in layer 2). It makes OUT/img
// (tag layer4 is the image) and OUT/ref/rootfs.
const syntheticHLScript = `
set -e
cd "$1"
umoci init --layout img && umoci new --image img:base0 && umoci unpack --image img:base0 b
R=b/rootfs   # L1: every file type
mkdir -p $R/{etc,bin,usr/lib,run,dev,opt/app/sub/deep,dir2file/inner,var/log}
echo host1 > $R/etc/hostname; setfattr -n user.comment -v hi $R/etc/hostname; : > $R/etc/empty
echo s > $R/etc/shadow; chown 0:42 $R/etc/shadow; chmod 640 $R/etc/shadow
printf '#!/bin/sh\n' > $R/bin/tool; chmod 4755 $R/bin/tool; ln $R/bin/tool $R/bin/tool-hl
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= $R/bin/tool
printf 'tool2\n' > $R/bin/tool2; chmod 2755 $R/bin/tool2; ln $R/bin/tool2 $R/bin/tool2-hl; ln $R/bin/tool2 $R/usr/lib/tool2-link
ln -s tool $R/bin/sh; ln -s usr/lib $R/lib; ln -s ../../nonexistent $R/etc/dangling
mkfifo $R/run/fifo; mknod $R/dev/null c 1 3; mknod $R/dev/loop0 b 7 0
echo d > $R/opt/app/sub/deep/f; echo x > $R/dir2file/inner/x; echo f > $R/file2dir
echo old > $R/var/log/old; truncate -s 8M $R/var/log/sparse.img
umoci repack --refresh-bundle --image img:layer1 b
# L2: modify, delete file, delete dir, dir->file, file->dir, chmod only, symlink->dir
echo host2 > $R/etc/hostname; rm $R/etc/shadow; rm -rf $R/opt/app
rm -rf $R/dir2file; echo nowfile > $R/dir2file; rm $R/file2dir; mkdir $R/file2dir; echo in > $R/file2dir/x
chmod 700 $R/opt; ln -sfn /bin/tool $R/bin/sh; rm $R/bin/tool-hl; rm $R/lib; mkdir $R/lib; echo r > $R/lib/real
umoci repack --refresh-bundle --image img:layer2 b
# L3: recreate deleted paths, dir->symlink, drop an xattr
mkdir -p $R/opt/app; echo again > $R/opt/app/b; echo s2 > $R/etc/shadow
rm -rf $R/file2dir; ln -s /etc $R/file2dir; setfattr -x user.comment $R/etc/hostname
umoci repack --refresh-bundle --image img:layer3 b
# L4/L5: opaque whiteout + explicit whiteout without unpack
mkdir -p newvar && echo only > newvar/only
umoci insert --image img:layer3 --tag layer4 --opaque newvar /var/log
umoci insert --image img:layer4 --whiteout /etc/empty
umoci unpack --image img:layer4 ref
rm -rf b newvar
`

var syntheticHLFix imageFixture

// syntheticHLImage returns the directory holding the synthetic image with
// a surviving hardlink group: img (tag layer4) and ref/rootfs.
func syntheticHLImage(t testing.TB) string {
	t.Helper()
	return syntheticHLFix.get(t, "synthetic-hardlinks", func(dir string) error {
		if r := run("bash", "-e", "-c", syntheticHLScript, "synthetic-hl", dir); r.Code != 0 {
			return fmt.Errorf("synthetic image recipe failed:\n%s", r)
		}
		return nil
	})
}

// debFixture is the realistic image: a debootstrap minbase bookworm
// rootfs as layer 1, layer 2 removing usr/share/doc/* and usr/share/man.
type debFixture struct {
	Layout string // OCI layout, tag final
	Ref    string // umoci unpack of img:final
	Repo   string // bare-user repository holding it, layered, as Rev
	Rev    string
}

var (
	debFix  imageFixture
	debInfo debFixture
)

// debRootEnv names an already bootstrapped rootfs to copy instead of
// running debootstrap: a shortcut for iterating on the tests only.
const debRootEnv = "E2E_DEBOOTSTRAP_ROOTFS"

// debianMirror returns the Debian mirror apt is configured with (the
// first URI of a bookworm deb source), never a hard-coded host.
func debianMirror() (string, error) {
	var srcs []string
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(b), "\n\n") {
			fields := map[string]string{}
			for _, l := range strings.Split(stanza, "\n") {
				if strings.HasPrefix(l, "#") {
					continue
				}
				if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
					fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
				}
			}
			if slices.Contains(strings.Fields(fields["types"]), "deb") && slices.Contains(strings.Fields(fields["suites"]), "bookworm") {
				if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
					return uris[0], nil
				}
			}
			srcs = append(srcs, f)
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "deb" {
				if strings.HasPrefix(f[1], "[") {
					for len(f) > 1 && !strings.HasSuffix(f[1], "]") {
						f = slices.Delete(f, 1, 2)
					}
					f = slices.Delete(f, 1, 2)
				}
				if len(f) >= 3 && f[2] == "bookworm" {
					return f[1], nil
				}
			}
		}
		srcs = append(srcs, "/etc/apt/sources.list")
	}
	return "", fmt.Errorf("no deb source for bookworm in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (looked at %q)", srcs)
}

// debImageScript builds the realistic image in OUT ($1) from the rootfs
// made in OUT/b/rootfs by the caller.
const debImageScript = `
set -e
cd "$1"
umoci repack --refresh-bundle --image img:l1 b
rm -rf b/rootfs/usr/share/doc/* b/rootfs/usr/share/man
umoci repack --refresh-bundle --image img:final b
rm -rf b
umoci unpack --image img:final ref
`

// debImage returns the realistic image, built and imported once per test
// binary run (debootstrap takes one to two minutes). If debootstrap
// fails, every test that needs the image fails: the tests need network
// access to the configured Debian mirror.
func debImage(t testing.TB) debFixture {
	t.Helper()
	debFix.get(t, "debootstrap", func(dir string) error {
		if r := run("bash", "-e", "-c", `cd "$1" && umoci init --layout img && umoci new --image img:base0 && umoci unpack --image img:base0 b`, "deb", dir); r.Code != 0 {
			return fmt.Errorf("umoci:\n%s", r)
		}
		rootfs := filepath.Join(dir, "b", "rootfs")
		if src := os.Getenv(debRootEnv); src != "" {
			if r := run("cp", "-a", src+"/.", rootfs+"/"); r.Code != 0 {
				return fmt.Errorf("copy of $%s:\n%s", debRootEnv, r)
			}
		} else {
			mirror, err := debianMirror()
			if err != nil {
				return fmt.Errorf("cannot run debootstrap: %w", err)
			}
			start := time.Now()
			r := run("debootstrap", "--variant=minbase", "bookworm", rootfs, mirror)
			if r.Code != 0 {
				return fmt.Errorf("debootstrap --variant=minbase bookworm from the mirror %s failed after %s; "+
					"these tests need network access to that Debian mirror:\n%s",
					mirror, time.Since(start).Round(time.Second), r)
			}
			fmt.Fprintf(os.Stderr, "e2e: debootstrap from %s took %s\n", mirror, time.Since(start).Round(time.Second))
		}
		if r := run("bash", "-e", "-c", debImageScript, "deb", dir); r.Code != 0 {
			return fmt.Errorf("building the realistic image:\n%s", r)
		}
		rp := filepath.Join(dir, "repo")
		if r := omRun("init", "--repo", rp, "--mode", "bare-user"); r.Code != 0 {
			return fmt.Errorf("init:\n%s", r)
		}
		if err := setConfigKey(rp, "core", "fsync", "false"); err != nil {
			return err
		}
		if r := omRun("import", "--repo", rp, "--ref", "deb", "oci:"+filepath.Join(dir, "img")+":final"); r.Code != 0 {
			return fmt.Errorf("import:\n%s", r)
		}
		debInfo = debFixture{Layout: filepath.Join(dir, "img"), Ref: filepath.Join(dir, "ref", "rootfs"), Repo: rp, Rev: "deb"}
		return nil
	})
	return debInfo
}

// slimImageScript builds, in OUT ($1), a small realistic image from the
// files of the debootstrap rootfs SRC ($2), laid out as distroless'
// static images are: account files, os-release, time zone data with its
// hundreds of symlinks, licences and the dpkg status, tmp, root and a
// non-root home. Layer 2 adds an application (a script, a config tree, a
// hardlinked tool), appends a user to etc/passwd, deletes
// zoneinfo/right (whiteouts) and replaces common-licenses with one
// file.
const slimImageScript = `
set -e
cd "$1"; S=$2
umoci init --layout img
umoci new --image img:base0
umoci unpack --image img:base0 b
R=b/rootfs
mkdir -p $R/etc $R/usr/lib $R/usr/share $R/var/lib/dpkg $R/tmp $R/root $R/home/nonroot
for f in passwd group nsswitch.conf host.conf debian_version timezone os-release localtime; do cp -a $S/etc/$f $R/etc/; done
cp -a $S/usr/lib/os-release $R/usr/lib/
cp -a $S/usr/share/zoneinfo $S/usr/share/common-licenses $R/usr/share/
cp -a $S/var/lib/dpkg/status $R/var/lib/dpkg/
chmod 1777 $R/tmp; chmod 0700 $R/root $R/home/nonroot; chown 65532:65532 $R/home/nonroot
umoci repack --refresh-bundle --image img:l1 b
mkdir -p $R/app/bin $R/app/config/conf.d
printf '#!/bin/sh\nexec /app/bin/tool "$@"\n' > $R/app/run.sh; chmod 0755 $R/app/run.sh
head -c 70000 $S/var/lib/dpkg/status > $R/app/bin/tool; chmod 0755 $R/app/bin/tool
ln $R/app/bin/tool $R/app/bin/tool-alias
echo 'listen = 8080' > $R/app/config/app.toml; echo 'debug = false' > $R/app/config/conf.d/10-log.toml
echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >> $R/etc/passwd
rm -rf $R/usr/share/zoneinfo/right
find $R/usr/share/common-licenses -mindepth 1 ! -name GPL-3 -delete
umoci repack --refresh-bundle --image img:final b
rm -rf b
umoci unpack --image img:final ref
`

// slimImage returns the small realistic image (see slimImageScript) as an
// OCI layout tagged final, with its umoci unpack.
type slimFixture struct {
	Layout, Ref string
}

var (
	slimFix  imageFixture
	slimInfo slimFixture
)

func slimImage(t testing.TB) slimFixture {
	t.Helper()
	deb := debImage(t)
	slimFix.get(t, "slim", func(dir string) error {
		if r := run("bash", "-e", "-c", slimImageScript, "slim", dir, deb.Ref); r.Code != 0 {
			return fmt.Errorf("building the slim image:\n%s", r)
		}
		slimInfo = slimFixture{Layout: filepath.Join(dir, "img"), Ref: filepath.Join(dir, "ref", "rootfs")}
		return nil
	})
	return slimInfo
}

// setConfigKey adds key=value to a group of a repository's config.
func setConfigKey(repoPath, group, key, value string) error {
	p := filepath.Join(repoPath, "config")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	i := slices.Index(lines, "["+group+"]")
	if i < 0 {
		return fmt.Errorf("%s has no [%s] group", p, group)
	}
	lines = slices.Insert(lines, i+1, key+"="+value)
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// Paths of the special-files image, relative to its root.
const (
	spRandom = "data/random-3m" // 3 MiB of random bytes
	spSparse = "data/sparse-64m"
	spEmpty  = "data/empty"
	spUnique = "data/unique" // 192 KiB of random bytes no other file holds
	spSmall  = "data/small.txt"
)

// Offsets of the sparse file's data: 64 KiB at 0, 100 KiB at 32 MiB+123.
const (
	spSparseSize = 64 << 20
	spSparseOff2 = 32<<20 + 123
)

var specialFix imageFixture

// specialImage returns the directory holding the special-files image:
// img (tag special) and ref/rootfs, its umoci unpack.
func specialImage(t testing.TB) string {
	t.Helper()
	return specialFix.get(t, "special", func(dir string) error {
		if r := run("bash", "-e", "-c", `cd "$1" && umoci init --layout img && umoci new --image img:base0 && umoci unpack --image img:base0 b`, "special", dir); r.Code != 0 {
			return fmt.Errorf("umoci:\n%s", r)
		}
		root := filepath.Join(dir, "b", "rootfs")
		if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
			return err
		}
		write := func(rel string, b []byte) error { return os.WriteFile(filepath.Join(root, rel), b, 0o644) }
		if err := write(spRandom, noiseBytes(11, 3<<20)); err != nil {
			return err
		}
		if err := write(spEmpty, nil); err != nil {
			return err
		}
		if err := write(spUnique, noiseBytes(12, 192<<10)); err != nil {
			return err
		}
		if err := write(spSmall, []byte("small file\n")); err != nil {
			return err
		}
		// truncate -s 64M, then data at 0 and at 32M.
		f, err := os.Create(filepath.Join(root, spSparse))
		if err != nil {
			return err
		}
		err = errors.Join(f.Truncate(spSparseSize),
			writeAt(f, noiseBytes(13, 64<<10), 0),
			writeAt(f, noiseBytes(14, 100<<10), spSparseOff2),
			f.Close())
		if err != nil {
			return err
		}
		if r := run("bash", "-e", "-c", `cd "$1" && umoci repack --image img:special b && rm -rf b && umoci unpack --image img:special ref`, "special", dir); r.Code != 0 {
			return fmt.Errorf("umoci:\n%s", r)
		}
		return nil
	})
}

func writeAt(f *os.File, b []byte, off int64) error {
	_, err := f.WriteAt(b, off)
	return err
}

// importInto creates a repository of the given mode under dir (fsync off,
// for speed) and imports an OCI image into it under ref; it returns the
// repository's path.
func importInto(t testing.TB, dir, mode, src, ref string, extra ...string) string {
	t.Helper()
	rp := filepath.Join(dir, "repo-"+mode)
	om(t, "init", "--repo", rp, "--mode", mode)
	check(t, setConfigKey(rp, "core", "fsync", "false"))
	om(t, append(append([]string{"import", "--repo", rp, "-q", "--ref", ref}, extra...), src)...)
	return rp
}

// ---- mounts ----

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	MountPoint string
	Opts       []string // per-mount options (field 6)
	FSType     string
	Source     string
	SuperOpts  []string
	Line       string
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountEntries parses /proc/self/mountinfo.
func mountEntries(t testing.TB) []mountEntry {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	check(t, err)
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			continue
		}
		out = append(out, mountEntry{
			MountPoint: unescapeMountinfo(fields[4]),
			Opts:       strings.Split(fields[5], ","),
			FSType:     fields[sep+1],
			Source:     unescapeMountinfo(fields[sep+2]),
			SuperOpts:  strings.Split(fields[sep+3], ","),
			Line:       sc.Text(),
		})
	}
	check(t, sc.Err())
	return out
}

// mountedAt returns the entries mounted at mnt, the last one on top.
func mountedAt(t testing.TB, mnt string) []mountEntry {
	t.Helper()
	var out []mountEntry
	for _, e := range mountEntries(t) {
		if e.MountPoint == mnt {
			out = append(out, e)
		}
	}
	return out
}

// daemonPids returns the ostree-mount processes whose arguments name mnt
// (which the tests always pass as an absolute path).
func daemonPids(mnt string) []int { return pidsOf(binary, mnt) }

// pidsOf returns the processes of executable exe whose arguments name
// mnt.
func pidsOf(exe, mnt string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if args[0] == exe && slices.Contains(args[1:], mnt) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// daemonPid returns the one daemon serving mnt.
func daemonPid(t testing.TB, mnt string) int {
	t.Helper()
	var pids []int
	waitFor(t, 10*time.Second, "the daemon of "+mnt+" to be found", func() bool {
		pids = daemonPids(mnt)
		return len(pids) == 1
	})
	return pids[0]
}

// waitFor polls cond every few milliseconds until it holds, and fails the
// test if it does not within timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll reports whether cond came to hold within timeout.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// newMountpoint returns a new empty directory under the test's temporary
// directory.
func newMountpoint(t testing.TB) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	check(t, os.Mkdir(mnt, 0o755))
	return mnt
}

// mountRev mounts rev of the repository on a new mountpoint with the
// given flags and returns the mountpoint.
func mountRev(t testing.TB, repoPath, rev string, flags ...string) string {
	t.Helper()
	mnt := newMountpoint(t)
	mountAt(t, repoPath, rev, mnt, flags...)
	return mnt
}

// mountAt mounts rev at mnt (background daemon) with the given flags,
// logging to a file it returns, and registers the unmount.
func mountAt(t testing.TB, repoPath, rev, mnt string, flags ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "mount.log")
	cleanupMount(t, mnt, logPath)
	args := append([]string{"--repo", repoPath, "mount", "--log-file", logPath}, flags...)
	r := omRun(append(args, rev, mnt)...)
	if r.Code != 0 {
		t.Fatalf("mount failed:\n%s\nlog:\n%s", r, readLog(logPath))
	}
	if len(mountedAt(t, mnt)) == 0 {
		t.Fatalf("mount exited 0 but /proc/self/mountinfo does not list %s:\n%s", mnt, r)
	}
	return logPath
}

func readLog(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return clip(string(b), 4000)
}

// cleanupMount registers, at the end of the test, the removal of every
// mount at mnt (ostree-mount umount, falling back to umount -l) and of
// the daemons serving it.
func cleanupMount(t testing.TB, mnt, logPath string) {
	t.Cleanup(func() {
		for i := 0; len(mountedAt(t, mnt)) > 0 && i < 5; i++ {
			if r := omRun("umount", mnt); r.Code != 0 {
				t.Errorf("cleanup: ostree-mount umount failed, detaching:\n%s", r)
				if r := run("umount", "-l", mnt); r.Code != 0 {
					t.Errorf("cleanup: umount -l failed:\n%s", r)
				}
			}
		}
		if !poll(10*time.Second, func() bool { return len(daemonPids(mnt)) == 0 }) {
			t.Errorf("cleanup: the daemon of %s did not exit within 10s of the unmount; killing it", mnt)
			for _, pid := range daemonPids(mnt) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if !poll(5*time.Second, func() bool { return len(daemonPids(mnt)) == 0 }) {
				abortFuseConn(t, mnt)
			}
		}
		if b, err := os.ReadFile(logPath); t.Failed() && err == nil && len(b) > 0 {
			t.Logf("daemon log %s:\n%s", logPath, clip(string(b), 4000))
		}
	})
}

// abortFuseConn aborts the FUSE connection of the mount at mnt (through
// the fusectl filesystem, mounted if need be), which frees a daemon stuck
// on a request to itself.
func abortFuseConn(t testing.TB, mnt string) {
	t.Helper()
	ms := mountedAt(t, mnt)
	if len(ms) == 0 {
		return
	}
	f := strings.Fields(ms[len(ms)-1].Line)
	_, minor, _ := strings.Cut(f[2], ":")
	ctl := "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(ctl, minor)); err != nil {
		run("mount", "-t", "fusectl", "fusectl", ctl)
	}
	if err := os.WriteFile(filepath.Join(ctl, minor, "abort"), []byte("1"), 0o200); err != nil {
		t.Errorf("aborting the FUSE connection %s of %s: %v", minor, mnt, err)
	}
}

// unmount unmounts mnt with ostree-mount umount, checks that it is gone
// from mountinfo and waits for its daemon to exit.
func unmount(t testing.TB, mnt string) {
	t.Helper()
	om(t, "umount", mnt)
	if m := mountedAt(t, mnt); len(m) != 0 {
		t.Fatalf("ostree-mount umount exited 0 but mountinfo still lists %s:\n%s", mnt, m[0].Line)
	}
	waitFor(t, 10*time.Second, "the daemon of "+mnt+" to exit", func() bool { return len(daemonPids(mnt)) == 0 })
}

// walkPaths returns every path under root (relative, "." for the root),
// with its lstat, without following symlinks.
func walkPaths(t testing.TB, root string) map[string]*unix.Stat_t {
	t.Helper()
	out := map[string]*unix.Stat_t{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = &st
		return nil
	})
	check(t, err)
	return out
}

// regularFilesOf lists the regular files under root (relative paths,
// sorted).
func regularFilesOf(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	for p, st := range walkPaths(t, root) {
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
