package tests

// Fixtures and helpers of the image tests (import_test.go,
// import_attack_test.go, prune_test.go):
//
//   - done images, made offline by umoci, skopeo and buildah from the
//     scripts in tests/images, each built lazily once per test binary run
//     in workDir/images, with its reference rootfs (umoci unpack);
//   - hand-made OCI layouts and docker-archives (handImage, dockerArchive)
//     built from layer tars written with archive/tar (tarEntry), for the
//     hostile inputs;
//   - repository probes: the set of object files, the objects of a
//     commit (through ls -R -C), ref files, prune's report.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/repo/gvariant"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// imageTools are the commands the fixture scripts run.
var imageTools = []string{"umoci", "skopeo", "buildah", "bash", "tar", "setfattr", "mknod", "mkfifo"}

// imageFixture builds one fixture directory once per test binary run.
type imageFixture struct {
	once sync.Once
	dir  string
	err  error
}

// get returns the fixture's directory, building it with build on first
// use; a failed build fails every test that asks for it.
func (f *imageFixture) get(t testing.TB, name string, build func(dir string) error) string {
	t.Helper()
	f.once.Do(func() {
		for _, tool := range imageTools {
			if _, err := exec.LookPath(tool); err != nil {
				f.err = fmt.Errorf("%s not found in PATH (%v): run `make deps` as root to install the test dependencies", tool, err)
				return
			}
		}
		f.dir = filepath.Join(workDir, "images", name)
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			f.err = err
			return
		}
		start := time.Now()
		f.err = build(f.dir)
		fmt.Fprintf(os.Stderr, "e2e: built fixture image %s in %s\n", name, time.Since(start).Round(time.Millisecond))
	})
	if f.err != nil {
		t.Fatalf("fixture image %s: %v", name, f.err)
	}
	return f.dir
}

// runImageScript runs tests/images/SCRIPT with bash -e, with dir as its
// first argument.
func runImageScript(script, dir string, args ...string) error {
	p := filepath.Join(moduleRoot, "tests", "images", script)
	r := run("bash", append([]string{"-e", p, dir}, args...)...)
	if r.Code != 0 {
		return fmt.Errorf("script %s failed:\n%s", script, r)
	}
	return nil
}

var (
	syntheticFix imageFixture
	convertFix   imageFixture
	buildahFix   imageFixture
	sharedFix    imageFixture
	multiFix     imageFixture
)

// syntheticImage returns the directory holding the synthetic image of
// oci-layers.md §4: the layout img (tag layer4) and ref/rootfs.
func syntheticImage(t testing.TB) string {
	t.Helper()
	return syntheticFix.get(t, "synthetic", func(dir string) error {
		return runImageScript("synthetic.sh", dir)
	})
}

// convertedImages returns the directory holding skopeo's conversions of
// the synthetic image: oci.tar, docker.tar, zstd/ and v2s2/ (convert.sh),
// plus oci-archive/, oci.tar extracted.
func convertedImages(t testing.TB) string {
	t.Helper()
	syn := syntheticImage(t)
	return convertFix.get(t, "converted", func(dir string) error {
		if err := runImageScript("convert.sh", dir, filepath.Join(syn, "img"), "layer4"); err != nil {
			return err
		}
		x := filepath.Join(dir, "oci-archive")
		if err := os.Mkdir(x, 0o755); err != nil {
			return err
		}
		if r := run("tar", "-xf", filepath.Join(dir, "oci.tar"), "-C", x); r.Code != 0 {
			return fmt.Errorf("extracting oci.tar:\n%s", r)
		}
		return nil
	})
}

// buildahImage returns the directory holding the buildah image: the
// layout oci (tag derived) and ref/rootfs.
func buildahImage(t testing.TB) string {
	t.Helper()
	return buildahFix.get(t, "buildah", func(dir string) error {
		return runImageScript("buildah.sh", dir)
	})
}

