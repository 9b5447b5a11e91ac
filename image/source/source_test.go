package source

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	filesA = map[string]string{"etc/hostname": "a\n", "bin/sh": "#!"}
	filesB = map[string]string{"etc/hostname": "b\n"}
)

// twoTagLayout has images tagged "a" (two layers) and "b" (one layer).
func twoTagLayout(t *testing.T) (*layout, builtImage, builtImage) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA, filesB}})
	b := l.image(imageSpec{layers: []map[string]string{filesB}, arch: "arm64"})
	l.setIndex(tagged(a.desc, "a"), tagged(b.desc, "b"))
	return l, a, b
}

func TestOCILayoutTag(t *testing.T) {
	l, a, b := twoTagLayout(t)
	dir := l.writeDir("lay")
	img := openT(t, "oci:"+dir+":b", Options{})
	if img.transport != "oci" || img.name != "lay:b" {
		t.Errorf("Transport %q Name %q", img.transport, img.name)
	}
	if img.manifestDigest != b.desc.Digest || !bytes.Equal(img.manifest, b.manifestBytes) || sha(img.manifest) != img.manifestDigest {
		t.Errorf("manifest digest %s, want %s", img.manifestDigest, b.desc.Digest)
	}
	if img.configDigest != b.config.Digest || sha(img.config) != img.configDigest {
		t.Errorf("config digest %s", img.configDigest)
	}
	if img.platform.Architecture != "arm64" || img.platform.OS != "linux" {
		t.Errorf("platform %+v", img.platform)
	}
	if len(img.layers) != 1 || img.layers[0].digest != b.layers[0].digest || img.layers[0].diffID != b.layers[0].diffID ||
		img.layers[0].mediaType != v1.MediaTypeImageLayerGzip || img.layers[0].size != int64(len(b.layers[0].blob)) {
		t.Errorf("layers %+v", img.layers)
	}
	checkLayers(t, img)

	img = openT(t, "oci:"+dir+":a", Options{})
	if len(img.layers) != 2 || img.layers[1].diffID != a.layers[1].diffID {
		t.Fatalf("layers %+v", img.layers)
	}
	checkLayers(t, img)
	// The layout tag names the image: its platform does not matter unless
	// requested explicitly.
	openErr(t, "oci:"+dir+":b", Options{Platform: "linux/amd64"}, ErrNotFound, "linux/arm64", "linux/amd64")
}

func TestOCILayoutSingleWithoutTag(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	l.setIndex(a.desc)
	dir := l.writeDir("single")
	img := openT(t, "oci:"+dir, Options{})
	if img.name != "single" || img.manifestDigest != a.desc.Digest {
		t.Errorf("Name %q digest %s", img.name, img.manifestDigest)
	}
	checkLayers(t, img)
}

func TestOCILayoutMissingTag(t *testing.T) {
	l, _, _ := twoTagLayout(t)
	dir := l.writeDir("lay")
	openErr(t, "oci:"+dir+":nope", Options{}, ErrNotFound, `"nope"`, `"a"`, `"b"`, "oci:"+dir, "index.json")
	openErr(t, "oci:"+dir, Options{}, ErrNotFound, `"a"`, `"b"`, "2 images")
}

// multiArch builds index.json (tag "m") → nested index → per-platform
// manifests, like buildah's multi-arch push.
func multiArch(t *testing.T, armVariantless bool) (string, map[string]builtImage) {
	l := newLayout(t)
	imgs := map[string]builtImage{}
	var entries []v1.Descriptor
	for _, p := range []struct{ os, arch, variant string }{
		{"linux", "amd64", ""}, {"linux", "arm64", "v8"}, {"linux", "arm", "v7"}, {"linux", "arm", "v6"}, {"linux", "s390x", ""},
	} {
		variant := p.variant
		if armVariantless && p.arch == "arm64" {
			variant = ""
		}
		files := map[string]string{"arch": p.arch + p.variant}
		bi := l.image(imageSpec{os: p.os, arch: p.arch, variant: p.variant, layers: []map[string]string{files}})
		imgs[strings.TrimSuffix(p.os+"/"+p.arch+"/"+p.variant, "/")] = bi
		entries = append(entries, withPlatform(bi.desc, p.os, p.arch, variant))
	}
	// An attestation-like entry of unknown type must be skipped.
	unk := l.blob("application/vnd.example.unknown+json", []byte(`{}`))
	entries = append([]v1.Descriptor{withPlatform(unk, "linux", "amd64", "")}, entries...)
	nested := l.index(v1.MediaTypeImageIndex, entries...)
	l.setIndex(tagged(nested, "m"))
	return l.writeDir("multi"), imgs
}

