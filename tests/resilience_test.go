package tests

// Containment (issue 11, items 6 to 8): a damaged object fails only what
// needs it; import and prune neither block on a FIFO nor outlive a
// signal; the CLI neither deletes nor unmounts what is not its own.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// TestMountDamageContained: in a plain commit, parent/ holds two files
// and three damaged directories: broken/ (its dirtree deleted), nometa/
// (its own dirmeta deleted) and gc/ whose subdirectory inner/ has a
// corrupt dirtree. `ls -l parent` lists all five, the files read, and
// only the damaged directories fail, with EIO.
func TestMountDamageContained(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, d := range []string{"parent/broken", "parent/nometa", "parent/gc/inner"} {
		check(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	check(t, os.Chmod(filepath.Join(src, "parent/nometa"), 0o701)) // a dirmeta of its own
	for p, s := range map[string]string{
		"parent/sib1": "one\n", "parent/sib2": "two\n",
		"parent/broken/only-here": "b\n", "parent/gc/inner/only-here-too": "i\n",
	} {
		check(t, os.WriteFile(filepath.Join(src, p), []byte(s), 0o644))
	}
	rp := filepath.Join(dir, "repo")
	ostreeCmd(t, "init", "--repo="+rp, "--mode=bare-user")
	ostreeCmd(t, "commit", "--repo="+rp, "-b", "plain", ts, "--tree=dir="+src)

	r, err := repo.Open(rp)
	check(t, err)
	sum, err := r.Resolve("plain")
	check(t, err)
	cm, err := r.ReadCommit(context.TODO(), sum)
	check(t, err)
	resolve := func(p string) (tree, meta repo.Checksum) {
		tree, meta, err := r.ResolvePath(cm.RootTree, cm.RootMeta, p)
		check(t, err)
		return tree, meta
	}
	_, parentMeta := resolve("parent")
	brokenTree, _ := resolve("parent/broken")
	_, nometaMeta := resolve("parent/nometa")
	innerTree, _ := resolve("parent/gc/inner")
	r.Close()
	if nometaMeta == parentMeta {
		t.Fatal("nometa shares its dirmeta")
	}
	check(t, os.Remove(filepath.Join(rp, "objects", objName(brokenTree.String(), "dirtree"))))
	check(t, os.Remove(filepath.Join(rp, "objects", objName(nometaMeta.String(), "dirmeta"))))
	innerObj := filepath.Join(rp, "objects", objName(innerTree.String(), "dirtree"))
	repotest.FlipByte(t, innerObj, 0)

	mnt := mountRev(t, rp, "plain")
	p := filepath.Join(mnt, "parent")
	res := runTimeout(30*time.Second, "ls", "-la", p)
	for _, name := range []string{"sib1", "sib2", "broken", "nometa", "gc"} {
		if !strings.Contains(res.Stdout, name) {
			t.Errorf("ls -la parent does not list %s:\n%s", name, res)
		}
	}
	if !strings.Contains(res.Stderr, "nometa") || strings.Contains(res.Stderr, "sib") || strings.Contains(res.Stderr, "broken") {
		t.Errorf("ls -la parent: want an error about nometa alone:\n%s", res)
	}
	for name, want := range map[string]string{"sib1": "one\n", "sib2": "two\n"} {
		if b, err := os.ReadFile(filepath.Join(p, name)); err != nil || string(b) != want {
			t.Errorf("sibling %s: %q, %v", name, b, err)
		}
	}
	// broken/: stat works, link count 1 (not counted), listing is EIO.
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(p, "broken"), &st); err != nil || st.Nlink != 1 || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("stat broken: nlink %d mode %o, %v; want a directory with nlink 1", st.Nlink, st.Mode, err)
	}
	eio := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: %v, want EIO", what, err)
		}
	}
	_, err = os.ReadDir(filepath.Join(p, "broken"))
	eio("readdir broken", err)
	_, err = os.Lstat(filepath.Join(p, "broken/only-here"))
	eio("stat broken/only-here", err)
	// nometa/: listed, its own stat is EIO.
	_, err = os.Lstat(filepath.Join(p, "nometa"))
	eio("stat nometa", err)
	// gc/inner: listed in an intact gc, its listing is EIO.
	ents, err := os.ReadDir(filepath.Join(p, "gc"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "inner" {
		t.Errorf("readdir gc: %v, %v", ents, err)
	}
	_, err = os.ReadDir(filepath.Join(p, "gc/inner"))
	eio("readdir gc/inner", err)
	// find walks around the damage and reports it: broken/'s link count
	// 1 makes fts look at every entry rather than assume a leaf.
	res = runTimeout(30*time.Second, "find", p)
	for _, want := range []string{"parent/sib1", "parent/gc/inner", "parent/broken"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("find does not reach %s:\n%s", want, res)
		}
	}
	for _, want := range []string{"broken", "nometa", "inner"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("find does not report the damage of %s:\n%s", want, res)
		}
	}
	t.Logf("find:\n%s", res.Stderr)
}