// sharedImages returns the directory holding the layout shared, whose
// tags one and two share their base layer, and ref-one/rootfs,
// ref-two/rootfs.
func sharedImages(t testing.TB) string {
	t.Helper()
	return sharedFix.get(t, "shared", func(dir string) error {
		return runImageScript("shared.sh", dir)
	})
}

// multiArch is the multi-platform fixture.
type multiArch struct {
	Layout   string            // OCI layout; index.json → nested index (tag latest)
	Manifest map[string]string // architecture → manifest digest
	Ref      map[string]string // architecture → reference rootfs
}

var multiArchInfo multiArch

// multiArchImage returns an OCI layout whose index.json holds one entry
// (tag latest), a nested index listing an arm64 image first and an amd64
// image second, each with its platform.
func multiArchImage(t testing.TB) multiArch {
	t.Helper()
	multiFix.get(t, "multiarch", func(dir string) error {
		if err := runImageScript("multiarch.sh", dir); err != nil {
			return err
		}
		layout := filepath.Join(dir, "multi")
		var idx struct {
			Manifests []map[string]any `json:"manifests"`
		}
		b, err := os.ReadFile(filepath.Join(layout, "index.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return err
		}
		byTag := map[string]map[string]any{}
		for _, m := range idx.Manifests {
			ann, _ := m["annotations"].(map[string]any)
			tag, _ := ann["org.opencontainers.image.ref.name"].(string)
			delete(m, "annotations")
			byTag[tag] = m
		}
		info := multiArch{Layout: layout, Manifest: map[string]string{}, Ref: map[string]string{}}
		var entries []map[string]any
		for _, arch := range []string{"arm64", "amd64"} {
			m, ok := byTag[arch]
			if !ok {
				return fmt.Errorf("multiarch.sh made no tag %s: %s", arch, b)
			}
			m["platform"] = map[string]any{"architecture": arch, "os": "linux"}
			entries = append(entries, m)
			info.Manifest[arch] = m["digest"].(string)
			info.Ref[arch] = filepath.Join(dir, "ref-"+arch, "rootfs")
		}
		nested := mustJSON(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.index.v1+json",
			"manifests":     entries,
		})
		d, err := writeBlob(layout, nested)
		if err != nil {
			return err
		}
		top := mustJSON(map[string]any{
			"schemaVersion": 2,
			"manifests": []any{map[string]any{
				"mediaType":   "application/vnd.oci.image.index.v1+json",
				"digest":      d,
				"size":        len(nested),
				"annotations": map[string]string{"org.opencontainers.image.ref.name": "latest"},
			}},
		})
		multiArchInfo = info
		return os.WriteFile(filepath.Join(layout, "index.json"), top, 0o644)
	})
	return multiArchInfo
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// writeBlob stores b under layout/blobs/sha256 and returns its digest.
func writeBlob(layout string, b []byte) (string, error) {
	d := sha256Digest(b)
	p := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return d, os.WriteFile(p, b, 0o644)
}

// layoutImage is an image read from an OCI layout by the test itself.
type layoutImage struct {
	ManifestDigest string
	Manifest       []byte
	Config         []byte
	LayerDigests   []string
	LayerSizes     []int64
	DiffIDs        []string
}

// readLayoutImage reads the image tagged tag from an OCI layout (tag ""
// for the only entry), without the product's code.
func readLayoutImage(t testing.TB, layout, tag string) layoutImage {
	t.Helper()
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	readJSONFile(t, filepath.Join(layout, "index.json"), &idx)
	var li layoutImage
	for _, m := range idx.Manifests {
		if tag == "" || m.Annotations["org.opencontainers.image.ref.name"] == tag {
			li.ManifestDigest = m.Digest
		}
	}
	if li.ManifestDigest == "" {
		t.Fatalf("%s: no tag %q in index.json", layout, tag)
	}
	blob := func(d string) []byte {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		noErr(t, err)
		return b
	}
	li.Manifest = blob(li.ManifestDigest)
	var man struct {
		Config struct{ Digest string } `json:"config"`
		Layers []struct {
			Digest string
			Size   int64
		} `json:"layers"`
	}
	if err := json.Unmarshal(li.Manifest, &man); err != nil {
		t.Fatalf("%s: manifest: %v", layout, err)
	}
	li.Config = blob(man.Config.Digest)
	for _, l := range man.Layers {
		li.LayerDigests = append(li.LayerDigests, l.Digest)
		li.LayerSizes = append(li.LayerSizes, l.Size)
	}
	li.DiffIDs = configDiffIDs(t, li.Config)
	return li
}

func configDiffIDs(t testing.TB, cfg []byte) []string {
	t.Helper()
	var c struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c.RootFS.DiffIDs
}

func readJSONFile(t testing.TB, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	noErr(t, err)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// chainIDs computes the chain IDs of a list of diff_ids (config.md).
func chainIDs(diffIDs []string) []string {
	var out []string
	for i, d := range diffIDs {
		if i == 0 {
			out = append(out, d)
			continue
		}
		out = append(out, sha256Digest([]byte(out[i-1]+" "+d)))
	}
	return out
}

// ---- hand-made layer tars and images ----

// tarEntry is one entry of a hand-made layer tar. Type defaults to a
// regular file; Mode defaults to 0644 for files, 0755 for directories
// and 0777 for symlinks.
type tarEntry struct {
	Name   string
	Type   byte
	Body   string
	Link   string
	Mode   int64
	UID    int
	GID    int
	Xattrs map[string]string
	Major  int64
	Minor  int64
}

func dirEnt(name string) tarEntry        { return tarEntry{Name: name, Type: tar.TypeDir} }
func fileEnt(name, body string) tarEntry { return tarEntry{Name: name, Body: body} }
func linkEnt(name, target string) tarEntry {
	return tarEntry{Name: name, Type: tar.TypeSymlink, Link: target}
}
func hardEnt(name, target string) tarEntry {
	return tarEntry{Name: name, Type: tar.TypeLink, Link: target}
}

// makeTar writes the entries as a PAX tar.
func makeTar(t testing.TB, ents ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode,
			Uid: e.UID, Gid: e.GID, Devmajor: e.Major, Devminor: e.Minor,
			ModTime: time.Unix(1600000000, 0), Format: tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			switch h.Typeflag {
			case tar.TypeDir:
				h.Mode = 0o755
			case tar.TypeSymlink:
				h.Mode = 0o777
			default:
				h.Mode = 0o644
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	noErr(t, tw.Close())
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	noErr(t, err)
	noErr(t, zw.Close())
	return buf.Bytes()
}

// handImage is an OCI image layout written by the test. The hooks let a
// test make it hostile after the honest digests are computed.
type handImage struct {
	Layers [][]byte // uncompressed layer tars, base first
	Gzip   bool     // store the layers gzipped
	// DiffIDs, if set, replaces the config's rootfs.diff_ids.
	DiffIDs []string
	// Blobs, if set, replaces the stored bytes of layer i after its
	// digest was computed from the honest bytes.
	Blobs map[int][]byte
	// Compressed, if set, gives the stored (gzip) bytes of layer i, in
	// place of Layers[i] compressed; the diff_id is still Layers[i]'s.
	Compressed map[int][]byte
	// EditManifest, EditIndex and EditConfig edit the documents before
	// they are written.
	EditConfig   func(map[string]any)
	EditManifest func(map[string]any)
	EditIndex    func(map[string]any)
	Tag          string // default "latest"
}

// write creates the layout at dir and returns the manifest digest.
func (h handImage) write(t testing.TB, dir string) string {
	t.Helper()
	noErr(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
	noErr(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	var diffIDs []string
	var layers []any
	for i, l := range h.Layers {
		diffIDs = append(diffIDs, sha256Digest(l))
		blob, mt := l, "application/vnd.oci.image.layer.v1.tar"
		if h.Gzip {
			blob, mt = gzipBytes(t, l), "application/vnd.oci.image.layer.v1.tar+gzip"
		}
		if c, ok := h.Compressed[i]; ok {
			blob, mt = c, "application/vnd.oci.image.layer.v1.tar+gzip"
		}
		d, err := writeBlob(dir, blob)
		noErr(t, err)
		if r, ok := h.Blobs[i]; ok {
			noErr(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")), r, 0o644))
		}
		layers = append(layers, map[string]any{"mediaType": mt, "digest": d, "size": len(blob)})
	}
	if h.DiffIDs != nil {
		diffIDs = h.DiffIDs
	}
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	if h.EditConfig != nil {
		h.EditConfig(cfg)
	}
	cb := mustJSON(cfg)
	cd, err := writeBlob(dir, cb)
	noErr(t, err)
	man := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cb)},
		"layers":        layers,
	}
	if h.EditManifest != nil {
		h.EditManifest(man)
	}
	mb := mustJSON(man)
	md, err := writeBlob(dir, mb)
	noErr(t, err)
	tag := h.Tag
	if tag == "" {
		tag = "latest"
	}
	idx := map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      md,
			"size":        len(mb),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": tag},
		}},
	}
	if h.EditIndex != nil {
		h.EditIndex(idx)
	}
	noErr(t, os.WriteFile(filepath.Join(dir, "index.json"), mustJSON(idx), 0o644))
	return md
}

