package tests

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// TestVectors commits the format document's recipe (§6) with
// ostree-mount and with ostree, in bare-user and archive repositories:
// both must print the document's checksums, list the document's object
// checksums, and show the second t2 commit's parent and metadata as
// ostree does.
func TestVectors(t *testing.T) {
	for _, mode := range []string{"bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // each mode has its own repositories and directories
			dir := repotest.VectorTrees(t, t.TempDir())
			ours := filepath.Join(t.TempDir(), "ours")
			theirs := filepath.Join(t.TempDir(), "theirs")
			om(t, "init", repoArg(ours), "--mode="+mode)
			ostreeCmd(t, "init", repoArg(theirs), "--mode="+mode)
			for _, c := range vectorCommits(dir) {
				got := strings.TrimSpace(om(t, prepend([]string{"commit", repoArg(ours)}, c.args...)...))
				ref := strings.TrimSpace(ostreeCmd(t, prepend([]string{"commit", repoArg(theirs)}, c.args...)...))
				if ref != c.want {
					t.Errorf("%s: ostree printed %s, the format document says %s: the fixture does not follow the recipe", c.name, ref, c.want)
				}
				if got != c.want {
					t.Errorf("%s: ostree-mount commit printed %q, want %s (ostree: %s)", c.name, got, c.want, ref)
				}
			}

			// The table's object checksums, as listed by ls -C.
			objects := []struct {
				ref, path string
				col       int // 4: dirtree or file checksum, 5: dirmeta
				want      string
			}{
				{"t1", "/", 4, "81ea3e94a64fcb26ef505be1e7fa22c9fc2289eb87053f0e2eae1daf7a1e3257"},
				{"t1", "/", 5, "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"},
				{"t1", "/empty", 4, "cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e"},
				{"t2", "/", 4, "c14f5d86f9d3e38f2432006e7ca289c6e7f924c5714f758482d7adf3bc78b619"},
				{"t2", "/hello.txt", 4, "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"},
				{"t2", "/run.sh", 4, "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5"},
				{"t2", "/link", 4, "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"},
				{"t2", "/sub/a", 4, "e000a47a36168c51fe11770372f3f0f4edacb46eb349d9be2aae027ea0a045f8"},
				{"t2", "/sub", 4, "e6e070c2f676f71057e02bdf2e6e53939935bbc98b8f924752dd7e93fc222b29"},
				{"t3", "/", 4, "441f467b409612190f7fac40dbc4a6c83f6a4e5cfbb103c48c942d0abdd5282f"},
				{"t3", "/", 5, "c66d4eb0e9a1640a3dae0f494d9965571be0b3154c1d6c66815fdb98d39e1209"},
				{"t3", "/xf", 4, "abbc836f1e4dff0a67bced58de80f33d145520da889840f5b75f2139193ec012"},
				{"t5", "/", 4, "43daef05d293944e6816b6ff48e125cf8ed763babe295373004ece1fbae8a730"},
			}
			for _, o := range objects {
				f := strings.Fields(firstLine(om(t, "ls", repoArg(ours), "-C", o.ref, o.path)))
				if len(f) <= o.col || f[o.col] != o.want {
					t.Errorf("ostree-mount ls -C %s %s: column %d of %q, want %s", o.ref, o.path, o.col, f, o.want)
				}
			}
			// Whole listings: ours as we and ostree see it, theirs as ostree does.
			for _, ref := range []string{"t1", "t2", "t3", "t5"} {
				want := ostreeCmd(t, "ls", repoArg(theirs), "-R", "-C", "-X", ref)
				if got := om(t, "ls", repoArg(ours), "-R", "-C", "-X", ref); got != want {
					t.Errorf("ls -R -C -X %s: ostree-mount on its repository:\n%s\nostree on its own:\n%s", ref, got, want)
				}
				if got := ostreeCmd(t, "ls", repoArg(ours), "-R", "-C", "-X", ref); got != want {
					t.Errorf("ls -R -C -X %s: ostree on our repository:\n%s\nostree on its own:\n%s", ref, got, want)
				}
			}
			if r := ostreeRun("fsck", repoArg(ours)); r.Code != 0 {
				t.Errorf("ostree fsck of our repository:\n%s", r)
			}

			// show and log of the second t2 commit.
			const parent = "285178d47d97dee33a4bf6303722495713fdaf63c4d179a64cff775adf7979a9"
			show := om(t, "show", repoArg(ours), "t2")
			if !strings.Contains(show, "\nParent:  "+parent+"\n") {
				t.Errorf("ostree-mount show t2 has no 'Parent:  %s' line:\n%s", parent, show)
			}
			// Every line of ostree's show is in ours, in order (ours adds
			// the metadata lines).
			ostreeShow := strings.Split(ostreeCmd(t, "show", repoArg(theirs), "t2"), "\n")
			ourShow := strings.Split(show, "\n")
			j := 0
			for _, l := range ourShow {
				if j < len(ostreeShow) && l == ostreeShow[j] {
					j++
				}
			}
			if j != len(ostreeShow) {
				t.Errorf("ostree-mount show t2 lacks line %q of ostree's show.\nours:\n%s\nostree:\n%s", ostreeShow[j], show, strings.Join(ostreeShow, "\n"))
			}
			if got, want := om(t, "log", repoArg(ours), "t2"), ostreeCmd(t, "log", repoArg(theirs), "t2"); got != want {
				t.Errorf("log t2: ostree-mount:\n%s\nostree:\n%s", got, want)
			}
			keys := []struct{ flag, key, want string }{
				{"--print-metadata-key", "version", "'1.0'"},
				{"--print-metadata-key", "foo", "uint32 7"},
				{"--print-metadata-key", "ostree.ref-binding", "['t2']"},
				{"--print-detached-metadata-key", "sig", "'abc'"},
			}
			for _, k := range keys {
				got := om(t, "show", repoArg(ours), k.flag+"="+k.key, "t2")
				if got != k.want+"\n" {
					t.Errorf("ostree-mount show %s=%s t2 = %q, want %q", k.flag, k.key, got, k.want+"\n")
				}
				// -B: ostree prints the stored (little-endian) values.
				if o := ostreeCmd(t, "show", repoArg(ours), "-B", k.flag+"="+k.key, "t2"); o != got {
					t.Errorf("show %s=%s t2: ostree-mount %q, ostree -B %q", k.flag, k.key, got, o)
				}
			}
			if r := omFail(t, "show", repoArg(ours), "--print-metadata-key=nope", "t2"); !strings.Contains(r.Stderr, "nope") {
				t.Errorf("show of a missing key: the error does not name it:\n%s", r)
			}
			if show := om(t, "show", repoArg(ours), parent); strings.Contains(show, "Parent:") {
				t.Errorf("the first t2 commit has no parent, but show says:\n%s", show)
			}
		})
	}
	// bare-user-only canonicalizes t3 (§6, after the table).
	t.Run("bare-user-only-t3", func(t *testing.T) {
		t.Parallel()
		dir := repotest.VectorTrees(t, t.TempDir())
		ours := filepath.Join(t.TempDir(), "ours")
		theirs := filepath.Join(t.TempDir(), "theirs")
		om(t, "init", repoArg(ours), "--mode=bare-user-only")
		ostreeCmd(t, "init", repoArg(theirs), "--mode=bare-user-only")
		const want = "2791dfca7a3f027d52ea9478a2e992bb3d1a98f7fa9e7ab6a615b2d01f5f78eb"
		t3 := vectorCommits(dir)[2]
		got := strings.TrimSpace(om(t, prepend([]string{"commit", repoArg(ours)}, t3.args...)...))
		ref := strings.TrimSpace(ostreeCmd(t, prepend([]string{"commit", repoArg(theirs)}, t3.args...)...))
		if got != want || ref != want {
			t.Errorf("t3 in bare-user-only: ostree-mount %s, ostree %s, want %s", got, ref, want)
		}
	})
}

