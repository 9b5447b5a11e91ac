package tests

// Registry tests: Debian's docker-registry (distribution 2.8) on
// 127.0.0.1, one instance without auth and one with htpasswd basic auth,
// each started once per test binary and stopped by TestMain; images are
// pushed in with skopeo. A fault-injecting proxy in front of the plain
// instance stalls, cuts or corrupts one blob, or rewrites a manifest's
// media type.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// registry is a running docker-registry.
type registry struct {
	Addr    string // 127.0.0.1:PORT
	LogFile string // its stdout and stderr: the access log
	User    string // basic auth; "" for none
	Pass    string
	cmd     *exec.Cmd
}

var (
	stopMu   sync.Mutex
	stoppers []func()
)

// stopServers stops the servers the tests started; TestMain calls it.
func stopServers() {
	stopMu.Lock()
	defer stopMu.Unlock()
	for _, f := range stoppers {
		f()
	}
	stoppers = nil
}

type registryFixture struct {
	once sync.Once
	reg  *registry
	err  error
}

var plainRegFix, authRegFix registryFixture

func plainRegistry(t testing.TB) *registry { return startRegistry(t, &plainRegFix, "plain", false) }
func authRegistry(t testing.TB) *registry  { return startRegistry(t, &authRegFix, "auth", true) }

func startRegistry(t testing.TB, f *registryFixture, name string, auth bool) *registry {
	t.Helper()
	f.once.Do(func() { f.reg, f.err = launchRegistry(t, name, auth) })
	if f.err != nil {
		t.Fatalf("registry %s: %v", name, f.err)
	}
	return f.reg
}