func TestNestedIndexPlatform(t *testing.T) {
	for _, variantless := range []bool{false, true} {
		dir, imgs := multiArch(t, variantless)
		for _, c := range []struct{ platform, want string }{
			{"linux/amd64", "linux/amd64"},
			{"linux/arm64/v8", "linux/arm64/v8"},
			{"linux/arm64", "linux/arm64/v8"},
			{"linux/aarch64", "linux/arm64/v8"},
			{"linux/arm/v7", "linux/arm/v7"},
			{"linux/arm/v6", "linux/arm/v6"},
			{"linux/s390x", "linux/s390x"},
		} {
			img := openT(t, "oci:"+dir+":m", Options{Platform: c.platform})
			if img.manifestDigest != imgs[c.want].desc.Digest {
				t.Errorf("variantless=%v platform %s: got manifest %s, want %s's", variantless, c.platform, img.manifestDigest, c.want)
			}
			checkLayers(t, img)
		}
		openErr(t, "oci:"+dir+":m", Options{Platform: "linux/riscv64"}, ErrNotFound, "linux/riscv64", "linux/amd64", "index.json manifests[0]")
		openErr(t, "oci:"+dir+":m", Options{Platform: "windows/amd64"}, ErrNotFound, "windows/amd64")
		openErr(t, "oci:"+dir+":m", Options{Platform: "linux"}, ErrInvalid, "linux")

		// Default: the host platform.
		host := runtime.GOOS + "/" + runtime.GOARCH
		switch runtime.GOARCH {
		case "arm64":
			host += "/v8"
		case "arm":
			host += "/v" + goarm()
		}
		img, err := openLocal(context.Background(), "oci:"+dir+":m", Options{})
		if bi, ok := imgs[host]; ok {
			if err != nil {
				t.Fatalf("default platform %s: %v", host, err)
			}
			if img.manifestDigest != bi.desc.Digest {
				t.Errorf("default platform %s: got %s", host, img.manifestDigest)
			}
			if img.platform.OS != runtime.GOOS || img.platform.Architecture != runtime.GOARCH {
				t.Errorf("default platform: image platform %+v", img.platform)
			}
			img.Close()
		} else if !errors.Is(err, ErrNotFound) {
			t.Errorf("host %s not in index: err %v, want ErrNotFound", host, err)
		}
	}
}

func TestPlatformMatching(t *testing.T) {
	p := func(arch, variant string) *v1.Platform {
		return &v1.Platform{OS: "linux", Architecture: arch, Variant: variant}
	}
	for _, c := range []struct {
		want string
		p    *v1.Platform
		ok   bool
	}{
		{"linux/arm64/v8", p("arm64", ""), true},
		{"linux/arm64/v8", p("arm64", "v8"), true},
		{"linux/arm64/v8", p("arm64", "8"), true},
		{"linux/arm/v7", p("arm", "v7"), true},
		{"linux/arm/v7", p("arm", ""), true},
		{"linux/arm/v7", p("arm", "v6"), false},
		{"linux/arm/v6", p("arm", "v7"), false},
		{"linux/amd64", p("amd64", ""), true},
		{"linux/amd64", p("x86_64", ""), true},
		{"linux/amd64", p("arm64", ""), false},
		{"linux/amd64", nil, false},
		{"darwin/amd64", p("amd64", ""), false},
	} {
		w, err := parsePlatform(c.want)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.matches(c.p); got != c.ok {
			t.Errorf("%s matches %s = %v, want %v", c.want, platformString(c.p), got, c.ok)
		}
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := parsePlatform(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("parsePlatform(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	h := hostPlatform()
	if h.os != runtime.GOOS || h.arch != runtime.GOARCH || h.explicit {
		t.Errorf("host platform %+v", h)
	}
}

func TestIndexEntryWithoutPlatform(t *testing.T) {
	// A nested index whose only entry has no platform is accepted.
	l := newLayout(t)
	a := l.image(imageSpec{arch: "s390x", layers: []map[string]string{filesA}})
	l.setIndex(tagged(l.index(v1.MediaTypeImageIndex, a.desc), "x"))
	img := openT(t, "oci:"+l.writeDir("np")+":x", Options{})
	if img.manifestDigest != a.desc.Digest {
		t.Fatal("wrong manifest")
	}
}

func TestManifestWithoutMediaType(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{omitManifestMT: true, layers: []map[string]string{filesA}})
	d := a.desc
	d.MediaType = "" // umoci-style index.json entry may omit it too
	l.files["index.json"] = mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []v1.Descriptor{tagged(d, "t")}})
	img := openT(t, "oci:"+l.writeDir("umoci")+":t", Options{})
	if img.manifestMediaType != v1.MediaTypeImageManifest {
		t.Errorf("ManifestMediaType %q", img.manifestMediaType)
	}
	checkLayers(t, img)
}

func TestDockerV2S2MediaTypes(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{docker: true, layers: []map[string]string{filesA, filesB}})
	b := l.image(imageSpec{docker: true, arch: "arm64", layers: []map[string]string{filesB}})
	list := l.index(mtDockerList, withPlatform(a.desc, "linux", "amd64", ""), withPlatform(b.desc, "linux", "arm64", ""))
	l.setIndex(tagged(a.desc, "single"), tagged(list, "list"))
	dir := l.writeDir("v2s2")
	img := openT(t, "oci:"+dir+":single", Options{})
	if img.manifestMediaType != mtDockerManifest || img.layers[0].mediaType != mtDockerLayerGzip {
		t.Errorf("media types %q %q", img.manifestMediaType, img.layers[0].mediaType)
	}
	checkLayers(t, img)
	img = openT(t, "oci:"+dir+":list", Options{Platform: "linux/arm64"})
	if img.manifestDigest != b.desc.Digest {
		t.Errorf("list selection got %s", img.manifestDigest)
	}
	checkLayers(t, img)
}

func TestLayerMediaTypes(t *testing.T) {
	// Every layer type is passed through, including unknown ones and the
	// nondistributable forms; plain layers have DiffID == Digest.
	types := []string{
		v1.MediaTypeImageLayer, v1.MediaTypeImageLayerGzip, v1.MediaTypeImageLayerZstd,
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		mtDockerLayerGzip, mtDockerLayerForeign, "application/x-unknown", "",
	}
	l := newLayout(t)
	var layers []map[string]string
	for i := range types {
		layers = append(layers, map[string]string{"f": strings.Repeat("x", i)})
	}
	a := l.image(imageSpec{plain: true, layers: layers, manifest: func(m map[string]any) {
		for i, ld := range m["layers"].([]any) {
			if types[i] == "" {
				delete(ld.(map[string]any), "mediaType")
			} else {
				ld.(map[string]any)["mediaType"] = types[i]
			}
		}
	}})
	l.setIndex(a.desc)
	img := openT(t, "oci:"+l.writeDir("types"), Options{})
	for i, ly := range img.layers {
		if ly.mediaType != types[i] || ly.diffID != ly.digest {
			t.Errorf("layer %d: %q %s %s", i, ly.mediaType, ly.digest, ly.diffID)
		}
	}
	checkLayers(t, img)
}

