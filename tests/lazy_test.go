package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// lazyClient makes a bare-user repository with remote origin at url and a
// short request timeout, so that a server that is gone fails reads fast.
func lazyClient(t testing.TB, url string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lazy-client")
	om(t, "init", "--repo", p, "--mode", "bare-user")
	om(t, "remote", "add", "--repo", p, "--no-gpg-verify", "--set=ostree-mount-timeout=2s", "origin", url)
	return p
}

// lsChecksums maps the paths of ostree ls -R -C of rev to checksums.
func lsChecksums(t testing.TB, repoPath, rev string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`^-\S+ \d+ \d+ +\d+ ([0-9a-f]{64}) (/.*)$`)
	for _, l := range strings.Split(ostreeCmd(t, "ls", "--repo="+repoPath, "-R", "-C", rev), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			out[m[2]] = m[1]
		}
	}
	return out
}

func hasFileObject(repoPath, sum string) bool {
	_, err := os.Lstat(filepath.Join(repoPath, "objects", sum[:2], sum[2:]+".file"))
	return err == nil
}

// A lazy mount of an archive repository that ostree wrote, served by
// nginx, is what ostree checks out; the commit is marked partial, and
// ostree fsck passes on the client.
func TestLazyMountTheirs(t *testing.T) {
	src := theirArchive(t)
	ng := startNginx(t, src, nginxOptions{})
	cl := lazyClient(t, ng.URL)
	mnt := mountRev(t, cl, "origin:main")
	sum := strings.TrimSpace(ostreeCmd(t, "rev-parse", "--repo="+src, "main"))
	if _, err := os.Stat(filepath.Join(cl, "state", sum+".commitpartial")); err != nil {
		t.Errorf("lazily mounted commit not marked partial: %v", err)
	}
	if got := strings.TrimSpace(ostreeCmd(t, "rev-parse", "--repo="+cl, "origin:main")); got != sum {
		t.Errorf("refs/remotes/origin/main = %s, want %s", got, sum)
	}
	// Partial: ostree fsck does not count what is not fetched yet, and
	// prune keeps what was fetched without failing on the rest.
	if b, err := os.ReadFile(filepath.Join(mnt, "one")); err != nil || string(b) != "1" {
		t.Fatalf("one: %q, %v", b, err)
	}
	ostreeCmd(t, "fsck", "--repo="+cl)
	om(t, "prune", "--repo", cl)
	if one := lsChecksums(t, src, "main")["/one"]; !hasFileObject(cl, one) {
		t.Error("prune removed a fetched object of the partial commit")
	}
	co := filepath.Join(t.TempDir(), "co")
	ostreeCmd(t, "checkout", "--repo="+src, "main", co)

	// A remote that wants signatures refuses the unsigned commit before
	// anything is stored or mounted.
	om(t, "remote", "add", "--repo", cl, "signed", ng.URL)
	smnt := newMountpoint(t)
	cleanupMount(t, smnt, "")
	r := omFail(t, "--repo", cl, "mount", "signed:main", smnt)
	if msg := strings.TrimSpace(r.Stderr); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "signed") {
		t.Errorf("mount of an unsigned commit from a verifying remote: want one line naming the remote, got %q", msg)
	}
	if len(mountedAt(t, smnt)) != 0 {
		t.Error("the refused commit was mounted")
	}
	if r := ostreeRun("rev-parse", "--repo="+cl, "signed:main"); r.Code == 0 {
		t.Errorf("refs/remotes/signed/main set for a refused commit: %s", r.Stdout)
	}
	opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
	checkTreesEqual(t, "lazy mount vs ostree checkout", dumpTree(t, co, opts), dumpTree(t, mnt, opts))
	ostreeCmd(t, "fsck", "--repo="+cl)
	// The comparison read every file: once unmounted, the commit is
	// complete and no longer marked partial, as after a pull, and real
	// ostree checks it whole.
	unmount(t, mnt)
	if _, err := os.Stat(filepath.Join(cl, "state", sum+".commitpartial")); !os.IsNotExist(err) {
		t.Errorf("a lazily mounted commit fetched whole is still marked partial (%v)", err)
	}
	ostreeCmd(t, "fsck", "--repo="+cl)
	ostreeCmd(t, "checkout", "--repo="+cl, "origin:main", filepath.Join(t.TempDir(), "co2"))
}

