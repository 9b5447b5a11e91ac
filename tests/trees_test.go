package tests

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo/repotest"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// ts is the commit timestamp of every test commit but the second t2.
const ts = "--timestamp=2020-01-01T00:00:00Z"

// ignoreXattrs are left out of every tree comparison: a stray
// security.selinux on the host must not fail the tests.
var ignoreXattrs = []string{"security.selinux"}

// The four repository modes, as `init --mode` spells them.
var allModes = []string{"bare", "bare-user", "bare-user-only", "archive"}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// treeBuilder creates entries with exact metadata: ownership is set
// before the mode, since chown clears setuid and setgid.
type treeBuilder struct {
	t    testing.TB
	root string
}

func (b treeBuilder) p(rel string) string { return filepath.Join(b.root, rel) }

func (b treeBuilder) dir(rel string, perm uint32) {
	b.t.Helper()
	check(b.t, os.MkdirAll(b.p(rel), 0o755))
	check(b.t, unix.Chmod(b.p(rel), perm))
}

func (b treeBuilder) file(rel string, content []byte, perm uint32) {
	b.t.Helper()
	check(b.t, os.WriteFile(b.p(rel), content, 0o600))
	check(b.t, unix.Chmod(b.p(rel), perm))
}

func (b treeBuilder) owned(rel string, uid, gid int, perm uint32) {
	b.t.Helper()
	check(b.t, os.Lchown(b.p(rel), uid, gid))
	check(b.t, unix.Chmod(b.p(rel), perm))
}

func (b treeBuilder) symlink(rel, target string) {
	b.t.Helper()
	check(b.t, os.Symlink(target, b.p(rel)))
}

func (b treeBuilder) xattr(rel, name string, value []byte) {
	b.t.Helper()
	check(b.t, unix.Lsetxattr(b.p(rel), name, value, 0))
}

// richTree creates dir/rich: every kind of entry a commit can hold, with
// sizes from 0 to over 1 MiB, exec, setuid, setgid and sticky bits,
// relative, absolute and dangling symlinks, nested and read-only
// directories, non-root owners, and xattrs on files, directories and a
// symlink (trusted.*, since Linux allows no user.* on symlinks).
func richTree(t testing.TB, dir string) string {
	t.Helper()
	b := treeBuilder{t, filepath.Join(dir, "rich")}
	b.dir(".", 0o755)
	b.file("empty", nil, 0o644)
	b.file("one", []byte("1"), 0o644)
	b.file("4k.bin", randBytes(1, 4096), 0o600)
	b.file("64k.bin", randBytes(2, 65537), 0o444)
	big := append(randBytes(3, 800<<10), bytes.Repeat([]byte("compressible text line\n"), 35000)...)
	b.file("big.bin", big, 0o644) // about 1.57 MiB
	b.file("run.sh", []byte("#!/bin/sh\necho run\n"), 0o755)
	b.file("private.sh", []byte("#!/bin/sh\necho private\n"), 0o700)
	b.file("noperm", []byte("no permissions\n"), 0o000)
	b.file("suid", []byte("setuid\n"), 0o4755)
	b.file("sgid", []byte("setgid\n"), 0o644)
	b.owned("sgid", 1000, 1001, 0o2711)
	b.file("sp ace", []byte("space\n"), 0o644)
	b.file("é", []byte("utf-8\n"), 0o644)
	b.file(".hidden", nil, 0o600)
	b.file("-dash", []byte("dash\n"), 0o644)
	b.file("hl1", []byte("hardlinked\n"), 0o644)
	check(t, os.Link(b.p("hl1"), b.p("hl2")))
	b.file("dup1", []byte("duplicate\n"), 0o644)
	b.file("dup2", []byte("duplicate\n"), 0o644)
	b.file("xfile", []byte("xattrs\n"), 0o640)
	b.xattr("xfile", "user.foo", []byte("bar"))
	b.xattr("xfile", "user.bin", []byte{0, 1, 0xff})
	b.xattr("xfile", "user.empty", nil) // ostree drops empty values
	b.xattr("xfile", "trusted.t", []byte("trusted"))

	b.dir("sticky", 0o755)
	b.file("sticky/f", []byte("in sticky\n"), 0o666)
	b.owned("sticky", 0, 0, 0o1777)
	b.dir("sgid-dir", 0o755)
	b.file("sgid-dir/f", []byte("in sgid dir\n"), 0o644)
	b.owned("sgid-dir", 0, 1001, 0o2775)
	b.dir("xdir", 0o755)
	b.file("xdir/f", []byte("in xdir\n"), 0o644)
	b.xattr("xdir", "user.d", []byte("dir"))
	b.xattr("xdir", "user.z", bytes.Repeat([]byte{0xaa}, 300))
	b.dir("owned", 0o755)
	b.file("owned/f", []byte("owned\n"), 0o644)
	b.owned("owned/f", 1000, 1001, 0o640)
	b.symlink("owned/lnk", "f")
	check(t, os.Lchown(b.p("owned/lnk"), 42, 43))
	b.owned("owned", 1234, 5678, 0o750)
	b.dir("a/b/c/d", 0o755)
	b.file("a/b/c/d/deep.txt", []byte("deep\n"), 0o644)
	b.file("a/b/mid.txt", []byte("mid\n"), 0o644)
	check(t, unix.Chmod(b.p("a/b/c/d"), 0o700))
	b.dir("empty-dir", 0o755)
	b.dir("links", 0o755)
	b.symlink("links/rel", "../one")
	b.symlink("links/abs", "/etc/passwd")
	b.symlink("links/dangling", "does/not/exist")
	b.symlink("links/dir", "../a/b")
	b.symlink("links/x", "../xfile")
	b.xattr("links/x", "trusted.sym", []byte("on a symlink"))
	b.symlink("links/long", strings.Repeat("long/", 50)+"end")
	b.dir("ro-dir", 0o755)
	b.file("ro-dir/f", []byte("read-only dir\n"), 0o444)
	check(t, unix.Chmod(b.p("ro-dir"), 0o555))
	check(t, unix.Chmod(b.root, 0o755))
	return b.root
}