func TestOCIArchive(t *testing.T) {
	l, _, b := twoTagLayout(t)
	dir := t.TempDir()
	for _, prefix := range []string{"", "./", "/"} {
		ents := l.tarEntries(prefix)
		// A long name and PAX records before the blobs must not shift offsets.
		ents = append([]tarEnt{{name: prefix + strings.Repeat("long/", 40) + "x", data: []byte("pad"), pax: map[string]string{"SCHILY.xattr.user.x": "y"}}}, ents...)
		p := writeTar(t, filepath.Join(dir, "img"+strings.ReplaceAll(prefix, "/", "_")+".tar"), ents)
		img := openT(t, "oci-archive:"+p+":b", Options{})
		if img.transport != "oci-archive" || !strings.HasPrefix(img.name, "img") || !strings.HasSuffix(img.name, ":b") {
			t.Errorf("Transport %q Name %q", img.transport, img.name)
		}
		if img.manifestDigest != b.desc.Digest || img.layers[0].digest != b.layers[0].digest {
			t.Errorf("prefix %q: wrong image", prefix)
		}
		checkLayers(t, img)
		openErr(t, "oci-archive:"+p+":zz", Options{}, ErrNotFound, `"a"`, `"b"`, "oci-archive:"+p)
	}
}

func TestOCIArchiveSymlinks(t *testing.T) {
	l, _, b := twoTagLayout(t)
	// Move b's layer blob to another member and link to it; add an escaping
	// link for a's layer.
	lb := "blobs/sha256/" + b.layers[0].digest.Encoded()
	data := l.files[lb]
	delete(l.files, lb)
	ents := l.tarEntries("./")
	ents = append(ents,
		tarEnt{name: "store/real", data: data},
		tarEnt{name: "./blobs/sha256/" + b.layers[0].digest.Encoded(), typ: tar.TypeSymlink, link: "../../store/real"},
		tarEnt{name: "etclink", typ: tar.TypeSymlink, link: "../../../../../../etc"},
		tarEnt{name: "loop", typ: tar.TypeSymlink, link: "loop/x"},
		tarEnt{name: "hard", typ: tar.TypeLink, link: "./store/real"},
	)
	p := writeTar(t, filepath.Join(t.TempDir(), "links.tar"), ents)
	img := openT(t, "oci-archive:"+p+":b", Options{})
	checkLayers(t, img)

	st, err := openArchiveStore(context.Background(), p, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	for _, name := range []string{"etclink/passwd", "../etc/passwd", "loop", "loop/y", "store"} {
		if _, _, err := st.open(name); err == nil {
			t.Errorf("open(%q) succeeded", name)
		}
	}
	for _, name := range []string{"x/../../store/real", "hard"} {
		rc, size, err := st.open(name)
		if err != nil {
			t.Errorf("open(%q): %v", name, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(b, data) || size != int64(len(data)) {
			t.Errorf("open(%q): wrong data", name)
		}
	}
}

func TestOCIDirSymlinks(t *testing.T) {
	// A blob symlinked inside the layout is served; one pointing outside the
	// layout directory is refused.
	l, a, b := twoTagLayout(t)
	dir := l.writeDir("links")
	inside := filepath.Join(dir, "blobs/sha256", b.layers[0].digest.Encoded())
	if err := os.Rename(inside, filepath.Join(dir, "real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../real", inside); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(dir, "blobs/sha256", a.layers[0].digest.Encoded())
	if err := os.Rename(outside, filepath.Join(filepath.Dir(dir), "outside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../outside", outside); err != nil {
		t.Fatal(err)
	}
	img := openT(t, "oci:"+dir+":b", Options{})
	checkLayers(t, img)
	img = openT(t, "oci:"+dir+":a", Options{})
	if rc, err := img.layers[0].Compressed(); err == nil {
		rc.Close()
		t.Error("blob symlinked outside the layout was opened")
	} else if !strings.Contains(err.Error(), string(a.layers[0].digest)) {
		t.Errorf("error does not name the blob: %v", err)
	}
}

// dockerArchiveOld writes a skopeo/`docker save` style archive with two
// images, uncompressed <diffid>.tar layers and legacy <v1id>/layer.tar
// symlinks.
func dockerArchiveOld(t *testing.T, useV1Paths bool) (string, [][]byte, [][]byte) {
	var ents []tarEnt
	var items []dockerItem
	var cfgs, tars [][]byte
	repos := map[string]map[string]string{}
	for n, spec := range []struct {
		tag    string
		layers []map[string]string
	}{
		{"docker.io/example/final:latest", []map[string]string{filesA, filesB}},
		{"docker.io/library/busybox:1", []map[string]string{filesB}},
	} {
		var diffIDs []string
		var layerNames []string
		for i, files := range spec.layers {
			tb := layerTar(t, files)
			tars = append(tars, tb)
			d := sha(tb)
			diffIDs = append(diffIDs, string(d))
			ents = append(ents, tarEnt{name: d.Encoded() + ".tar", data: tb})
			v1id := strings.Repeat(string(rune('a'+n)), 63) + string(rune('0'+i))
			ents = append(ents,
				tarEnt{name: v1id + "/", typ: tar.TypeDir},
				tarEnt{name: v1id + "/VERSION", data: []byte("1.0")},
				tarEnt{name: v1id + "/json", data: []byte("{}")},
				tarEnt{name: v1id + "/layer.tar", typ: tar.TypeSymlink, link: "../" + d.Encoded() + ".tar"})
			if useV1Paths {
				layerNames = append(layerNames, v1id+"/layer.tar")
			} else {
				layerNames = append(layerNames, d.Encoded()+".tar")
			}
			repoName, tag, _ := strings.Cut(spec.tag, ":")
			repos[repoName] = map[string]string{tag: v1id}
		}
		cfg := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
		cfgs = append(cfgs, cfg)
		cname := sha(cfg).Encoded() + ".json"
		ents = append(ents, tarEnt{name: cname, data: cfg})
		items = append(items, dockerItem{Config: cname, RepoTags: []string{spec.tag}, Layers: layerNames})
	}
	ents = append(ents, tarEnt{name: "manifest.json", data: mustJSON(t, items)}, tarEnt{name: "repositories", data: mustJSON(t, repos)})
	return writeTar(t, filepath.Join(t.TempDir(), "old.tar"), ents), cfgs, tars
}

func TestDockerArchiveOld(t *testing.T) {
	for _, useV1 := range []bool{false, true} {
		p, cfgs, tars := dockerArchiveOld(t, useV1)
		for _, ref := range []string{"example/final:latest", "docker.io/example/final:latest", "example/final", "@0"} {
			img := openT(t, "docker-archive:"+p+":"+ref, Options{})
			if img.transport != "docker-archive" || img.name != "example/final:latest" {
				t.Errorf("%s: Transport %q Name %q", ref, img.transport, img.name)
			}
			if !bytes.Equal(img.config, cfgs[0]) || img.configDigest != sha(cfgs[0]) {
				t.Errorf("%s: config", ref)
			}
			if len(img.layers) != 2 {
				t.Fatalf("%s: %d layers", ref, len(img.layers))
			}
			for i, l := range img.layers {
				if l.digest != sha(tars[i]) || l.diffID != l.digest || l.size != int64(len(tars[i])) || l.mediaType != mtDockerLayerTar {
					t.Errorf("%s: layer %d: %+v", ref, i, l)
				}
			}
			checkLayers(t, img)
			// The synthesized manifest describes the files.
			if img.manifestMediaType != mtDockerManifest || img.manifestDigest != sha(img.manifest) {
				t.Errorf("manifest %q %s", img.manifestMediaType, img.manifestDigest)
			}
			var m v1.Manifest
			if err := json.Unmarshal(img.manifest, &m); err != nil {
				t.Fatal(err)
			}
			if m.SchemaVersion != 2 || m.MediaType != mtDockerManifest || m.Config.Digest != img.configDigest ||
				m.Config.Size != int64(len(img.config)) || m.Config.MediaType != mtDockerConfig || len(m.Layers) != 2 {
				t.Errorf("synthesized manifest %s", img.manifest)
			}
			for i, ld := range m.Layers {
				if ld.Digest != img.layers[i].digest || ld.Size != img.layers[i].size || ld.MediaType != img.layers[i].mediaType {
					t.Errorf("manifest layer %d: %+v", i, ld)
				}
			}
		}
		for _, ref := range []string{"busybox:1", "docker.io/library/busybox:1", "library/busybox:1", "@1"} {
			img := openT(t, "docker-archive:"+p+":"+ref, Options{})
			if img.name != "busybox:1" || len(img.layers) != 1 {
				t.Errorf("%s: Name %q, %d layers", ref, img.name, len(img.layers))
			}
			checkLayers(t, img)
		}
		openErr(t, "docker-archive:"+p, Options{}, ErrNotFound, "2 images", "docker.io/example/final:latest", "docker.io/library/busybox:1")
		openErr(t, "docker-archive:"+p+":nope:1", Options{}, ErrNotFound, "nope:1", "docker.io/library/busybox:1")
		openErr(t, "docker-archive:"+p+":@2", Options{}, ErrNotFound, "@2")
		openErr(t, "docker-archive:"+p+":@0", Options{Platform: "linux/arm64"}, ErrNotFound, "linux/amd64")
	}
}

func TestDockerArchiveNew(t *testing.T) {
	// Docker ≥25: an OCI layout inside, manifest.json paths are blobs/sha256.
	// One layer is plain, one gzip: digests come from the names.
	l := newLayout(t)
	a := l.image(imageSpec{plain: true, layers: []map[string]string{filesA}})
	gz := gzipBytes(t, layerTar(t, filesB))
	gd := l.blob(v1.MediaTypeImageLayerGzip, gz)
	l.setIndex(tagged(a.desc, "x"))
	cfg := mustJSON(t, map[string]any{"architecture": "arm64", "variant": "v8", "os": "linux", "rootfs": map[string]any{
		"type": "layers", "diff_ids": []digest.Digest{a.layers[0].diffID, sha(layerTar(t, filesB))}}})
	cd := l.blob(v1.MediaTypeImageConfig, cfg)
	items := []dockerItem{{
		Config:   "blobs/sha256/" + cd.Digest.Encoded(),
		RepoTags: []string{"new:1"},
		Layers:   []string{"blobs/sha256/" + a.layers[0].digest.Encoded(), "blobs/sha256/" + gd.Digest.Encoded()},
	}}
	l.files["manifest.json"] = mustJSON(t, items)
	p := writeTar(t, filepath.Join(t.TempDir(), "new.tar"), l.tarEntries(""))
	img := openT(t, "docker-archive:"+p, Options{Platform: "linux/arm64"})
	if img.name != "new:1" || len(img.layers) != 2 || img.layers[1].digest != gd.Digest || img.layers[1].mediaType != mtDockerLayerGzip ||
		img.layers[0].digest != img.layers[0].diffID || img.platform.Variant != "v8" {
		t.Fatalf("image %+v", img)
	}
	checkLayers(t, img)
}

func TestDockerArchiveGzipLayerHashed(t *testing.T) {
	// A compressed layer whose name encodes no digest is hashed at Open.
	tb := layerTar(t, filesA)
	gz := gzipBytes(t, tb)
	cfg := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{sha(tb)}}})
	p := writeTar(t, filepath.Join(t.TempDir(), "gz.tar"), []tarEnt{
		{name: "layer/layer.tar", data: gz},
		{name: "config.json", data: cfg},
		{name: "manifest.json", data: mustJSON(t, []dockerItem{{Config: "config.json", Layers: []string{"layer/layer.tar"}}})},
	})
	img := openT(t, "docker-archive:"+p, Options{})
	if img.name != "gz" || img.layers[0].digest != sha(gz) || img.layers[0].mediaType != mtDockerLayerGzip {
		t.Fatalf("image %+v", img)
	}
	checkLayers(t, img)
}

func TestDockerArchiveConfigNameMismatch(t *testing.T) {
	cfg := []byte(`{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}`)
	name := strings.Repeat("0", 64) + ".json"
	p := writeTar(t, filepath.Join(t.TempDir(), "c.tar"), []tarEnt{
		{name: name, data: cfg},
		{name: "manifest.json", data: mustJSON(t, []dockerItem{{Config: name, Layers: []string{}}})},
	})
	openErr(t, "docker-archive:"+p, Options{}, ErrDigestMismatch, name)
}

// corruptLayout has one image whose single layer blob is replaced by data.
func corruptLayout(t *testing.T, data func(orig []byte) []byte) (string, *localImage) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	l.setIndex(a.desc)
	lb := "blobs/sha256/" + a.layers[0].digest.Encoded()
	l.files[lb] = data(l.files[lb])
	dir := l.writeDir("bad")
	return dir, openT(t, "oci:"+dir, Options{})
}

func TestLayerDigestMismatch(t *testing.T) {
	_, img := corruptLayout(t, func(b []byte) []byte {
		c := bytes.Clone(b)
		c[len(c)-5] ^= 0xff
		return c
	})
	rc, err := img.layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var n int64
	buf := make([]byte, 7)
	for {
		m, err := rc.Read(buf)
		n += int64(m)
		if err == io.EOF {
			t.Fatal("got io.EOF for a corrupt blob")
		}
		if err != nil {
			if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), string(img.layers[0].digest)) {
				t.Fatalf("err %v", err)
			}
			break
		}
	}
	if n != img.layers[0].size {
		t.Errorf("read %d bytes before the error, want all %d", n, img.layers[0].size)
	}
	// The error is sticky.
	if _, err := rc.Read(buf); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("second read: %v", err)
	}
}