// fifoLayout copies the synthetic image's layout and replaces the base
// layer blob of its image with a FIFO; it returns the source and the
// FIFO's path.
func fifoLayout(t *testing.T) (src, fifo string) {
	_, orig := syntheticSource(t)
	layout := strings.TrimSuffix(strings.TrimPrefix(orig, "oci:"), ":layer4")
	dst := filepath.Join(t.TempDir(), "img")
	mustRun(t, "cp", "-a", layout, dst)
	blob := firstLayerBlob(t, dst, "layer4")
	check(t, os.Remove(blob))
	check(t, syscall.Mkfifo(blob, 0o644))
	return "oci:" + dst + ":layer4", blob
}

// firstLayerBlob returns the path of the base layer blob of tag in an OCI
// layout.
func firstLayerBlob(t *testing.T, dir, tag string) string {
	t.Helper()
	blob := func(d string) string { return filepath.Join(dir, "blobs/sha256", strings.TrimPrefix(d, "sha256:")) }
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	check(t, err)
	check(t, json.Unmarshal(b, &index))
	for _, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != tag {
			continue
		}
		var man struct{ Layers []struct{ Digest string } }
		b, err := os.ReadFile(blob(m.Digest))
		check(t, err)
		check(t, json.Unmarshal(b, &man))
		return blob(man.Layers[0].Digest)
	}
	t.Fatalf("no tag %s in %s", tag, dir)
	return ""
}

// checkNothingLeft: no ref named ref, no staging directory, the lock free
// (prune runs at once) and fsck clean.
func checkNothingLeft(t *testing.T, rp, ref string) {
	t.Helper()
	if r := omRun("--repo", rp, "rev-parse", ref); r.Code == 0 {
		t.Errorf("the failed import left ref %s", ref)
	}
	if m, _ := filepath.Glob(filepath.Join(rp, "tmp", "staging-*")); len(m) > 0 {
		t.Errorf("staging directories left: %v", m)
	}
	check(t, setConfigKey(rp, "core", "lock-timeout-secs", "1"))
	if r := runTimeout(30*time.Second, binary, "--repo", rp, "prune"); r.Code != 0 {
		t.Errorf("prune after the failed import:\n%s", r)
	}
	if r := runTimeout(60*time.Second, binary, "--repo", rp, "fsck"); r.Code != 0 {
		t.Errorf("ostree-mount fsck:\n%s", r)
	}
	if r := runTimeout(60*time.Second, "ostree", "fsck", "--repo="+rp); r.Code != 0 {
		t.Errorf("ostree fsck:\n%s", r)
	}
}

// TestImportFIFOBlobRefused: a layer blob that is a FIFO fails the
// import at once, naming the blob, and leaves nothing behind.
func TestImportFIFOBlobRefused(t *testing.T) {
	src, fifo := fifoLayout(t)
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	res := runTimeout(30*time.Second, binary, "--repo", rp, "import", "-q", "--ref", "fifo", src)
	if res.Code <= 0 || !strings.Contains(res.Stderr, filepath.Base(fifo)) || !strings.Contains(res.Stderr, "not a regular file") {
		t.Fatalf("import of a layout whose blob is a FIFO: want a prompt failure naming it:\n%s", res)
	}
	checkNothingLeft(t, rp, "fifo")
}

