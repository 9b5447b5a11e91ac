package tests

// OCI runtime bundles (ostree-mount bundle) run by the real runc, and the
// mount(8) helper path (mount -t fuse.ostree-mount, fstab, umount).

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// bundleVariants are images made from the realistic one with umoci
// config: what the bundle's config must take from an image config.
var bundleVariants = []struct {
	tag  string
	args []string
}{
	// An entrypoint and a cmd, a user by name, a working directory, an
	// environment variable (one that overrides a default, too), labels,
	// a port and a stop signal.
	{"user", []string{
		"--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c", "--config.cmd", "id -u",
		"--config.user", "daemon", "--config.workingdir", "/var/lib", "--config.env", "FOO=bar baz",
		"--config.env", "TERM=dumb", "--config.label", "org.example.role=test",
		"--config.exposedports", "8080/tcp", "--config.stopsignal", "SIGINT",
	}},
	// name:group, a volume (a tmpfs mount), a cmd alone.
	{"group", []string{"--config.user", "daemon:staff", "--config.workingdir", "/tmp/work", "--config.cmd", "true", "--config.volume", "/data"}},
	// uid:group, and HOME given by the image (passwd's wins).
	{"uidgroup", []string{"--config.user", "1:mail", "--config.env", "HOME=/custom"}},
	// Numbers that neither /etc/passwd nor /etc/group has.
	{"numeric", []string{"--config.user", "1234:5678"}},
}

// bundleFixture is the realistic image and its variants, imported into
// the realistic image's repository as bundle-TAG, with umoci's
// config.json of each (Configs[TAG]; "final" is umoci unpack's own).
type bundleFixture struct {
	debFixture
	Configs map[string]string
}

var (
	bundleFix  imageFixture
	bundleInfo bundleFixture
)

func bundleImages(t testing.TB) bundleFixture {
	t.Helper()
	deb := debImage(t)
	bundleFix.get(t, "bundle", func(dir string) error {
		// A layout of its own whose blobs are the realistic image's
		// (umoci config adds blobs and rewrites index.json, never a blob).
		lay := filepath.Join(dir, "img")
		if r := run("bash", "-e", "-c", `mkdir "$2" && cp "$1/oci-layout" "$1/index.json" "$2/" && cp -al "$1/blobs" "$2/blobs"`, "x", deb.Layout, lay); r.Code != 0 {
			return fmt.Errorf("layout copy:\n%s", r)
		}
		info := bundleFixture{debFixture: deb, Configs: map[string]string{"final": filepath.Join(filepath.Dir(deb.Ref), "config.json")}}
		for _, v := range bundleVariants {
			args := append([]string{"config", "--image", lay + ":final", "--tag", v.tag}, v.args...)
			if r := run("umoci", args...); r.Code != 0 {
				return fmt.Errorf("umoci config:\n%s", r)
			}
			// umoci unpack's config.json is raw runtime-config's with the
			// unpacked rootfs: the same conversion, without unpacking the
			// image again for each variant.
			cfg := filepath.Join(dir, v.tag+".json")
			if r := run("umoci", "raw", "runtime-config", "--image", lay+":"+v.tag, "--rootfs", deb.Ref, cfg); r.Code != 0 {
				return fmt.Errorf("umoci raw runtime-config:\n%s", r)
			}
			info.Configs[v.tag] = cfg
			if r := omRun("import", "--repo", deb.Repo, "-q", "--ref", "bundle-"+v.tag, "oci:"+lay+":"+v.tag); r.Code != 0 {
				return fmt.Errorf("import:\n%s", r)
			}
		}
		bundleInfo = info
		return nil
	})
	return bundleInfo
}

// makeBundle runs ostree-mount bundle and registers the bundle's removal
// (bundle --remove, then umount -l of anything left); it returns the
// daemon's log.
func makeBundle(t testing.TB, repoPath, rev, dir string, flags ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "bundle.log")
	t.Cleanup(func() { cleanupBundle(t, dir, logPath) })
	args := append([]string{"bundle", "--repo", repoPath, "--log-file", logPath}, flags...)
	r := omRun(append(args, rev, dir)...)
	if r.Code != 0 {
		t.Fatalf("bundle failed:\n%s\nlog:\n%s", r, readLog(logPath))
	}
	return logPath
}