func launchRegistry(t testing.TB, name string, auth bool) (*registry, error) {
	if _, err := exec.LookPath("docker-registry"); err != nil {
		return nil, fmt.Errorf("docker-registry not found (%v): run `make deps`", err)
	}
	dir := filepath.Join(workDir, "registry-"+name)
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	reg := &registry{Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), LogFile: filepath.Join(dir, "log")}
	cfg := fmt.Sprintf("version: 0.1\nlog: {accesslog: {disabled: false}, level: info}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %q}\n",
		filepath.Join(dir, "storage"), reg.Addr)
	if auth {
		reg.User, reg.Pass = "tester", "s3cret"
		pw := filepath.Join(dir, "htpasswd")
		if r := run("htpasswd", "-Bbc", pw, reg.User, reg.Pass); r.Code != 0 {
			return nil, fmt.Errorf("htpasswd (apache2-utils; `make deps`):\n%s", r)
		}
		cfg += fmt.Sprintf("auth: {htpasswd: {realm: test, path: %s}}\n", pw)
	}
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(reg.LogFile)
	if err != nil {
		return nil, err
	}
	reg.cmd = exec.Command("docker-registry", "serve", cfgFile)
	reg.cmd.Stdout, reg.cmd.Stderr = log, log
	if err := reg.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { reg.cmd.Wait(); log.Close(); close(exited) }()
	stopMu.Lock()
	stoppers = append(stoppers, func() { reg.cmd.Process.Kill(); <-exited })
	stopMu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + reg.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return reg, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(reg.LogFile)
			return nil, fmt.Errorf("docker-registry exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("docker-registry on %s not answering: %v", reg.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// push copies src (a skopeo source) to NAME:TAG of the registry.
func (reg *registry) push(t testing.TB, src, nameTag string, extra ...string) string {
	t.Helper()
	args := []string{"--insecure-policy", "copy", "-q", "--dest-tls-verify=false"}
	if reg.User != "" {
		args = append(args, "--dest-creds", reg.User+":"+reg.Pass)
	}
	args = append(args, extra...)
	dst := "docker://" + reg.Addr + "/" + nameTag
	mustRun(t, "skopeo", append(args, src, dst)...)
	return dst
}

// logSize is the access log's current length, to read what follows.
func (reg *registry) logSize(t testing.TB) int64 {
	fi, err := os.Stat(reg.LogFile)
	noErr(t, err)
	return fi.Size()
}

var blobGetRE = regexp.MustCompile(`"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64}) HTTP`)

// blobGets lists the blob digests GET since offset, as the access log
// shows them.
func (reg *registry) blobGets(t testing.TB, offset int64) []string {
	t.Helper()
	b, err := os.ReadFile(reg.LogFile)
	noErr(t, err)
	var out []string
	for _, m := range blobGetRE.FindAllStringSubmatch(string(b[offset:]), -1) {
		out = append(out, m[1])
	}
	return out
}

// pushedFixtures pushes the image fixtures into the plain registry once.
var pushOnce sync.Once

func pushFixtures(t testing.TB) *registry {
	t.Helper()
	reg := plainRegistry(t)
	syn := syntheticImage(t)
	conv := convertedImages(t)
	sh := sharedImages(t)
	ma := multiArchImage(t)
	pushOnce.Do(func() {
		reg.push(t, "oci:"+filepath.Join(syn, "img")+":layer4", "synthetic:gzip")
		reg.push(t, "oci:"+filepath.Join(conv, "zstd")+":final", "synthetic:zstd")
		// skopeo's oci: source skips index entries of Docker media types:
		// convert while pushing.
		reg.push(t, "oci:"+filepath.Join(syn, "img")+":layer4", "synthetic:v2s2", "--format", "v2s2")
		reg.push(t, "oci:"+filepath.Join(sh, "shared")+":one", "shared:one")
		reg.push(t, "oci:"+filepath.Join(sh, "shared")+":two", "shared:two")
		reg.push(t, "oci:"+ma.Layout+":latest", "multi:latest", "--all")
	})
	return reg
}

// remoteDigest is the manifest digest the registry serves for NAME:TAG.
func remoteDigest(t testing.TB, reg *registry, nameTag string) string {
	t.Helper()
	var v struct{ Digest string }
	out := mustRun(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg.Addr+"/"+nameTag).Stdout
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Digest == "" {
		t.Fatalf("skopeo inspect %s: %v\n%s", nameTag, err, out)
	}
	return v.Digest
}

func TestRegistryPull(t *testing.T) {
	reg := pushFixtures(t)
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	synRef := filepath.Join(syntheticImage(t), "ref", "rootfs")
	ma := multiArchImage(t)
	base := "docker://" + reg.Addr + "/"
	cases := []struct {
		name, src, ref string
		args           []string
	}{
		{"oci-gzip", base + "synthetic:gzip", synRef, nil},
		{"oci-zstd", base + "synthetic:zstd", synRef, nil},
		{"docker-v2s2", base + "synthetic:v2s2", synRef, nil},
		{"by-digest", base + "synthetic@" + remoteDigest(t, reg, "synthetic:gzip"), synRef, nil},
		{"index-amd64", base + "multi:latest", ma.Ref["amd64"], []string{"--platform", "linux/amd64"}},
		{"index-arm64", base + "multi:latest", ma.Ref["arm64"], []string{"--platform", "linux/arm64"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := "pulled/" + c.name
			args := append([]string{"--tls-verify=false", "--ref", ref}, c.args...)
			importImage(t, rp, append(args, c.src)...)
			checkoutEquals(t, rp, ref, c.ref, dir)
		})
	}
	// Without --ref, the default ref names the repository and tag.
	importImage(t, rp, "--tls-verify=false", "-q", base+"synthetic:gzip")
	if readRefFile(t, rp, "refs/heads/image/synthetic/gzip") == "" {
		t.Errorf("no default ref image/synthetic/gzip: %v", strongRefs(t, rp))
	}
	// The by-digest pull is the same image, on the same layer commits.
	for _, key := range []string{"ostree-mount.digest", "ostree-mount.manifest", "ostree-mount.config"} {
		if a, b := metadataString(t, rp, "pulled/oci-gzip", key), metadataString(t, rp, "pulled/by-digest", key); a != b || a == "" {
			t.Errorf("%s: by tag %q, by digest %q", key, clip(a, 100), clip(b, 100))
		}
	}
	if a, b := relatedEntries(t, rp, "pulled/oci-gzip"), relatedEntries(t, rp, "pulled/by-digest"); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("related: by tag %v, by digest %v", a, b)
	}
	fsckBoth(t, rp)
}

