package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// theirArchiveOnce is an archive repository written by real ostree: the
// rich tree as branch main, with a summary. Tests that damage it copy it.
var theirArchiveOnce struct {
	sync.Once
	path string
	err  string
}

func theirArchive(t testing.TB) string {
	t.Helper()
	theirArchiveOnce.Do(func() {
		dir := filepath.Join(workDir, "their-archive")
		tree := richTree(t, filepath.Join(dir, "tree"))
		p := filepath.Join(dir, "repo")
		for _, args := range [][]string{
			{"init", "--repo=" + p, "--mode=archive"},
			{"commit", "--repo=" + p, "-b", "main", "-s", "rich", "--timestamp=2021-01-02T03:04:05Z", tree},
			{"commit", "--repo=" + p, "-b", "other/branch", "-s", "again", tree},
			{"summary", "-u", "--repo=" + p},
		} {
			if r := ostreeRun(args...); r.Code != 0 {
				theirArchiveOnce.err = r.String()
				return
			}
		}
		theirArchiveOnce.path = p
	})
	if theirArchiveOnce.err != "" {
		t.Fatal(theirArchiveOnce.err)
	}
	return theirArchiveOnce.path
}

// copyRepo returns a private copy of a repository.
func copyRepo(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "served")
	mustRun(t, "cp", "-a", src, dst)
	return dst
}

// pullClient makes a repository of the given mode with remote origin.
func pullClient(t testing.TB, mode, url string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "client-"+mode)
	om(t, "init", "--repo", p, "--mode", mode)
	om(t, "remote", "add", "--repo", p, "--no-gpg-verify", "origin", url)
	return p
}

// TestRemoteConfigInterop: the remotes we write are ostree's, and the
// other way round.
func TestRemoteConfigInterop(t *testing.T) {
	rp := filepath.Join(t.TempDir(), "r")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	om(t, "remote", "add", "--repo", rp, "--no-gpg-verify", "--set=foo=bar", "origin", "http://127.0.0.1:1/repo")
	om(t, "remote", "add", "--repo", rp, "signed", "file:///srv/x")
	if got, want := ostreeCmd(t, "remote", "list", "-u", "--repo="+rp), "origin  http://127.0.0.1:1/repo\nsigned  file:///srv/x\n"; got != want {
		t.Errorf("ostree remote list -u of our config:\n%s\nwant:\n%s", got, want)
	}
	if got := ostreeCmd(t, "config", "--repo="+rp, "get", `remote "origin".foo`); got != "bar\n" {
		t.Errorf("ostree reads foo=%q", got)
	}
	if got := ostreeCmd(t, "config", "--repo="+rp, "get", `remote "origin".gpg-verify`); got != "false\n" {
		t.Errorf("ostree reads gpg-verify=%q", got)
	}
	ostreeCmd(t, "remote", "add", "--repo="+rp, "--no-gpg-verify", "--set=branches=a;b;", "theirs", "https://example.com/repo")
	want := ostreeCmd(t, "remote", "list", "-u", "--repo="+rp)
	if got := om(t, "remote", "list", "-u", "--repo", rp); got != want {
		t.Errorf("our remote list -u of ostree's config:\n%s\nwant:\n%s", got, want)
	}
	omFail(t, "remote", "add", "--repo", rp, "theirs", "http://x/")
	om(t, "remote", "add", "--repo", rp, "--if-not-exists", "theirs", "http://x/")
	om(t, "remote", "delete", "--repo", rp, "theirs")
	ostreeCmd(t, "remote", "delete", "--repo="+rp, "origin")
	if got := om(t, "remote", "list", "--repo", rp); got != "signed\n" {
		t.Errorf("after the deletes: %q", got)
	}
	if got := ostreeCmd(t, "remote", "list", "--repo="+rp); got != "signed\n" {
		t.Errorf("ostree after the deletes: %q", got)
	}
	// gpg-verify defaults to true, as in ostree: neither tool writes it
	// for a remote added without --no-gpg-verify (pullsign_test.go shows
	// pull then requiring a signature).
	if r := ostreeRun("config", "--repo="+rp, "get", `remote "signed".gpg-verify`); r.Code == 0 {
		t.Errorf("remote add wrote gpg-verify=%q for a verifying remote; ostree leaves it unset", r.Stdout)
	}
}

var lastModifiedRE = regexp.MustCompile(`('ostree.summary.last-modified': <uint64 )\d+>`)