func TestLayerSizeMismatch(t *testing.T) {
	t.Run("longer", func(t *testing.T) {
		_, img := corruptLayout(t, func(b []byte) []byte { return append(bytes.Clone(b), "extra bytes"...) })
		b, err := readLayer(t, img.layers[0])
		if !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("err %v", err)
		}
		if int64(len(b)) != img.layers[0].size {
			t.Errorf("yielded %d bytes, Size %d", len(b), img.layers[0].size)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		_, img := corruptLayout(t, func(b []byte) []byte { return b[:len(b)/2] })
		_, err := readLayer(t, img.layers[0])
		if !errors.Is(err, ErrSizeMismatch) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("descriptor-too-large", func(t *testing.T) {
		l := newLayout(t)
		a := l.image(imageSpec{layers: []map[string]string{filesA}, manifest: func(m map[string]any) {
			ld := m["layers"].([]any)[0].(map[string]any)
			ld["size"] = ld["size"].(int64) + 100
		}})
		l.setIndex(a.desc)
		img := openT(t, "oci:"+l.writeDir("big"), Options{})
		_, err := readLayer(t, img.layers[0])
		if !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("archive-truncated-member", func(t *testing.T) {
		l := newLayout(t)
		a := l.image(imageSpec{layers: []map[string]string{filesA}})
		l.setIndex(a.desc)
		lb := "blobs/sha256/" + a.layers[0].digest.Encoded()
		l.files[lb] = l.files[lb][:10]
		p := writeTar(t, filepath.Join(t.TempDir(), "t.tar"), l.tarEntries(""))
		img := openT(t, "oci-archive:"+p, Options{})
		b, err := readLayer(t, img.layers[0])
		if !errors.Is(err, ErrSizeMismatch) || len(b) != 10 {
			t.Fatalf("err %v, %d bytes", err, len(b))
		}
	})
}

func TestTruncatedArchive(t *testing.T) {
	l, _, _ := twoTagLayout(t)
	p := writeTar(t, filepath.Join(t.TempDir(), "cut.tar"), l.tarEntries(""))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside the data of the largest member.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := indexTar(context.Background(), f, int64(len(b)))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var big *tarEntry
	for _, e := range ents {
		if e.typ == entryFile && (big == nil || e.size > big.size) {
			big = e
		}
	}
	if err := os.WriteFile(p, b[:big.off+big.size/2], 0o644); err != nil {
		t.Fatal(err)
	}
	openErr(t, "oci-archive:"+p+":a", Options{}, ErrInvalid, "oci-archive:"+p, "extends beyond the end")
}

func TestMissingBlobs(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA, filesB}, manifest: func(m map[string]any) {
		ld := m["layers"].([]any)[1].(map[string]any)
		ld["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
		ld["urls"] = []string{"https://example.invalid/blob"}
	}})
	l.setIndex(a.desc)
	for _, ly := range a.layers {
		delete(l.files, "blobs/sha256/"+ly.digest.Encoded())
	}
	img := openT(t, "oci:"+l.writeDir("missing"), Options{})
	_, err := img.layers[0].Compressed()
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), string(a.layers[0].digest)) {
		t.Errorf("missing layer: %v", err)
	}
	_, err = img.layers[1].Compressed()
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "never fetched") || !strings.Contains(err.Error(), string(a.layers[1].digest)) {
		t.Errorf("missing foreign layer: %v", err)
	}

	// Missing manifest and config.
	l = newLayout(t)
	a = l.image(imageSpec{layers: []map[string]string{filesA}})
	l.setIndex(a.desc)
	delete(l.files, "blobs/sha256/"+a.config.Digest.Encoded())
	openErr(t, "oci:"+l.writeDir("nocfg"), Options{}, ErrNotFound, string(a.config.Digest), "config")
	delete(l.files, "blobs/sha256/"+a.desc.Digest.Encoded())
	openErr(t, "oci:"+l.writeDir("noman"), Options{}, ErrNotFound, string(a.desc.Digest), "index.json manifests[0]")
	delete(l.files, "oci-layout")
	openErr(t, "oci:"+l.writeDir("nolayout"), Options{}, ErrNotFound, "oci-layout")
	openErr(t, "oci:"+filepath.Join(t.TempDir(), "nonexistent"), Options{}, ErrNotFound, "nonexistent")
	openErr(t, "docker-archive:"+filepath.Join(t.TempDir(), "nonexistent.tar")+":a/b:c", Options{}, ErrNotFound, "nonexistent.tar")

	// docker-archive: a foreign layer listed in LayerSources but not saved.
	tb := layerTar(t, filesA)
	cfg := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{sha(tb)}}})
	foreign := v1.Descriptor{MediaType: mtDockerLayerForeign, Digest: sha([]byte("x")), Size: 1, URLs: []string{"https://example.invalid/l"}}
	p := writeTar(t, filepath.Join(t.TempDir(), "f.tar"), []tarEnt{
		{name: "c.json", data: cfg},
		{name: "manifest.json", data: mustJSON(t, []dockerItem{{Config: "c.json", Layers: []string{"blobs/sha256/" + sha(tb).Encoded()},
			LayerSources: map[string]v1.Descriptor{string(sha(tb)): foreign}}})},
	})
	img = openT(t, "docker-archive:"+p, Options{})
	if l := img.layers[0]; l.digest != foreign.Digest || l.mediaType != mtDockerLayerForeign || l.diffID != sha(tb) {
		t.Errorf("foreign layer %+v", l)
	}
	if _, err := img.layers[0].Compressed(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "never fetched") {
		t.Errorf("foreign layer Open: %v", err)
	}
	// Pre-1.10 docker save: no manifest.json.
	p = writeTar(t, filepath.Join(t.TempDir(), "legacy.tar"), []tarEnt{{name: "repositories", data: []byte(`{}`)}})
	openErr(t, "docker-archive:"+p, Options{}, ErrUnsupported, "manifest.json")
	openErr(t, "oci-archive:"+filepath.Join(t.TempDir(), "nonexistent.tar"), Options{}, ErrNotFound, "nonexistent.tar")
}