func TestRegistryLayerReuse(t *testing.T) {
	reg := pushFixtures(t)
	sh := filepath.Join(sharedImages(t), "shared")
	one, two := readLayoutImage(t, sh, "one"), readLayoutImage(t, sh, "two")
	if one.LayerDigests[0] != two.LayerDigests[0] {
		t.Fatalf("fixture: images one and two do not share their base blob: %v %v", one.LayerDigests, two.LayerDigests)
	}
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	base := "docker://" + reg.Addr + "/"
	off := reg.logSize(t)
	importImage(t, rp, "--tls-verify=false", "--ref", "one", base+"shared:one")
	got := reg.blobGets(t, off)
	for _, d := range one.LayerDigests {
		if !contains(got, d) {
			t.Fatalf("first import: no GET of layer blob %s in the registry log (GETs: %v)", d, got)
		}
	}
	off = reg.logSize(t)
	_, r := importImage(t, rp, "--tls-verify=false", "--ref", "two", base+"shared:two")
	got = reg.blobGets(t, off)
	if contains(got, two.LayerDigests[0]) {
		t.Errorf("second import fetched the shared base blob %s (GETs: %v)\n%s", two.LayerDigests[0], got, r)
	}
	top := two.LayerDigests[len(two.LayerDigests)-1]
	if !contains(got, top) {
		t.Errorf("second import: no GET of its own top blob %s (GETs: %v)", top, got)
	}
	checkoutEquals(t, rp, "two", filepath.Join(sharedImages(t), "ref-two", "rootfs"), dir)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// runEnv runs a command with extra environment variables.
func runEnv(env []string, name string, args ...string) cmdResult {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := cmdResult{Args: append([]string{name}, args...), Err: err, Code: -1, Stdout: so.String(), Stderr: se.String()}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	}
	return r
}

// checkImportFails checks a failed import: non-zero exit, one line on
// stderr naming the image and containing want, no strong ref.
func checkImportFails(t testing.TB, r cmdResult, rp, src, want string) {
	t.Helper()
	if r.Code <= 0 {
		t.Fatalf("import must fail with an exit status:\n%s", r)
	}
	msg := strings.TrimSpace(r.Stderr)
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line:\n%s", msg)
	}
	if !strings.Contains(msg, src) || !strings.Contains(msg, want) {
		t.Errorf("error %q does not name %s and %q", msg, src, want)
	}
	if refs := strongRefs(t, rp); len(refs) != 0 {
		t.Errorf("failed import left refs %v", refs)
	}
}

func TestRegistryAuth(t *testing.T) {
	reg := authRegistry(t)
	syn := syntheticImage(t)
	reg.push(t, "oci:"+filepath.Join(syn, "img")+":layer4", "private/syn:1")
	synRef := filepath.Join(syn, "ref", "rootfs")
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	src := "docker://" + reg.Addr + "/private/syn:1"
	// No credentials: HOME and XDG_RUNTIME_DIR point at empty directories.
	home := filepath.Join(dir, "home")
	noErr(t, os.MkdirAll(home, 0o755))
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + home, "REGISTRY_AUTH_FILE="}
	r := runEnv(env, binary, "import", "--repo", rp, "--tls-verify=false", src)
	checkImportFails(t, r, rp, src, "401")
	r = runEnv(env, binary, "import", "--repo", rp, "--tls-verify=false", "--creds", reg.User+":wrong", src)
	checkImportFails(t, r, rp, src, "401")
	fsckBoth(t, rp)

	authJSON := func(file, key string) string {
		p := filepath.Join(dir, file)
		noErr(t, os.MkdirAll(filepath.Dir(p), 0o755))
		a := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Pass))
		noErr(t, os.WriteFile(p, mustJSON(map[string]any{"auths": map[string]any{key: map[string]string{"auth": a}}}), 0o600))
		return p
	}
	ok := func(name string, env []string, args ...string) {
		t.Helper()
		a := append([]string{"import", "--repo", rp, "--tls-verify=false", "-q", "--ref", name}, args...)
		if r := runEnv(env, binary, append(a, src)...); r.Code != 0 {
			t.Fatalf("%s: import failed:\n%s", name, r)
		}
		checkoutEquals(t, rp, name, synRef, dir)
	}
	ok("creds", env, "--creds", reg.User+":"+reg.Pass)
	ok("authfile", env, "--authfile", authJSON("auth.json", reg.Addr))
	ok("registry-auth-file", append(env, "REGISTRY_AUTH_FILE="+authJSON("env/auth.json", "http://"+reg.Addr)))
	ok("xdg", []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"), "REGISTRY_AUTH_FILE="}, func() []string {
		authJSON("xdg/containers/auth.json", reg.Addr+"/private")
		return nil
	}()...)
	ok("docker-config", []string{"HOME=" + filepath.Join(dir, "dhome"), "XDG_RUNTIME_DIR=" + home, "REGISTRY_AUTH_FILE="}, func() []string {
		authJSON("dhome/.docker/config.json", reg.Addr)
		return nil
	}()...)
}

