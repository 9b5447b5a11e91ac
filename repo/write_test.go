package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

var ts2020 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func commitDir(t *testing.T, r *repo.Repo, dir string, mod *repo.Modifier, o *repo.CommitOptions) repo.Checksum {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	root, err := tx.CommitDir(ctx, dir, mod)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := root.Write(tx)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := tx.WriteCommitFor(tree, root.Meta, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return sum
}

func u32(v uint32) *uint32 { return &v }

// TestVectorCommitsEveryMode commits the format document's trees in every
// mode and checks the commit checksums that ostree 2022.7 produced.
func TestVectorCommitsEveryMode(t *testing.T) {
	src := repotest.VectorTrees(t, t.TempDir())
	canon := &repo.Modifier{Canonical: true}
	for _, mode := range repotest.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepo(t, mode)
			got := commitDir(t, r, filepath.Join(src, "t1"), canon, &repo.CommitOptions{Branch: "t1", Subject: "subj t1", Timestamp: ts2020, NoBindings: true})
			if got.String() != "e8e749f94196cc44a4c60ccfbb8cbefeb9f08974890c91c60dac87cc2d90b009" {
				t.Errorf("t1 %s", got)
			}
			first := commitDir(t, r, filepath.Join(src, "t2"), canon, &repo.CommitOptions{Branch: "t2", Subject: "subj t2", Timestamp: ts2020, NoBindings: true})
			if first.String() != "285178d47d97dee33a4bf6303722495713fdaf63c4d179a64cff775adf7979a9" {
				t.Errorf("t2 %s", first)
			}
			o3 := &repo.Modifier{OwnerUID: u32(1000), OwnerGID: u32(1001)}
			want3 := "3dbe3b612d055e6d8cc971f55878d6baf89591fda0fbfef97aaf56bd1cb2cf3e"
			if mode == repo.ModeBareUserOnly {
				want3 = "2791dfca7a3f027d52ea9478a2e992bb3d1a98f7fa9e7ab6a615b2d01f5f78eb"
			}
			if got := commitDir(t, r, filepath.Join(src, "t3"), o3, &repo.CommitOptions{Branch: "t3", Subject: "subj t3", Timestamp: ts2020, NoBindings: true}); got.String() != want3 {
				t.Errorf("t3 %s, want %s", got, want3)
			}
			if got := commitDir(t, r, filepath.Join(src, "t5"), canon, &repo.CommitOptions{Branch: "t5", Subject: repotest.T5Subject, Body: repotest.T5Body, Timestamp: ts2020, NoBindings: true}); got.String() != "a4378f72546aa01a35e708c99936c37ff4e5e1114b0ccd90b42cf0cec421b869" {
				t.Errorf("t5 %s", got)
			}
			o := &repo.CommitOptions{Branch: "t2", Subject: "second", Body: "body text", Timestamp: ts2020.Add(24 * time.Hour)}
			o.Metadata.SetString("version", "1.0")
			o.Detached.SetString("sig", "abc")
			// --add-metadata=foo='uint32 7' is covered end to end; here the
			// same value is built directly.
			o.Metadata.Set("foo", uint32Variant(7))
			second := commitDir(t, r, filepath.Join(src, "t2"), canon, o)
			if second.String() != "1b1ff9d7ca773fe85ab95ff87d23410a55b600ab1924e56c2f622c09ee260020" {
				t.Errorf("t2 second %s", second)
			}
			cm, err := r.ReadCommit(context.TODO(), second)
			if err != nil {
				t.Fatal(err)
			}
			if cm.Parent != first {
				t.Errorf("parent %s, want %s", cm.Parent, first)
			}
			md, err := r.ReadCommitMeta(second)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := md.String("sig"); v != "abc" {
				t.Errorf("detached sig %q", v)
			}
			head, err := r.ReadRef(repo.Head("t2"))
			if err != nil || head != second {
				t.Errorf("ref t2 = %s, %v", head, err)
			}
			res, err := r.Fsck(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Problems) != 0 || res.Commits != 5 {
				t.Errorf("fsck: %d commits, problems %v", res.Commits, res.Problems)
			}
			// Every file reads back with its metadata.
			root, _ := r.ReadCommit(context.TODO(), first)
			link, err := r.LookupFile(root.RootTree, "link")
			if err != nil {
				t.Fatal(err)
			}
			lm, err := r.ReadFileMeta(context.TODO(), link)
			if err != nil || lm.Target != "hello.txt" || !lm.IsSymlink() {
				t.Errorf("link meta %+v %v", lm, err)
			}
			hello, _ := r.LookupFile(root.RootTree, "hello.txt")
			var buf bytes.Buffer
			if _, err := r.CopyFile(hello, &buf); err != nil || buf.String() != "hello\n" {
				t.Errorf("hello content %q %v", buf.String(), err)
			}
		})
	}
}