// TestRemoteOstreePullsOurs: real ostree pulls from a repository that
// ostree-mount wrote and summarized, served by nginx.
func TestRemoteOstreePullsOurs(t *testing.T) {
	dir := t.TempDir()
	srv := initImageRepo(t, dir, "srv", "archive")
	tree := richTree(t, filepath.Join(dir, "tree"))
	om(t, "commit", "--repo", srv, "-b", "plain", "--timestamp=2022-02-03T04:05:06Z", tree)
	syn := syntheticImage(t)
	importImage(t, srv, "--ref", "img", "oci:"+filepath.Join(syn, "img")+":layer4")
	om(t, "summary", "-u", "--repo", srv)
	ours, err := os.ReadFile(filepath.Join(srv, "summary"))
	noErr(t, err)

	// Byte for byte ostree's summary, but for the time it was made.
	oursView := ostreeCmd(t, "summary", "--view", "--raw", "--repo="+srv)
	ostreeCmd(t, "summary", "-u", "--repo="+srv)
	theirsView := ostreeCmd(t, "summary", "--view", "--raw", "--repo="+srv)
	if a, b := lastModifiedRE.ReplaceAllString(oursView, "${1}T>"), lastModifiedRE.ReplaceAllString(theirsView, "${1}T>"); a != b {
		t.Errorf("our summary:\n%s\nostree's:\n%s", oursView, theirsView)
	}
	noErr(t, os.WriteFile(filepath.Join(srv, "summary"), ours, 0o644))
	if got := om(t, "summary", "--view", "--repo", srv); !strings.Contains(got, "* img\n") || !strings.Contains(got, "* plain\n") {
		t.Errorf("summary --view:\n%s", got)
	}

	ng := startNginx(t, srv, nginxOptions{})
	cl := filepath.Join(dir, "client")
	ostreeCmd(t, "init", "--repo="+cl, "--mode=bare-user")
	ostreeCmd(t, "remote", "add", "--repo="+cl, "--no-gpg-verify", "origin", ng.URL)
	if got := ostreeCmd(t, "remote", "refs", "--repo="+cl, "origin"); got != "origin:img\norigin:plain\n" {
		t.Errorf("ostree remote refs: %q", got)
	}
	ostreeCmd(t, "pull", "--repo="+cl, "origin", "plain", "img")
	for _, rel := range relatedEntries(t, srv, "img") {
		ostreeCmd(t, "pull", "--repo="+cl, "origin", rel[1])
	}
	ostreeCmd(t, "fsck", "--repo="+cl)
	if want, got := ostreeCmd(t, "ls", "--repo="+srv, "-R", "-C", "plain"), ostreeCmd(t, "ls", "--repo="+cl, "-R", "-C", "origin:plain"); got != want {
		t.Errorf("ostree ls of the pulled commit:\n%s\nwant:\n%s", got, want)
	}
	// And ostree-mount reads what ostree pulled: the image checks out.
	checkoutEquals(t, cl, "origin:img", filepath.Join(syn, "ref", "rootfs"), dir)

	// ostree-mount pulls the image eagerly: manifest and layer commits.
	for _, mode := range []string{"bare-user", "archive"} {
		ours := pullClient(t, mode, ng.URL)
		before, _ := ng.Bytes(t)
		out := om(t, "pull", "--repo", ours, "origin", "img")
		if !regexp.MustCompile(`^\d+ metadata, \d+ content objects fetched; .* transferred in \d+ seconds\n$`).MatchString(out) {
			t.Errorf("pull printed %q", out)
		}
		after, _ := ng.Bytes(t)
		t.Logf("%s: %s(nginx sent %d bytes)", mode, out, after-before)
		checkoutEquals(t, ours, "origin:img", filepath.Join(syn, "ref", "rootfs"), dir)
		ostreeCmd(t, "fsck", "--repo="+ours)
		if got := om(t, "remote", "refs", "--repo", ours, "origin"); got != "origin:img\norigin:plain\n" {
			t.Errorf("remote refs: %q", got)
		}
	}
}