// faultProxy forwards to a registry, misbehaving on request.
type faultProxy struct {
	target string
	srv    *httptest.Server
	mode   atomic.Value // string: "", "stall", "hold", "cut", "corrupt", "mediatype"
	blob   atomic.Value // string: the digest to misbehave on
	hit    chan struct{}
	// release ends the wait of "hold" mode, which sends the blob's first
	// half, then waits for it before sending the rest.
	release chan struct{}
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	p := &faultProxy{target: target, hit: make(chan struct{}, 16), release: make(chan struct{})}
	p.mode.Store("")
	p.blob.Store("")
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) Addr() string { u, _ := url.Parse(p.srv.URL); return u.Host }

func (p *faultProxy) set(mode, blob string) { p.mode.Store(mode); p.blob.Store(blob) }

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	out, err := http.NewRequestWithContext(req.Context(), req.Method, "http://"+p.target+req.URL.RequestURI(), req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.Header = req.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	mode, blob := p.mode.Load().(string), p.blob.Load().(string)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if mode == "mediatype" && strings.Contains(req.URL.Path, "/manifests/") {
		w.Header().Set("Content-Type", "application/vnd.example.unknown+json")
	}
	isBlob := req.Method == http.MethodGet && blob != "" && strings.HasSuffix(req.URL.Path, "/blobs/"+blob) && resp.StatusCode == 200
	w.WriteHeader(resp.StatusCode)
	if !isBlob || mode == "" || mode == "mediatype" {
		io.Copy(w, resp.Body)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	half := len(body) / 2
	switch mode {
	case "corrupt":
		body[half] ^= 0xff
		w.Write(body)
	case "cut":
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	case "stall":
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		p.hit <- struct{}{}
		<-req.Context().Done()
	case "hold":
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		p.hit <- struct{}{}
		select {
		case <-p.release:
			w.Write(body[half:])
		case <-req.Context().Done():
		}
	}
}

func TestRegistryErrors(t *testing.T) {
	reg := pushFixtures(t)
	px := newFaultProxy(t, reg.Addr)
	syn := readLayoutImage(t, filepath.Join(syntheticImage(t), "img"), "layer4")
	top := syn.LayerDigests[len(syn.LayerDigests)-1]
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	imp := func(src string) cmdResult {
		return omRun("import", "--repo", rp, "--tls-verify=false", "-q", src)
	}
	viaProxy := "docker://" + px.Addr() + "/synthetic:gzip"
	cases := []struct {
		name, mode, src, want string
	}{
		{"unknown-host", "", "docker://no-such-host.invalid/x:1", "unknown host"},
		{"unknown-tag", "", "docker://" + reg.Addr + "/synthetic:nope", "not found"},
		{"unknown-repo", "", "docker://" + reg.Addr + "/nothing:1", "not found"},
		{"digest-mismatch", "corrupt", viaProxy, "digest mismatch"},
		{"server-gone", "cut", viaProxy, top},
		{"media-type", "mediatype", viaProxy, "application/vnd.example.unknown+json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			px.set(c.mode, top)
			defer px.set("", "")
			checkImportFails(t, imp(c.src), rp, c.src, c.want)
		})
	}
	fsckBoth(t, rp)
	// Nothing is left behind that keeps a re-run from succeeding.
	importImage(t, rp, "--tls-verify=false", "--ref", "ok", viaProxy)
	checkoutEquals(t, rp, "ok", filepath.Join(syntheticImage(t), "ref", "rootfs"), dir)
}