// dropEmptyXattrs is the xattr filtering every ostree commit does.
func dropEmptyXattrs(e *treecmp.Entry) bool {
	xs := e.Xattrs[:0]
	for _, x := range e.Xattrs {
		if len(x.Value) > 0 {
			xs = append(xs, x)
		}
	}
	e.Xattrs = xs
	return true
}

// expectedCheckout dumps a source tree as ostree's default checkout of
// its commit, as root, in the given mode looks: empty xattrs dropped, and
// in bare-user-only canonical permissions and u+r on files.
func expectedCheckout(t testing.TB, src, mode string) []string {
	t.Helper()
	rw := dropEmptyXattrs
	if mode == "bare-user-only" {
		// Canonical permissions; and ostree checks bare-user-only
		// repositories out in user mode, which gives u+r to files
		// without it (format document §7).
		rw = func(e *treecmp.Entry) bool {
			treecmp.Canonical(e)
			if e.Type == 'f' {
				e.Perm |= 0o400
			}
			return true
		}
	}
	return dumpTree(t, src, treecmp.Options{IgnoreXattrs: ignoreXattrs, Rewrite: rw})
}

// objNameRE is a complete object's name under objects/.
var objNameRE = regexp.MustCompile(`^[0-9a-f]{2}/[0-9a-f]{62}\.(file|filez|dirtree|dirmeta|commit|commitmeta|tombstone-commit)$`)

// checkObjectNames fails the test for any file under objects/ that is
// not a complete object's name for this mode (a temporary file left by a
// crash, say), and returns the number of objects per extension.
func checkObjectNames(t testing.TB, repoPath, mode string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	objects := filepath.Join(repoPath, "objects")
	err := filepath.WalkDir(objects, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(objects, p)
		if d.IsDir() {
			if rel != "." && !regexp.MustCompile(`^[0-9a-f]{2}$`).MatchString(rel) {
				t.Errorf("unexpected directory objects/%s", rel)
				return fs.SkipDir
			}
			return nil
		}
		if !objNameRE.MatchString(rel) {
			t.Errorf("not an object name: objects/%s", rel)
			return nil
		}
		ext := rel[strings.LastIndexByte(rel, '.')+1:]
		if (ext == "file" && mode == "archive") || (ext == "filez" && mode != "archive") {
			t.Errorf("objects/%s: wrong content object extension for mode %s", rel, mode)
		}
		counts[ext]++
		return nil
	})
	check(t, err)
	return counts
}