// TestWritesPassOstree commits the rich tree with ostree-mount in every
// mode, without --canonical-permissions: ostree fsck accepts the
// repository, ostree commit of the same tree gives the same checksum, and
// ostree's checkout of our commit is the source tree (as far as the mode
// preserves it).
func TestWritesPassOstree(t *testing.T) {
	src := richTree(t, t.TempDir())
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // each mode has its own repositories and directories
			ours := filepath.Join(t.TempDir(), "ours")
			theirs := filepath.Join(t.TempDir(), "theirs")
			om(t, "init", repoArg(ours), "--mode="+mode)
			ostreeCmd(t, "init", repoArg(theirs), "--mode="+mode)
			args := []string{"-b", "rich", "--tree=dir=" + src, ts, "-s", "rich tree", "-m", "every kind of entry"}
			sum := strings.TrimSpace(om(t, prepend([]string{"commit", repoArg(ours)}, args...)...))
			if r := ostreeRun("fsck", repoArg(ours)); r.Code != 0 {
				t.Errorf("ostree fsck of our %s repository failed:\n%s", mode, r)
			}
			want := strings.TrimSpace(ostreeCmd(t, prepend([]string{"commit", repoArg(theirs)}, args...)...))
			if sum != want {
				a := strings.Split(ostreeCmd(t, "ls", repoArg(theirs), "-R", "-C", "-X", "rich"), "\n")
				b := strings.Split(ostreeCmd(t, "ls", repoArg(ours), "-R", "-C", "-X", "rich"), "\n")
				t.Errorf("commit checksum: ostree-mount %s, ostree %s; ostree ls -R -C -X (- ostree's commit, + ours):\n%s", sum, want, treecmp.Diff(a, b))
			}
			checkObjectNames(t, ours, mode)
			co := filepath.Join(t.TempDir(), "co")
			ostreeCmd(t, "checkout", repoArg(ours), "rich", co)
			got := dumpTree(t, co, treecmp.Options{IgnoreXattrs: ignoreXattrs})
			checkTreesEqual(t, "ostree checkout of our "+mode+" commit vs the source tree", expectedCheckout(t, src, mode), got)
		})
	}
}

// sameOutput runs ostree-mount and ostree with the same arguments after
// the repository and fails the test unless both succeed with the same
// stdout.
func sameOutput(t *testing.T, repoPath string, cmd string, args ...string) {
	t.Helper()
	a := omRun(prepend([]string{cmd, repoArg(repoPath)}, args...)...)
	b := ostreeRun(prepend([]string{cmd, repoArg(repoPath)}, args...)...)
	switch {
	case b.Code != 0:
		t.Errorf("ostree failed (a bad test case?):\n%s", b)
	case a.Code != 0:
		t.Errorf("ostree-mount failed where ostree did not:\n%s", a)
	case a.Stdout != b.Stdout:
		t.Errorf("%s %s: output differs from ostree's (- ostree, + ostree-mount):\n%s", cmd, quoteArgs(args),
			clip(treecmp.Diff(strings.Split(b.Stdout, "\n"), strings.Split(a.Stdout, "\n")), 6000))
	}
}