// TestImportSIGTERMWaitingForLock: an import waiting for the repository
// lock stops on SIGTERM, promptly and non-zero, and leaves nothing.
func TestImportSIGTERMWaitingForLock(t *testing.T) {
	_, src := syntheticSource(t)
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	check(t, setConfigKey(rp, "core", "lock-timeout-secs", "-1"))
	r, err := repo.Open(rp)
	check(t, err)
	unlock, err := r.Lock(context.Background(), repo.LockExclusive)
	check(t, err)
	cmd := exec.Command(binary, "--repo", rp, "import", "-q", "--ref", "img", src)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	check(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	lockPath := filepath.Join(rp, ".lock")
	waitFor(t, 30*time.Second, "the import to wait for the lock", func() bool {
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "fd", fd.Name())); l == lockPath {
				return true
			}
		}
		return false
	})
	check(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the import did not exit within 15 s of SIGTERM:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 || !strings.Contains(stderr.String(), "terminated") {
		t.Errorf("the import after SIGTERM: %v, want a non-zero exit saying why:\n%s", err, stderr.String())
	}
	unlock()
	r.Close()
	checkNothingLeft(t, rp, "img")
}

// TestServeSocketSafety: serve refuses a regular file at its socket path
// (left untouched) and a socket that a service accepts on.
func TestServeSocketSafety(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	check(t, os.WriteFile(file, []byte("precious"), 0o644))
	for _, how := range []string{"flag", "env"} {
		args := []string{"serve"}
		env := os.Environ()
		if how == "flag" {
			args = append(args, "--socket", file)
		} else {
			env = append(env, "OSTREE_MOUNT_SOCKET="+file)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "not a socket") {
			t.Errorf("serve on a regular file (%s): %v\n%s", how, err, out)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
			t.Fatalf("serve (%s) replaced the regular file: %q, %v", how, b, err)
		}
	}
	live := filepath.Join(dir, "live")
	ln, err := net.Listen("unix", live)
	check(t, err)
	defer ln.Close()
	if r := runTimeout(30*time.Second, binary, "serve", "--socket", live); r.Code <= 0 || !strings.Contains(r.Stderr, "already served") {
		t.Errorf("serve on a live socket:\n%s", r)
	}
}

// TestMountCacheSizeOverflow: a --cache-size that overflows, or exceeds
// the machine's memory, fails the mount command, naming the flag, and
// leaves no mount.
func TestMountCacheSizeOverflow(t *testing.T) {
	_, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	for _, size := range []string{"17179869184G", "8589934591G"} {
		mnt := newMountpoint(t)
		cleanupMount(t, mnt, "")
		res := runTimeout(60*time.Second, binary, "--repo", rp, "mount", "--cache-size", size, "img", mnt)
		checkFailed(t, res, mnt, "--cache-size")
	}
}

// TestUmountRefusesForeignMount: umount leaves a tmpfs alone.
func TestUmountRefusesForeignMount(t *testing.T) {
	mnt := newMountpoint(t)
	mustRun(t, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt)
	defer run("umount", "-l", mnt)
	res := runTimeout(30*time.Second, binary, "umount", mnt)
	if res.Code <= 0 || !strings.Contains(res.Stderr, "not an ostree-mount mount") {
		t.Errorf("umount of a tmpfs:\n%s", res)
	}
	if m := mountedAt(t, mnt); len(m) != 1 || m[0].FSType != "tmpfs" {
		t.Errorf("the tmpfs at %s is gone: %v", mnt, m)
	}
}

// TestDefaultLogsDistinct: the daemons of /x-y and /x/y log to different
// default files.
func TestDefaultLogsDistinct(t *testing.T) {
	_, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	base := t.TempDir()
	a, b := filepath.Join(base, "x-y"), filepath.Join(base, "x", "y")
	check(t, os.MkdirAll(a, 0o755))
	check(t, os.MkdirAll(b, 0o755))
	var logs []string
	for _, mnt := range []string{a, b} {
		cleanupMount(t, mnt, "")
		om(t, "--repo", rp, "mount", "img", mnt)
		pid := daemonPid(t, mnt)
		l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", "2"))
		check(t, err)
		logs = append(logs, l)
	}
	if logs[0] == logs[1] {
		t.Errorf("the daemons of %s and %s share the log %s", a, b, logs[0])
	}
	for _, l := range logs {
		if filepath.Dir(l) != "/run/ostree-mount" {
			t.Errorf("log %s not under /run/ostree-mount", l)
		}
	}
}
