package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/remote"
	"github.com/ostree-mount/ostree-mount/repo"
)

func init() {
	// Short waits between retries: the tests count attempts, not time.
	remote.Backoff = []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
}

// source is a served test repository.
type source struct {
	path          string
	img, layer    repo.Checksum // manifest-like commit (branch "img") and its related commit
	plain         repo.Checksum // branch "main"
	files         []repo.Checksum
	bigFile, tree repo.Checksum
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func makeSource(t testing.TB, mode repo.Mode) *source {
	t.Helper()
	ctx := context.Background()
	s := &source{path: filepath.Join(t.TempDir(), "src")}
	r, err := repo.Init(s.path, repo.InitOptions{Mode: mode})
	check(t, err)
	defer r.Close()
	tx, err := r.Begin(ctx)
	check(t, err)
	dm, err := tx.WriteDirMeta(&repo.DirMeta{Mode: 0o40755})
	check(t, err)
	file := func(body string, mode uint32) repo.Checksum {
		c, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | mode, Size: int64(len(body))}, strings.NewReader(body))
		check(t, err)
		return c
	}
	root := repo.NewMutableTree(dm)
	for i := 0; i < 24; i++ {
		c := file(fmt.Sprintf("file %d\n%s", i, strings.Repeat("x", i*1000)), 0o644)
		root.Files[fmt.Sprintf("f%02d", i)] = c
		s.files = append(s.files, c)
	}
	s.bigFile = file(strings.Repeat("big content ", 50000), 0o755)
	root.Files["big"] = s.bigFile
	ln, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeSymlink | 0o777, Target: "f01"}, nil)
	check(t, err)
	root.Files["link"] = ln
	sub := repo.NewMutableTree(dm)
	sub.Files["deep"] = file("deep\n", 0o600)
	root.Dirs["sub"] = sub
	s.tree, err = root.Write(tx)
	check(t, err)
	ts := time.Unix(1700000000, 0)
	var detached repo.Metadata
	detached.SetString("test.signature", "not really")
	s.plain, err = tx.WriteCommitFor(s.tree, dm, &repo.CommitOptions{Branch: "main", Subject: "plain", Timestamp: ts, Detached: detached})
	check(t, err)
	lt := repo.NewMutableTree(dm)
	lt.Files["layerfile"] = file("in the layer\n", 0o644)
	ltc, err := lt.Write(tx)
	check(t, err)
	s.layer, err = tx.WriteCommitFor(ltc, dm, &repo.CommitOptions{Subject: "layer", Timestamp: ts, NoParent: true, NoBindings: true})
	check(t, err)
	empty, err := repo.NewMutableTree(dm).Write(tx)
	check(t, err)
	s.img, err = tx.WriteCommitFor(empty, dm, &repo.CommitOptions{Branch: "img", Subject: "manifest", Timestamp: ts,
		Related: []repo.Related{{Name: "layer-0", Commit: s.layer}}})
	check(t, err)
	check(t, tx.Commit())
	if mode == repo.ModeArchive {
		_, err = remote.WriteSummary(ctx, r)
		check(t, err)
	}
	return s
}

// server serves a source with a fault hook.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]int
	fault    func(w http.ResponseWriter, r *http.Request) bool // true: handled
}

func serve(t testing.TB, dir string) *server {
	s := &server{requests: map[string]int{}}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.URL.Path]++
		fault := s.fault
		s.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

func objPath(c repo.Checksum, ext string) string {
	h := c.String()
	return "/objects/" + h[:2] + "/" + h[2:] + "." + ext
}

func client(t testing.TB, mode repo.Mode, url string, set ...string) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "client"), repo.InitOptions{Mode: mode})
	check(t, err)
	t.Cleanup(func() { r.Close() })
	check(t, remote.Add(r, "origin", url, remote.AddOptions{NoGPGVerify: true, Set: set}))
	return r
}

func fsckClean(t testing.TB, r *repo.Repo) {
	t.Helper()
	res, err := r.Fsck(context.Background())
	check(t, err)
	if len(res.Problems) > 0 {
		t.Fatalf("fsck: %v", res.Problems)
	}
}

func noRefs(t testing.TB, r *repo.Repo) {
	t.Helper()
	refs, err := r.ListRefs(repo.RefRemote)
	check(t, err)
	if len(refs) != 0 {
		t.Fatalf("refs after a failed pull: %v", refs)
	}
	n := 0
	check(t, r.ListObjects(func(repo.ObjectName) error { n++; return nil }))
	if n != 0 {
		t.Fatalf("%d objects after a failed pull", n)
	}
}