// TestCorruptionDetected flips a byte in one object of each kind and
// checks that fsck names it and that reading it fails with
// ErrChecksumMismatch.
func TestCorruptionDetected(t *testing.T) {
	src := repotest.VectorTrees(t, t.TempDir())
	for _, mode := range repotest.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepo(t, mode)
			sum := commitDir(t, r, filepath.Join(src, "t2"), &repo.Modifier{Canonical: true}, &repo.CommitOptions{Branch: "t2", Timestamp: ts2020})
			cm, _ := r.ReadCommit(context.TODO(), sum)
			hello, _ := r.LookupFile(cm.RootTree, "hello.txt")
			objs := []repo.ObjectName{{repo.ObjCommit, sum}, {repo.ObjDirTree, cm.RootTree}, {repo.ObjDirMeta, cm.RootMeta}, {repo.ObjFile, hello}}
			for _, o := range objs {
				p := r.ObjectPath(o.Type, o.Checksum)
				orig, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				repotest.FlipByte(t, p, -1)
				res, err := r.Fsck(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				named := false
				for _, pr := range res.Problems {
					if pr.Object == o && !pr.Missing {
						named = true
					}
				}
				if !named {
					t.Errorf("%s: fsck did not name it: %v", o.Type, res.Problems)
				}
				var readErr error
				switch o.Type {
				case repo.ObjCommit:
					_, readErr = r.ReadCommit(context.TODO(), o.Checksum)
				case repo.ObjDirTree:
					_, readErr = r.ReadDirTree(context.TODO(), o.Checksum)
				case repo.ObjDirMeta:
					_, readErr = r.ReadDirMeta(context.TODO(), o.Checksum)
				case repo.ObjFile:
					readErr = r.VerifyFile(o.Checksum)
				}
				if !errors.Is(readErr, repo.ErrChecksumMismatch) {
					t.Errorf("%s: read error %v, want ErrChecksumMismatch", o.Type, readErr)
				}
				repotest.FlipByte(t, p, -1)
				if b, _ := os.ReadFile(p); !bytes.Equal(b, orig) {
					t.Fatal("restore failed")
				}
			}
		})
	}
}

func TestRejectsNonUTF8(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad\xffname"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, _ := r.Begin(ctx)
	defer tx.Abort()
	_, err := tx.CommitDir(ctx, dir, nil)
	if !errors.Is(err, repo.ErrInvalidName) || !strings.Contains(err.Error(), "bad\\xffname") {
		t.Errorf("err %v", err)
	}
	dir2 := t.TempDir()
	if err := os.Symlink("tar\xffget", filepath.Join(dir2, "l")); err != nil {
		t.Fatal(err)
	}
	_, err = tx.CommitDir(ctx, dir2, nil)
	if !errors.Is(err, repo.ErrInvalidName) || !strings.Contains(err.Error(), "/l") {
		t.Errorf("symlink err %v", err)
	}
}

func TestRefs(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeArchive)
	src := repotest.VectorTrees(t, t.TempDir())
	sum := commitDir(t, r, filepath.Join(src, "t1"), &repo.Modifier{Canonical: true}, &repo.CommitOptions{Branch: "a/b", Timestamp: ts2020})
	ctx := context.Background()
	bad := []string{"-x", ".x", "a//b", "a/", "a b", "a/.b", "", sum.String(), "a:b:c"}
	for _, n := range bad {
		if _, err := repo.ParseRefName(n); !errors.Is(err, repo.ErrInvalidRef) {
			t.Errorf("ref %q accepted (%v)", n, err)
		}
	}
	for _, n := range []string{"é", "٣", "a/b.c-d_e", "x"} {
		if _, err := repo.ParseRefName(n); err != nil {
			t.Errorf("ref %q rejected: %v", n, err)
		}
	}
	if err := r.SetRef(ctx, repo.Weak("layer/sha256/abcd"), sum); err != nil {
		t.Fatal(err)
	}
	rm, _ := repo.ParseRefName("origin:main")
	if err := r.SetRef(ctx, rm, sum); err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{"a/b", "refs/heads/a/b", "refs/weak/layer/sha256/abcd", "layer/sha256/abcd", "origin:main", "origin/main", sum.String(), sum.String()[:8]} {
		got, err := r.Resolve(rev)
		if err != nil || got != sum {
			t.Errorf("resolve %q = %s, %v", rev, got, err)
		}
	}
	if _, err := r.Resolve("nope"); !errors.Is(err, repo.ErrRefNotFound) {
		t.Errorf("missing ref: %v", err)
	}
	if _, err := r.Resolve("a/b^"); !errors.Is(err, repo.ErrRefNotFound) {
		t.Errorf("parent of root commit: %v", err)
	}
	refs, err := r.ListRefs(repo.RefHead, repo.RefRemote)
	if err != nil || len(refs) != 2 || refs[0].Name.String() != "a/b" || refs[1].Name.String() != "origin:main" {
		t.Errorf("refs %+v %v", refs, err)
	}
	weak, _ := r.ListRefs(repo.RefWeak)
	if len(weak) != 1 || weak[0].Name.Name != "layer/sha256/abcd" {
		t.Errorf("weak refs %+v", weak)
	}
	if err := r.DeleteRef(ctx, repo.Head("a/b")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Path(), "refs/heads/a")); !os.IsNotExist(err) {
		t.Errorf("empty ref directory left behind")
	}
}