// fixtureRepo has ostree init a repository whose only purpose is to be
// read. fsync is off: it does not change what ostree writes, and spares
// the tests syncfs stalls on a busy machine.
func fixtureRepo(t *testing.T, path, mode string) {
	t.Helper()
	ostreeCmd(t, "init", repoArg(path), "--mode="+mode)
	setCoreKey(t, path, "fsync", "false")
}

// catSample are the rich tree's files whose cat output is compared: every
// size and the unusual modes, owners, names and xattrs.
var catSample = []string{"/empty", "/one", "/4k.bin", "/64k.bin", "/big.bin", "/noperm", "/suid", "/sgid",
	"/xfile", "/owned/f", "/é", "/sp ace", "/a/b/c/d/deep.txt", "/ro-dir/f"}

// TestReadOstreeRepos has ostree write the rich tree and the vector trees
// in every mode, and checks that ostree-mount's ls, cat and checkout of
// them agree with ostree's.
func TestReadOstreeRepos(t *testing.T) {
	tmp := t.TempDir()
	src := richTree(t, tmp)
	vdir := repotest.VectorTrees(t, filepath.Join(tmp, "vectors"))
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // each mode has its own repositories and directories
			theirs := filepath.Join(t.TempDir(), "theirs")
			fixtureRepo(t, theirs, mode)
			ostreeCmd(t, "commit", repoArg(theirs), "-b", "rich", "--tree=dir="+src, ts, "-s", "rich tree")
			for _, c := range vectorCommits(vdir) {
				ostreeCmd(t, prepend([]string{"commit", repoArg(theirs)}, c.args...)...)
			}

			// ls, byte for byte.
			for _, flags := range [][]string{{"-R", "-C"}, {"-R", "-C", "-X"}, {"-R"}, {}, {"-X"}} {
				sameOutput(t, theirs, "ls", append(flags, "rich")...)
			}
			for _, ref := range []string{"t1", "t2", "t3", "t5"} {
				sameOutput(t, theirs, "ls", "-R", "-C", "-X", ref)
			}
			for _, args := range [][]string{
				{"rich", "/a"},
				{"-C", "rich", "/a/b"},
				{"rich", "/a/b", "/one", "/links/rel", "/xdir"},
				{"-X", "rich", "/xfile", "/links/x", "/xdir"},
				{"-R", "-C", "rich", "/owned"},
				{"rich", "/sp ace", "/é", "/-dash", "/suid", "/sgid", "/sticky", "/sgid-dir", "/noperm"},
				{"-R", "-X", "rich", "/links"},
				{"t2", "/sub"},
				{"-R", "t2"},
				{"t2", "/sub/a"},
			} {
				sameOutput(t, theirs, "ls", args...)
			}
			if r := omRun("ls", repoArg(theirs), "rich", "/nope"); r.Code == 0 {
				t.Errorf("ls of a missing path succeeded:\n%s", r)
			}

			// checkout: ours against ostree's, and against the source.
			opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
			for _, c := range []struct {
				ref   string
				flags []string
			}{{"rich", nil}, {"rich", []string{"--subpath=/a"}}, {"t2", nil}, {"t3", nil}} {
				d1 := filepath.Join(t.TempDir(), "om")
				d2 := filepath.Join(t.TempDir(), "ostree")
				om(t, prepend(prepend([]string{"checkout", repoArg(theirs)}, c.flags...), c.ref, d1)...)
				ostreeCmd(t, prepend(prepend([]string{"checkout", repoArg(theirs)}, c.flags...), c.ref, d2)...)
				checkTreesEqual(t, fmt.Sprintf("checkout %s %s (- ostree, + ostree-mount)", c.flags, c.ref), dumpTree(t, d2, opts), dumpTree(t, d1, opts))
				if c.ref == "rich" && c.flags == nil {
					checkTreesEqual(t, "ostree-mount checkout of ostree's commit vs the source", expectedCheckout(t, src, mode), dumpTree(t, d1, opts))
				}
			}

			// cat, byte for byte.
			for _, p := range catSample {
				sameOutput(t, theirs, "cat", "rich", p)
			}
			sameOutput(t, theirs, "cat", "t2", "/sub/a")
			if r := omRun("cat", repoArg(theirs), "rich", "/nope"); r.Code == 0 {
				t.Errorf("cat of a missing path succeeded:\n%s", r)
			}
			if r := omRun("cat", repoArg(theirs), "rich", "/a"); r.Code == 0 {
				t.Errorf("cat of a directory succeeded:\n%s", r)
			}

			if r := omRun("fsck", repoArg(theirs)); r.Code != 0 {
				t.Errorf("ostree-mount fsck of ostree's %s repository:\n%s", mode, r)
			}
		})
	}
}