func TestMetadataMismatch(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	l.setIndex(a.desc)
	mb := "blobs/sha256/" + a.desc.Digest.Encoded()
	orig := l.files[mb]
	l.files[mb] = bytes.Replace(orig, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
	openErr(t, "oci:"+l.writeDir("m1"), Options{}, ErrDigestMismatch, string(a.desc.Digest))
	l.files[mb] = append(bytes.Clone(orig), ' ')
	openErr(t, "oci:"+l.writeDir("m2"), Options{}, ErrSizeMismatch, string(a.desc.Digest))
	l.files[mb] = orig
	cb := "blobs/sha256/" + a.config.Digest.Encoded()
	l.files[cb] = bytes.Replace(l.files[cb], []byte("amd64"), []byte("arm64"), 1)
	openErr(t, "oci:"+l.writeDir("m3"), Options{}, ErrDigestMismatch, string(a.config.Digest), "config")

	// A nested index blob is verified too.
	l = newLayout(t)
	a = l.image(imageSpec{layers: []map[string]string{filesA}})
	nested := l.index(v1.MediaTypeImageIndex, withPlatform(a.desc, "linux", "amd64", ""))
	l.setIndex(nested)
	nb := "blobs/sha256/" + nested.Digest.Encoded()
	l.files[nb] = bytes.Replace(l.files[nb], []byte("amd64"), []byte("arm64"), 1)
	openErr(t, "oci:"+l.writeDir("m4"), Options{Platform: "linux/amd64"}, ErrDigestMismatch, string(nested.Digest))

	// Media type of the document disagreeing with its descriptor.
	l = newLayout(t)
	a = l.image(imageSpec{layers: []map[string]string{filesA}})
	d := a.desc
	d.MediaType = mtDockerManifest
	l.setIndex(d)
	openErr(t, "oci:"+l.writeDir("m5"), Options{}, ErrInvalid, "mediaType")
}

func TestHostileDigestsAndPaths(t *testing.T) {
	bad := []string{
		"sha256:../../../etc/passwd",
		"sha256:" + strings.Repeat("A", 64),
		"sha256:" + strings.Repeat("a", 63),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha384:" + strings.Repeat("a", 96),
		"../../x",
		"",
	}
	for _, dg := range bad {
		// As an index.json entry.
		l := newLayout(t)
		l.files["index.json"] = mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []map[string]any{
			{"mediaType": v1.MediaTypeImageManifest, "digest": dg, "size": 10}}})
		openErr(t, "oci:"+l.writeDir("h1"), Options{}, ErrInvalid, "index.json manifests[0]")

		// As a layer, config and diff_id digest.
		for _, field := range []string{"layer", "config", "diffid"} {
			l = newLayout(t)
			a := l.image(imageSpec{layers: []map[string]string{filesA},
				manifest: func(m map[string]any) {
					switch field {
					case "layer":
						m["layers"].([]any)[0].(map[string]any)["digest"] = dg
					case "config":
						m["config"].(map[string]any)["digest"] = dg
					}
				},
				config: func(c map[string]any) {
					if field == "diffid" {
						c["rootfs"].(map[string]any)["diff_ids"] = []string{dg}
					}
				}})
			l.setIndex(a.desc)
			openErr(t, "oci:"+l.writeDir("h2"), Options{}, ErrInvalid, "invalid digest")
		}
	}
	// sha512 is accepted.
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	mb := l.files["blobs/sha256/"+a.desc.Digest.Encoded()]
	d512 := digest.SHA512.FromBytes(mb)
	l.files["blobs/sha512/"+d512.Encoded()] = mb
	l.setIndex(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d512, Size: int64(len(mb))})
	img := openT(t, "oci:"+l.writeDir("s512"), Options{})
	if img.manifestDigest != d512 {
		t.Errorf("sha512 manifest digest %s", img.manifestDigest)
	}

	// Negative sizes.
	l = newLayout(t)
	a = l.image(imageSpec{layers: []map[string]string{filesA}, manifest: func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)["size"] = -5
	}})
	l.setIndex(a.desc)
	openErr(t, "oci:"+l.writeDir("neg"), Options{}, ErrInvalid, "negative size")

	// docker-archive file names.
	tb := layerTar(t, filesA)
	cfg := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{sha(tb)}}})
	for _, c := range []struct{ config, layer string }{
		{"c.json", "../../x"},
		{"c.json", "/etc/passwd"},
		{"c.json", "a/../l.tar"},
		{"c.json", "./l.tar"},
		{"c.json", "a//l.tar"},
		{"../c.json", "l.tar"},
		{"/c.json", "l.tar"},
		{"", "l.tar"},
	} {
		p := writeTar(t, filepath.Join(t.TempDir(), "h.tar"), []tarEnt{
			{name: "l.tar", data: tb}, {name: "c.json", data: cfg},
			{name: "manifest.json", data: mustJSON(t, []dockerItem{{Config: c.config, Layers: []string{c.layer}}})},
		})
		openErr(t, "docker-archive:"+p, Options{}, ErrInvalid, "manifest.json[0]")
	}
	// A layer name that does not exist in the archive.
	p := writeTar(t, filepath.Join(t.TempDir(), "nf.tar"), []tarEnt{
		{name: "c.json", data: cfg},
		{name: "manifest.json", data: mustJSON(t, []dockerItem{{Config: "c.json", Layers: []string{"gone.tar"}}})},
	})
	openErr(t, "docker-archive:"+p, Options{}, ErrNotFound, "gone.tar")
}

