package tests

// Import acceptance: done images (made by umoci, skopeo and buildah in
// images_test.go) imported in each mode and repository mode, checked
// against umoci's reference rootfs and against the storage model
// (manifest commit, related layer commits, weak refs, metadata); layer
// sharing between images; prune of imported images.

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var importModes = []string{"layered", "precomposed", "squashed"}

// importSource is an image to import and what it must give.
type importSource struct {
	name   string
	source string
	ref    string      // reference rootfs
	want   layoutImage // manifest, config, diff_ids; Manifest nil when synthesized (docker-archive)
}

// dockerArchiveConfig reads the config of the only image of a
// docker-archive, with the test's own tar reader.
func dockerArchiveConfig(t testing.TB, file string) []byte {
	t.Helper()
	members := map[string][]byte{}
	f, err := os.Open(file)
	noErr(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		noErr(t, err)
		if strings.HasSuffix(h.Name, ".json") {
			b, err := io.ReadAll(tr)
			noErr(t, err)
			members[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
	var items []struct{ Config string }
	if err := json.Unmarshal(members["manifest.json"], &items); err != nil || len(items) != 1 {
		t.Fatalf("%s: manifest.json: %v (%d items)", file, err, len(items))
	}
	cfg, ok := members[items[0].Config]
	if !ok {
		t.Fatalf("%s: no config member %q", file, items[0].Config)
	}
	return cfg
}

// importSources lists the synthetic image, its skopeo conversions and
// the buildah image.
func importSources(t testing.TB) []importSource {
	t.Helper()
	syn := syntheticImage(t)
	conv := convertedImages(t)
	bh := buildahImage(t)
	synRef := filepath.Join(syn, "ref", "rootfs")
	synImg := readLayoutImage(t, filepath.Join(syn, "img"), "layer4")
	if len(synImg.DiffIDs) != 5 {
		t.Fatalf("synthetic image has %d layers, want 5", len(synImg.DiffIDs))
	}
	docker := layoutImage{Config: dockerArchiveConfig(t, filepath.Join(conv, "docker.tar"))}
	docker.DiffIDs = configDiffIDs(t, docker.Config)
	srcs := []importSource{
		{"synthetic", "oci:" + filepath.Join(syn, "img") + ":layer4", synRef, synImg},
		{"oci-archive", "oci-archive:" + filepath.Join(conv, "oci.tar") + ":final", synRef, readLayoutImage(t, filepath.Join(conv, "oci-archive"), "final")},
		{"docker-archive", "docker-archive:" + filepath.Join(conv, "docker.tar") + ":example/final:latest", synRef, docker},
		{"zstd", "oci:" + filepath.Join(conv, "zstd") + ":final", synRef, readLayoutImage(t, filepath.Join(conv, "zstd"), "final")},
		{"v2s2", "oci:" + filepath.Join(conv, "v2s2") + ":final", synRef, readLayoutImage(t, filepath.Join(conv, "v2s2"), "final")},
		{"buildah", "oci:" + filepath.Join(bh, "oci") + ":derived", filepath.Join(bh, "ref", "rootfs"), readLayoutImage(t, filepath.Join(bh, "oci"), "derived")},
	}
	// The conversions hold the synthetic image's content: same diff_ids,
	// so its reference rootfs is theirs.
	for _, s := range srcs[1:5] {
		if !slices.Equal(s.want.DiffIDs, synImg.DiffIDs) {
			t.Fatalf("%s: diff_ids %v differ from the synthetic image's %v", s.name, s.want.DiffIDs, synImg.DiffIDs)
		}
	}
	// The zstd conversion must really hold zstd blobs, the v2s2 one Docker
	// media types: otherwise those subtests test nothing new.
	for _, c := range []struct{ name, want string }{{"zstd", "tar+zstd"}, {"v2s2", "application/vnd.docker.image.rootfs.diff.tar.gzip"}} {
		for _, s := range srcs {
			if s.name == c.name && !strings.Contains(string(s.want.Manifest), c.want) {
				t.Fatalf("%s conversion: manifest does not mention %q:\n%s", c.name, c.want, s.want.Manifest)
			}
		}
	}
	return srcs
}

// TestImportImages imports every fixture image in every mode into a
// bare-user repository (the synthetic image also into bare and archive
// ones) and checks the checkout against umoci's rootfs, the storage
// shape and metadata of each mode, and fsck.
func TestImportImages(t *testing.T) {
	srcs := importSources(t)
	type job struct {
		src      importSource
		repoMode string
	}
	var jobs []job
	for _, s := range srcs {
		jobs = append(jobs, job{s, "bare-user"})
	}
	jobs = append(jobs, job{srcs[0], "bare"}, job{srcs[0], "archive"})
	for _, j := range jobs {
		t.Run(j.src.name+"/"+j.repoMode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rp := initImageRepo(t, dir, "repo", j.repoMode)
			for _, mode := range importModes {
				ref := "test/" + mode
				sum, res := importImage(t, rp, "--mode", mode, "--ref", ref, j.src.source)
				if !strings.HasPrefix(res.Stderr, "layer 0 sha256:") || !strings.Contains(res.Stderr, "ref "+ref) {
					t.Errorf("import --mode %s: no progress on stderr:\n%s", mode, res)
				}
				checkoutEquals(t, rp, ref, j.src.ref, dir)
				checkImageShape(t, rp, ref, sum, mode, j.src)
			}
			fsckBoth(t, rp)
		})
	}
}

// checkImageShape checks the manifest commit sum of an image imported
// under ref in mode: tree, related list, weak refs and metadata.
func checkImageShape(t *testing.T, rp, ref, sum, mode string, src importSource) {
	t.Helper()
	// The commit's own tree, as ostree sees it (ostree-mount ls shows
	// the composed image).
	lsLines := strings.Split(strings.TrimSpace(ostreeCmd(t, "ls", "--repo="+rp, "-R", sum)), "\n")
	related := relatedEntries(t, rp, sum)
	switch mode {
	case "layered":
		if len(lsLines) != 1 {
			t.Errorf("%s: layered manifest commit's tree is not empty:\n%s", ref, strings.Join(lsLines, "\n"))
		}
	default:
		if len(lsLines) < 5 {
			t.Errorf("%s: %s manifest commit's tree has only %d entries:\n%s", ref, mode, len(lsLines), strings.Join(lsLines, "\n"))
		}
	}
	if mode == "squashed" {
		if len(related) != 0 {
			t.Errorf("%s: squashed manifest commit has related entries %v", ref, related)
		}
	} else {
		weak := weakRefs(t, rp)
		chains := chainIDs(src.want.DiffIDs)
		if len(related) != len(src.want.DiffIDs) {
			t.Errorf("%s: %d related entries, want one per layer (%d): %v", ref, len(related), len(src.want.DiffIDs), related)
		}
		for i := range min(len(related), len(src.want.DiffIDs)) {
			name, commit := related[i][0], related[i][1]
			if name != src.want.DiffIDs[i] {
				t.Errorf("%s: related[%d] is named %s, want the diff_id %s", ref, i, name, src.want.DiffIDs[i])
			}
			byDiff := layerWeakRef("layer", src.want.DiffIDs[i])
			byChain := layerWeakRef("chain", chains[i])
			d := readRefFile(t, rp, "refs/weak/"+byDiff)
			c := readRefFile(t, rp, "refs/weak/"+byChain)
			switch {
			case d == commit && slices.Contains(weak, byDiff):
			case c == commit && slices.Contains(weak, byChain):
				t.Logf("%s: layer %d is shared by chain ID", ref, i)
			default:
				t.Errorf("%s: related[%d] commit %s is not reachable through weak ref %s (holds %q) or %s (holds %q); refs --weak: %v",
					ref, i, commit, byDiff, d, byChain, c, weak)
			}
		}
	}
	if got := metadataString(t, rp, sum, "ostree-mount.mode"); got != mode {
		t.Errorf("%s: metadata ostree-mount.mode = %q, want %q", ref, got, mode)
	}
	manifest := metadataString(t, rp, sum, "ostree-mount.manifest")
	digest := metadataString(t, rp, sum, "ostree-mount.digest")
	if src.want.Manifest != nil {
		if manifest != string(src.want.Manifest) {
			t.Errorf("%s: metadata ostree-mount.manifest differs from the manifest blob:\n got %s\nwant %s", ref, manifest, src.want.Manifest)
		}
		if digest != src.want.ManifestDigest {
			t.Errorf("%s: metadata ostree-mount.digest = %s, want %s", ref, digest, src.want.ManifestDigest)
		}
	} else {
		var m struct {
			Layers []json.RawMessage `json:"layers"`
		}
		if err := json.Unmarshal([]byte(manifest), &m); err != nil || len(m.Layers) != len(src.want.DiffIDs) {
			t.Errorf("%s: metadata ostree-mount.manifest is not a manifest of %d layers (%v): %s", ref, len(src.want.DiffIDs), err, manifest)
		}
	}
	if d := sha256Digest([]byte(manifest)); digest != d {
		t.Errorf("%s: metadata ostree-mount.digest = %s, but the manifest's digest is %s", ref, digest, d)
	}
	if cfg := metadataString(t, rp, sum, "ostree-mount.config"); cfg != string(src.want.Config) {
		t.Errorf("%s: metadata ostree-mount.config differs from the image config:\n got %s\nwant %s", ref, cfg, src.want.Config)
	}
}

// TestImportDefaultRef imports without --ref: a docker-archive named
// example/final:latest goes to image/example/final/latest, an OCI layout
// img with tag layer4 to image/img/layer4.
func TestImportDefaultRef(t *testing.T) {
	syn := syntheticImage(t)
	conv := convertedImages(t)
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	sum, res := importImage(t, rp, "docker-archive:"+filepath.Join(conv, "docker.tar")+":example/final:latest")
	if got := readRefFile(t, rp, "refs/heads/image/example/final/latest"); got != sum {
		t.Errorf("ref image/example/final/latest holds %q, want the printed %s; refs: %v", got, sum, strongRefs(t, rp))
	}
	if !strings.Contains(res.Stderr, "image/example/final/latest") {
		t.Errorf("import does not report its ref:\n%s", res)
	}
	sum2, _ := importImage(t, rp, "oci:"+filepath.Join(syn, "img")+":layer4")
	if got := readRefFile(t, rp, "refs/heads/image/img/layer4"); got != sum2 {
		t.Errorf("ref image/img/layer4 holds %q, want the printed %s; refs: %v", got, sum2, strongRefs(t, rp))
	}
	if want := []string{"image/example/final/latest", "image/img/layer4"}; !slices.Equal(strongRefs(t, rp), want) {
		t.Errorf("strong refs %v, want %v", strongRefs(t, rp), want)
	}
	checkoutEquals(t, rp, "image/example/final/latest", filepath.Join(syn, "ref", "rootfs"), dir)
}

// TestImportPlatform imports a multi-platform image (index.json → nested
// index → arm64 and amd64 manifests): --platform picks the image, the
// default is the host's, and an absent platform is an error that leaves
// nothing behind.
func TestImportPlatform(t *testing.T) {
	ma := multiArchImage(t)
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	src := "oci:" + ma.Layout + ":latest"
	for _, arch := range []string{"arm64", "amd64"} {
		ref := "plat/" + arch
		sum, _ := importImage(t, rp, "--platform", "linux/"+arch, "--ref", ref, src)
		if got := metadataString(t, rp, sum, "ostree-mount.digest"); got != ma.Manifest[arch] {
			t.Errorf("--platform linux/%s imported manifest %s, want %s", arch, got, ma.Manifest[arch])
		}
		checkoutEquals(t, rp, ref, ma.Ref[arch], dir)
	}
	host := runtime.GOARCH
	if _, ok := ma.Manifest[host]; !ok {
		t.Fatalf("the fixture has no image for the host architecture %s", host)
	}
	sum, _ := importImage(t, rp, "--ref", "plat/default", src)
	if got := metadataString(t, rp, sum, "ostree-mount.digest"); got != ma.Manifest[host] {
		t.Errorf("default platform imported manifest %s, want the host's (%s) %s", got, host, ma.Manifest[host])
	}
	checkoutEquals(t, rp, "plat/default", ma.Ref[host], dir)

	before := repoObjects(t, rp)
	refs := strongRefs(t, rp)
	r := omFail(t, "import", "--repo", rp, "--platform", "linux/s390x", "--ref", "plat/none", src)
	if !strings.Contains(r.Stderr, "s390x") || !strings.Contains(r.Stderr, "arm64") {
		t.Errorf("import of an absent platform: the error should name the wanted and the available platforms:\n%s", r)
	}
	if added := addedObjects(before, repoObjects(t, rp)); len(added) > 0 {
		t.Errorf("failed import added objects %v", added)
	}
	if got := strongRefs(t, rp); !slices.Equal(got, refs) {
		t.Errorf("failed import changed the refs: %v -> %v", refs, got)
	}
	fsckBoth(t, rp)
}

// sharedFixture copies the shared-layer layout into dir and describes
// its two images.
type sharedFixture struct {
	layout   string
	one, two layoutImage
	refOne   string
	refTwo   string
}

func sharedFixtureCopy(t testing.TB, dir string) sharedFixture {
	t.Helper()
	s := sharedImages(t)
	layout := filepath.Join(dir, "shared")
	mustRun(t, "cp", "-a", filepath.Join(s, "shared"), layout)
	f := sharedFixture{
		layout: layout,
		one:    readLayoutImage(t, layout, "one"),
		two:    readLayoutImage(t, layout, "two"),
		refOne: filepath.Join(s, "ref-one", "rootfs"),
		refTwo: filepath.Join(s, "ref-two", "rootfs"),
	}
	if len(f.one.DiffIDs) != 2 || len(f.two.DiffIDs) != 2 || f.one.DiffIDs[0] != f.two.DiffIDs[0] ||
		f.one.LayerDigests[0] != f.two.LayerDigests[0] || f.one.DiffIDs[1] == f.two.DiffIDs[1] {
		t.Fatalf("shared fixture: want two 2-layer images sharing only the base: %v %v", f.one.DiffIDs, f.two.DiffIDs)
	}
	return f
}

// TestImportSharedLayers imports two images sharing their base layer.
// The second import reports the base as already present, never opens
// its blob (garbage of the same size in its place does not matter),
// rewrites no object file, and adds exactly the objects of its own top
// layer and manifest commit.
func TestImportSharedLayers(t *testing.T) {
	dir := t.TempDir()
	f := sharedFixtureCopy(t, dir)
	rp := initImageRepo(t, dir, "repo", "bare-user")
	_, res1 := importImage(t, rp, "--ref", "one", "oci:"+f.layout+":one")
	if strings.Contains(res1.Stderr, "already present") {
		t.Errorf("first import into an empty repository reports a layer already present:\n%s", res1)
	}
	before := repoObjects(t, rp)
	baseCommit := readRefFile(t, rp, "refs/weak/"+layerWeakRef("layer", f.one.DiffIDs[0]))
	if baseCommit == "" {
		t.Fatalf("no weak ref for the base layer; refs --weak: %v", weakRefs(t, rp))
	}
	baseObjs := commitObjects(t, rp, "bare-user", baseCommit)

	// Garbage of the same size in place of the base blob: the second
	// import must not read it. Control: a fresh repository does read it
	// and must fail.
	blob := filepath.Join(f.layout, "blobs", "sha256", strings.TrimPrefix(f.two.LayerDigests[0], "sha256:"))
	fi, err := os.Stat(blob)
	noErr(t, err)
	noErr(t, os.WriteFile(blob, noiseBytes(42, int(fi.Size())), 0o644))
	control := initImageRepo(t, dir, "control", "bare-user")
	omFail(t, "import", "--repo", control, "--ref", "two", "oci:"+f.layout+":two")

	sum2, res2 := importImage(t, rp, "--ref", "two", "oci:"+f.layout+":two")
	lines := strings.Split(strings.TrimSpace(res2.Stderr), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "layer 0 "+f.two.DiffIDs[0]+": "+baseCommit) || !strings.HasSuffix(lines[0], "(already present)") {
		t.Errorf("second import: layer 0 is not reported as already present (commit %s):\n%s", baseCommit, res2.Stderr)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "layer 1 "+f.two.DiffIDs[1]+": ") || strings.Contains(lines[1], "already present") {
		t.Errorf("second import: layer 1 should be imported:\n%s", res2.Stderr)
	}
	after := repoObjects(t, rp)
	for name, st := range before {
		if a, ok := after[name]; !ok || a != st {
			t.Errorf("object %s was rewritten or removed by the second import (base layer object: %v): %+v -> %+v", name, baseObjs[name], st, a)
		}
	}
	related := relatedEntries(t, rp, sum2)
	if len(related) != 2 || related[0][1] != baseCommit {
		t.Fatalf("image two's related list %v does not start with the base commit %s", related, baseCommit)
	}
	had := map[string]bool{}
	for k := range before {
		had[k] = true
	}
	want := setMinus(setUnion(commitObjects(t, rp, "bare-user", related[1][1]), commitObjects(t, rp, "bare-user", sum2)), had)
	got := addedObjects(before, after)
	if !slices.Equal(got, sortedKeys(want)) {
		t.Errorf("second import added %d objects, want exactly the %d new objects of its top layer and manifest commit:\n got %v\nwant %v",
			len(got), len(want), got, sortedKeys(want))
	}
	if len(got) == 0 || len(got) > 20 {
		t.Errorf("second import added %d objects; its top layer holds 5 files in 3 directories", len(got))
	}
	t.Logf("second import added %d objects (repository had %d)", len(got), len(before))
	checkoutEquals(t, rp, "two", f.refTwo, dir)
	checkoutEquals(t, rp, "one", f.refOne, dir)
	fsckBoth(t, rp)
}

// TestImportPrune prunes imported images: in layered and precomposed
// mode, deleting one of two images sharing a base deletes exactly that
// image's manifest commit and unique layer (objects and weak ref) and
// keeps the other whole; a squashed image's layers are garbage at once.
func TestImportPrune(t *testing.T) {
	for _, mode := range []string{"layered", "precomposed"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			f := sharedFixtureCopy(t, dir)
			rp := initImageRepo(t, dir, "repo", "bare-user")
			sum1, _ := importImage(t, rp, "--mode", mode, "--ref", "one", "oci:"+f.layout+":one")
			sum2, _ := importImage(t, rp, "--mode", mode, "--ref", "two", "oci:"+f.layout+":two")
			rel1, rel2 := relatedEntries(t, rp, sum1), relatedEntries(t, rp, sum2)
			if len(rel1) != 2 || len(rel2) != 2 || rel1[0] != rel2[0] {
				t.Fatalf("related lists %v and %v should share the base", rel1, rel2)
			}
			// Nothing is garbage while both refs exist.
			if r := runPrune(t, rp); r.Deleted != 0 || r.WeakRefs != 0 {
				t.Errorf("prune with both images referenced deleted %d objects, %d weak refs:\n%s", r.Deleted, r.WeakRefs, r.Out)
			}
			keep := setUnion(commitObjects(t, rp, "bare-user", sum2), commitObjects(t, rp, "bare-user", rel2[0][1]), commitObjects(t, rp, "bare-user", rel2[1][1]))
			gone := setMinus(setUnion(commitObjects(t, rp, "bare-user", sum1), commitObjects(t, rp, "bare-user", rel1[1][1])), keep)
			before := repoObjects(t, rp)
			weakBefore := weakRefs(t, rp)
			om(t, "refs", "--repo", rp, "--delete", "one")
			r := runPrune(t, rp)
			// Prune counts objects as ostree does: a commitmeta goes
			// with its commit and is not counted.
			if wantTotal, wantGone := len(before)-countExt(before, "commitmeta"), len(gone)-countKeys(gone, "commitmeta"); r.Total != wantTotal || r.Deleted != wantGone || r.WeakRefs != 1 {
				t.Errorf("prune: total %d, deleted %d objects and %d weak refs; want total %d, %d objects (image one's manifest commit and top layer), 1 weak ref\n%s",
					r.Total, r.Deleted, r.WeakRefs, wantTotal, wantGone, r.Out)
			}
			after := repoObjects(t, rp)
			for k := range before {
				_, still := after[k]
				if gone[k] == still {
					t.Errorf("object %s: present after prune = %v, want %v", k, still, !gone[k])
				}
			}
			topOne := layerWeakRef("layer", f.one.DiffIDs[1])
			wantWeak := slices.DeleteFunc(slices.Clone(weakBefore), func(s string) bool { return s == topOne })
			if got := weakRefs(t, rp); !slices.Equal(got, wantWeak) || len(wantWeak) != 2 {
				t.Errorf("weak refs after prune %v, want %v (the base's and image two's top layer's)", got, wantWeak)
			}
			if r := omRun("show", "--repo", rp, sum1); r.Code == 0 {
				t.Errorf("image one's manifest commit survived prune:\n%s", r)
			}
			checkoutEquals(t, rp, "two", f.refTwo, dir)
			fsckBoth(t, rp)
		})
	}
	t.Run("squashed", func(t *testing.T) {
		dir := t.TempDir()
		f := sharedFixtureCopy(t, dir)
		rp := initImageRepo(t, dir, "repo", "bare-user")
		sum, _ := importImage(t, rp, "--mode", "squashed", "--ref", "one", "oci:"+f.layout+":one")
		var layers []string
		for i, d := range f.one.DiffIDs {
			c := readRefFile(t, rp, "refs/weak/"+layerWeakRef("layer", d))
			if c == "" {
				t.Fatalf("squashed import: layer %d has no weak ref; refs --weak: %v", i, weakRefs(t, rp))
			}
			layers = append(layers, c)
		}
		keep := commitObjects(t, rp, "bare-user", sum)
		gone := setMinus(setUnion(commitObjects(t, rp, "bare-user", layers[0]), commitObjects(t, rp, "bare-user", layers[1])), keep)
		before := repoObjects(t, rp)
		r := runPrune(t, rp)
		if wantGone := len(gone) - countKeys(gone, "commitmeta"); r.Deleted != wantGone || r.WeakRefs != 2 {
			t.Errorf("prune after a squashed import deleted %d objects and %d weak refs, want %d and 2:\n%s", r.Deleted, r.WeakRefs, wantGone, r.Out)
		}
		after := repoObjects(t, rp)
		if len(after) != len(before)-len(gone) {
			t.Errorf("%d objects after prune, want %d", len(after), len(before)-len(gone))
		}
		for k := range gone {
			if _, ok := after[k]; ok {
				t.Errorf("object %s of a layer commit survived prune", k)
			}
		}
		for _, c := range layers {
			if r := omRun("show", "--repo", rp, c); r.Code == 0 {
				t.Errorf("layer commit %s survived prune", c)
			}
		}
		if w := weakRefs(t, rp); len(w) != 0 {
			t.Errorf("weak refs survived prune: %v", w)
		}
		checkoutEquals(t, rp, "one", f.refOne, dir)
		fsckBoth(t, rp)
	})
}