func TestRegistryKill9(t *testing.T) {
	reg := pushFixtures(t)
	px := newFaultProxy(t, reg.Addr)
	syn := readLayoutImage(t, filepath.Join(syntheticImage(t), "img"), "layer4")
	top := syn.LayerDigests[len(syn.LayerDigests)-1]
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	src := "docker://" + px.Addr() + "/synthetic:gzip"
	px.set("stall", top)
	cmd := exec.Command(binary, "import", "--repo", rp, "--tls-verify=false", "--ref", "killed", src)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	noErr(t, cmd.Start())
	select {
	case <-px.hit:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the import never reached the top blob:\n%s", stderr.String())
	}
	noErr(t, cmd.Process.Kill())
	cmd.Wait()
	px.set("", "")
	if refs := strongRefs(t, rp); len(refs) != 0 {
		t.Errorf("killed import left refs %v", refs)
	}
	ostreeCmd(t, "fsck", "--repo="+rp)
	importImage(t, rp, "--tls-verify=false", "--ref", "killed", src)
	checkoutEquals(t, rp, "killed", filepath.Join(syntheticImage(t), "ref", "rootfs"), dir)
	fsckBoth(t, rp)
}

// rootfsListing lists a reference rootfs as `ostree-mount ls -R IMAGE`
// lists the composed image: ostree ls's columns, files before
// directories, each in name order; a special file shows as the empty
// regular file that stores it, a symlink with size 0.
func rootfsListing(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	line := func(p string, fi os.FileInfo) string {
		st := fi.Sys().(*syscall.Stat_t)
		perm := uint32(st.Mode) & 0o7777
		switch fi.Mode().Type() {
		case 0:
			return fmt.Sprintf("-0%04o %d %d %6d %s", perm, st.Uid, st.Gid, fi.Size(), p)
		case fs.ModeDir:
			return fmt.Sprintf("d0%04o %d %d %6d %s", perm, st.Uid, st.Gid, 0, p)
		case fs.ModeSymlink:
			target, err := os.Readlink(filepath.Join(root, p))
			noErr(t, err)
			return fmt.Sprintf("l0%04o %d %d %6d %s -> %s", perm, st.Uid, st.Gid, 0, p, target)
		default:
			return fmt.Sprintf("-0%04o %d %d %6d %s", perm, st.Uid, st.Gid, 0, p)
		}
	}
	var walk func(p string)
	walk = func(p string) {
		fi, err := os.Lstat(filepath.Join(root, p))
		noErr(t, err)
		out = append(out, line(p, fi))
		ents, err := os.ReadDir(filepath.Join(root, p))
		noErr(t, err)
		var dirs []string
		for _, e := range ents { // ReadDir sorts by name
			cp := path.Join(p, e.Name())
			if e.IsDir() {
				dirs = append(dirs, cp)
				continue
			}
			fi, err := e.Info()
			noErr(t, err)
			out = append(out, line(cp, fi))
		}
		for _, d := range dirs {
			walk(d)
		}
	}
	walk("/")
	return out
}

