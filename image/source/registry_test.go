package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry is go-containerregistry's in-memory registry behind a
// handler that counts blob GETs and, when tokens are on, demands bearer
// tokens from its own token endpoint.
type testRegistry struct {
	srv       *httptest.Server
	host      string
	blobGets  atomic.Int64
	tokensOn  atomic.Bool
	issued    atomic.Int64
	mu        sync.Mutex
	valid     map[string]bool
	inner     http.Handler
	blobPaths []string
	corrupt   atomic.Bool // flip a byte of every blob served
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{valid: map[string]bool{}, inner: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	tr.srv = httptest.NewServer(tr)
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

func (tr *testRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		tok := fmt.Sprintf("tok-%d", tr.issued.Add(1))
		tr.mu.Lock()
		tr.valid[tok] = true
		tr.mu.Unlock()
		fmt.Fprintf(w, `{"token": %q}`, tok)
		return
	}
	if tr.tokensOn.Load() {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tr.mu.Lock()
		ok := tr.valid[tok]
		tr.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test",scope="repository:test/img:pull"`, tr.host))
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}`)
			return
		}
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		tr.blobGets.Add(1)
		tr.mu.Lock()
		tr.blobPaths = append(tr.blobPaths, r.URL.Path)
		tr.mu.Unlock()
	}
	if tr.corrupt.Load() && strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
		rec := httptest.NewRecorder()
		tr.inner.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		if len(b) > 0 {
			b[len(b)/2] ^= 0xff
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(b)
		return
	}
	tr.inner.ServeHTTP(w, r)
}

// revoke invalidates every token issued so far, as an expiry or a
// registry restart does.
func (tr *testRegistry) revoke() {
	tr.mu.Lock()
	tr.valid = map[string]bool{}
	tr.mu.Unlock()
}

// push writes a random image of n layers to repo:tag.
func (tr *testRegistry) push(t *testing.T, repoTag string, n int64) ggcrv1.Image {
	t.Helper()
	img, err := random.Image(64<<10, n)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(tr.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func openRemote(t *testing.T, ref string, o RegistryOptions) Image {
	t.Helper()
	o.Insecure = true
	img, err := Open(context.Background(), ref, Options{Registry: o})
	if err != nil {
		t.Fatalf("open %s: %v", ref, err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func readAllLayer(t *testing.T, l Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRegistryLazyBlobs: Open fetches manifest and config only; a layer
// blob is fetched when its stream is opened, and matches the pushed one.
func TestRegistryLazyBlobs(t *testing.T) {
	tr := newTestRegistry(t)
	want := tr.push(t, "test/img:1", 3)
	img := openRemote(t, "docker://"+tr.host+"/test/img:1", RegistryOptions{})
	if n := tr.blobGets.Load(); n != 1 {
		t.Fatalf("Open made %d blob GETs (%v), want 1 (the config)", n, tr.blobPaths)
	}
	wd, _ := want.Digest()
	if d, _ := img.Digest(); d.String() != wd.String() {
		t.Errorf("digest %s, want %s", d, wd)
	}
	if img.Name() != "test/img:1" {
		t.Errorf("name %q", img.Name())
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wls, _ := want.Layers()
	if len(ls) != 3 {
		t.Fatalf("%d layers, want 3", len(ls))
	}
	if tr.blobGets.Load() != 1 {
		t.Fatalf("Layers made blob GETs: %v", tr.blobPaths)
	}
	b := readAllLayer(t, ls[2])
	wd2, _ := wls[2].Digest()
	wdiff, _ := wls[2].DiffID()
	if got := fmt.Sprint(sha(b)); got != wd2.String() {
		t.Errorf("layer 2 blob has digest %s, want %s", got, wd2)
	}
	if d, _ := ls[2].DiffID(); d.String() != wdiff.String() {
		t.Errorf("layer 2 diff_id %s, want %s", d, wdiff)
	}
	if n := tr.blobGets.Load(); n != 2 {
		t.Errorf("%d blob GETs after reading one layer, want 2: %v", n, tr.blobPaths)
	}
	// By digest, the same image.
	img2 := openRemote(t, "docker://"+tr.host+"/test/img@"+wd.String(), RegistryOptions{})
	if d, _ := img2.Digest(); d.String() != wd.String() {
		t.Errorf("by digest: %s", d)
	}
}

// TestRegistryTokenRefresh: the bearer token expires between the
// manifest and the blobs (every token is revoked, as a restarted
// registry does); the pull goes on with a new token, fetched by the
// library's transport on the 401.
func TestRegistryTokenRefresh(t *testing.T) {
	tr := newTestRegistry(t)
	tr.push(t, "test/img:1", 2)
	tr.tokensOn.Store(true)
	img := openRemote(t, "docker://"+tr.host+"/test/img:1", RegistryOptions{})
	before := tr.issued.Load()
	if before == 0 {
		t.Fatal("no token was asked for")
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		tr.revoke()
		readAllLayer(t, l)
		if got := tr.issued.Load(); got <= before {
			t.Fatalf("layer %d read without a new token (issued %d)", i, got)
		}
		before = tr.issued.Load()
	}
}

func TestRegistryErrors(t *testing.T) {
	tr := newTestRegistry(t)
	tr.push(t, "test/img:1", 1)
	for _, c := range []struct {
		ref  string
		kind error
		want string
	}{
		{"docker://" + tr.host + "/test/img:nope", ErrNotFound, "MANIFEST_UNKNOWN"},
		{"docker://" + tr.host + "/test/img@sha256:" + strings.Repeat("0", 64), ErrNotFound, ""},
		{"docker:" + tr.host + "/test/img:1", ErrInvalid, "docker://HOST"},
		{"docker://" + tr.host + "/Bad Name", ErrInvalid, ""},
	} {
		_, err := Open(context.Background(), c.ref, Options{Registry: RegistryOptions{Insecure: true}})
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, want %v and %q on one line", c.ref, err, c.kind, c.want)
		}
	}
	// A corrupt blob: ErrDigestMismatch at the end of its stream.
	img := openRemote(t, "docker://"+tr.host+"/test/img:1", RegistryOptions{})
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	tr.corrupt.Store(true)
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	tr.corrupt.Store(false)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("corrupt blob: got %v, want ErrDigestMismatch", err)
	}
	// A registry that refuses the credentials answers 401: ErrAuth.
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer deny.Close()
	_, err = Open(context.Background(), "docker://"+strings.TrimPrefix(deny.URL, "http://")+"/x/y:1", Options{Registry: RegistryOptions{Insecure: true, Creds: "u:p"}})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "401") {
		t.Errorf("401: got %v, want ErrAuth naming 401", err)
	}
}

func writeFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func authOf(t *testing.T, repo string, o RegistryOptions) *authn.AuthConfig {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	a, err := registryAuth(r, o)
	if err != nil {
		t.Fatalf("registryAuth %s: %v", repo, err)
	}
	c, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRegistryAuthFiles: skopeo's order of auth files, and the most
// specific key of a containers auth.json winning.
func TestRegistryAuthFiles(t *testing.T) {
	dir := t.TempDir()
	// "u1:p1", "u2:p2", "u3:p3", "u4:p4" in base64.
	enc := map[string]string{"u1": "dTE6cDE=", "u2": "dTI6cDI=", "u3": "dTM6cDM=", "u4": "dTQ6cDQ="}
	file := func(p string, kv ...string) string {
		var ents []string
		for i := 0; i < len(kv); i += 2 {
			ents = append(ents, fmt.Sprintf("%q: {\"auth\": %q}", kv[i], enc[kv[i+1]]))
		}
		return writeFile(t, filepath.Join(dir, p), `{"auths": {`+strings.Join(ents, ",")+`}}`)
	}
	envFile := file("env/auth.json", "reg.example:5000", "u1")
	xdg := filepath.Join(dir, "xdg")
	file("xdg/containers/auth.json", "reg.example:5000", "u2")
	home := filepath.Join(dir, "home")
	file("home/.docker/config.json", "https://reg.example:5000", "u3")
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	t.Setenv("REGISTRY_AUTH_FILE", envFile)
	const repo = "reg.example:5000/team/app"
	check := func(what, wantUser string, o RegistryOptions) {
		t.Helper()
		if c := authOf(t, repo, o); c.Username != wantUser {
			t.Errorf("%s: user %q, want %q", what, c.Username, wantUser)
		}
	}
	check("$REGISTRY_AUTH_FILE", "u1", RegistryOptions{})
	t.Setenv("REGISTRY_AUTH_FILE", "")
	check("$XDG_RUNTIME_DIR/containers/auth.json", "u2", RegistryOptions{})
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "none"))
	check("~/.docker/config.json (key with a scheme)", "u3", RegistryOptions{})
	t.Setenv("HOME", filepath.Join(dir, "none"))
	check("no file: anonymous", "", RegistryOptions{})
	check("--creds", "me", RegistryOptions{Creds: "me:pw"})
	scoped := file("scoped.json", "reg.example:5000", "u1", "reg.example:5000/team", "u4", "reg.example:5000/other", "u2")
	check("the repository-scoped key wins", "u4", RegistryOptions{AuthFile: scoped})
	if c := authOf(t, repo, RegistryOptions{AuthFile: scoped}); c.Password != "p4" {
		t.Errorf("password %q", c.Password)
	}
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(dir, "missing.json"))
	r, _ := name.NewRepository(repo)
	if _, err := registryAuth(r, RegistryOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing $REGISTRY_AUTH_FILE: got %v, want ErrNotExist", err)
	}
}