func TestConfig(t *testing.T) {
	r := client(t, repo.ModeBareUser, "http://example.invalid/repo", "ostree-mount-timeout=2s", "foo=bar baz")
	check(t, remote.Add(r, "second", "file:///srv/repo", remote.AddOptions{}))
	if err := remote.Add(r, "second", "file:///x", remote.AddOptions{}); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("adding an existing remote: %v", err)
	}
	check(t, remote.Add(r, "second", "file:///x", remote.AddOptions{IfNotExists: true}))
	if err := remote.Add(r, "bad name", "file:///x", remote.AddOptions{}); err == nil {
		t.Fatal("bad remote name accepted")
	}
	if err := remote.Add(r, "ftp", "ftp://x/y", remote.AddOptions{}); err == nil {
		t.Fatal("ftp URL accepted")
	}
	// A fresh open sees the file as written.
	r2, err := repo.Open(r.Path())
	check(t, err)
	defer r2.Close()
	rm, err := remote.Lookup(r2, "origin")
	check(t, err)
	if rm.URL != "http://example.invalid/repo" || rm.GPGVerify || rm.Timeout != 2*time.Second {
		t.Fatalf("origin: %+v", rm)
	}
	if v, _ := rm.Get("foo"); v != "bar baz" {
		t.Fatalf("foo=%q", v)
	}
	rm2, err := remote.Lookup(r2, "second")
	check(t, err)
	if !rm2.GPGVerify || rm2.Timeout != remote.DefaultTimeout || rm2.URL != "file:///srv/repo" {
		t.Fatalf("second: %+v", rm2)
	}
	b, err := os.ReadFile(filepath.Join(r.Path(), "config"))
	check(t, err)
	want := "[remote \"origin\"]\nurl=http://example.invalid/repo\ngpg-verify=false\nostree-mount-timeout=2s\nfoo=bar baz\n"
	if !strings.Contains(string(b), want) {
		t.Fatalf("config:\n%s\nwant to contain:\n%s", b, want)
	}
	check(t, remote.Delete(r2, "origin", false))
	if _, err := remote.Lookup(r2, "origin"); !errors.Is(err, remote.ErrNoRemote) {
		t.Fatalf("deleted remote: %v", err)
	}
	if err := remote.Delete(r2, "origin", false); !errors.Is(err, remote.ErrNoRemote) {
		t.Fatalf("deleting a missing remote: %v", err)
	}
	rms, err := remote.List(r2)
	check(t, err)
	if len(rms) != 1 || rms[0].Name != "second" {
		t.Fatalf("list: %v", rms)
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	b, err := os.ReadFile(filepath.Join(src.path, "summary"))
	check(t, err)
	s, err := remote.ParseSummary(b)
	check(t, err)
	if len(s.Refs) != 2 || s.Refs[0].Name != "img" || s.Refs[1].Name != "main" || s.Refs[1].Commit != src.plain || s.Refs[0].Commit != src.img {
		t.Fatalf("refs: %+v", s.Refs)
	}
	if ts, ok := remote.Timestamp(s.Refs[1].Meta, "ostree.commit.timestamp"); !ok || ts.Unix() != 1700000000 {
		t.Fatalf("timestamp %v %v", ts, ok)
	}
	if m, _ := s.Meta.String("ostree.summary.mode"); m != "archive-z2" {
		t.Fatalf("mode %q", m)
	}
	b2, err := s.Marshal()
	check(t, err)
	if !bytes.Equal(b, b2) {
		t.Fatal("summary does not round-trip")
	}
}

func pullOK(t *testing.T, r *repo.Repo, src *source, refs ...string) *remote.Result {
	t.Helper()
	res, err := remote.Pull(context.Background(), r, "origin", refs, remote.Options{})
	check(t, err)
	for _, want := range []repo.Checksum{src.plain, src.img, src.layer} {
		if ok, _ := r.HasObject(repo.ObjCommit, want); !ok && len(refs) == 0 {
			t.Fatalf("commit %s not pulled", want)
		}
	}
	fsckClean(t, r)
	return res
}

