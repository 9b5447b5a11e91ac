package repo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// flatCommit commits one directory holding the files "a000"... (bad of
// them) and then "f000"... (good of them), and returns the commit and the
// content objects of the "a" files.
func flatCommit(t *testing.T, r *repo.Repo, bad, good int) (repo.Checksum, []repo.Checksum) {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	meta, err := tx.WriteDirMeta(&repo.DirMeta{Mode: repo.ModeDir | 0o755})
	if err != nil {
		t.Fatal(err)
	}
	put := func(content string) repo.Checksum {
		m := &repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(len(content))}
		c, err := tx.WriteFile(m, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dt := &repo.DirTree{}
	var first []repo.Checksum
	for i := 0; i < bad; i++ {
		c := put(fmt.Sprintf("early file %d\n", i))
		first = append(first, c)
		dt.Files = append(dt.Files, repo.TreeFile{Name: fmt.Sprintf("a%03d", i), Checksum: c})
	}
	for i := 0; i < good; i++ {
		dt.Files = append(dt.Files, repo.TreeFile{Name: fmt.Sprintf("f%03d", i), Checksum: put(strings.Repeat(fmt.Sprintf("file %d\n", i), 500))})
	}
	tree, err := tx.WriteDirTree(dt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tx.WriteCommitFor(tree, meta, &repo.CommitOptions{Branch: "flat", Timestamp: ts2020, NoBindings: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return c, first
}

// moreThanLimit is more files than checkout and CommitDir write at once.
func moreThanLimit() int { return 4*runtime.GOMAXPROCS(0) + 8 }

// TestCheckoutStopsAtFirstError: once a file fails, the checkout fails
// with that file's error and starts no other file, instead of writing the
// rest of the tree first. The directory's first files (more than run at
// once) all lack their object, so whichever runs first fails, and a file
// after them is handed out only once one has ended: none of the good
// files may be written.
func TestCheckoutStopsAtFirstError(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	const good = 200
	c, bad := flatCommit(t, r, moreThanLimit(), good)
	for _, a := range bad {
		if err := os.Remove(r.ObjectPath(repo.ObjFile, a)); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "out")
	err := r.Checkout(context.Background(), c, "", dest, repo.CheckoutOptions{UserMode: true})
	if !errors.Is(err, repo.ErrObjectNotFound) {
		t.Fatalf("checkout: %v, want ErrObjectNotFound", err)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("checkout wrote %d of %d files after the first failed (%s...)", len(ents), good, ents[0].Name())
	}
}

// TestCheckoutCanceled: a canceled context stops a checkout before it
// writes anything, and is the error.
func TestCheckoutCanceled(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	c, _ := flatCommit(t, r, 0, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := filepath.Join(t.TempDir(), "out")
	if err := r.Checkout(ctx, c, "", dest, repo.CheckoutOptions{UserMode: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("checkout: %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkout made %s: %v", dest, err)
	}
}

// TestCheckoutTree checks out a tree of many files and directories in
// parallel and finds every file with its content, and every directory
// with its mode (applied after its children).
func TestCheckoutTree(t *testing.T) {
	src := t.TempDir()
	for d := 0; d < 8; d++ {
		dir := filepath.Join(src, fmt.Sprintf("d%d", d), "sub")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < 50; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", f)), []byte(fmt.Sprint(d, f)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Dir(dir), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	c := commitDir(t, r, src, &repo.Modifier{Canonical: true}, &repo.CommitOptions{Branch: "tree", Timestamp: ts2020, NoBindings: true})
	dest := filepath.Join(t.TempDir(), "out")
	// Writable again before the temporary directories are removed, for a
	// run as a user other than root.
	t.Cleanup(func() {
		for d := 0; d < 8; d++ {
			os.Chmod(filepath.Join(src, fmt.Sprintf("d%d", d)), 0o755)
			os.Chmod(filepath.Join(dest, fmt.Sprintf("d%d", d)), 0o755)
		}
	})
	if err := r.Checkout(context.Background(), c, "", dest, repo.CheckoutOptions{UserMode: true}); err != nil {
		t.Fatal(err)
	}
	for d := 0; d < 8; d++ {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dest, fmt.Sprintf("d%d", d)), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o555 {
			t.Errorf("d%d: mode %#o, want 0555", d, st.Mode&0o7777)
		}
		for f := 0; f < 50; f++ {
			p := filepath.Join(dest, fmt.Sprintf("d%d", d), "sub", fmt.Sprintf("f%02d", f))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != fmt.Sprint(d, f) {
				t.Errorf("%s: %q", p, b)
			}
		}
	}
}

var errRefused = errors.New("refused")

// TestCommitDirStopsAtFirstError: a file whose commit fails (here its
// xattrs are refused) fails CommitDir with that error, not with the
// cancellation it causes, and no other file starts: as in
// TestCheckoutStopsAtFirstError, the first files (more than run at once)
// all fail, so none of the later ones may be looked at.
func TestCommitDirStopsAtFirstError(t *testing.T) {
	src := t.TempDir()
	bad, good := moreThanLimit(), 200
	for i := 0; i < bad+good; i++ {
		name := fmt.Sprintf("f%03d", i-bad)
		if i < bad {
			name = fmt.Sprintf("a%03d", i)
		}
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p, "user.test", []byte("x"), 0); err != nil {
			t.Skipf("user xattrs: %v", err)
		}
	}
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	var late atomic.Int32
	mod := &repo.Modifier{CheckXattrs: func(rel string, xs []repo.Xattr) error {
		if strings.HasPrefix(rel, "/a") {
			return fmt.Errorf("%s: %w", rel, errRefused)
		}
		late.Add(1)
		return nil
	}}
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	_, err = tx.CommitDir(ctx, src, mod)
	if !errors.Is(err, errRefused) {
		t.Fatalf("CommitDir: %v, want errRefused", err)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("CommitDir looked at %d of %d files after the first failed", n, good)
	}
}

// TestCommitDirCanceled: a canceled context is CommitDir's error.
func TestCommitDirCanceled(t *testing.T) {
	src := repotest.VectorTrees(t, t.TempDir())
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	cancel()
	if _, err := tx.CommitDir(ctx, filepath.Join(src, "t2"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("CommitDir: %v, want context.Canceled", err)
	}
}