func TestRegistryImageCommands(t *testing.T) {
	reg := pushFixtures(t)
	syn := syntheticImage(t)
	ref := filepath.Join(syn, "ref", "rootfs")
	li := readLayoutImage(t, filepath.Join(syn, "img"), "layer4")
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	src := "docker://" + reg.Addr + "/synthetic:gzip"
	importImage(t, rp, "--tls-verify=false", "-q", "--ref", "layered", src)
	importImage(t, rp, "--tls-verify=false", "-q", "--ref", "squashed", "--mode", "squashed", src)

	// ls -R shows what umoci unpack shows.
	got := strings.Split(strings.TrimRight(om(t, "ls", "--repo", rp, "-R", "layered"), "\n"), "\n")
	checkTreesEqual(t, "ls -R of the layered image vs umoci unpack", rootfsListing(t, ref), got)
	// ls -R -C of a layered image is what ostree lists for the squashed one.
	want := ostreeCmd(t, "ls", "--repo="+rp, "-R", "-C", "squashed")
	if got := om(t, "ls", "--repo", rp, "-R", "-C", "layered"); got != want {
		t.Errorf("ls -R -C layered differs from ostree ls -R -C of the squashed import:\n%s\nostree:\n%s", got, want)
	}
	// ls of a path inside.
	if got := om(t, "ls", "--repo", rp, "layered", "/etc/hostname"); !strings.HasSuffix(strings.TrimSpace(got), " /etc/hostname") {
		t.Errorf("ls layered /etc/hostname: %q", got)
	}

	// cat: files, through an absolute symlink in a directory component.
	for _, c := range []struct{ path, file string }{
		{"/etc/hostname", "etc/hostname"},
		{"/opt/app/b", "opt/app/b"},
		{"/file2dir/hostname", "etc/hostname"}, // file2dir -> /etc
		{"/bin/sh", "bin/tool"},                // sh -> /bin/tool
	} {
		b, err := os.ReadFile(filepath.Join(ref, c.file))
		noErr(t, err)
		if got := om(t, "cat", "--repo", rp, "layered", c.path); got != string(b) {
			t.Errorf("cat %s: %q, want %q", c.path, got, b)
		}
	}
	omFail(t, "cat", "--repo", rp, "layered", "/etc/empty") // whited out

	// checkout --subpath of a directory and of a file.
	co := filepath.Join(dir, "co-etc")
	om(t, "checkout", "--repo", rp, "--subpath", "/etc", "layered", co)
	checkTreesEqual(t, "checkout --subpath /etc", dumpTree(t, filepath.Join(ref, "etc"), treecmpPlain), dumpTree(t, co, treecmpPlain))
	om(t, "checkout", "--repo", rp, "--subpath", "/opt/app/b", "layered", filepath.Join(dir, "b"))
	if b, _ := os.ReadFile(filepath.Join(dir, "b")); string(b) != "again\n" {
		t.Errorf("checkout --subpath /opt/app/b: %q", b)
	}

	// images, as a table and as JSON.
	digest := remoteDigest(t, reg, "synthetic:gzip")
	table := om(t, "images", "--repo", rp)
	hexd := strings.TrimPrefix(digest, "sha256:")[:12]
	for _, name := range []string{"layered", "squashed"} {
		if !regexp.MustCompile(`(?m)^` + name + ` +` + hexd + ` +\w+ +` + fmt.Sprint(len(li.LayerDigests)) + ` `).MatchString(table) {
			t.Errorf("images: no row for %s with digest %s and %d layers:\n%s", name, hexd, len(li.LayerDigests), table)
		}
	}
	var imgs []struct {
		Ref, Digest, Mode string
		Layers            int
		Size              int64
	}
	noErr(t, json.Unmarshal([]byte(om(t, "images", "--repo", rp, "--format", "json")), &imgs))
	if len(imgs) != 2 || imgs[0].Ref != "layered" || imgs[0].Digest != digest || imgs[0].Mode != "layered" || imgs[0].Layers != len(li.LayerDigests) || imgs[1].Mode != "squashed" || imgs[0].Size <= 0 {
		t.Errorf("images --format json: %+v", imgs)
	}

	// inspect: --raw is the manifest the registry serves, --config its config.
	skRaw := mustRun(t, "skopeo", "inspect", "--tls-verify=false", "--raw", src).Stdout
	if got := om(t, "inspect", "--repo", rp, "--raw", "layered"); strings.TrimRight(got, "\n") != strings.TrimRight(skRaw, "\n") || sha256Digest([]byte(got)) != digest {
		t.Errorf("inspect --raw:\n%s\nskopeo inspect --raw:\n%s", got, skRaw)
	}
	var a, b any
	noErr(t, json.Unmarshal([]byte(om(t, "inspect", "--repo", rp, "--config", "layered")), &a))
	noErr(t, json.Unmarshal([]byte(mustRun(t, "skopeo", "inspect", "--tls-verify=false", "--config", src).Stdout), &b))
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("inspect --config:\n%v\nskopeo inspect --config:\n%v", a, b)
	}
	var sum struct {
		Digest string
		Layers []string
	}
	noErr(t, json.Unmarshal([]byte(om(t, "inspect", "--repo", rp, "layered")), &sum))
	if sum.Digest != digest || fmt.Sprint(sum.Layers) != fmt.Sprint(li.LayerDigests) {
		t.Errorf("inspect: %+v, want digest %s, layers %v", sum, digest, li.LayerDigests)
	}
}