// TestConcurrentTransactions commits overlapping trees from many
// goroutines and checks the repository afterwards.
func TestConcurrentTransactions(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	src := t.TempDir()
	for i := 0; i < 50; i++ {
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), bytes.Repeat([]byte{byte(i)}, i*100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	sums := make([]repo.Checksum, 8)
	for i := range sums {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sums[i] = commitDir(t, r, src, nil, &repo.CommitOptions{Branch: "b" + string(rune('0'+i)), Timestamp: ts2020, NoBindings: true})
		}(i)
	}
	wg.Wait()
	for _, s := range sums[1:] {
		if s != sums[0] {
			t.Errorf("different checksums for the same tree: %s %s", s, sums[0])
		}
	}
	res, err := r.Fsck(context.Background())
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("fsck %v %v", err, res.Problems)
	}
	ents, _ := os.ReadDir(filepath.Join(r.Path(), "tmp"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "staging-") {
			t.Errorf("staging left behind: %s", e.Name())
		}
	}
}

// errAfter yields n bytes of data, then fails with err.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

// TestLargeFileWrites: files large enough to be hashed and written at
// once (and handed to the disk as they are written, with core.fsync) read
// back as written, with their runs of zeros as holes, and hash as
// FileChecksum says; a short or failing content stages nothing.
func TestLargeFileWrites(t *testing.T) {
	for _, fsync := range []bool{true, false} {
		r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
		if fsync {
			r = repotest.NewRepo(t, repo.ModeBareUser)
		}
		ctx := context.Background()
		tx, err := r.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		size := 20<<20 + 12345
		data := make([]byte, size)
		if _, err := rand.Read(data[:9<<20]); err != nil {
			t.Fatal(err)
		}
		copy(data[size-100:], "the end")
		m := &repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(size)}
		want, err := repo.FileChecksum(m, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := tx.WriteFile(m, iotest.HalfReader(bytes.NewReader(data)))
		if err != nil || sum != want {
			t.Fatalf("fsync %v: WriteFile = %s, %v; want %s", fsync, sum, err, want)
		}
		for _, bad := range []io.Reader{bytes.NewReader(data[:size-1]), &errAfter{bytes.NewReader(data[:15<<20]), errors.ErrUnsupported}} {
			bm := &repo.FileMeta{Mode: repo.ModeRegular | 0o600, Size: int64(size)}
			if _, err := tx.WriteFile(bm, bad); err == nil {
				t.Fatalf("fsync %v: WriteFile of bad content succeeded", fsync)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		f, err := r.OpenFile(sum)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f.Reader())
		f.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("fsync %v: read back %d bytes (%v), want the %d written", fsync, len(got), err, size)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(r.ObjectPath(repo.ObjFile, sum), &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks*512 > 10<<20 {
			t.Errorf("fsync %v: object takes %d bytes of disk, want its 11 MiB of zeros left as holes", fsync, st.Blocks*512)
		}
		var objs []repo.ObjectName
		if err := r.ListObjects(func(n repo.ObjectName) error { objs = append(objs, n); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(objs) != 1 {
			t.Errorf("fsync %v: %d objects after the commit, want the one good file: %v", fsync, len(objs), objs)
		}
	}
}

// BenchmarkWriteLargeFile: one 256 MiB file object, written and
// committed (syncfs included).
func BenchmarkWriteLargeFile(b *testing.B) {
	data := make([]byte, 256<<20)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := repotest.NewRepo(b, repo.ModeBareUser)
		tx, err := r.Begin(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(len(data))}, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBackgroundSyncs: with core.fsync, more small files than a
// background syncfs batch (64 MiB) commit whole, and an abort while such
// a sync may run leaves no staging directory.
func TestBackgroundSyncs(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	ctx := context.Background()
	data := make([]byte, 4<<20)
	write := func(tx *repo.Transaction, n int) []repo.Checksum {
		var sums []repo.Checksum
		for i := range n {
			copy(data, fmt.Sprintf("file %d", i))
			sum, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(len(data))}, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			sums = append(sums, sum)
		}
		return sums
	}
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(tx, 20)
	tx.Abort()
	ents, err := os.ReadDir(filepath.Join(r.Path(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "staging-") {
			t.Fatalf("tmp/%s left after the abort", e.Name())
		}
	}
	tx, err = r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sums := write(tx, 40)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		if err := r.VerifyContent(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkCommitSmallFiles: the Commit (syncfs and renames) of 20000
// files of 4 KiB; their writes are not timed.
func BenchmarkCommitSmallFiles(b *testing.B) {
	data := make([]byte, 4096)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := repotest.NewRepo(b, repo.ModeBareUser)
		tx, err := r.Begin(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for j := range 20000 {
			copy(data, fmt.Sprintf("file %d", j))
			if _, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(len(data))}, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