// dockerArchive writes a docker-archive (docker save format) holding
// one image with uncompressed layers; layerNames, if set, replaces the
// Layers list of manifest.json.
func dockerArchive(t testing.TB, file string, layers [][]byte, layerNames []string) {
	t.Helper()
	var diffIDs, names []string
	for _, l := range layers {
		d := sha256Digest(l)
		diffIDs = append(diffIDs, d)
		names = append(names, strings.TrimPrefix(d, "sha256:")+".tar")
	}
	cfg := mustJSON(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cfgName := strings.TrimPrefix(sha256Digest(cfg), "sha256:") + ".json"
	if layerNames != nil {
		names = layerNames
	}
	man := mustJSON([]any{map[string]any{"Config": cfgName, "RepoTags": []string{"example/hostile:latest"}, "Layers": names}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		noErr(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(b)
		noErr(t, err)
	}
	add("manifest.json", man)
	add(cfgName, cfg)
	for i, l := range layers {
		add(strings.TrimPrefix(diffIDs[i], "sha256:")+".tar", l)
	}
	noErr(t, tw.Close())
	noErr(t, os.WriteFile(file, buf.Bytes(), 0o644))
}

// ---- repositories ----

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// initImageRepo creates a repository of the given mode at dir/NAME.
func initImageRepo(t testing.TB, dir, name, mode string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	om(t, "init", "--repo", p, "--mode", mode)
	return p
}

// importImage runs ostree-mount import and returns the checksum it
// prints, which must be 64 hex characters and what the strong ref
// (given as --ref) now holds.
func importImage(t testing.TB, repoPath string, args ...string) (string, cmdResult) {
	t.Helper()
	r := mustRun(t, binary, append([]string{"import", "--repo", repoPath}, args...)...)
	sum := strings.TrimSpace(r.Stdout)
	if !hex64.MatchString(sum) {
		t.Fatalf("import printed %q, want a 64-hex checksum\n%s", sum, r)
	}
	for i, a := range args {
		ref := ""
		if a == "--ref" && i+1 < len(args) {
			ref = args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--ref="); ok {
			ref = v
		}
		if ref != "" {
			if got := readRefFile(t, repoPath, "refs/heads/"+ref); got != sum {
				t.Fatalf("import printed %s but ref %s holds %s", sum, ref, got)
			}
		}
	}
	return sum, r
}

// readRefFile returns the checksum a ref file (relative to the
// repository) holds, or "" if it does not exist.
func readRefFile(t testing.TB, repoPath, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoPath, rel))
	if os.IsNotExist(err) {
		return ""
	}
	noErr(t, err)
	return strings.TrimSpace(string(b))
}

// layerWeakRef is the weak ref name of a layer, by diff_id or chain ID.
func layerWeakRef(kind, digest string) string {
	return "ostree-mount/" + kind + "/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// objStat identifies an object file's inode and its modification time.
type objStat struct {
	Ino   uint64
	MTime int64
}

// repoObjects returns every file under objects/ (as "xx/rest.ext") with
// its inode and mtime.
func repoObjects(t testing.TB, repoPath string) map[string]objStat {
	t.Helper()
	out := map[string]objStat{}
	root := filepath.Join(repoPath, "objects")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		out[rel] = objStat{Ino: st.Ino, MTime: st.Mtim.Nano()}
		return nil
	})
	noErr(t, err)
	return out
}