// TestCheckoutUserMode compares ostree-mount checkout -U with ostree
// checkout -U of the rich tree in every mode. ostree hardlinks objects
// where it can, which shows the bare-user object's own mode and
// user.ostreemeta xattr, so its side copies (-C); the metadata ostree
// gives a copy is what -U means: no chown, no xattrs, setuid and setgid
// dropped from files (directories keep setgid), u+r added to files
// without it.
func TestCheckoutUserMode(t *testing.T) {
	src := richTree(t, t.TempDir())
	opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // each mode has its own repositories and directories
			theirs := filepath.Join(t.TempDir(), "theirs")
			fixtureRepo(t, theirs, mode)
			ostreeCmd(t, "commit", repoArg(theirs), "-b", "rich", "--tree=dir="+src, ts, "-s", "rich tree")
			for _, sub := range []string{"", "--subpath=/owned"} {
				d1 := filepath.Join(t.TempDir(), "om")
				d2 := filepath.Join(t.TempDir(), "ostree")
				a1 := []string{"checkout", repoArg(theirs), "-U"}
				a2 := []string{"checkout", repoArg(theirs), "-U", "-C"}
				if sub != "" {
					a1, a2 = append(a1, sub), append(a2, sub)
				}
				om(t, append(a1, "rich", d1)...)
				ostreeCmd(t, append(a2, "rich", d2)...)
				checkTreesEqual(t, fmt.Sprintf("checkout -U %s rich (- ostree, + ostree-mount)", strings.TrimSpace(sub+" (whole tree)")), dumpTree(t, d2, opts), dumpTree(t, d1, opts))
			}
		})
	}
}

// TestCatSymlink: ostree cat of a symlink prints the file it points to
// (resolved inside the commit, an absolute target from the commit's
// root); ostree-mount cat must do the same rather than print nothing.
func TestCatSymlink(t *testing.T) {
	src := t.TempDir()
	b := treeBuilder{t, src}
	b.dir("d", 0o755)
	b.file("d/f", []byte("target content\n"), 0o644)
	b.symlink("rel", "d/f")
	b.symlink("abs", "/d/f")
	theirs := filepath.Join(t.TempDir(), "theirs")
	fixtureRepo(t, theirs, "archive")
	ostreeCmd(t, "commit", repoArg(theirs), "-b", "s", "--tree=dir="+src, ts, "-s", "symlinks")
	for _, p := range []string{"/rel", "/abs"} {
		sameOutput(t, theirs, "cat", "s", p)
	}
}

// goCommit caches ostree's checksum of the Go tree commit (the same in
// every mode, since it is committed with --canonical-permissions).
var goCommit struct {
	sync.Mutex
	sum string
}

func goCommitArgs(src string) []string {
	return []string{"-b", "go", "--tree=dir=" + src, "--canonical-permissions", "--no-bindings", ts, "-s", "go tree"}
}

// ostreeGoCommit returns ostree's checksum of the Go tree commit,
// committing it into a scratch bare-user repository if no test did yet.
func ostreeGoCommit(t *testing.T) string {
	t.Helper()
	goCommit.Lock()
	defer goCommit.Unlock()
	if goCommit.sum == "" {
		r := filepath.Join(t.TempDir(), "ostree-go")
		ostreeCmd(t, "init", repoArg(r), "--mode=bare-user")
		goCommit.sum = strings.TrimSpace(ostreeCmd(t, prepend([]string{"commit", repoArg(r)}, goCommitArgs(goTree(t))...)...))
	}
	return goCommit.sum
}

// TestRealTree commits a copy of the Go distribution with both tools into
// archive and bare-user repositories: the commit and root checksums must
// be equal. The wall-clock times are logged, not asserted.
func TestRealTree(t *testing.T) {
	src := goTree(t)
	entries := 0
	check(t, filepath.WalkDir(src, func(string, fs.DirEntry, error) error { entries++; return nil }))
	args := goCommitArgs(src)
	for _, mode := range []string{"archive", "bare-user"} {
		t.Run(mode, func(t *testing.T) {
			ours := filepath.Join(t.TempDir(), "ours")
			theirs := filepath.Join(t.TempDir(), "theirs")
			om(t, "init", repoArg(ours), "--mode="+mode)
			ostreeCmd(t, "init", repoArg(theirs), "--mode="+mode)
			ro := mustRun(t, "ostree", prepend([]string{"commit", repoArg(theirs)}, args...)...)
			rm := mustRun(t, binary, prepend([]string{"commit", repoArg(ours)}, args...)...)
			t.Logf("Go tree (%d entries) into %s repositories: ostree commit %v, ostree-mount commit %v",
				entries, mode, ro.Dur.Round(time.Millisecond), rm.Dur.Round(time.Millisecond))
			want, got := strings.TrimSpace(ro.Stdout), strings.TrimSpace(rm.Stdout)
			goCommit.Lock()
			goCommit.sum = want
			goCommit.Unlock()
			if got != want {
				t.Errorf("commit checksum: ostree-mount %s, ostree %s", got, want)
			}
			ourRoot := lsColumns(t, firstLine(om(t, "ls", repoArg(ours), "-C", "go", "/")))
			theirRoot := lsColumns(t, firstLine(ostreeCmd(t, "ls", repoArg(theirs), "-C", "go", "/")))
			if ourRoot[4] != theirRoot[4] || ourRoot[5] != theirRoot[5] {
				t.Errorf("root dirtree/dirmeta: ostree-mount %s %s, ostree %s %s", ourRoot[4], ourRoot[5], theirRoot[4], theirRoot[5])
			}
			if mode == "archive" {
				sameOutput(t, theirs, "ls", "-R", "-C", "go")
			}
			if r := ostreeRun("fsck", repoArg(ours)); r.Code != 0 {
				t.Errorf("ostree fsck of our repository:\n%s", r)
			}
		})
	}
}

