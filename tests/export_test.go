package tests

// Export acceptance: images imported from real tools' layouts come back
// out of `ostree-mount export` as they went in (the same config digest,
// the same diff_ids, the same umoci unpack), through OCI layouts,
// oci-archives, docker-archives and a registry; an export imported again
// gives the very layer commits of the original; layers without a
// tar-split record export with synthesized headers; prune and ostree
// fsck treat the record as part of its layer commit.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

const tarSplitKey = "ostree-mount.tar-split"

// debVariants is the realistic image converted by skopeo: zstd layers
// (Zstd, tag final) and Docker schema 2 media types (V2S2, tag final),
// each its own OCI layout.
type debVariants struct {
	Zstd, V2S2 string
}

var (
	debVarFix  imageFixture
	debVarInfo debVariants
)

func debImageVariants(t testing.TB) debVariants {
	t.Helper()
	deb := debImage(t)
	debVarFix.get(t, "debootstrap-variants", func(dir string) error {
		info := debVariants{Zstd: filepath.Join(dir, "zstd"), V2S2: filepath.Join(dir, "v2s2")}
		src := "oci:" + deb.Layout + ":final"
		for _, c := range []cmdResult{
			run("skopeo", "--insecure-policy", "copy", "-q", "--dest-compress-format", "zstd", src, "oci:"+info.Zstd+":final"),
			run("skopeo", "--insecure-policy", "copy", "-q", "--format", "v2s2", src, "oci:"+info.V2S2+":final"),
		} {
			if c.Code != 0 {
				return fmt.Errorf("skopeo copy:\n%s", c)
			}
		}
		debVarInfo = info
		return nil
	})
	return debVarInfo
}

// exportImage runs ostree-mount export and returns the manifest digest it
// prints and the whole result.
func exportImage(t testing.TB, repoPath, rev, dest string, flags ...string) (string, cmdResult) {
	t.Helper()
	r := mustRun(t, binary, append(append([]string{"export", "--repo", repoPath}, flags...), rev, dest)...)
	d := strings.TrimSpace(r.Stdout)
	if !strings.HasPrefix(d, "sha256:") || !hex64.MatchString(strings.TrimPrefix(d, "sha256:")) {
		t.Fatalf("export printed %q, want a manifest digest\n%s", d, r)
	}
	return d, r
}