// listRefs returns every file under refs/, relative to the repository.
func listRefs(t testing.TB, repoPath string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(repoPath, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(repoPath, p)
			out = append(out, rel)
		}
		return nil
	})
	check(t, err)
	sort.Strings(out)
	return out
}

// stagingDirs returns the names of tmp/staging-* entries (directories
// and their lock files).
func stagingDirs(t testing.TB, repoPath string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(repoPath, "tmp", "staging-*"))
	check(t, err)
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// countStaged counts the objects in the repository's staging
// directories, except those named in skip (a dead run's); entries may
// vanish while it counts.
func countStaged(repoPath string, skip map[string]bool) int {
	dirs, _ := filepath.Glob(filepath.Join(repoPath, "tmp", "staging-*"))
	n := 0
	for _, d := range dirs {
		if skip[filepath.Base(d)] {
			continue
		}
		subs, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, s := range subs {
			if !s.IsDir() {
				continue
			}
			f, err := os.Open(filepath.Join(d, s.Name()))
			if err != nil {
				continue
			}
			names, _ := f.Readdirnames(-1)
			f.Close()
			n += len(names)
		}
	}
	return n
}

// lsColumns splits an `ls -C` line of a directory into its columns:
// type+mode, uid, gid, size, dirtree, dirmeta, path.
func lsColumns(t testing.TB, line string) []string {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 7 {
		t.Fatalf("unexpected ls -C line %q", line)
	}
	return f
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func repoArg(p string) string { return "--repo=" + p }

// vectorCommits lists the format document's recipe commits (§6) of the
// trees repotest.VectorTrees made in dir, with their flags and expected
// checksums, in recipe order.
func vectorCommits(dir string) []struct {
	name string
	args []string
	want string
} {
	return []struct {
		name string
		args []string
		want string
	}{
		{"t1", []string{"-b", "t1", "--tree=dir=" + filepath.Join(dir, "t1"), ts, "--no-bindings", "--canonical-permissions", "-s", "subj t1"},
			"e8e749f94196cc44a4c60ccfbb8cbefeb9f08974890c91c60dac87cc2d90b009"},
		{"t2", []string{"-b", "t2", "--tree=dir=" + filepath.Join(dir, "t2"), ts, "--no-bindings", "--canonical-permissions", "-s", "subj t2"},
			"285178d47d97dee33a4bf6303722495713fdaf63c4d179a64cff775adf7979a9"},
		{"t3", []string{"-b", "t3", "--tree=dir=" + filepath.Join(dir, "t3"), ts, "--no-bindings", "--owner-uid=1000", "--owner-gid=1001", "-s", "subj t3"},
			"3dbe3b612d055e6d8cc971f55878d6baf89591fda0fbfef97aaf56bd1cb2cf3e"},
		{"t5", []string{"-b", "t5", "--tree=dir=" + filepath.Join(dir, "t5"), ts, "--no-bindings", "--canonical-permissions",
			"-s", repotest.T5Subject, "-m", repotest.T5Body},
			"a4378f72546aa01a35e708c99936c37ff4e5e1114b0ccd90b42cf0cec421b869"},
		{"t2 second", []string{"-b", "t2", "--tree=dir=" + filepath.Join(dir, "t2"), "--timestamp=2020-01-02T00:00:00Z", "--canonical-permissions",
			"-s", "second", "-m", "body text", "--add-metadata-string=version=1.0", "--add-metadata=foo=uint32 7",
			"--add-detached-metadata-string=sig=abc"},
			"1b1ff9d7ca773fe85ab95ff87d23410a55b600ab1924e56c2f622c09ee260020"},
	}
}

func prepend(first []string, rest ...string) []string {
	return append(append([]string{}, first...), rest...)
}
