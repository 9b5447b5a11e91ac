package remote_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/remote"
	"github.com/ostree-mount/ostree-mount/repo"
)

// lazyClient is a client that has fetched the commits of ref "main"
// (partial) and a lazy store over it.
func lazyClient(t *testing.T, srv *server, mode repo.Mode) (*repo.Repo, *remote.Lazy, repo.Checksum) {
	t.Helper()
	r := client(t, mode, srv.URL, "ostree-mount-timeout=2s")
	c, err := remote.FetchCommits(context.Background(), r, "origin", "main", remote.Options{})
	check(t, err)
	if !r.IsPartial(c) {
		t.Fatalf("commit %s not marked partial", c)
	}
	l, err := remote.NewLazy(r, "origin", remote.LazyOptions{})
	check(t, err)
	t.Cleanup(func() { l.Close() })
	return r, l, c
}

func readContent(t *testing.T, l *remote.Lazy, c repo.Checksum) (string, error) {
	t.Helper()
	ct, err := l.OpenContent(context.Background(), c)
	if err != nil {
		return "", err
	}
	defer ct.Close()
	b, err := io.ReadAll(io.NewSectionReader(ct, 0, ct.Size()))
	return string(b), err
}

func TestLazySingleflight(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	_, l, _ := lazyClient(t, srv, repo.ModeBareUser)
	path := objPath(src.bigFile, "filez")
	release := make(chan struct{})
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == path {
			<-release
		}
		return false
	})
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	got := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = readContent(t, l, src.bigFile)
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for remote.LazyWaiters(l, repo.ObjFile, src.bigFile) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d readers wait for the fetch", remote.LazyWaiters(l, repo.ObjFile, src.bigFile), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i := range n {
		check(t, errs[i])
		if got[i] != strings.Repeat("big content ", 50000) {
			t.Fatalf("reader %d: wrong content (%d bytes)", i, len(got[i]))
		}
	}
	if k := srv.count(path); k != 1 {
		t.Fatalf("%d concurrent readers made %d requests, want 1", n, k)
	}
}

func TestLazyTransientThenSuccess(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r, l, _ := lazyClient(t, srv, repo.ModeBareUser)
	path := objPath(src.files[5], "filez")
	srv.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if req.URL.Path == path {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	_, err := readContent(t, l, src.files[5])
	if !errors.Is(err, repo.ErrUnavailable) {
		t.Fatalf("read with the server failing: %v, want ErrUnavailable", err)
	}
	if have, _ := r.HasObject(repo.ObjFile, src.files[5]); have {
		t.Fatal("object stored after a failed fetch")
	}
	// Others are served meanwhile.
	if _, err := readContent(t, l, src.files[6]); err != nil {
		t.Fatal(err)
	}
	srv.setFault(nil)
	got, err := readContent(t, l, src.files[5])
	check(t, err)
	if !strings.HasPrefix(got, "file 5\n") {
		t.Fatalf("content %q", got[:10])
	}
	if have, _ := r.HasObject(repo.ObjFile, src.files[5]); !have {
		t.Fatal("fetched object not stored")
	}
	fsckClean(t, r)
}

func TestLazyTampered(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r, l, c := lazyClient(t, srv, repo.ModeBareUser)
	path := objPath(src.files[3], "filez")
	srv.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if req.URL.Path == path {
			http.ServeFile(w, req, src.path+objPath(src.files[4], "filez"))
			return true
		}
		return false
	})
	_, err := readContent(t, l, src.files[3])
	if !errors.Is(err, repo.ErrChecksumMismatch) {
		t.Fatalf("tampered object: %v, want ErrChecksumMismatch", err)
	}
	if !strings.Contains(err.Error(), srv.URL+path) {
		t.Fatalf("error %q does not name the URL", err)
	}
	if have, _ := r.HasObject(repo.ObjFile, src.files[3]); have {
		t.Fatal("tampered object stored")
	}
	// Metadata comes through the same store.
	cm, err := l.ReadCommit(context.Background(), c)
	check(t, err)
	dt, err := l.ReadDirTree(context.Background(), cm.RootTree)
	check(t, err)
	if len(dt.Files) == 0 {
		t.Fatal("empty root")
	}
	fsckClean(t, r)
}

func TestLazyArchiveClient(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r, l, _ := lazyClient(t, srv, repo.ModeArchive)
	if l.ContentFiles() {
		t.Fatal("an archive client gives content files")
	}
	got, err := readContent(t, l, src.files[2])
	check(t, err)
	if !strings.HasPrefix(got, "file 2\n") {
		t.Fatalf("content %q", got)
	}
	fsckClean(t, r)
}