func cleanupBundle(t testing.TB, dir, logPath string) {
	if _, err := os.Stat(filepath.Join(dir, "ostree-mount-bundle.json")); err == nil {
		if r := omRun("bundle", "--remove", dir); r.Code != 0 {
			t.Errorf("cleanup: bundle --remove failed:\n%s", r)
		}
	}
	for _, mnt := range []string{filepath.Join(dir, "rootfs"), filepath.Join(dir, "lower")} {
		for i := 0; len(mountedAt(t, mnt)) > 0 && i < 5; i++ {
			t.Errorf("cleanup: %s still mounted, detaching", mnt)
			run("umount", "-l", mnt)
		}
	}
	if !poll(10*time.Second, func() bool { return len(daemonPids(dir)) == 0 }) {
		t.Errorf("cleanup: the daemon of bundle %s did not exit within 10s; killing it", dir)
		for _, pid := range daemonPids(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if b, err := os.ReadFile(logPath); t.Failed() && err == nil && len(b) > 0 {
		t.Logf("bundle daemon log %s:\n%s", logPath, clip(string(b), 4000))
	}
}

func readSpec(t testing.TB, p string) *rspec.Spec {
	t.Helper()
	b, err := os.ReadFile(p)
	check(t, err)
	var s rspec.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return &s
}

// checkSpecLike fails the test where got (ours) differs from want
// (umoci's) in what the image config and umoci's defaults decide.
func checkSpecLike(t testing.TB, what string, want, got *rspec.Spec) {
	t.Helper()
	eq := func(field string, w, g any) {
		t.Helper()
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: %s = %#v, umoci's is %#v", what, field, g, w)
		}
	}
	if want.Process == nil || got.Process == nil || want.Linux == nil || got.Linux == nil {
		t.Fatalf("%s: no process or linux section (umoci %v, ours %v)", what, want.Process != nil, got.Process != nil)
	}
	eq("process.args", want.Process.Args, got.Process.Args)
	eq("process.env", want.Process.Env, got.Process.Env)
	eq("process.user.uid", want.Process.User.UID, got.Process.User.UID)
	eq("process.user.gid", want.Process.User.GID, got.Process.User.GID)
	eq("process.user.additionalGids", want.Process.User.AdditionalGids, got.Process.User.AdditionalGids)
	eq("process.cwd", want.Process.Cwd, got.Process.Cwd)
	eq("process.capabilities", want.Process.Capabilities, got.Process.Capabilities)
	eq("process.rlimits", want.Process.Rlimits, got.Process.Rlimits)
	eq("process.noNewPrivileges", want.Process.NoNewPrivileges, got.Process.NoNewPrivileges)
	eq("mounts", want.Mounts, got.Mounts)
	eq("linux.namespaces", want.Linux.Namespaces, got.Linux.Namespaces)
	eq("linux.maskedPaths", want.Linux.MaskedPaths, got.Linux.MaskedPaths)
	eq("linux.readonlyPaths", want.Linux.ReadonlyPaths, got.Linux.ReadonlyPaths)
	eq("linux.resources", want.Linux.Resources, got.Linux.Resources)
	eq("linux.seccomp", want.Linux.Seccomp, got.Linux.Seccomp)
	eq("annotations", want.Annotations, got.Annotations)
	eq("root.path", want.Root.Path, got.Root.Path)
	eq("ociVersion", want.Version, got.Version)
	// Where a lazily mounted bundle differs on purpose.
	if got.Process.Terminal {
		t.Errorf("%s: process.terminal is true, want false", what)
	}
	if got.Hostname != "ostree-mount" {
		t.Errorf("%s: hostname %q, want ostree-mount", what, got.Hostname)
	}
}

// 1. config.json is umoci's, for the realistic image and for images with
// an entrypoint, a user by name, by name:group, by uid:group and by
// numbers, a working directory, an environment, labels, ports and
// volumes; the root is read-only, or writable with --writable.
func TestBundleConfigMatchesUmoci(t *testing.T) {
	b := bundleImages(t)
	for _, tag := range []string{"final", "user", "group", "uidgroup", "numeric"} {
		rev := "bundle-" + tag
		if tag == "final" {
			rev = b.Rev
		}
		dir := filepath.Join(t.TempDir(), "b")
		makeBundle(t, b.Repo, rev, dir)
		got := readSpec(t, filepath.Join(dir, "config.json"))
		checkSpecLike(t, tag, readSpec(t, b.Configs[tag]), got)
		if !got.Root.Readonly {
			t.Errorf("%s: root.readonly false in a read-only bundle", tag)
		}
		om(t, "bundle", "--remove", dir)
	}
	want := readSpec(t, b.Configs["user"])
	if want.Process.User.UID != 1 || !slices.Contains(want.Process.Env, "FOO=bar baz") || want.Process.Cwd != "/var/lib" {
		t.Fatalf("the fixture is not what the test means: umoci's config has uid %d, env %q, cwd %q", want.Process.User.UID, want.Process.Env, want.Process.Cwd)
	}
	dir := filepath.Join(t.TempDir(), "w")
	makeBundle(t, b.Repo, "bundle-group", dir, "--writable")
	got := readSpec(t, filepath.Join(dir, "config.json"))
	checkSpecLike(t, "group --writable", readSpec(t, b.Configs["group"]), got)
	if got.Root.Readonly {
		t.Errorf("--writable bundle: root.readonly is true")
	}
}

var containerSeq atomic.Int64

// runIn sets the bundle's process.args to sh -c script and runs it with
// runtime (runc, crun) to completion; it deletes the container after.
func runIn(t testing.TB, runtime, dir, script string) cmdResult {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	s := readSpec(t, p)
	s.Process.Args = []string{"/bin/sh", "-c", script}
	out, err := json.MarshalIndent(s, "", "\t")
	check(t, err)
	check(t, os.WriteFile(p, out, 0o644))
	id := fmt.Sprintf("ostree-mount-e2e-%d-%d", os.Getpid(), containerSeq.Add(1))
	defer run(runtime, "delete", "--force", id)
	return run(runtime, "run", "--bundle", dir, id)
}

// bundleScript prints the user, the environment, the package database
// and the result of a write to the root, one per line.
const bundleScript = `id -u; id -g; pwd; echo "FOO=$FOO"; echo "HOME=$HOME"; dpkg -l bash | tail -n 1; if touch /probe 2>/dev/shm/err; then echo write=ok; else echo "write=$(cat /dev/shm/err)"; fi`

// checkContainerOutput checks bundleScript's output against umoci's
// config of the image.
func checkContainerOutput(t testing.TB, what string, r cmdResult, want *rspec.Spec, wantWrite string) {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("%s: the container failed:\n%s", what, r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 7 {
		t.Fatalf("%s: want 7 lines of output:\n%s", what, r)
	}
	envOf := func(name string) string {
		for _, kv := range want.Process.Env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
		return ""
	}
	exp := []string{fmt.Sprint(want.Process.User.UID), fmt.Sprint(want.Process.User.GID), want.Process.Cwd,
		"FOO=" + envOf("FOO"), "HOME=" + envOf("HOME")}
	for i, w := range exp {
		if lines[i] != w {
			t.Errorf("%s: line %d is %q, want %q (from umoci's config.json)\n%s", what, i+1, lines[i], w, r)
		}
	}
	if f := strings.Fields(lines[5]); len(f) < 3 || f[0] != "ii" || f[1] != "bash" {
		t.Errorf("%s: dpkg -l bash: %q, want an installed bash", what, lines[5])
	}
	if !strings.Contains(lines[6], wantWrite) {
		t.Errorf("%s: touch /probe: %q, want %q", what, lines[6], wantWrite)
	}
}

// 2. runc runs a command in a read-only bundle of the realistic image as
// the image's user (daemon, by name), in its working directory, with its
// environment: id, $FOO, dpkg -l bash; a write to the root fails with
// EROFS, in the container and outside it. crun does the same where it
// works (crun 1.8 refuses hybrid cgroups: skipped, with the reason).
func TestBundleRunc(t *testing.T) {
	b := bundleImages(t)
	want := readSpec(t, b.Configs["user"])
	dir := filepath.Join(t.TempDir(), "b")
	makeBundle(t, b.Repo, "bundle-user", dir)
	r := runIn(t, "runc", dir, bundleScript)
	checkContainerOutput(t, "runc", r, want, "Read-only file system")
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "probe"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to the read-only bundle's rootfs from outside: %v, want EROFS", err)
	}
	// As root (the realistic image's own user), too.
	root := filepath.Join(t.TempDir(), "r")
	makeBundle(t, b.Repo, b.Rev, root)
	r = runIn(t, "runc", root, bundleScript)
	checkContainerOutput(t, "runc as root", r, readSpec(t, b.Configs["final"]), "Read-only file system")

	t.Run("crun", func(t *testing.T) {
		if _, err := exec.LookPath("crun"); err != nil {
			t.Fatalf("crun not found (make deps installs it): %v", err)
		}
		probe := runIn(t, "crun", dir, "true")
		// crun 1.8 refuses hybrid cgroup hierarchies ("cgroups in hybrid
		// mode not supported"); any other failure is a failure.
		if probe.Code != 0 && strings.Contains(probe.Stdout+probe.Stderr, "cgroup") {
			t.Skipf("crun does not run containers on this host: %s", strings.TrimSpace(probe.Stderr+probe.Stdout))
		}
		r := runIn(t, "crun", dir, bundleScript)
		checkContainerOutput(t, "crun", r, want, "Read-only file system")
	})
}

// 3. A --writable bundle: the container's writes and deletions succeed
// and land in the bundle directory; the repository is unchanged (the
// checkout is umoci's rootfs, ostree fsck passes), and a new bundle shows
// none of them.
func TestBundleWritable(t *testing.T) {
	b := bundleImages(t)
	dir := filepath.Join(t.TempDir(), "w")
	makeBundle(t, b.Repo, b.Rev, dir, "--writable")
	if m := mountedAt(t, filepath.Join(dir, "rootfs")); len(m) != 1 || m[0].FSType != "overlay" {
		t.Fatalf("rootfs of a writable bundle: %+v, want one overlay", m)
	}
	if m := mountedAt(t, filepath.Join(dir, "lower")); len(m) != 1 || m[0].FSType != "fuse.ostree-mount" {
		t.Fatalf("lower of a writable bundle: %+v, want the image's mount", m)
	}
	script := `set -e; echo new > /etc/new-file; echo changed >> /etc/issue; rm /etc/debian_version; rm -r /usr/share/zoneinfo; mkdir /newdir; touch /probe; echo done`
	r := runIn(t, "runc", dir, script)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "done" {
		t.Fatalf("writes in the writable bundle:\n%s", r)
	}
	r = runIn(t, "runc", dir, bundleScript)
	checkContainerOutput(t, "writable", r, readSpec(t, b.Configs["final"]), "write=ok")

	upper := filepath.Join(dir, "upper")
	if got, err := os.ReadFile(filepath.Join(upper, "etc/new-file")); err != nil || string(got) != "new\n" {
		t.Errorf("upper/etc/new-file: %q, %v", got, err)
	}
	for _, wh := range []string{"etc/debian_version", "usr/share/zoneinfo"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(upper, wh), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("upper/%s: want an overlayfs whiteout (char 0:0): %v, mode %o", wh, err, st.Mode)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "rootfs/etc/debian_version")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfs/etc/debian_version after rm: %v, want ENOENT", err)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	makeBundle(t, b.Repo, b.Rev, fresh, "--writable")
	for _, p := range []string{"etc/new-file", "newdir", "probe"} {
		if _, err := os.Lstat(filepath.Join(fresh, "rootfs", p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a new bundle shows %s: %v", p, err)
		}
	}
	for _, p := range []string{"etc/debian_version", "usr/share/zoneinfo/UTC"} {
		if _, err := os.Lstat(filepath.Join(fresh, "rootfs", p)); err != nil {
			t.Errorf("a new bundle lacks %s: %v", p, err)
		}
	}
	want, err := os.ReadFile(filepath.Join(b.Ref, "etc/issue"))
	check(t, err)
	if got, err := os.ReadFile(filepath.Join(fresh, "rootfs/etc/issue")); err != nil || string(got) != string(want) {
		t.Errorf("a new bundle's etc/issue: %q, %v; want %q", got, err, want)
	}
	om(t, "bundle", "--remove", fresh)

	ostreeCmd(t, "fsck", "--repo="+b.Repo)
	checkoutEquals(t, b.Repo, b.Rev, b.Ref, t.TempDir())

	om(t, "bundle", "--remove", dir)
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle --remove left %s: %v", dir, err)
	}
}

// 4. bundle --remove unmounts the overlay, then the image, also after
// the image's daemon was killed (ENOTCONN), and deletes the directory;
// it refuses a directory that is not a bundle, and a busy one stays.
// A failed bundle (a bad ref) leaves nothing.
func TestBundleRemove(t *testing.T) {
	_, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")

	dir := filepath.Join(t.TempDir(), "w")
	makeBundle(t, rp, "img", dir, "--writable")
	pid := daemonPid(t, dir)
	check(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, 10*time.Second, "the killed daemon to exit", func() bool { return len(daemonPids(dir)) == 0 })
	waitFor(t, 5*time.Second, "the image mount to report ENOTCONN", func() bool {
		_, err := os.Stat(filepath.Join(dir, "lower", "etc"))
		return errors.Is(err, syscall.ENOTCONN)
	})
	om(t, "bundle", "--remove", dir)
	for _, mnt := range []string{filepath.Join(dir, "rootfs"), filepath.Join(dir, "lower")} {
		if m := mountedAt(t, mnt); len(m) != 0 {
			t.Errorf("bundle --remove of a dead bundle left %s mounted: %s", mnt, m[0].Line)
		}
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle --remove of a dead bundle left %s: %v", dir, err)
	}

	plain := t.TempDir()
	check(t, os.WriteFile(filepath.Join(plain, "keep"), []byte("x"), 0o644))
	r := omFail(t, "bundle", "--remove", plain)
	if !strings.Contains(r.Stderr, "not a bundle") {
		t.Errorf("bundle --remove of a plain directory: want 'not a bundle':\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(plain, "keep")); err != nil {
		t.Errorf("bundle --remove of a plain directory touched it: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	r = omFail(t, "bundle", "--repo", rp, "no-such-ref", bad)
	if !strings.Contains(r.Stderr, "no-such-ref") {
		t.Errorf("bundle of a bad ref: want the ref named:\n%s", r)
	}
	if _, err := os.Lstat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed bundle left %s: %v", bad, err)
	}
	r = omFail(t, "bundle", "--repo", rp, "img", plain)
	if !strings.Contains(r.Stderr, "not empty") {
		t.Errorf("bundle into a non-empty directory: want 'not empty':\n%s", r)
	}
}

// 5. Prune while a bundle exists keeps the image whole, even after its
// ref is deleted; once the bundle is removed, the next prune deletes it.
func TestBundlePruneKeepsImage(t *testing.T) {
	ref, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	before := repoObjects(t, rp)
	dir := filepath.Join(t.TempDir(), "w")
	makeBundle(t, rp, "img", dir, "--writable")

	om(t, "refs", "--repo", rp, "--delete", "img")
	rep := runPrune(t, rp)
	if rep.Deleted != 0 || rep.WeakRefs != 0 {
		t.Errorf("prune while a bundle exists deleted %d objects and %d weak refs, want none:\n%s", rep.Deleted, rep.WeakRefs, rep.Out)
	}
	opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
	checkTreesEqual(t, "bundle rootfs after the prune vs umoci unpack", dumpTree(t, ref, opts), dumpTree(t, filepath.Join(dir, "rootfs"), opts))

	om(t, "bundle", "--remove", dir)
	waitFor(t, 10*time.Second, "the bundle's daemon to exit", func() bool { return len(daemonPids(dir)) == 0 })
	rep = runPrune(t, rp)
	if after := repoObjects(t, rp); rep.Deleted == 0 || len(after) >= len(before) {
		t.Errorf("prune after bundle --remove: deleted %d objects (%d before, %d after), want the image deleted:\n%s", rep.Deleted, len(before), len(after), rep.Out)
	}
}

// 6. mount(8): make install puts the binary in PREFIX/bin, by default
// /usr/local/bin, where mount.fuse3 finds it (mount(8) clears PATH, and
// the shell's default has /usr/local/bin); mount -t fuse.ostree-mount -o
// repo=... and an fstab line mount through mount.fuse3, and umount(8)
// unmounts; a bad ref fails with a message and leaves nothing mounted; an
// unknown option is refused by name, while mount(8)'s own options (and
// the rw, dev and suid that mount(8) and mount.fuse3 add) are taken.
func TestMountHelper(t *testing.T) {
	ref, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	install := func(args ...string) {
		t.Helper()
		mk := exec.Command("make", append([]string{"install"}, args...)...)
		mk.Dir = moduleRoot
		if out, err := mk.CombinedOutput(); err != nil {
			t.Fatalf("make install %q: %v\n%s", args, err, out)
		}
	}
	prefix := t.TempDir()
	install("PREFIX=" + prefix)
	if fi, err := os.Stat(filepath.Join(prefix, "bin", "ostree-mount")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("make install PREFIX=%s: bin/ostree-mount: %v", prefix, err)
	}
	// The default PREFIX: /usr/local/bin/ostree-mount, put back as it
	// was at the end.
	installed := "/usr/local/bin/ostree-mount"
	if old, err := os.ReadFile(installed); err == nil {
		t.Cleanup(func() { check(t, os.WriteFile(installed, old, 0o755)) })
	} else {
		t.Cleanup(func() { os.Remove(installed) })
	}
	install()
	if fi, err := os.Stat(installed); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("make install: %s: %v", installed, err)
	}
	runCombined := func(name string, args ...string) cmdResult {
		cmd := exec.Command(name, args...)
		out, err := cmd.CombinedOutput()
		r := cmdResult{Args: append([]string{name}, args...), Err: err, Stdout: string(out), Code: -1}
		if cmd.ProcessState != nil {
			r.Code = cmd.ProcessState.ExitCode()
		}
		return r
	}
	daemonGone := func(mnt string) bool { return len(pidsOf(installed, mnt)) == 0 }
	logPath := filepath.Join(t.TempDir(), "helper.log")
	opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}

	mnt := newMountpoint(t)
	cleanupMount(t, mnt, logPath)
	r := runCombined("mount", "-t", "fuse.ostree-mount", "-o", "repo="+rp+",allow_other,verify,_netdev,nofail,x-systemd.automount,log_file="+logPath, "img", mnt)
	if r.Code != 0 {
		t.Fatalf("mount -t fuse.ostree-mount:\n%s\nlog:\n%s", r, readLog(logPath))
	}
	m := mountedAt(t, mnt)
	if len(m) != 1 || m[0].FSType != "fuse.ostree-mount" || !slices.Contains(m[0].SuperOpts, "allow_other") {
		t.Fatalf("after mount -t fuse.ostree-mount: %+v, want one fuse.ostree-mount mount with allow_other", m)
	}
	// mount.fuse3 adds dev,suid as mount(8) has them by default: suid is
	// honoured, nodev stays.
	if slices.Contains(m[0].Opts, "nosuid") || !slices.Contains(m[0].Opts, "nodev") || !slices.Contains(m[0].Opts, "ro") {
		t.Errorf("mount -t fuse.ostree-mount without nosuid: per-mount options %q, want suid, nodev, ro", m[0].Opts)
	}
	checkTreesEqual(t, "mount(8) of the image vs umoci unpack", dumpTree(t, ref, opts), dumpTree(t, mnt, opts))
	if r := runCombined("umount", mnt); r.Code != 0 {
		t.Fatalf("umount:\n%s", r)
	}
	if m := mountedAt(t, mnt); len(m) != 0 {
		t.Fatalf("umount left %s mounted", mnt)
	}
	waitFor(t, 10*time.Second, "the daemon to exit after umount", func() bool { return daemonGone(mnt) })

	// The fstab line, from a file of its own (mount --fstab).
	fstab := filepath.Join(t.TempDir(), "fstab")
	check(t, os.WriteFile(fstab, []byte(fmt.Sprintf("img %s fuse.ostree-mount repo=%s,ro,nodev,nosuid,noauto,nofail,log_file=%s 0 0\n", mnt, rp, logPath)), 0o644))
	if r := runCombined("mount", "--fstab", fstab, mnt); r.Code != 0 {
		t.Fatalf("mount of the fstab line:\n%s\nlog:\n%s", r, readLog(logPath))
	}
	if m := mountedAt(t, mnt); len(m) != 1 || m[0].FSType != "fuse.ostree-mount" || !slices.Contains(m[0].Opts, "nosuid") {
		t.Fatalf("after mount of the fstab line (nosuid): %+v", m)
	}
	if _, err := os.Stat(filepath.Join(mnt, "etc/hostname")); err != nil {
		t.Errorf("the fstab mount: %v", err)
	}
	if r := runCombined("umount", mnt); r.Code != 0 {
		t.Fatalf("umount:\n%s", r)
	}
	waitFor(t, 10*time.Second, "the daemon to exit after umount", func() bool { return daemonGone(mnt) })

	for _, c := range []struct{ rev, opts, want string }{
		{"no-such-ref", "repo=" + rp, "no-such-ref"},
		{"img", "repo=" + rp + ",bogus_option", `"bogus_option"`},
		{"img", "repo=" + rp + ",noexec", "noexec: not supported"},
	} {
		r := runCombined("mount", "-t", "fuse.ostree-mount", "-o", c.opts+",log_file="+logPath, c.rev, mnt)
		if r.Code == 0 {
			t.Errorf("mount -o %s %s succeeded, want a failure", c.opts, c.rev)
		} else if !strings.Contains(r.Stdout, c.want) {
			t.Errorf("mount -o %s %s: want %q in the message:\n%s", c.opts, c.rev, c.want, r)
		}
		if m := mountedAt(t, mnt); len(m) != 0 {
			t.Fatalf("a failed mount -o %s %s left %s mounted", c.opts, c.rev, mnt)
		}
	}
}

// 7. A mount as an unprivileged user (uid 65534, its own repository and
// mountpoint) logs under $XDG_RUNTIME_DIR by default, also when
// /run/ostree-mount exists (root's, which the user cannot write). Where
// /dev/fuse lets other users open it (fusermount3 opens it as the
// user), the mount works and the user unmounts it; where it does not
// (mode 0600, as on some hosts), the mount fails on /dev/fuse, said in
// the log under $XDG_RUNTIME_DIR, and never on the log.
func TestMountRootlessDefaultLog(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} { // t.TempDir's are 0700
		check(t, os.Chmod(d, 0o755))
	}
	rp := filepath.Join(base, "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	src := filepath.Join(base, "src")
	check(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	check(t, os.WriteFile(filepath.Join(src, "etc/hello"), []byte("hello\n"), 0o644))
	om(t, "commit", "--repo", rp, "-b", "tree", src)
	xdg, mnt := filepath.Join(base, "xdg"), filepath.Join(base, "mnt")
	check(t, os.Mkdir(xdg, 0o700))
	check(t, os.Mkdir(mnt, 0o755))
	mustRun(t, "chown", "-R", nobody+":"+nobody, rp, xdg, mnt)
	check(t, os.MkdirAll("/run/ostree-mount", 0o755))
	// The test binary's directory is root's alone.
	exe := filepath.Join(base, "ostree-mount")
	mustRun(t, "cp", binary, exe)

	cmd := exec.Command("setpriv", "--reuid="+nobody, "--regid="+nobody, "--clear-groups", "--", exe, "mount", "--repo", rp, "tree", mnt)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+xdg)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		if len(mountedAt(t, mnt)) > 0 {
			run("umount", "-l", mnt)
		}
	})
	logs, _ := filepath.Glob(filepath.Join(xdg, "ostree-mount", "*.log"))
	if len(logs) != 1 {
		t.Errorf("want the daemon's log under $XDG_RUNTIME_DIR/ostree-mount, found %q (mount: %v\n%s)", logs, err, out)
	}
	if strings.Contains(string(out), "/run/ostree-mount") || strings.Contains(string(out), "log file") {
		t.Errorf("the user's mount failed on its log:\n%s", out)
	}
	var st unix.Stat_t
	check(t, unix.Stat("/dev/fuse", &st))
	if st.Mode&0o006 != 0o006 {
		t.Logf("/dev/fuse is mode %o: other users cannot open it, so the mount must fail on it", st.Mode&0o777)
		if err == nil {
			t.Fatalf("the user's mount succeeded although /dev/fuse is mode %o", st.Mode&0o777)
		}
		if len(logs) == 1 {
			if b, _ := os.ReadFile(logs[0]); !strings.Contains(string(b), "/dev/fuse") {
				t.Errorf("the log %s does not say why (/dev/fuse):\n%s", logs[0], b)
			}
		}
		return
	}
	if err != nil {
		t.Fatalf("mount as uid %s without --log-file: %v\n%s", nobody, err, out)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "etc/hello")); err != nil || string(got) != "hello\n" {
		t.Errorf("the user's mount: %q, %v", got, err)
	}
	if r := run("setpriv", "--reuid="+nobody, "--regid="+nobody, "--clear-groups", "--", exe, "umount", mnt); r.Code != 0 {
		t.Errorf("umount as the user:\n%s", r)
	}
	waitFor(t, 10*time.Second, "the user's mount to go", func() bool { return len(mountedAt(t, mnt)) == 0 })
}