func TestPullHTTP(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	for _, mode := range []repo.Mode{repo.ModeBareUser, repo.ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := client(t, mode, srv.URL)
			res := pullOK(t, r, src)
			// 24 files, big, link, deep, layerfile; 3 commits, 1
			// commitmeta, 4 dirtrees (root, sub, layer root, empty), 1
			// dirmeta.
			if res.FileObjects != int64(len(src.files))+4 || res.MetaObjects != 9 {
				t.Fatalf("result: %v", res)
			}
			dm, err := r.ReadCommitMeta(src.plain)
			check(t, err)
			if v, _ := dm.String("test.signature"); v != "not really" {
				t.Fatalf("detached metadata %v", dm)
			}
			c, err := r.Resolve("origin:main")
			check(t, err)
			if c != src.plain {
				t.Fatalf("origin:main is %s, want %s", c, src.plain)
			}
			if c, _ := r.Resolve("origin:img"); c != src.img {
				t.Fatalf("origin:img is %s", c)
			}
			if ok, _ := r.HasObject(repo.ObjCommit, src.layer); !ok {
				t.Fatal("related commit not pulled")
			}
			f, err := r.OpenFile(src.bigFile)
			check(t, err)
			f.Close()
			// A second pull fetches no object.
			before := srv.count(objPath(src.bigFile, "filez"))
			res2 := pullOK(t, r, src)
			if res2.FileObjects != 0 || res2.MetaObjects != 0 || srv.count(objPath(src.bigFile, "filez")) != before {
				t.Fatalf("second pull fetched: %v", res2)
			}
		})
	}
}

func TestPullParallel(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, ".filez") {
			return false
		}
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n >= 8 {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second): // a deadline, not a measurement
		}
		return false
	})
	r := client(t, repo.ModeBareUser, srv.URL)
	pullOK(t, r, src, "main")
	if peak.Load() < 8 {
		t.Fatalf("at most %d requests in flight, want 8", peak.Load())
	}
}

func TestPullNoSummary(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	check(t, os.Remove(filepath.Join(src.path, "summary")))
	srv := serve(t, src.path)
	r := client(t, repo.ModeBareUser, srv.URL)
	if _, err := remote.Pull(context.Background(), r, "origin", nil, remote.Options{}); err == nil || !strings.Contains(err.Error(), "name the refs") {
		t.Fatalf("pull of all refs without a summary: %v", err)
	}
	pullOK(t, r, src, "main")
	if srv.count("/refs/heads/main") != 1 {
		t.Fatal("refs/heads/main not read")
	}
}

func TestPullFile(t *testing.T) {
	for _, mode := range []repo.Mode{repo.ModeBareUser, repo.ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			src := makeSource(t, mode)
			r := client(t, repo.ModeBareUser, "file://"+src.path)
			pullOK(t, r, src, "main", "img")
			if ok, _ := r.HasObject(repo.ObjCommit, src.layer); !ok {
				t.Fatal("related commit not pulled")
			}
		})
	}
}

type recordingVerifier struct {
	calls    []repo.Checksum
	fail     error
	unsigned repo.Checksum // has no detached metadata
}

func (v *recordingVerifier) VerifyCommit(ctx context.Context, remoteName string, c repo.Checksum, b []byte, dm repo.Metadata) error {
	if repo.SumBytes(b) != c || remoteName != "origin" {
		return fmt.Errorf("bad call")
	}
	if sig, _ := dm.String("test.signature"); sig != "not really" && c != v.unsigned {
		return fmt.Errorf("commit %s: detached metadata %v not passed", c, dm)
	}
	v.calls = append(v.calls, c)
	return v.fail
}

func TestGPGVerify(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	r, err := repo.Init(filepath.Join(t.TempDir(), "client"), repo.InitOptions{Mode: repo.ModeBareUser})
	check(t, err)
	defer r.Close()
	check(t, remote.Add(r, "origin", srv.URL, remote.AddOptions{}))
	_, err = remote.Pull(context.Background(), r, "origin", []string{"main"}, remote.Options{})
	if !errors.Is(err, remote.ErrVerificationUnsupported) || !strings.Contains(err.Error(), "--no-gpg-verify") {
		t.Fatalf("pull with gpg-verify=true and no verifier: %v", err)
	}
	if srv.count(objPath(src.plain, "commit")) != 0 {
		t.Fatal("a commit was fetched before verification was refused")
	}
	noRefs(t, r)
	v := &recordingVerifier{fail: errors.New("bad signature"), unsigned: src.img}
	if _, err := remote.Pull(context.Background(), r, "origin", []string{"main"}, remote.Options{Verifier: v}); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("pull with a failing verifier: %v", err)
	}
	noRefs(t, r)
	v.fail, v.calls = nil, nil
	_, err = remote.Pull(context.Background(), r, "origin", []string{"img"}, remote.Options{Verifier: v})
	check(t, err)
	if len(v.calls) != 1 || v.calls[0] != src.img {
		t.Fatalf("verifier calls %v, want the ref's commit only", v.calls)
	}
}

// pullFails checks that a pull fails, wrapping want, with msg in its text,
// leaving nothing behind.
func pullFails(t *testing.T, r *repo.Repo, want error, msg string) error {
	t.Helper()
	_, err := remote.Pull(context.Background(), r, "origin", []string{"main"}, remote.Options{})
	if err == nil {
		t.Fatal("pull succeeded")
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q does not say %q", err, msg)
	}
	noRefs(t, r)
	return err
}