// corruption is one object to corrupt and the commands that read it.
type corruption struct {
	name string
	kind string // the object type as fsck names it
	sum  string
	ext  string
	off  int64 // byte to flip; negative from the end
	// touch lists commands (without --repo) that read the object and
	// must fail; "DEST" is replaced by a fresh directory.
	touch [][]string
}

// TestBadInput: corrupt objects are found and refused, invalid ref names
// are rejected, and trees ostree cannot store fail to commit without
// leaving anything behind.
func TestBadInput(t *testing.T) {
	t.Run("corrupt-objects", func(t *testing.T) {
		for _, mode := range []string{"archive", "bare-user"} {
			t.Run(mode, func(t *testing.T) { testCorruptObjects(t, mode) })
		}
	})
	t.Run("ref-names", testInvalidRefNames)
	t.Run("non-utf8", func(t *testing.T) {
		for _, mode := range []string{"archive", "bare-user"} {
			t.Run(mode, func(t *testing.T) { testNonUTF8(t, mode) })
		}
	})
}

func testCorruptObjects(t *testing.T, mode string) {
	dir := repotest.VectorTrees(t, t.TempDir())
	r := filepath.Join(t.TempDir(), "repo")
	om(t, "init", repoArg(r), "--mode="+mode)
	t2 := vectorCommits(dir)[1]
	commit := strings.TrimSpace(om(t, prepend([]string{"commit", repoArg(r)}, t2.args...)...))
	root := lsColumns(t, firstLine(om(t, "ls", repoArg(r), "-C", "t2", "/")))
	sub := lsColumns(t, firstLine(om(t, "ls", repoArg(r), "-C", "t2", "/sub")))
	hello := strings.Fields(firstLine(om(t, "ls", repoArg(r), "-C", "t2", "/hello.txt")))[4]
	if res := ostreeRun("fsck", repoArg(r)); res.Code != 0 {
		t.Fatalf("ostree fsck before corrupting anything:\n%s", res)
	}
	fileExt, payloadOff := "file", int64(0)
	if mode == "archive" {
		fileExt, payloadOff = "filez", -3
	}
	checkout := []string{"checkout", "t2", "DEST"}
	cases := []corruption{
		{"commit", "commit", commit, "commit", 10, [][]string{{"ls", "t2"}, {"cat", "t2", "/hello.txt"}, checkout, {"show", "t2"}}},
		{"dirtree", "dirtree", sub[4], "dirtree", 0, [][]string{{"ls", "-R", "t2"}, {"ls", "t2", "/sub"}, {"cat", "t2", "/sub/a"}, checkout}},
		{"dirmeta", "dirmeta", root[5], "dirmeta", 2, [][]string{{"ls", "t2"}, checkout}},
		{"file-content", "file", hello, fileExt, payloadOff, [][]string{{"cat", "t2", "/hello.txt"}, checkout}},
	}
	if mode == "archive" {
		// The header's uid (after BE32 length, 4 zero bytes, BE64 size).
		cases = append(cases, corruption{"file-header", "file", hello, "filez", 16, [][]string{{"cat", "t2", "/hello.txt"}, checkout}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := filepath.Join(r, "objects", c.sum[:2], c.sum[2:]+"."+c.ext)
			if _, err := os.Stat(obj); err != nil {
				t.Fatalf("object to corrupt: %v", err)
			}
			repotest.FlipByte(t, obj, c.off)
			restored := false
			restore := func() {
				if !restored {
					repotest.FlipByte(t, obj, c.off)
					restored = true
				}
			}
			defer restore()

			if res := ostreeRun("fsck", repoArg(r)); res.Code == 0 {
				t.Errorf("ostree fsck accepts the flipped %s %s: the corruption is not real:\n%s", c.kind, c.sum, res)
			}
			res := omFail(t, "fsck", repoArg(r))
			named := false
			for _, l := range strings.Split(res.Stderr, "\n") {
				if strings.Contains(l, c.sum) && strings.Contains(l, c.kind) {
					named = true
				}
			}
			if !named {
				t.Errorf("ostree-mount fsck: no stderr line names %s %s:\n%s", c.kind, c.sum, res)
			}
			for _, args := range c.touch {
				args = slices.Clone(args)
				for i, a := range args {
					if a == "DEST" {
						args[i] = filepath.Join(t.TempDir(), "co")
					}
				}
				res := omFail(t, prepend([]string{args[0], repoArg(r)}, args[1:]...)...)
				if !strings.Contains(res.Stderr, "checksum mismatch") && !strings.Contains(res.Stderr, "corrupt") {
					t.Errorf("ostree-mount %s on a corrupt %s: the error mentions neither 'checksum mismatch' nor 'corrupt':\n%s", args[0], c.kind, res)
				}
			}

			restore()
			if res := omRun("fsck", repoArg(r)); res.Code != 0 {
				t.Errorf("ostree-mount fsck after restoring the byte:\n%s", res)
			}
			if res := ostreeRun("fsck", repoArg(r)); res.Code != 0 {
				t.Errorf("ostree fsck after restoring the byte:\n%s", res)
			}
		})
	}
}