// countKeys counts the object names in a set with an extension.
func countKeys(objs map[string]bool, ext string) int {
	n := 0
	for k := range objs {
		if strings.HasSuffix(k, "."+ext) {
			n++
		}
	}
	return n
}

// countExt counts the objects with an extension.
func countExt(objs map[string]objStat, ext string) int {
	n := 0
	for k := range objs {
		if strings.HasSuffix(k, "."+ext) {
			n++
		}
	}
	return n
}

// addedObjects lists the keys of after that are not in before.
func addedObjects(before, after map[string]objStat) []string {
	var out []string
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func objName(sum, ext string) string { return sum[:2] + "/" + sum[2:] + "." + ext }

// commitObjects returns the object names of a commit and everything its
// tree holds (not its parents or related commits), read through
// ostree's ls -R -C (the product's lists an image's composed tree); mode
// is the repository's mode.
func commitObjects(t testing.TB, repoPath, mode, rev string) map[string]bool {
	t.Helper()
	sum := resolveRev(t, repoPath, rev)
	out := map[string]bool{objName(sum, "commit"): true}
	if _, err := os.Stat(filepath.Join(repoPath, "objects", objName(sum, "commitmeta"))); err == nil {
		out[objName(sum, "commitmeta")] = true
	}
	fileExt := "file"
	if mode == "archive" {
		fileExt = "filez"
	}
	for _, l := range strings.Split(strings.TrimSpace(ostreeCmd(t, "ls", "--repo="+repoPath, "-R", "-C", sum)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("unexpected ls -R -C line %q", l)
		}
		if f[0][0] == 'd' {
			out[objName(f[4], "dirtree")] = true
			out[objName(f[5], "dirmeta")] = true
		} else {
			out[objName(f[4], fileExt)] = true
		}
	}
	return out
}

// resolveRev returns the checksum of a revision (through show).
func resolveRev(t testing.TB, repoPath, rev string) string {
	t.Helper()
	if hex64.MatchString(rev) {
		return rev
	}
	out := om(t, "show", "--repo", repoPath, rev)
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "commit" || !hex64.MatchString(f[1]) {
		t.Fatalf("show %s: unexpected output %q", rev, out)
	}
	return f[1]
}

// setUnion returns the union of sets.
func setUnion(sets ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			out[k] = true
		}
	}
	return out
}