// credHelperScript writes bin/docker-credential-NAME: a credential
// helper speaking the docker-credential-helpers protocol. `get` reads the
// server on stdin, appends it to bin/NAME.log and prints the credentials
// for server want (user, secret); for any other server it answers as the
// real helpers do, "credentials not found in native keychain" on stdout
// with exit status 1.
func credHelperScript(t testing.TB, bin, name, want, user, secret string) string {
	t.Helper()
	noErr(t, os.MkdirAll(bin, 0o755))
	logFile := filepath.Join(bin, name+".log")
	js := string(mustJSON(map[string]string{"ServerURL": want, "Username": user, "Secret": secret}))
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || { echo "unsupported action $1" >&2; exit 2; }
server=$(cat)
printf '%%s\n' "$server" >> %q
if [ "$server" = %q ]; then
  printf '%%s\n' %q
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`, logFile, want, js)
	noErr(t, os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(script), 0o755))
	return logFile
}

// TestRegistryCredHelpers: an auth file's "credHelpers" (by registry and
// by repository key) and "credsStore" name real helper executables on
// $PATH, which are asked for the registry's server and whose
// credentials are used; a helper's wrong credentials, a helper that has
// none and a helper missing from $PATH fail cleanly with no ref.
func TestRegistryCredHelpers(t *testing.T) {
	reg := authRegistry(t)
	syn := syntheticImage(t)
	reg.push(t, "oci:"+filepath.Join(syn, "img")+":layer4", "private/helper:1")
	synRef := filepath.Join(syn, "ref", "rootfs")
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	src := "docker://" + reg.Addr + "/private/helper:1"
	bin := filepath.Join(dir, "bin")
	home := filepath.Join(dir, "home")
	noErr(t, os.MkdirAll(home, 0o755))
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + home, "REGISTRY_AUTH_FILE=", "PATH=" + bin + ":" + os.Getenv("PATH")}
	goodLog := credHelperScript(t, bin, "good", reg.Addr, reg.User, reg.Pass)
	repoLog := credHelperScript(t, bin, "byrepo", reg.Addr+"/private", reg.User, reg.Pass)
	credHelperScript(t, bin, "wrong", reg.Addr, reg.User, "not-"+reg.Pass)
	credHelperScript(t, bin, "empty", "elsewhere.example:5000", reg.User, reg.Pass)
	n := 0
	authFile := func(v map[string]any) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("auth%d.json", n))
		noErr(t, os.WriteFile(p, mustJSON(v), 0o600))
		return p
	}
	imp := func(file string, extra ...string) cmdResult {
		a := append([]string{"import", "--repo", rp, "--tls-verify=false", "-q", "--authfile", file}, extra...)
		return runEnv(env, binary, append(a, src)...)
	}

	// Failures first: the repository must hold no ref after each.
	checkImportFails(t, imp(authFile(map[string]any{"credHelpers": map[string]string{reg.Addr: "wrong"}})), rp, src, "401")
	checkImportFails(t, imp(authFile(map[string]any{"credsStore": "empty"})), rp, src, "401")
	checkImportFails(t, imp(authFile(map[string]any{"credsStore": "absent"})), rp, src, "docker-credential-absent")
	fsckBoth(t, rp)

	ok := func(name, file string) {
		t.Helper()
		if r := imp(file, "--ref", name); r.Code != 0 {
			t.Fatalf("%s: import failed:\n%s", name, r)
		}
		checkoutEquals(t, rp, name, synRef, dir)
	}
	lines := func(f string) []string {
		b, err := os.ReadFile(f)
		noErr(t, err)
		return strings.Fields(string(b))
	}
	ok("cred-helpers", authFile(map[string]any{"credHelpers": map[string]string{reg.Addr: "good"}}))
	if got := lines(goodLog); fmt.Sprint(got) != fmt.Sprint([]string{reg.Addr}) {
		t.Errorf("credHelpers: the helper was asked for %q, want once for %s", got, reg.Addr)
	}
	// credsStore serves every registry that has no credHelpers entry; an
	// "auths" entry without credentials does not shadow it.
	ok("creds-store", authFile(map[string]any{"credsStore": "good", "auths": map[string]any{reg.Addr: map[string]string{}}}))
	if got := lines(goodLog); len(got) != 2 || got[1] != reg.Addr {
		t.Errorf("credsStore: the helper was asked for %q, want %s a second time", got, reg.Addr)
	}
	// The most specific key wins: the repository's helper before the
	// registry's (which would give wrong credentials).
	ok("by-repository", authFile(map[string]any{"credHelpers": map[string]string{reg.Addr: "wrong", reg.Addr + "/private": "byrepo"}}))
	if got := lines(repoLog); fmt.Sprint(got) != fmt.Sprint([]string{reg.Addr + "/private"}) {
		t.Errorf("credHelpers by repository: the helper was asked for %q", got)
	}
	fsckBoth(t, rp)
}