func TestFaultWrongContentLength(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	bad := objPath(src.bigFile, "filez")
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != bad {
			return false
		}
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(200)
		w.Write([]byte("short"))
		return true
	})
	r := client(t, repo.ModeBareUser, srv.URL)
	pullFails(t, r, repo.ErrUnavailable, "giving up after 4 attempts")
	if n := srv.count(bad); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
}

func TestFaultRedirectLoop(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, ".dirtree") {
			return false
		}
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
		return true
	})
	r := client(t, repo.ModeBareUser, srv.URL)
	pullFails(t, r, nil, "redirect loop")
}

func TestFaultTrickle(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	bad := objPath(src.bigFile, "filez")
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != bad {
			return false
		}
		b, err := os.ReadFile(filepath.Join(src.path, bad))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return true
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		for _, c := range b {
			if _, err := w.Write([]byte{c}); err != nil {
				return true
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return true
			case <-time.After(20 * time.Millisecond):
			}
		}
		return true
	})
	r := client(t, repo.ModeBareUser, srv.URL, "ostree-mount-timeout=300ms")
	start := time.Now()
	pullFails(t, r, repo.ErrUnavailable, "not complete within 300ms")
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("pull took %v", d)
	}
}

func TestFaultRetry5xx(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	bad := objPath(src.bigFile, "filez")
	var fails atomic.Int32
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != bad || fails.Add(1) > 2 {
			return false
		}
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	})
	r := client(t, repo.ModeBareUser, srv.URL)
	pullOK(t, r, src, "main")
	if n := srv.count(bad); n != 3 {
		t.Fatalf("%d requests for the object, want 3", n)
	}
}

func TestFaultGiveUp5xx(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, ".dirmeta") {
			return false
		}
		http.Error(w, "down", http.StatusBadGateway)
		return true
	})
	r := client(t, repo.ModeBareUser, srv.URL)
	pullFails(t, r, repo.ErrUnavailable, "502 Bad Gateway")
}

func TestFaultHTML200(t *testing.T) {
	for _, ext := range []string{"dirtree", "filez", "commit"} {
		t.Run(ext, func(t *testing.T) {
			src := makeSource(t, repo.ModeArchive)
			srv := serve(t, src.path)
			var hit atomic.Value
			srv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "."+ext) {
					return false
				}
				if !hit.CompareAndSwap(nil, r.URL.Path) && hit.Load() != r.URL.Path {
					return false // one object only: the error must be its
				}
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, "<html><body>Please log in</body></html>\n")
				return true
			})
			r := client(t, repo.ModeBareUser, srv.URL)
			_, err := remote.Pull(context.Background(), r, "origin", []string{"main"}, remote.Options{})
			if !errors.Is(err, repo.ErrChecksumMismatch) && !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("error %v, want a verification failure", err)
			}
			p, _ := hit.Load().(string)
			if p == "" || !strings.Contains(err.Error(), srv.URL+p) {
				t.Fatalf("error %q does not name the URL %s%s", err, srv.URL, p)
			}
			noRefs(t, r)
		})
	}
}

func TestFaultTampered(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	// Another valid .filez in the place of one: it parses, and hashes
	// to something else.
	p := filepath.Join(src.path, objPath(src.files[3], "filez"))
	other, err := os.ReadFile(filepath.Join(src.path, objPath(src.files[4], "filez")))
	check(t, err)
	check(t, os.Chmod(p, 0o644))
	check(t, os.WriteFile(p, other, 0o644))
	srv := serve(t, src.path)
	r := client(t, repo.ModeBareUser, srv.URL)
	err = pullFails(t, r, repo.ErrChecksumMismatch, src.files[3].String())
	if !strings.Contains(err.Error(), srv.URL+objPath(src.files[3], "filez")) {
		t.Fatalf("error %q does not name the URL", err)
	}
	fsckClean(t, r)
}

func TestFaultServerGone(t *testing.T) {
	src := makeSource(t, repo.ModeArchive)
	srv := serve(t, src.path)
	url := srv.URL
	srv.Close()
	r := client(t, repo.ModeBareUser, url)
	pullFails(t, r, repo.ErrUnavailable, "giving up")
}

func TestFaultHTTPBareRemote(t *testing.T) {
	src := makeSource(t, repo.ModeBareUser)
	srv := serve(t, src.path)
	r := client(t, repo.ModeBareUser, srv.URL)
	pullFails(t, r, repo.ErrUnsupported, "only archive repositories")
}