// layerMediaTypes lists the layer media types of a manifest.
func layerMediaTypes(t testing.TB, manifest []byte) []string {
	t.Helper()
	var m struct {
		Layers []struct{ MediaType string } `json:"layers"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.MediaType)
	}
	return out
}

// blobDiffIDs decompresses every layer blob of an exported layout with
// the real gzip or zstd and returns the sha256 of each tar.
func blobDiffIDs(t testing.TB, layout string, li layoutImage) []string {
	t.Helper()
	var out []string
	for i, mt := range layerMediaTypes(t, li.Manifest) {
		p := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(li.LayerDigests[i], "sha256:"))
		cat := "cat"
		switch {
		case strings.HasSuffix(mt, "gzip"):
			cat = "gzip -dc"
		case strings.HasSuffix(mt, "zstd"):
			cat = "zstd -dcq"
		}
		r := mustRun(t, "bash", "-o", "pipefail", "-c", cat+` < "$1" | sha256sum`, "x", p)
		f := strings.Fields(r.Stdout)
		if len(f) == 0 || !hex64.MatchString(f[0]) {
			t.Fatalf("%s | sha256sum: %q", cat, r.Stdout)
		}
		out = append(out, "sha256:"+f[0])
	}
	return out
}

// unpackEquals runs umoci unpack of LAYOUT:TAG and compares its rootfs
// with the reference rootfs ref under opts.
func unpackEquals(t testing.TB, what, layout, tag, ref string, opts treecmp.Options) {
	t.Helper()
	b := filepath.Join(t.TempDir(), "bundle")
	mustRun(t, "umoci", "unpack", "--image", layout+":"+tag, b)
	checkTreesEqual(t, what+": umoci unpack vs the original's", dumpTree(t, ref, opts), dumpTree(t, filepath.Join(b, "rootfs"), opts))
	noErr(t, os.RemoveAll(b))
}

// treecmpExact compares unpacked trees with mtimes and hardlink groups:
// byte-identical layer tars unpack to the very same trees, times too.
var treecmpExact = treecmp.Options{MTime: true, Hardlinks: true, Rewrite: func(e *treecmp.Entry) bool {
	// umoci sets no time on the rootfs itself.
	if e.Path == "." {
		e.HasMTime = false
	}
	return true
}}

// weakRefMap maps each weak ref of a repository to its commit.
func weakRefMap(t testing.TB, repoPath string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range weakRefs(t, repoPath) {
		out[n] = readRefFile(t, repoPath, "refs/weak/"+n)
	}
	return out
}

// checkSameLayers checks that the image rev of repoPath has the related
// list want and that the weak refs of its layers are the ones in
// wantWeak (names and commits).
func checkSameLayers(t testing.TB, what, repoPath, rev string, want [][2]string, wantWeak map[string]string) {
	t.Helper()
	if got := relatedEntries(t, repoPath, rev); !slices.Equal(got, want) {
		t.Errorf("%s: related list\n%v\nwant the original's\n%v", what, got, want)
	}
	got := weakRefMap(t, repoPath)
	for n, c := range got {
		if wantWeak[n] != c {
			t.Errorf("%s: weak ref %s -> %s, the original has %q", what, n, c, wantWeak[n])
		}
	}
	if len(got) != len(wantWeak) {
		t.Errorf("%s: %d weak refs, the original has %d", what, len(got), len(wantWeak))
	}
}

// TestExportRealistic exports the realistic image and its zstd and
// Docker schema 2 conversions, each imported layered and precomposed
// (the conversions into fresh repositories): the export has the
// original's config digest and diff_ids (the blobs, decompressed by gzip
// and zstd, hash to them), the precomposed export is the layered one
// byte for byte, umoci unpack of it is the original's (mtimes and
// hardlinks included), and the conversions' fresh imports have the
// original's layer commits. The gzip export then goes through the
// registry (skopeo copy, import docker:// into a fresh repository) and
// comes back to the same related list and weak refs.
func TestExportRealistic(t *testing.T) {
	deb := debImage(t)
	vars := debImageVariants(t)
	orig := readLayoutImage(t, deb.Layout, "final")
	if len(orig.DiffIDs) < 2 {
		t.Fatalf("the realistic image has %d layers, want at least 2", len(orig.DiffIDs))
	}
	origRel := relatedEntries(t, deb.Repo, deb.Rev)
	origWeak := map[string]string{}
	for _, rel := range origRel {
		n := layerWeakRef("layer", rel[0])
		origWeak[n] = readRefFile(t, deb.Repo, "refs/weak/"+n)
	}
	cases := []struct {
		name, layout string
		flags        []string // export flags
		wantMT       string   // suffix of the exported layers' media type
	}{
		{"gzip", deb.Layout, nil, "tar+gzip"},
		{"zstd", vars.Zstd, []string{"--compress-format", "zstd"}, "tar+zstd"},
		{"v2s2", vars.V2S2, nil, "tar+gzip"},
	}
	var mu sync.Mutex
	manifests := map[string]string{}
	exports := map[string]string{}
	top := t.TempDir() // the exports outlive their subtests
	t.Run("variants", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				src := readLayoutImage(t, c.layout, "final")
				if !slices.Equal(src.DiffIDs, orig.DiffIDs) {
					t.Fatalf("the %s conversion has diff_ids %v, the original %v", c.name, src.DiffIDs, orig.DiffIDs)
				}
				dir := filepath.Join(top, c.name)
				noErr(t, os.Mkdir(dir, 0o755))
				rp, layered := deb.Repo, deb.Rev
				if c.name != "gzip" {
					rp, layered = initImageRepo(t, dir, "repo", "bare-user"), "layered"
					importImage(t, rp, "-q", "--ref", layered, "oci:"+c.layout+":final")
					checkSameLayers(t, c.name+" import into a fresh repository", rp, layered, origRel, origWeak)
				}
				pre := "export-test/" + c.name + "/precomposed"
				importImage(t, rp, "-q", "--mode", "precomposed", "--ref", pre, "oci:"+c.layout+":final")
				if got := relatedEntries(t, rp, pre); !slices.Equal(got, origRel) {
					t.Errorf("precomposed import: related list %v, want %v", got, origRel)
				}
				out := filepath.Join(dir, "out")
				md, _ := exportImage(t, rp, layered, "oci:"+out+":final", c.flags...)
				mdPre, _ := exportImage(t, rp, pre, "oci:"+out+":pre", c.flags...)
				got := readLayoutImage(t, out, "final")
				if got.ManifestDigest != md {
					t.Errorf("export printed %s, index.json names %s", md, got.ManifestDigest)
				}
				if cd, od := sha256Digest(got.Config), sha256Digest(src.Config); cd != od {
					t.Errorf("config digest %s, the original's %s", cd, od)
				}
				if !slices.Equal(got.DiffIDs, orig.DiffIDs) {
					t.Errorf("diff_ids %v, the original's %v", got.DiffIDs, orig.DiffIDs)
				}
				if b := blobDiffIDs(t, out, got); !slices.Equal(b, orig.DiffIDs) {
					t.Errorf("the exported blobs decompress to tars of sha256 %v, want the diff_ids %v", b, orig.DiffIDs)
				}
				for _, mt := range layerMediaTypes(t, got.Manifest) {
					if !strings.HasSuffix(mt, c.wantMT) {
						t.Errorf("layer media type %s, want *%s", mt, c.wantMT)
					}
				}
				// The same layer commits give the same blobs: the precomposed
				// export is the layered one, byte for byte.
				if mdPre != md {
					t.Errorf("precomposed export %s, layered export %s: they hold the same layers", mdPre, md)
				}
				switch c.name {
				case "gzip":
					unpackEquals(t, "gzip export", out, "final", deb.Ref, treecmpExact)
				case "zstd":
					// Debian's umoci reads no zstd layers: skopeo, which does,
					// recompresses the export for it.
					gz := filepath.Join(dir, "gz")
					mustRun(t, "skopeo", "--insecure-policy", "copy", "-q", "--dest-compress-format", "gzip", "oci:"+out+":final", "oci:"+gz+":final")
					unpackEquals(t, "zstd export (through skopeo copy)", gz, "final", deb.Ref, treecmpExact)
				}
				mu.Lock()
				manifests[c.name], exports[c.name] = md, out
				mu.Unlock()
			})
		}
	})
	// The Docker schema 2 import has the same layer commits and config as
	// the original, exported with the same compression: the same image,
	// byte for byte (so its unpack is the gzip export's).
	if g, v := manifests["gzip"], manifests["v2s2"]; g != "" && v != "" && g != v {
		t.Errorf("export of the Docker schema 2 import %s, of the original %s", v, g)
	}

	t.Run("registry", func(t *testing.T) {
		out := exports["gzip"]
		if out == "" {
			t.Skip("the gzip export failed")
		}
		reg := plainRegistry(t)
		dst := reg.push(t, "oci:"+out+":final", "export/debootstrap:gzip")
		if d := remoteDigest(t, reg, "export/debootstrap:gzip"); d != manifests["gzip"] {
			t.Errorf("the registry serves %s, the export was %s", d, manifests["gzip"])
		}
		rp := initImageRepo(t, t.TempDir(), "repo", "bare-user")
		importImage(t, rp, "-q", "--tls-verify=false", "--ref", "back", dst)
		checkSameLayers(t, "import docker:// of the pushed export into a fresh repository", rp, "back", origRel, origWeak)
		if got, want := metadataString(t, rp, "back", "ostree-mount.config"), metadataString(t, deb.Repo, deb.Rev, "ostree-mount.config"); got != want {
			t.Errorf("config after the round trip:\n%s\nwant\n%s", clip(got, 500), clip(want, 500))
		}
	})
}

// syntheticRepo imports the synthetic image (every whiteout kind,
// hardlinks, devices, xattrs) layered as "layered" into a fresh
// bare-user repository under dir.
func syntheticRepo(t testing.TB, dir string) (rp, layout string, orig layoutImage) {
	t.Helper()
	syn := syntheticImage(t)
	layout = filepath.Join(syn, "img")
	orig = readLayoutImage(t, layout, "layer4")
	rp = initImageRepo(t, dir, "repo", "bare-user")
	importImage(t, rp, "-q", "--ref", "layered", "oci:"+layout+":layer4")
	return rp, layout, orig
}

// TestExportSquashed: a squashed image exports as one layer of its
// composed tree, which umoci unpacks as the original.
func TestExportSquashed(t *testing.T) {
	dir := t.TempDir()
	syn := syntheticImage(t)
	rp := initImageRepo(t, dir, "repo", "bare-user")
	importImage(t, rp, "-q", "--mode", "squashed", "--ref", "squashed", "oci:"+filepath.Join(syn, "img")+":layer4")
	out := filepath.Join(dir, "out")
	_, res := exportImage(t, rp, "squashed", "oci:"+out+":sq")
	if res.Stderr != "" {
		t.Errorf("export of a squashed image warns:\n%s", res.Stderr)
	}
	got := readLayoutImage(t, out, "sq")
	if len(got.LayerDigests) != 1 || len(got.DiffIDs) != 1 {
		t.Fatalf("squashed export: %d layers, %d diff_ids, want one", len(got.LayerDigests), len(got.DiffIDs))
	}
	if b := blobDiffIDs(t, out, got); !slices.Equal(b, got.DiffIDs) {
		t.Errorf("the layer decompresses to sha256 %v, the config says %v", b, got.DiffIDs)
	}
	var cfg map[string]json.RawMessage
	noErr(t, json.Unmarshal(got.Config, &cfg))
	if _, ok := cfg["history"]; ok {
		t.Errorf("squashed export keeps the history of %d-layer image", 5)
	}
	unpackEquals(t, "squashed export", out, "sq", filepath.Join(syn, "ref", "rootfs"), treecmp.Options{Hardlinks: true})
}

// TestExportArchives: oci-archive and docker-archive exports pass skopeo
// inspect with the original's diff_ids, and skopeo copies the
// docker-archive to a layout that umoci unpacks as the original.
func TestExportArchives(t *testing.T) {
	dir := t.TempDir()
	rp, _, orig := syntheticRepo(t, dir)
	ref := filepath.Join(syntheticImage(t), "ref", "rootfs")
	inspectConfig := func(src string) []string {
		t.Helper()
		return configDiffIDs(t, []byte(mustRun(t, "skopeo", "inspect", "--config", src).Stdout))
	}
	var inspect struct {
		Digest string
		Layers []string
	}

	oa := filepath.Join(dir, "img.oci.tar")
	md, _ := exportImage(t, rp, "layered", "oci-archive:"+oa+":v1")
	if got := inspectConfig("oci-archive:" + oa + ":v1"); !slices.Equal(got, orig.DiffIDs) {
		t.Errorf("oci-archive: skopeo inspect --config: diff_ids %v, want %v", got, orig.DiffIDs)
	}
	noErr(t, json.Unmarshal([]byte(mustRun(t, "skopeo", "inspect", "oci-archive:"+oa+":v1").Stdout), &inspect))
	if inspect.Digest != md || len(inspect.Layers) != len(orig.DiffIDs) {
		t.Errorf("oci-archive: skopeo inspect: digest %s with %d layers, want %s with %d", inspect.Digest, len(inspect.Layers), md, len(orig.DiffIDs))
	}

	da := filepath.Join(dir, "img.docker.tar")
	exportImage(t, rp, "layered", "docker-archive:"+da+":example/exported:v1")
	if got := inspectConfig("docker-archive:" + da); !slices.Equal(got, orig.DiffIDs) {
		t.Errorf("docker-archive: skopeo inspect --config: diff_ids %v, want %v", got, orig.DiffIDs)
	}
	if cd := sha256Digest(dockerArchiveConfig(t, da)); cd != sha256Digest(orig.Config) {
		t.Errorf("docker-archive: config digest %s, the original's %s", cd, sha256Digest(orig.Config))
	}
	inspect.Layers = nil
	// By the name it was given: skopeo finds it in manifest.json's RepoTags.
	noErr(t, json.Unmarshal([]byte(mustRun(t, "skopeo", "inspect", "docker-archive:"+da+":example/exported:v1").Stdout), &inspect))
	// A docker-archive's layers are uncompressed: their digests are the diff_ids.
	if !slices.Equal(inspect.Layers, orig.DiffIDs) {
		t.Errorf("docker-archive: skopeo inspect: layers %v, want the diff_ids %v", inspect.Layers, orig.DiffIDs)
	}
	lay := filepath.Join(dir, "from-docker")
	mustRun(t, "skopeo", "--insecure-policy", "copy", "-q", "docker-archive:"+da, "oci:"+lay+":x")
	unpackEquals(t, "docker-archive export (through skopeo copy)", lay, "x", ref, treecmpExact)
}

// TestExportReimport: an export imported into a fresh repository gives
// the original's layer commits (the same related list and weak refs);
// into the original's repository, every layer is already present.
func TestExportReimport(t *testing.T) {
	dir := t.TempDir()
	rp, _, orig := syntheticRepo(t, dir)
	out := filepath.Join(dir, "out")
	for _, comp := range []string{"gzip", "zstd", "none"} {
		exportImage(t, rp, "layered", "oci:"+out+":"+comp, "--compress-format", comp)
	}
	want, wantWeak := relatedEntries(t, rp, "layered"), weakRefMap(t, rp)
	for _, comp := range []string{"gzip", "zstd", "none"} {
		if got := readLayoutImage(t, out, comp); sha256Digest(got.Config) != sha256Digest(orig.Config) || !slices.Equal(got.DiffIDs, orig.DiffIDs) {
			t.Errorf("%s export: config %s diff_ids %v, want %s %v", comp, sha256Digest(got.Config), got.DiffIDs, sha256Digest(orig.Config), orig.DiffIDs)
		}
		fresh := initImageRepo(t, dir, "fresh-"+comp, "bare-user")
		importImage(t, fresh, "-q", "--ref", "back", "oci:"+out+":"+comp)
		checkSameLayers(t, comp+" export imported into a fresh repository", fresh, "back", want, wantWeak)
	}
	_, res := importImage(t, rp, "--ref", "again", "oci:"+out+":gzip")
	if n := strings.Count(res.Stderr, "(already present)"); n != len(orig.DiffIDs) {
		t.Errorf("export imported into the original's repository: %d of %d layers already present:\n%s", n, len(orig.DiffIDs), res.Stderr)
	}
	if got := relatedEntries(t, rp, "again"); !slices.Equal(got, want) {
		t.Errorf("related list %v, want %v", got, want)
	}
}

// stripTarSplit deletes the tar-split record of every layer commit of an
// image, as a repository of an earlier version holds them.
func stripTarSplit(t testing.TB, repoPath, rev string) {
	t.Helper()
	r, err := repo.Open(repoPath)
	noErr(t, err)
	defer r.Close()
	tx, err := r.Begin(context.Background())
	noErr(t, err)
	defer tx.Abort()
	for _, rel := range relatedEntries(t, repoPath, rev) {
		c, err := repo.ParseChecksum(rel[1])
		noErr(t, err)
		md, err := r.ReadCommitMeta(c)
		noErr(t, err)
		var keep repo.Metadata
		for _, e := range md {
			if e.Key != tarSplitKey {
				keep = append(keep, e)
			}
		}
		if len(keep) == len(md) {
			t.Fatalf("layer commit %s has no %s to strip", c, tarSplitKey)
		}
		noErr(t, tx.SetCommitMeta(c, keep))
	}
	noErr(t, tx.Commit())
}

// TestExportOldLayers: layer commits without a tar-split record export
// with synthesized headers and a warning naming each layer; the image
// works (umoci unpack gives the original's tree but mtimes, and checks
// the new diff_ids), and imports again.
func TestExportOldLayers(t *testing.T) {
	dir := t.TempDir()
	rp, _, orig := syntheticRepo(t, dir)
	stripTarSplit(t, rp, "layered")
	ostreeCmd(t, "fsck", "--repo="+rp)
	out := filepath.Join(dir, "out")
	_, res := exportImage(t, rp, "layered", "oci:"+out+":old")
	for i, d := range orig.DiffIDs {
		if !strings.Contains(res.Stderr, "has no tar-split record") || !strings.Contains(res.Stderr, d) {
			t.Errorf("no warning on stderr for layer %d (%s):\n%s", i, d, res.Stderr)
		}
	}
	if n := strings.Count(res.Stderr, "warning:"); n != len(orig.DiffIDs) {
		t.Errorf("%d warnings for %d layers:\n%s", n, len(orig.DiffIDs), res.Stderr)
	}
	got := readLayoutImage(t, out, "old")
	if len(got.DiffIDs) != len(orig.DiffIDs) {
		t.Fatalf("%d diff_ids, want %d", len(got.DiffIDs), len(orig.DiffIDs))
	}
	if b := blobDiffIDs(t, out, got); !slices.Equal(b, got.DiffIDs) {
		t.Errorf("the blobs decompress to sha256 %v, the config says %v", b, got.DiffIDs)
	}
	if slices.Equal(got.DiffIDs, orig.DiffIDs) {
		t.Errorf("synthesized layers have the original diff_ids %v: the headers were not synthesized", got.DiffIDs)
	}
	ref := filepath.Join(syntheticImage(t), "ref", "rootfs")
	unpackEquals(t, "export of layers without records", out, "old", ref, treecmp.Options{Hardlinks: true})
	fresh := initImageRepo(t, dir, "fresh", "bare-user")
	importImage(t, fresh, "-q", "--ref", "back", "oci:"+out+":old")
	checkoutEquals(t, fresh, "back", ref, dir)
}

// TestExportPrune: the tar-split record lives and dies with its layer
// commit. With two images sharing a base layer, deleting one and pruning
// deletes its top layer commit with its record and keeps the base's,
// ostree fsck accepts the repository, and the other image still
// exports with its original diff_ids; deleting the other leaves no
// detached metadata behind.
func TestExportPrune(t *testing.T) {
	dir := t.TempDir()
	f := sharedFixtureCopy(t, dir)
	rp := initImageRepo(t, dir, "repo", "bare-user")
	importImage(t, rp, "-q", "--ref", "one", "oci:"+f.layout+":one")
	importImage(t, rp, "-q", "--ref", "two", "oci:"+f.layout+":two")
	rel1, rel2 := relatedEntries(t, rp, "one"), relatedEntries(t, rp, "two")
	meta := func(commit string) string { return filepath.Join(rp, "objects", objName(commit, "commitmeta")) }
	for _, rel := range append(rel1, rel2...) {
		// Real ostree reads the record as the commit's detached metadata.
		if out := ostreeCmd(t, "show", "--repo="+rp, "--print-detached-metadata-key="+tarSplitKey, rel[1]); !strings.HasPrefix(out, "[byte 0x28, 0xb5, 0x2f, 0xfd") {
			t.Errorf("layer commit %s: ostree show of %s: %q, want a zstd frame", rel[1], tarSplitKey, clip(out, 80))
		}
	}
	ostreeCmd(t, "fsck", "--repo="+rp)

	om(t, "refs", "--repo", rp, "--delete", "one")
	runPrune(t, rp)
	if _, err := os.Stat(meta(rel1[1][1])); !os.IsNotExist(err) {
		t.Errorf("image one's top layer commit was pruned but its detached metadata remains (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(rp, "objects", objName(rel1[1][1], "commit"))); !os.IsNotExist(err) {
		t.Errorf("image one's top layer commit survived prune (%v)", err)
	}
	for _, rel := range rel2 {
		if _, err := os.Stat(meta(rel[1])); err != nil {
			t.Errorf("image two's layer commit %s lost its detached metadata to prune: %v", rel[1], err)
		}
	}
	fsckBoth(t, rp)
	out := filepath.Join(dir, "out")
	_, res := exportImage(t, rp, "two", "oci:"+out+":two")
	if res.Stderr != "" {
		t.Errorf("export after prune warns:\n%s", res.Stderr)
	}
	if got := readLayoutImage(t, out, "two"); !slices.Equal(got.DiffIDs, f.two.DiffIDs) || sha256Digest(got.Config) != sha256Digest(f.two.Config) {
		t.Errorf("export after prune: config %s diff_ids %v, want %s %v", sha256Digest(got.Config), got.DiffIDs, sha256Digest(f.two.Config), f.two.DiffIDs)
	}

	om(t, "refs", "--repo", rp, "--delete", "two")
	runPrune(t, rp)
	if n := countExt(repoObjects(t, rp), "commitmeta"); n != 0 {
		t.Errorf("%d commitmeta objects remain after both images were pruned", n)
	}
	ostreeCmd(t, "fsck", "--repo="+rp)
}