// TestImportLayerReuseAcrossBases imports two images whose top layers
// are the same tar (same diff_id), `l/passwd`, on different bases: on
// image X's base nothing named l exists (l becomes a directory); on image
// Y's base l is a symlink to /opt, through which the entry must resolve
// (oci-layers.md §0: parents resolve through symlinks of the merged
// tree). Importing X first must not make Y reuse a layer commit whose
// meaning depended on X's base: Y's checkout must equal umoci's rootfs of
// Y whatever was imported before, and its layers must also be what a
// fresh repository makes of them.
func TestImportLayerReuseAcrossBases(t *testing.T) {
	dir := t.TempDir()
	top := makeTar(t, fileEnt("l/passwd", "through the symlink\n"), fileEnt("etc/top", "top\n"))
	x := filepath.Join(dir, "x")
	handImage{Layers: [][]byte{makeTar(t, dirEnt("etc"), fileEnt("etc/hostname", "x\n")), top}, Gzip: true}.write(t, x)
	y := filepath.Join(dir, "y")
	handImage{Layers: [][]byte{makeTar(t, dirEnt("etc"), dirEnt("opt"), linkEnt("l", "/opt"), fileEnt("opt/keep", "keep\n")), top}, Gzip: true}.write(t, y)
	for _, img := range []string{x, y} {
		mustRun(t, "umoci", "unpack", "--image", img+":latest", img+"-ref")
	}
	// Both orders: X then Y shows the bug; Y then X is the control.
	for _, order := range [][2]string{{x, y}, {y, x}} {
		name := filepath.Base(order[0]) + "-then-" + filepath.Base(order[1])
		t.Run(name, func(t *testing.T) {
			rp := initImageRepo(t, dir, "repo-"+name, "bare-user")
			for _, img := range order {
				ref := filepath.Base(img)
				importImage(t, rp, "--ref", ref, "oci:"+img)
				checkoutEquals(t, rp, ref, img+"-ref/rootfs", dir)
			}
			// Both again, now that everything is in the repository.
			for _, img := range order {
				ref := filepath.Base(img)
				checkoutEquals(t, rp, ref, img+"-ref/rootfs", dir)
			}
			fsckBoth(t, rp)
		})
	}
}