// TestRemotePullTheirs: ostree-mount pulls an archive repository that
// ostree wrote, served by nginx, into bare-user and bare repositories.
func TestRemotePullTheirs(t *testing.T) {
	src := theirArchive(t)
	ng := startNginx(t, src, nginxOptions{})
	want := ostreeCmd(t, "ls", "--repo="+src, "-R", "-C", "main")
	for _, mode := range []string{"bare-user", "bare"} {
		t.Run(mode, func(t *testing.T) {
			cl := pullClient(t, mode, ng.URL)
			_, n0 := ng.Bytes(t)
			om(t, "pull", "--repo", cl, "origin", "main")
			if got := om(t, "ls", "--repo", cl, "-R", "-C", "origin:main"); got != want {
				t.Errorf("ls -R -C of the pulled commit:\n%s\nwant:\n%s", got, want)
			}
			if got := ostreeCmd(t, "ls", "--repo="+cl, "-R", "-C", "origin:main"); got != want {
				t.Errorf("ostree ls -R -C of the pulled commit:\n%s\nwant:\n%s", got, want)
			}
			ostreeCmd(t, "fsck", "--repo="+cl)
			if got := readRefFile(t, cl, "refs/remotes/origin/main"); got != resolveRev(t, src, "main") {
				t.Errorf("refs/remotes/origin/main = %q", got)
			}
			// All refs of the summary when none is named; objects already
			// local are not fetched again.
			_, n1 := ng.Bytes(t)
			om(t, "pull", "--repo", cl, "origin")
			if got := readRefFile(t, cl, "refs/remotes/origin/other/branch"); got != resolveRev(t, src, "other/branch") {
				t.Errorf("refs/remotes/origin/other/branch = %q", got)
			}
			seen := map[string]bool{}
			for _, r := range ng.Log(t)[n0:] {
				if (strings.HasSuffix(r.Path, ".filez") || strings.HasSuffix(r.Path, ".dirtree")) && seen[r.Path] {
					t.Errorf("%s fetched twice", r.Path)
				}
				seen[r.Path] = true
			}
			t.Logf("first pull: %d requests", n1-n0)
		})
	}
}

// TestRemotePullFile: file:// remotes of bare-user and archive
// repositories.
func TestRemotePullFile(t *testing.T) {
	arch := theirArchive(t)
	want := ostreeCmd(t, "ls", "--repo="+arch, "-R", "-C", "main")
	bu := filepath.Join(t.TempDir(), "bare-user")
	ostreeCmd(t, "init", "--repo="+bu, "--mode=bare-user")
	ostreeCmd(t, "pull-local", "--repo="+bu, arch, "main")
	for name, src := range map[string]string{"archive": arch, "bare-user": bu} {
		t.Run(name, func(t *testing.T) {
			cl := pullClient(t, "bare-user", "file://"+src)
			om(t, "pull", "--repo", cl, "origin", "main")
			if got := om(t, "ls", "--repo", cl, "-R", "-C", "origin:main"); got != want {
				t.Errorf("ls -R -C:\n%s\nwant:\n%s", got, want)
			}
			ostreeCmd(t, "fsck", "--repo="+cl)
		})
	}
}

// noRemoteRefs fails unless the client has no remote refs and no
// commit.
func noRemoteRefs(t testing.TB, cl string) {
	t.Helper()
	if refs := listRefs(t, cl); len(refs) != 0 {
		t.Errorf("refs after a failed pull: %v", refs)
	}
	if n := countExt(repoObjects(t, cl), "commit"); n != 0 {
		t.Errorf("%d commits after a failed pull", n)
	}
	ostreeCmd(t, "fsck", "--repo="+cl)
}