// nginx stopped mid-use: reading a file not fetched yet fails with EIO
// within the remote's timeout, the mount serves what it has, and once
// nginx is back the same read succeeds. A tampered object on the server
// is never served nor stored.
func TestLazyMountFaults(t *testing.T) {
	served := copyRepo(t, theirArchive(t))
	sums := lsChecksums(t, served, "main")
	// Tamper with xdir/f: another valid object in its place.
	tampered := filepath.Join(served, "objects", sums["/xdir/f"][:2], sums["/xdir/f"][2:]+".filez")
	other, err := os.ReadFile(filepath.Join(served, "objects", sums["/one"][:2], sums["/one"][2:]+".filez"))
	check(t, err)
	check(t, os.Chmod(tampered, 0o644))
	check(t, os.WriteFile(tampered, other, 0o644))

	ng := startNginx(t, served, nginxOptions{})
	cl := lazyClient(t, ng.URL)
	mnt := newMountpoint(t)
	logPath := mountAt(t, cl, "origin:main", mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "one")); err != nil || string(b) != "1" {
		t.Fatalf("one: %q, %v", b, err)
	}

	t.Run("tampered", func(t *testing.T) {
		r := runTimeout(time.Minute, "cat", filepath.Join(mnt, "xdir/f"))
		if r.Code == 0 || !strings.Contains(r.Stderr, "Input/output error") {
			t.Errorf("reading a tampered object: %s", r)
		}
		if hasFileObject(cl, sums["/xdir/f"]) {
			t.Error("the tampered object was stored")
		}
		url := ng.URL + "/objects/" + sums["/xdir/f"][:2] + "/" + sums["/xdir/f"][2:] + ".filez"
		if log := readLog(logPath); !strings.Contains(log, url) || !strings.Contains(log, sums["/xdir/f"]) {
			t.Errorf("the log does not name the object and its URL %s:\n%s", url, log)
		}
	})

	t.Run("server-stopped", func(t *testing.T) {
		ng.Stop()
		deep := "/a/b/c/d/deep.txt"
		if hasFileObject(cl, sums[deep]) {
			t.Fatalf("%s already fetched: the test needs an unfetched file", deep)
		}
		start := time.Now()
		r := runTimeout(time.Minute, "cat", filepath.Join(mnt, deep))
		if r.Code == 0 || !strings.Contains(r.Stderr, "Input/output error") {
			t.Errorf("reading an unfetched file with nginx stopped: %s", r)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("the failed read took %s", d)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "one")); err != nil || string(b) != "1" {
			t.Errorf("one, with nginx stopped: %q, %v", b, err)
		}
		if len(mountedAt(t, mnt)) == 0 {
			t.Fatal("the mount went away")
		}
		ng.Start(t)
		if b, err := os.ReadFile(filepath.Join(mnt, deep)); err != nil || string(b) != "deep\n" {
			t.Errorf("%s with nginx back: %q, %v", deep, b, err)
		}
	})
	unmount(t, mnt)
	ostreeCmd(t, "fsck", "--repo="+cl)
}

// A lazily mounted image (imported by ostree-mount into an archive
// repository served by nginx) is umoci's unpack; a chroot into it runs a
// shell while fetching a small part of the image; after umount, with
// nginx stopped, it mounts again and reads whole from the local
// repository, and ostree fsck passes.
func TestLazyMountImage(t *testing.T) {
	deb := debImage(t)
	dir := t.TempDir()
	srv := initImageRepo(t, dir, "srv", "archive")
	importImage(t, srv, "--ref", "deb", "oci:"+deb.Layout+":final")
	om(t, "summary", "-u", "--repo", srv)
	size := int64(0)
	check(t, filepath.Walk(filepath.Join(srv, "objects"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return err
	}))
	ng := startNginx(t, srv, nginxOptions{})
	cl := lazyClient(t, ng.URL)
	// The short form.
	mnt := newMountpoint(t)
	cleanupMount(t, mnt, "")
	mustRun(t, binary, "--repo", cl, "origin:deb", mnt)
	start := time.Now()
	r := mustRunWithin(t, time.Minute, "chroot", mnt, "/bin/sh", "-c", "ls / && id")
	elapsed := time.Since(start)
	if !strings.Contains(r.Stdout, "usr\n") || !strings.Contains(r.Stdout, "uid=0(root)") {
		t.Errorf("chroot ls / && id: unexpected output:\n%s", r.Stdout)
	}
	fetched, reqs := ng.Bytes(t)
	t.Logf("chroot /bin/sh -c 'ls / && id': %s, %d requests, %d bytes fetched (mount included) of %d in the served repository (%.1f %%)",
		elapsed.Round(time.Millisecond), reqs, fetched, size, 100*float64(fetched)/float64(size))
	// Composing a directory takes its files' attributes from the layer's
	// metadata index, so only what the shell runs is fetched: its
	// binaries and libraries, the directories on its paths, the indexes.
	if fetched*10 > size {
		t.Errorf("the shell fetched %d of %d bytes (%.1f %%), more than 10 %%", fetched, size, 100*float64(fetched)/float64(size))
	}
	opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
	want := dumpTree(t, deb.Ref, opts)
	checkTreesEqual(t, "lazy mount vs umoci unpack", want, dumpTree(t, mnt, opts))
	unmount(t, mnt)

	ng.Stop()
	mnt2 := mountRev(t, cl, "origin:deb")
	checkTreesEqual(t, "remount with nginx stopped vs umoci unpack", want, dumpTree(t, mnt2, opts))
	unmount(t, mnt2)
	ostreeCmd(t, "fsck", "--repo="+cl)
}