func testInvalidRefNames(t *testing.T) {
	dir := repotest.VectorTrees(t, t.TempDir())
	r := filepath.Join(t.TempDir(), "repo")
	om(t, "init", repoArg(r), "--mode=bare-user")
	sum := strings.TrimSpace(om(t, "commit", repoArg(r), "-b", "base", "--tree=dir="+filepath.Join(dir, "t1"), ts, "-s", "base"))
	bad := []string{"-x", ".x", "a//b", "a b", "a/.b", "a/", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	for _, name := range bad {
		res := omFail(t, "refs", repoArg(r), "--create="+name, sum)
		if !strings.Contains(res.Stderr, name) {
			t.Errorf("refs --create=%q: the error does not name the ref:\n%s", name, res)
		}
		res = omFail(t, "commit", repoArg(r), "--branch="+name, "--tree=dir="+filepath.Join(dir, "t2"), ts, "-s", "bad ref")
		if !strings.Contains(res.Stderr, name) {
			t.Errorf("commit -b %q: the error does not name the ref:\n%s", name, res)
		}
		// The document says ostree rejects them too.
		if res := ostreeRun("refs", repoArg(r), "--create="+name, sum); res.Code == 0 {
			t.Errorf("ostree accepts the ref name %q: the test case is wrong", name)
		}
	}
	if got := listRefs(t, r); !slices.Equal(got, []string{"refs/heads/base"}) {
		t.Errorf("refs after the rejected names: %q, want only refs/heads/base", got)
	}
	if n := checkObjectNames(t, r, "bare-user")["commit"]; n != 1 {
		t.Errorf("%d commit objects after the rejected commits, want 1", n)
	}
	if s := stagingDirs(t, r); len(s) != 0 {
		t.Errorf("rejected commits left staging directories: %q", s)
	}
	// Valid names, Unicode ones included, are accepted.
	for _, name := range []string{"ok", "a/b", "x.y-z_1", "é", "٣"} {
		om(t, "refs", repoArg(r), "--create="+name, sum)
		if b, err := os.ReadFile(filepath.Join(r, "refs", "heads", name)); err != nil || strings.TrimSpace(string(b)) != sum {
			t.Errorf("ref %q: %q, %v", name, b, err)
		}
	}
}

func testNonUTF8(t *testing.T, mode string) {
	r := filepath.Join(t.TempDir(), "repo")
	om(t, "init", repoArg(r), "--mode="+mode)

	badName := t.TempDir()
	b := treeBuilder{t, badName}
	b.file("ok.txt", []byte("ok\n"), 0o644)
	b.dir("sub", 0o755)
	b.file("sub/fine", []byte("fine\n"), 0o644)
	b.file("sub/bad\xffname", []byte("bad name\n"), 0o644)
	res := omFail(t, "commit", repoArg(r), "-b", "badname", "--tree=dir="+badName, ts, "-s", "bad name")
	if !strings.Contains(res.Stderr, "sub/bad") {
		t.Errorf("commit of a non-UTF-8 name: the error does not name sub/bad\\xffname:\n%s", res)
	}

	badTarget := t.TempDir()
	b = treeBuilder{t, badTarget}
	b.file("ok.txt", []byte("ok\n"), 0o644)
	b.dir("d", 0o755)
	b.symlink("d/lnk", "tar\xfeget")
	res = omFail(t, "commit", repoArg(r), "-b", "badtarget", "--tree=dir="+badTarget, ts, "-s", "bad target")
	if !strings.Contains(res.Stderr, "d/lnk") {
		t.Errorf("commit of a non-UTF-8 symlink target: the error does not name d/lnk:\n%s", res)
	}

	if got := listRefs(t, r); len(got) != 0 {
		t.Errorf("failed commits left refs: %q", got)
	}
	if n := checkObjectNames(t, r, mode)["commit"]; n != 0 {
		t.Errorf("failed commits left %d commit objects", n)
	}
	if s := stagingDirs(t, r); len(s) != 0 {
		t.Errorf("failed commits left staging directories: %q", s)
	}
	// The same trees without the bad entries commit fine.
	check(t, os.Remove(filepath.Join(badName, "sub/bad\xffname")))
	om(t, "commit", repoArg(r), "-b", "badname", "--tree=dir="+badName, ts, "-s", "fixed")
	if res := ostreeRun("fsck", repoArg(r)); res.Code != 0 {
		t.Errorf("ostree fsck:\n%s", r)
	}
}

// killAt starts ostree-mount with args, waits until its staging
// directory (not those of earlier, dead runs) holds at least n objects,
// and kills it with SIGKILL.
// It returns the number of staged objects seen.
func killAt(t *testing.T, repoPath string, n int, args ...string) int {
	t.Helper()
	dead := map[string]bool{}
	for _, d := range stagingDirs(t, repoPath) {
		dead[d] = true
	}
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	check(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(2 * time.Minute)
	seen := 0
	for {
		select {
		case <-done:
			t.Fatalf("ostree-mount commit ended (%v) before %d objects were staged (last count %d); stdout %q, stderr %q",
				cmd.ProcessState, n, seen, stdout.String(), stderr.String())
		default:
		}
		if seen = countStaged(repoPath, dead); seen >= n {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("only %d of %d objects staged after 2 minutes", seen, n)
		}
		time.Sleep(500 * time.Microsecond)
	}
	check(t, cmd.Process.Signal(syscall.SIGKILL))
	<-done
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("ostree-mount commit was not killed but ended with %v (stdout %q, stderr %q): kill point too late",
			cmd.ProcessState, stdout.String(), stderr.String())
	}
	return seen
}

// TestCrashSafety kills ostree-mount commit of the Go tree at several
// points: the repository must stay valid for both fsck's, hold no ref
// and only complete objects, and the next commit must succeed, clean up
// the dead staging directories, and give ostree's checksum.
func TestCrashSafety(t *testing.T) {
	src := goTree(t)
	want := ostreeGoCommit(t)
	args := goCommitArgs(src)
	for _, c := range []struct {
		mode   string
		points []int
	}{
		{"bare-user", []int{300, 4000, 11000}},
		{"archive", []int{300, 2000}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			r := filepath.Join(t.TempDir(), "repo")
			om(t, "init", repoArg(r), "--mode="+c.mode)
			for _, n := range c.points {
				seen := killAt(t, r, n, prepend([]string{"commit", repoArg(r)}, args...)...)
				t.Logf("killed with %d objects staged (kill point %d)", seen, n)
				// Before fsck, which removes dead staging directories.
				if len(stagingDirs(t, r)) == 0 {
					t.Errorf("no staging directory after the kill at %d: the kill did not interrupt a transaction", n)
				}
				if res := ostreeRun("fsck", repoArg(r)); res.Code != 0 {
					t.Errorf("ostree fsck after the kill at %d:\n%s", n, res)
				}
				if res := omRun("fsck", repoArg(r)); res.Code != 0 {
					t.Errorf("ostree-mount fsck after the kill at %d:\n%s", n, res)
				}
				if refs := listRefs(t, r); len(refs) != 0 {
					t.Errorf("refs after the kill at %d: %q", n, refs)
				}
				if counts := checkObjectNames(t, r, c.mode); counts["commit"] != 0 {
					t.Errorf("a commit object exists after the kill at %d: %v", n, counts)
				}
			}
			res := mustRun(t, binary, prepend([]string{"commit", repoArg(r)}, args...)...)
			if got := strings.TrimSpace(res.Stdout); got != want {
				t.Errorf("commit after the crashes: %s, ostree's commit of the tree is %s", got, want)
			}
			if res := ostreeRun("fsck", repoArg(r)); res.Code != 0 {
				t.Errorf("ostree fsck after the final commit:\n%s", res)
			}
			if res := omRun("fsck", repoArg(r)); res.Code != 0 {
				t.Errorf("ostree-mount fsck after the final commit:\n%s", res)
			}
			if s := stagingDirs(t, r); len(s) != 0 {
				t.Errorf("dead staging directories were not cleaned up by the next commit: %q", s)
			}
			checkObjectNames(t, r, c.mode)
			if refs := listRefs(t, r); !slices.Equal(refs, []string{"refs/heads/go"}) {
				t.Errorf("refs after the final commit: %q", refs)
			}
		})
	}
}