// TestImportNoGarbage: a layered or precomposed import keeps everything
// it writes alive (strong ref → manifest commit → related layers), so a
// prune right after it has nothing to delete. The image has no whiteout
// and no empty file, so that no object is shared by chance.
func TestImportNoGarbage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	handImage{Layers: [][]byte{
		makeTar(t, dirEnt("etc"), fileEnt("etc/a", "a\n")),
		makeTar(t, dirEnt("srv"), fileEnt("srv/b", "b\n")),
	}, Gzip: true}.write(t, img)
	for _, mode := range []string{"layered", "precomposed"} {
		t.Run(mode, func(t *testing.T) {
			rp := initImageRepo(t, dir, "repo-"+mode, "bare-user")
			sum, _ := importImage(t, rp, "--mode", mode, "--ref", "img", "oci:"+img)
			reach := commitObjects(t, rp, "bare-user", sum)
			for _, rel := range relatedEntries(t, rp, sum) {
				reach = setUnion(reach, commitObjects(t, rp, "bare-user", rel[1]))
			}
			all := map[string]bool{}
			for k := range repoObjects(t, rp) {
				all[k] = true
			}
			if extra := setMinus(all, reach); len(extra) > 0 {
				t.Errorf("import wrote %d objects that nothing references: %v", len(extra), sortedKeys(extra))
			}
			if r := parsePrune(t, om(t, "prune", "--repo", rp, "--dry-run")); r.Deleted != 0 || r.WeakRefs != 0 {
				t.Errorf("prune right after a %s import would delete %d objects and %d weak refs:\n%s", mode, r.Deleted, r.WeakRefs, r.Out)
			}
		})
	}
}