// setMinus returns a without b.
func setMinus(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if !b[k] {
			out[k] = true
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// relatedEntries returns show --print-related as (name, commit) pairs.
func relatedEntries(t testing.TB, repoPath, rev string) [][2]string {
	t.Helper()
	var out [][2]string
	for _, l := range strings.Split(strings.TrimSpace(om(t, "show", "--repo", repoPath, "--print-related", rev)), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("show --print-related: unexpected line %q", l)
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
}

// metadataString returns a string metadata key of a commit as
// ostree-mount show prints it, after checking that ostree prints the
// same text, decoded from GVariant text format.
func metadataString(t testing.TB, repoPath, rev, key string) string {
	t.Helper()
	got := om(t, "show", "--repo", repoPath, "--print-metadata-key="+key, rev)
	want := ostreeCmd(t, "show", "--repo="+repoPath, "--print-metadata-key="+key, rev)
	if got != want {
		t.Errorf("show --print-metadata-key=%s %s: ostree-mount prints\n%s\nostree prints\n%s", key, rev, clip(got, 2000), clip(want, 2000))
	}
	ty, v, err := gvariant.ParseText(nil, strings.TrimSpace(want))
	if err != nil {
		t.Fatalf("metadata %s of %s: %q: %v", key, rev, clip(want, 300), err)
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("metadata %s of %s has type %v, want a string", key, rev, ty)
	}
	return s
}

// weakRefs lists refs --weak.
func weakRefs(t testing.TB, repoPath string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(om(t, "refs", "--repo", repoPath, "--weak"), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// strongRefs lists refs/heads (relative names).
func strongRefs(t testing.TB, repoPath string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(repoPath, "refs", "heads")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	})
	noErr(t, err)
	sort.Strings(out)
	return out
}

// fsckBoth runs ostree fsck and ostree-mount fsck on a repository.
func fsckBoth(t testing.TB, repoPath string) {
	t.Helper()
	ostreeCmd(t, "fsck", "--repo="+repoPath)
	om(t, "fsck", "--repo", repoPath)
}

// checkoutEquals checks rev out into a new directory under dir and
// compares it with the reference rootfs (no mtimes, no hardlinks).
func checkoutEquals(t testing.TB, repoPath, rev, ref, dir string) {
	t.Helper()
	co, err := os.MkdirTemp(dir, "co-")
	noErr(t, err)
	noErr(t, os.Remove(co))
	om(t, "checkout", "--repo", repoPath, rev, co)
	checkTreesEqual(t, fmt.Sprintf("checkout of %s vs %s", rev, ref), dumpTree(t, ref, treecmpPlain), dumpTree(t, co, treecmpPlain))
	noErr(t, os.RemoveAll(co))
}

// treecmpPlain compares trees without mtimes and hardlinks.
var treecmpPlain = treecmp.Options{}

// pruneReport is what ostree-mount prune prints.
type pruneReport struct {
	Total, Deleted, WeakRefs int
	Bytes                    int64
	Out                      string
}

var (
	pruneTotalRE = regexp.MustCompile(`(?m)^Total objects: (\d+)$`)
	pruneDelRE   = regexp.MustCompile(`(?m)^(?:Deleted|Would delete) (\d+) objects, (\d+) bytes \([^)]*\) freed$`)
	pruneWeakRE  = regexp.MustCompile(`(?m)^(?:Deleted|Would delete) (\d+) weak refs$`)
)

// runPrune runs ostree-mount prune with args and parses its report.
func runPrune(t testing.TB, repoPath string, args ...string) pruneReport {
	t.Helper()
	out := om(t, append([]string{"prune", "--repo", repoPath}, args...)...)
	return parsePrune(t, out)
}

func parsePrune(t testing.TB, out string) pruneReport {
	t.Helper()
	r := pruneReport{Out: out}
	m1, m2, m3 := pruneTotalRE.FindStringSubmatch(out), pruneDelRE.FindStringSubmatch(out), pruneWeakRE.FindStringSubmatch(out)
	if m1 == nil || m2 == nil || m3 == nil {
		t.Fatalf("unexpected prune output:\n%s", out)
	}
	r.Total, _ = strconv.Atoi(m1[1])
	r.Deleted, _ = strconv.Atoi(m2[1])
	r.Bytes, _ = strconv.ParseInt(m2[2], 10, 64)
	r.WeakRefs, _ = strconv.Atoi(m3[1])
	return r
}

// fixedTS is the commit timestamp of the hand-made commits.
const fixedTS = "--timestamp=2020-01-01T00:00:00Z"

// noErr fails the test on error.
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// noiseBytes returns n deterministic pseudo-random bytes.
func noiseBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6f7374726565))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