func TestManifestsAndLayersInOneDocument(t *testing.T) {
	// CVE-2021-41190: in a manifest…
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}, manifest: func(m map[string]any) {
		m["manifests"] = []any{}
	}})
	l.setIndex(a.desc)
	openErr(t, "oci:"+l.writeDir("c1"), Options{}, ErrInvalid, "CVE-2021-41190")
	// …in a nested index…
	l = newLayout(t)
	a = l.image(imageSpec{layers: []map[string]string{filesA}})
	amb := l.jsonBlob(v1.MediaTypeImageIndex, map[string]any{"schemaVersion": 2, "manifests": []v1.Descriptor{a.desc}, "layers": []v1.Descriptor{}})
	l.setIndex(amb)
	openErr(t, "oci:"+l.writeDir("c2"), Options{}, ErrInvalid, "CVE-2021-41190")
	// …and in index.json.
	l = newLayout(t)
	a = l.image(imageSpec{layers: []map[string]string{filesA}})
	l.files["index.json"] = mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []v1.Descriptor{a.desc}, "config": a.config})
	openErr(t, "oci:"+l.writeDir("c3"), Options{}, ErrInvalid, "index.json", "CVE-2021-41190")
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []struct {
		name string
		mut  func(map[string]any)
		want string
	}{
		{"diff_ids count", func(c map[string]any) { c["rootfs"].(map[string]any)["diff_ids"] = []string{} }, "0 rootfs.diff_ids for 1 layers"},
		{"rootfs type", func(c map[string]any) { c["rootfs"].(map[string]any)["type"] = "snapshot" }, `"snapshot"`},
		{"no rootfs", func(c map[string]any) { delete(c, "rootfs") }, "no rootfs"},
	} {
		l := newLayout(t)
		a := l.image(imageSpec{layers: []map[string]string{filesA}, config: c.mut})
		l.setIndex(a.desc)
		openErr(t, "oci:"+l.writeDir("cfg"), Options{}, ErrInvalid, c.want, string(a.config.Digest))
	}
	// docker-archive with a diff_ids count mismatch.
	tb := layerTar(t, filesA)
	cfg := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{sha(tb), sha(tb)}}})
	p := writeTar(t, filepath.Join(t.TempDir(), "cnt.tar"), []tarEnt{
		{name: "l.tar", data: tb}, {name: "c.json", data: cfg},
		{name: "manifest.json", data: mustJSON(t, []dockerItem{{Config: "c.json", Layers: []string{"l.tar"}}})},
	})
	openErr(t, "docker-archive:"+p, Options{}, ErrInvalid, "2 rootfs.diff_ids for 1 layers")
	// A non-image config media type.
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}, manifest: func(m map[string]any) {
		m["config"].(map[string]any)["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
	}})
	l.setIndex(a.desc)
	openErr(t, "oci:"+l.writeDir("helm"), Options{}, ErrUnsupported, "helm")
}