// overlapTree makes one of the trees committed concurrently: a part
// shared by every process of a round (new in each round), a part that is
// the process's own, and a part shared by half the processes.
func overlapTree(t *testing.T, base string, round, proc int) string {
	b := treeBuilder{t, filepath.Join(base, fmt.Sprintf("src%d", proc))}
	b.dir("shared", 0o755)
	b.file("shared/big.bin", randBytes(uint64(1000+round), 1<<20), 0o644)
	for k := 0; k < 120; k++ {
		d := fmt.Sprintf("shared/d%02d", k%12)
		b.dir(d, 0o755)
		b.file(fmt.Sprintf("%s/f%03d", d, k), []byte(fmt.Sprintf("round %d shared file %d\n", round, k)), 0o644)
	}
	b.symlink("shared/link", "d00/f000")
	b.dir("own", 0o750)
	for k := 0; k < 30; k++ {
		b.file(fmt.Sprintf("own/f%03d", k), []byte(fmt.Sprintf("round %d proc %d file %d\n", round, proc, k)), 0o640)
	}
	if proc%2 == 0 {
		b.dir("half", 0o755)
		for k := 0; k < 20; k++ {
			b.file(fmt.Sprintf("half/f%03d", k), []byte(fmt.Sprintf("round %d half %d\n", round, k)), 0o600)
		}
	}
	b.file("id", []byte(fmt.Sprintf("%d\n", proc)), 0o644)
	return b.root
}