// TestRemoteFaults: a vanished server, a tampered object and an HTML page
// in the place of one make pull fail, naming what failed, leaving nothing.
func TestRemoteFaults(t *testing.T) {
	src := theirArchive(t)
	t.Run("stopped", func(t *testing.T) {
		ng := startNginx(t, src, nginxOptions{})
		cl := pullClient(t, "bare-user", ng.URL)
		ng.Stop()
		start := time.Now()
		r := omFail(t, "pull", "--repo", cl, "origin", "main")
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("pull took %v to fail", d)
		}
		if !strings.Contains(r.Stderr, "connection refused") || !strings.Contains(r.Stderr, "giving up") {
			t.Errorf("pull from a stopped server:\n%s", r)
		}
		noRemoteRefs(t, cl)
		// Back again: the same pull succeeds.
		ng.Start(t)
		om(t, "pull", "--repo", cl, "origin", "main")
		ostreeCmd(t, "fsck", "--repo="+cl)
	})
	t.Run("tampered", func(t *testing.T) {
		served := copyRepo(t, src)
		objs := repoObjects(t, served)
		var victim string
		for _, name := range sortedKeys(objs) {
			if st, err := os.Stat(filepath.Join(served, "objects", name)); err == nil && strings.HasSuffix(name, ".filez") && st.Size() > 200 {
				victim = name
				break
			}
		}
		if victim == "" {
			t.Fatal("no file object to tamper with")
		}
		// Another file object's bytes: a valid .filez that hashes to
		// something else.
		var other string
		for _, name := range sortedKeys(objs) {
			if strings.HasSuffix(name, ".filez") && name != victim {
				other = name
			}
		}
		b, err := os.ReadFile(filepath.Join(served, "objects", other))
		noErr(t, err)
		noErr(t, os.Remove(filepath.Join(served, "objects", victim)))
		noErr(t, os.WriteFile(filepath.Join(served, "objects", victim), b, 0o644))
		ng := startNginx(t, served, nginxOptions{})
		cl := pullClient(t, "bare-user", ng.URL)
		r := omFail(t, "pull", "--repo", cl, "origin", "main")
		sum := strings.ReplaceAll(strings.TrimSuffix(victim, ".filez"), "/", "")
		if !strings.Contains(r.Stderr, sum) || !strings.Contains(r.Stderr, "checksum mismatch") || !strings.Contains(r.Stderr, ng.URL+"/objects/"+victim) {
			t.Errorf("pull of a tampered object:\n%s", r)
		}
		noRemoteRefs(t, cl)
		if _, ok := repoObjects(t, cl)[victim]; ok {
			t.Error("the tampered object was stored")
		}
	})
	t.Run("html", func(t *testing.T) {
		served := copyRepo(t, src)
		// The root dirtree answers a login page with status 200.
		var tree string
		for name := range repoObjects(t, served) {
			if strings.HasSuffix(name, ".dirtree") {
				tree = name
				break
			}
		}
		noErr(t, os.Remove(filepath.Join(served, "objects", tree)))
		noErr(t, os.WriteFile(filepath.Join(served, "objects", tree), []byte("<html><body>Please log in</body></html>\n"), 0o644))
		ng := startNginx(t, served, nginxOptions{})
		cl := pullClient(t, "bare-user", ng.URL)
		r := omFail(t, "pull", "--repo", cl, "origin", "main")
		if !strings.Contains(r.Stderr, ng.URL+"/objects/"+tree) || !strings.Contains(r.Stderr, "checksum mismatch") {
			t.Errorf("pull of an HTML page:\n%s", r)
		}
		noRemoteRefs(t, cl)
	})
}

// TestRemotePullInterrupted: SIGINT and SIGTERM stop a pull that is
// under way (a large file behind limit_rate); it leaves no ref, no
// object and no staging directory.
func TestRemotePullInterrupted(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	noErr(t, os.MkdirAll(filepath.Join(tree, "sub"), 0o755))
	noErr(t, os.WriteFile(filepath.Join(tree, "sub", "small"), []byte("small\n"), 0o644))
	noErr(t, os.WriteFile(filepath.Join(tree, "large"), randBytes(7, 4<<20), 0o644))
	src := filepath.Join(dir, "src")
	ostreeCmd(t, "init", "--repo="+src, "--mode=archive")
	ostreeCmd(t, "commit", "--repo="+src, "-b", "main", tree)
	ng := startNginx(t, src, nginxOptions{LimitRate: "100k"})
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cl := pullClient(t, "bare-user", ng.URL)
			cmd := exec.Command(binary, "pull", "--repo", cl, "origin", "main")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			noErr(t, cmd.Start())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			deadline := time.Now().Add(20 * time.Second)
			for countStaged(cl, nil) == 0 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					<-done
					t.Fatalf("the pull staged nothing in 20s:\n%s", stderr.String())
				}
				select {
				case err := <-done:
					t.Fatalf("the pull ended before it was interrupted: %v\n%s", err, stderr.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			noErr(t, cmd.Process.Signal(sig))
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("interrupted pull succeeded:\n%s", stderr.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the pull did not stop on %v:\n%s", sig, stderr.String())
			}
			if !strings.Contains(stderr.String(), "stopping") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
			noRemoteRefs(t, cl)
			if s := stagingDirs(t, cl); len(s) != 0 {
				t.Errorf("staging directories left: %v", s)
			}
		})
	}
}
