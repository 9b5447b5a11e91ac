package repotest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Modes is every repository mode.
var Modes = []repo.Mode{repo.ModeBare, repo.ModeBareUser, repo.ModeBareUserOnly, repo.ModeArchive}

// NewRepo initializes a repository of the given mode in a temporary
// directory.
func NewRepo(t testing.TB, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.InitOptions{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// NewRepoNoSync is NewRepo with core.fsync=false, for tests of logic
// above the storage layer that would otherwise wait on syncfs.
func NewRepoNoSync(t testing.TB, mode repo.Mode) *repo.Repo {
	t.Helper()
	r := NewRepo(t, mode)
	cfgPath := filepath.Join(r.Path(), "config")
	b, err := os.ReadFile(cfgPath)
	must(t, err)
	must(t, os.WriteFile(cfgPath, append(b, []byte("fsync=false\n")...), 0o644))
	r2, err := repo.Open(r.Path())
	must(t, err)
	t.Cleanup(func() { r2.Close() })
	return r2
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, p, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(content), mode))
	must(t, os.Chmod(p, mode))
}

// VectorTrees creates t1, t2, t3 and t5 of the format document under dir,
// exactly as its shell recipe does, and returns dir. t3 needs user xattrs
// on dir's filesystem.
func VectorTrees(t testing.TB, dir string) string {
	t.Helper()
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	t1 := filepath.Join(dir, "t1")
	must(t, os.MkdirAll(t1, 0o755))
	write(t, filepath.Join(t1, "empty"), "", 0o644)
	must(t, os.Chmod(t1, 0o755))

	t2 := filepath.Join(dir, "t2")
	must(t, os.MkdirAll(filepath.Join(t2, "sub"), 0o755))
	write(t, filepath.Join(t2, "hello.txt"), "hello\n", 0o644)
	write(t, filepath.Join(t2, "run.sh"), "#!/bin/sh\necho hi\n", 0o755)
	must(t, os.Symlink("hello.txt", filepath.Join(t2, "link")))
	write(t, filepath.Join(t2, "sub", "a"), "a\n", 0o644)
	must(t, os.Chmod(t2, 0o755))
	must(t, os.Chmod(filepath.Join(t2, "sub"), 0o755))

	t3 := filepath.Join(dir, "t3")
	must(t, os.MkdirAll(t3, 0o750))
	xf := filepath.Join(t3, "xf")
	write(t, xf, "x\n", 0o640)
	must(t, os.Chmod(t3, 0o750))
	must(t, unix.Setxattr(xf, "user.foo", []byte("bar"), 0))
	must(t, unix.Setxattr(xf, "user.abc", []byte("1"), 0))

	t5 := filepath.Join(dir, "t5")
	must(t, os.MkdirAll(t5, 0o755))
	for _, n := range []string{"B", "a", "Z", "_x", "é", "10", "9", ".hidden", "sp ace"} {
		write(t, filepath.Join(t5, n), n, 0o644)
	}
	must(t, os.MkdirAll(filepath.Join(t5, "D"), 0o755))
	must(t, os.MkdirAll(filepath.Join(t5, "c"), 0o755))
	write(t, filepath.Join(t5, "D", "q"), "q", 0o644)
	for _, d := range []string{t5, filepath.Join(t5, "D"), filepath.Join(t5, "c")} {
		must(t, os.Chmod(d, 0o755))
	}
	return dir
}

// T5Subject and T5Body are the long subject and body of the t5 commit.
var (
	T5Subject = strings.Repeat("S", 300)
	T5Body    = strings.Repeat("B", 70000)
)

// FlipByte inverts one byte of a file at offset off (negative: from the
// end), keeping its permissions.
func FlipByte(t testing.TB, path string, off int64) {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	if fi.Mode().Perm()&0o200 == 0 {
		must(t, os.Chmod(path, fi.Mode().Perm()|0o200))
		defer os.Chmod(path, fi.Mode().Perm())
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	if off < 0 {
		off += fi.Size()
	}
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	must(t, err)
}