// Prune keeps what a live partial commit has fetched, and does not fail
// on what it has not; fsck does not report the unfetched objects.
func TestLazyPrunePartial(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r, l, c := lazyClient(t, srv, repo.ModeBareUser)
	ctx := context.Background()
	cm, err := l.ReadCommit(ctx, c)
	check(t, err)
	dt, err := l.ReadDirTree(ctx, cm.RootTree)
	check(t, err)
	_, err = l.ReadDirMeta(ctx, cm.RootMeta)
	check(t, err)
	_, err = readContent(t, l, src.files[7])
	check(t, err)
	fsckClean(t, r)
	plan, err := r.Prune(ctx, repo.PruneOptions{})
	check(t, err)
	for _, n := range []repo.ObjectName{
		{Type: repo.ObjCommit, Checksum: c}, {Type: repo.ObjDirTree, Checksum: cm.RootTree},
		{Type: repo.ObjDirMeta, Checksum: cm.RootMeta}, {Type: repo.ObjFile, Checksum: src.files[7]},
	} {
		if have, err := r.HasObject(n.Type, n.Checksum); err != nil || !have {
			t.Errorf("prune (%+v) removed %s %s of a partial commit (%v)", plan, n.Type, n.Checksum, err)
		}
	}
	if !r.IsPartial(c) {
		t.Error("prune dropped the partial mark of a live commit")
	}
	fsckClean(t, r)
	// The rest still comes on demand.
	if _, err := l.ReadDirTree(ctx, dt.Dirs[0].Tree); err != nil {
		t.Fatal(err)
	}
}

// A server that accepts and never answers: the read fails with
// ErrUnavailable once the remote's timeout is spent, and succeeds once the
// server answers again.
func TestLazyHangingServer(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r := client(t, repo.ModeBareUser, srv.URL, "ostree-mount-timeout=300ms")
	_, err := remote.FetchCommits(context.Background(), r, "origin", "main", remote.Options{})
	check(t, err)
	l, err := remote.NewLazy(r, "origin", remote.LazyOptions{})
	check(t, err)
	defer l.Close()
	srv.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		<-req.Context().Done()
		return true
	})
	start := time.Now()
	_, err = readContent(t, l, src.files[9])
	if !errors.Is(err, repo.ErrUnavailable) {
		t.Fatalf("read from a hanging server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the read took %s with a 300ms timeout", d)
	}
	srv.setFault(nil)
	if _, err := readContent(t, l, src.files[9]); err != nil {
		t.Fatal(err)
	}
}

// The store's own deadline is not a reader's cancellation: the error is
// ErrUnavailable and wraps no context error (the mount maps those to
// EINTR).
func TestLazyDeadlineIsUnavailable(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r := client(t, repo.ModeBareUser, srv.URL, "ostree-mount-timeout=200ms")
	_, err := remote.FetchCommits(context.Background(), r, "origin", "main", remote.Options{})
	check(t, err)
	l, err := remote.NewLazy(r, "origin", remote.LazyOptions{})
	check(t, err)
	defer l.Close()
	srv.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	})
	saved := remote.Backoff
	remote.Backoff = []time.Duration{time.Hour}
	defer func() { remote.Backoff = saved }()
	_, err = readContent(t, l, src.files[11])
	if !errors.Is(err, repo.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("read past the store's deadline: %v, want ErrUnavailable and no context error", err)
	}
}

type rejectVerifier struct{}

func (rejectVerifier) VerifyCommit(ctx context.Context, remoteName string, c repo.Checksum, b []byte, dm repo.Metadata) error {
	return errors.New("no valid signature")
}

// A commit already local but partial (fetched for a lazy mount, maybe
// from another remote) is verified again by a pull or a lazy mount that
// asks for signatures.
func TestVerifyPartialLocalCommit(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r, _, _ := lazyClient(t, srv, repo.ModeBareUser)
	if _, err := remote.Pull(context.Background(), r, "origin", []string{"main"}, remote.Options{Verifier: rejectVerifier{}}); err == nil || !strings.Contains(err.Error(), "no valid signature") {
		t.Fatalf("pull of a partial local commit with a rejecting verifier: %v", err)
	}
	if _, err := remote.FetchCommits(context.Background(), r, "origin", "main", remote.Options{Verifier: rejectVerifier{}}); err == nil || !strings.Contains(err.Error(), "no valid signature") {
		t.Fatalf("lazy fetch of a partial local commit with a rejecting verifier: %v", err)
	}
}