// TestConcurrentCommits starts four ostree-mount commits of overlapping
// trees into one repository at once, five times: all succeed, ostree fsck
// passes, each ref's checkout is its source, and each commit's parent is
// the ref's previous commit.
func TestConcurrentCommits(t *testing.T) {
	const procs, rounds = 4, 5
	for _, mode := range []string{"bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			r := filepath.Join(t.TempDir(), "repo")
			om(t, "init", repoArg(r), "--mode="+mode)
			prev := make([]string, procs)
			for round := 0; round < rounds; round++ {
				base := t.TempDir()
				srcs := make([]string, procs)
				for i := range srcs {
					srcs[i] = overlapTree(t, base, round, i)
				}
				results := make([]cmdResult, procs)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range srcs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						results[i] = omRun("commit", repoArg(r), "-b", fmt.Sprintf("c%d", i), "--tree=dir="+srcs[i], ts,
							"-s", fmt.Sprintf("round %d proc %d", round, i))
					}()
				}
				close(start)
				wg.Wait()
				for i, res := range results {
					if res.Code != 0 {
						t.Fatalf("round %d: commit %d failed:\n%s", round, i, res)
					}
				}
				if res := ostreeRun("fsck", repoArg(r)); res.Code != 0 {
					t.Fatalf("round %d: ostree fsck:\n%s", round, res)
				}
				for i, res := range results {
					sum := strings.TrimSpace(res.Stdout)
					ref, err := os.ReadFile(filepath.Join(r, "refs", "heads", fmt.Sprintf("c%d", i)))
					check(t, err)
					if strings.TrimSpace(string(ref)) != sum {
						t.Errorf("round %d: ref c%d = %q, the commit printed %s", round, i, ref, sum)
					}
					show := om(t, "show", repoArg(r), sum)
					if prev[i] != "" && !strings.Contains(show, "Parent:  "+prev[i]+"\n") {
						t.Errorf("round %d: commit c%d should have parent %s:\n%s", round, i, prev[i], show)
					}
					prev[i] = sum
					co := filepath.Join(t.TempDir(), "co")
					ostreeCmd(t, "checkout", repoArg(r), fmt.Sprintf("c%d", i), co)
					checkTreesEqual(t, fmt.Sprintf("round %d: checkout of c%d vs its source", round, i),
						expectedCheckout(t, srcs[i], mode), dumpTree(t, co, treecmp.Options{IgnoreXattrs: ignoreXattrs}))
				}
				if s := stagingDirs(t, r); len(s) != 0 {
					t.Errorf("round %d: staging directories left: %q", round, s)
				}
			}
			if res := omRun("fsck", repoArg(r)); res.Code != 0 {
				t.Errorf("ostree-mount fsck:\n%s", res)
			}
		})
	}
}

// setCoreKey sets a key in the [core] group of a repository's config,
// keeping everything else.
func setCoreKey(t *testing.T, repoPath, key, value string) {
	t.Helper()
	p := filepath.Join(repoPath, "config")
	b, err := os.ReadFile(p)
	check(t, err)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	core := slices.Index(lines, "[core]")
	if core < 0 {
		t.Fatalf("config has no [core] group:\n%s", b)
	}
	end := len(lines)
	for i := core + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "[") {
			end = i
			break
		}
	}
	lines = slices.Insert(lines, end, key+"="+value)
	check(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
}

// TestLockingIsOstreeCompatible holds the repository lock through the Go
// API and checks that ostree sees it: an exclusive lock makes ostree
// commit time out (lock-timeout-secs=1), a shared one lets it commit but
// makes ostree prune time out. flock would not conflict with ostree's OFD
// locks, so this proves the lock is the same.
func TestLockingIsOstreeCompatible(t *testing.T) {
	dir := repotest.VectorTrees(t, t.TempDir())
	src := filepath.Join(dir, "t2")
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", repoArg(rp), "--mode=bare-user")
	setCoreKey(t, rp, "lock-timeout-secs", "1")
	r, err := repo.Open(rp)
	check(t, err)
	defer r.Close()
	ctx := context.Background()
	commitArgs := func(tool, ref string) []string {
		return []string{"commit", repoArg(rp), "-b", ref, "--tree=dir=" + src, ts, "-s", tool + " " + ref}
	}

	unlock, err := r.Lock(ctx, repo.LockExclusive)
	check(t, err)
	res := ostreeRun(commitArgs("ostree", "held")...)
	if res.Code == 0 {
		t.Errorf("ostree commit succeeded while the Go API held the exclusive lock: it is not libostree's OFD lock:\n%s", res)
	} else if !strings.Contains(strings.ToLower(res.Stderr), "lock") {
		t.Errorf("ostree commit failed, but not because of the lock:\n%s", res)
	}
	t.Logf("ostree commit gave up after %v", res.Dur.Round(time.Millisecond))
	// Another ostree-mount process honors lock-timeout-secs as well.
	res = omRun(commitArgs("ostree-mount", "held2")...)
	if res.Code == 0 {
		t.Errorf("ostree-mount commit succeeded while another process held the exclusive lock:\n%s", res)
	} else if !strings.Contains(strings.ToLower(res.Stderr), "lock") {
		t.Errorf("ostree-mount commit failed, but not because of the lock:\n%s", res)
	} else if res.Dur > 20*time.Second {
		t.Errorf("ostree-mount commit took %v to give up; lock-timeout-secs=1", res.Dur)
	}
	if refs := listRefs(t, rp); len(refs) != 0 {
		t.Errorf("refs written while locked out: %q", refs)
	}
	unlock()
	ostreeCmd(t, commitArgs("ostree", "held")...)
	om(t, commitArgs("ostree-mount", "held2")...)

	unlock, err = r.Lock(ctx, repo.LockShared)
	check(t, err)
	ostreeCmd(t, commitArgs("ostree", "shared")...)
	res = ostreeRun("prune", repoArg(rp), "--refs-only")
	if res.Code == 0 {
		t.Errorf("ostree prune (exclusive lock) succeeded while the Go API held a shared lock:\n%s", res)
	} else if !strings.Contains(strings.ToLower(res.Stderr), "lock") {
		t.Errorf("ostree prune failed, but not because of the lock:\n%s", res)
	}
	unlock()
	ostreeCmd(t, "prune", repoArg(rp), "--refs-only")
	if res := ostreeRun("fsck", repoArg(rp)); res.Code != 0 {
		t.Errorf("ostree fsck:\n%s", res)
	}
}