func TestSchema1Rejected(t *testing.T) {
	s1 := []byte(`{"schemaVersion":1,"name":"x","tag":"latest","architecture":"amd64","fsLayers":[{"blobSum":"sha256:` + strings.Repeat("a", 64) + `"}],"history":[]}`)
	for _, mt := range []string{mtDockerSchema1S, mtDockerSchema1, ""} {
		l := newLayout(t)
		d := l.blob(mt, s1)
		l.setIndex(d)
		openErr(t, "oci:"+l.writeDir("s1"), Options{}, ErrUnsupported, "schema1")
	}
}

func TestJSONSizeCap(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	d := a.desc
	d.Size = maxJSONSize + 1
	l.setIndex(d)
	openErr(t, "oci:"+l.writeDir("cap1"), Options{}, ErrInvalid, "limit")

	l = newLayout(t)
	l.files["index.json"] = append([]byte(`{"schemaVersion":2,"manifests":[]}`), bytes.Repeat([]byte(" "), maxJSONSize)...)
	openErr(t, "oci:"+l.writeDir("cap2"), Options{}, ErrInvalid, "index.json", "limit")
}

func TestRefParsing(t *testing.T) {
	openErr(t, "docker-daemon:busybox", Options{}, ErrUnsupported, "docker-daemon")
	openErr(t, "docker:busybox", Options{}, ErrInvalid, "docker://HOST") // no network: the syntax fails first
	openErr(t, "containers-storage:x", Options{}, ErrUnsupported, "containers-storage")
	openErr(t, "nocolon", Options{}, ErrUnsupported, "transport")

	// A directory whose name contains ':'.
	l, _, _ := twoTagLayout(t)
	dir := l.writeDir("we:ird")
	openErr(t, "oci:"+dir, Options{}, ErrNotFound, "2 images") // whole string is the dir
	img := openT(t, "oci:"+dir+":a", Options{})
	if img.name != "we:ird:a" {
		t.Errorf("Name %q", img.name)
	}
	// A single-image dir named "x:a" is not split even though "x" might exist.
	l2 := newLayout(t)
	one := l2.image(imageSpec{layers: []map[string]string{filesB}})
	l2.setIndex(tagged(one.desc, "only"))
	d2 := l2.writeDir("x:a")
	img = openT(t, "oci:"+d2, Options{})
	if img.manifestDigest != one.desc.Digest || img.name != "x:a:only" {
		t.Errorf("got %s %q", img.manifestDigest, img.name)
	}
	if err := os.Mkdir(filepath.Join(filepath.Dir(d2), "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Now "x" exists and "a" is a valid tag: the split wins (and fails, "x" is empty).
	openErr(t, "oci:"+d2, Options{}, ErrNotFound, "oci-layout")
}

func TestCloseAndReadAfterClose(t *testing.T) {
	l, _, _ := twoTagLayout(t)
	p := writeTar(t, filepath.Join(t.TempDir(), "c.tar"), l.tarEntries(""))
	img := openT(t, "oci-archive:"+p+":a", Options{})
	rc, err := img.layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Error("read after close succeeded")
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestConcurrentLayerReads(t *testing.T) {
	l, _, _ := twoTagLayout(t)
	p := writeTar(t, filepath.Join(t.TempDir(), "c.tar"), l.tarEntries(""))
	img := openT(t, "oci-archive:"+p+":a", Options{})
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			rc, err := img.layers[i%2].Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			errs <- err
		}(i)
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestContextCanceled(t *testing.T) {
	l, _, _ := twoTagLayout(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := openLocal(ctx, "oci:"+l.writeDir("ctx")+":a", Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
}

func TestIndexNestingLimit(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	d := a.desc
	for i := 0; i < maxIndexDepth+1; i++ {
		d = l.index(v1.MediaTypeImageIndex, d)
	}
	l.setIndex(d)
	openErr(t, "oci:"+l.writeDir("deep"), Options{}, ErrInvalid, "nested")
}

// TestOpenAccessors: Open hands the image out through the Image and Layer
// interfaces, whose accessors return what was read and checked.
func TestOpenAccessors(t *testing.T) {
	l, _, _ := twoTagLayout(t)
	for _, ref := range []string{"oci:" + l.writeDir("acc") + ":a", "oci-archive:" + writeTar(t, filepath.Join(t.TempDir(), "acc.tar"), l.tarEntries("")) + ":a"} {
		want := openT(t, ref, Options{})
		img, err := Open(context.Background(), ref, Options{})
		if err != nil {
			t.Fatal(err)
		}
		mt, err1 := img.MediaType()
		raw, err2 := img.RawManifest()
		d, err3 := img.Digest()
		cfg, err4 := img.RawConfigFile()
		cd, err5 := img.ConfigName()
		layers, err6 := img.Layers()
		if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if img.Name() != want.name || mt != want.manifestMediaType || !bytes.Equal(raw, want.manifest) || d != want.manifestDigest ||
			!bytes.Equal(cfg, want.config) || cd != want.configDigest || len(layers) != len(want.layers) {
			t.Fatalf("%s: accessors disagree with what was read", ref)
		}
		for i, ly := range layers {
			w := want.layers[i]
			ld, err1 := ly.Digest()
			di, err2 := ly.DiffID()
			sz, err3 := ly.Size()
			lmt, err4 := ly.MediaType()
			if err := errors.Join(err1, err2, err3, err4); err != nil || ld != w.digest || di != w.diffID || sz != w.size || lmt != w.mediaType {
				t.Errorf("%s: layer %d: %s %s %d %q (%v)", ref, i, ld, di, sz, lmt, err)
			}
			rc, err := ly.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || digest.FromBytes(b) != w.digest {
				t.Errorf("%s: layer %d: read %d bytes, %v", ref, i, len(b), err)
			}
		}
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
