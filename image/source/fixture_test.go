package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// layerTar returns an uncompressed tar holding files (name → content).
func layerTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(s[:]))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tarEnt is one member of a test archive.
type tarEnt struct {
	name string
	data []byte
	typ  byte // tar.TypeReg (default), TypeDir, TypeSymlink, TypeLink
	link string
	pax  map[string]string
}

// writeTar writes entries as a tar file and returns its path.
func writeTar(t *testing.T, p string, ents []tarEnt) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Linkname: e.link, PAXRecords: e.pax}
		switch e.typ {
		case 0, tar.TypeReg:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		case tar.TypeDir:
			h.Mode = 0o755
		}
		if e.pax != nil {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// layout builds an OCI image layout in memory.
type layout struct {
	t     *testing.T
	files map[string][]byte
}

func newLayout(t *testing.T) *layout {
	l := &layout{t: t, files: map[string][]byte{}}
	l.files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	return l
}

// blob stores b and returns a descriptor of it with media type mt.
func (l *layout) blob(mt string, b []byte) v1.Descriptor {
	d := sha(b)
	l.files["blobs/sha256/"+d.Encoded()] = b
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

func (l *layout) jsonBlob(mt string, v any) v1.Descriptor {
	return l.blob(mt, mustJSON(l.t, v))
}

// imageSpec describes a test image.
type imageSpec struct {
	os, arch, variant string
	layers            []map[string]string // files of each layer, base first
	plain             bool                // uncompressed layers
	docker            bool                // docker v2s2 media types
	omitManifestMT    bool                // umoci style: no mediaType in the manifest
	config            func(map[string]any)
	manifest          func(map[string]any)
}

type builtLayer struct {
	blob   []byte
	tar    []byte
	digest digest.Digest
	diffID digest.Digest
}

type builtImage struct {
	desc   v1.Descriptor // manifest descriptor (mediaType set)
	config v1.Descriptor
	layers []builtLayer
	// manifestBytes is the stored manifest.
	manifestBytes []byte
}

func (l *layout) image(s imageSpec) builtImage {
	if s.os == "" {
		s.os = "linux"
	}
	if s.arch == "" {
		s.arch = "amd64"
	}
	var bi builtImage
	var diffIDs []string
	var layerDescs []any
	for _, files := range s.layers {
		tb := layerTar(l.t, files)
		bl := builtLayer{tar: tb, diffID: sha(tb), blob: tb}
		mt := v1.MediaTypeImageLayer
		if s.docker {
			mt = mtDockerLayerTar
		}
		if !s.plain {
			bl.blob = gzipBytes(l.t, tb)
			mt = v1.MediaTypeImageLayerGzip
			if s.docker {
				mt = mtDockerLayerGzip
			}
		}
		d := l.blob(mt, bl.blob)
		bl.digest = d.Digest
		bi.layers = append(bi.layers, bl)
		diffIDs = append(diffIDs, string(bl.diffID))
		layerDescs = append(layerDescs, map[string]any{"mediaType": mt, "digest": d.Digest, "size": d.Size})
	}
	if diffIDs == nil {
		diffIDs = []string{}
	}
	if layerDescs == nil {
		layerDescs = []any{}
	}
	cfg := map[string]any{
		"architecture": s.arch, "os": s.os,
		"config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	if s.variant != "" {
		cfg["variant"] = s.variant
	}
	if s.config != nil {
		s.config(cfg)
	}
	cmt, mmt := v1.MediaTypeImageConfig, v1.MediaTypeImageManifest
	if s.docker {
		cmt, mmt = mtDockerConfig, mtDockerManifest
	}
	bi.config = l.jsonBlob(cmt, cfg)
	man := map[string]any{
		"schemaVersion": 2,
		"config":        map[string]any{"mediaType": cmt, "digest": bi.config.Digest, "size": bi.config.Size},
		"layers":        layerDescs,
	}
	if !s.omitManifestMT {
		man["mediaType"] = mmt
	}
	if s.manifest != nil {
		s.manifest(man)
	}
	bi.manifestBytes = mustJSON(l.t, man)
	bi.desc = l.blob(mmt, bi.manifestBytes)
	return bi
}

// index stores a nested index blob over entries.
func (l *layout) index(mt string, entries ...v1.Descriptor) v1.Descriptor {
	return l.jsonBlob(mt, map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": entries})
}

// setIndex writes index.json over entries.
func (l *layout) setIndex(entries ...v1.Descriptor) {
	l.files["index.json"] = mustJSON(l.t, map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageIndex, "manifests": entries})
}

func tagged(d v1.Descriptor, tag string) v1.Descriptor {
	d.Annotations = map[string]string{v1.AnnotationRefName: tag}
	return d
}

func withPlatform(d v1.Descriptor, os, arch, variant string) v1.Descriptor {
	d.Platform = &v1.Platform{OS: os, Architecture: arch, Variant: variant}
	return d
}

// writeDir writes the layout into dir/name and returns its path.
func (l *layout) writeDir(name string) string {
	l.t.Helper()
	dir := filepath.Join(l.t.TempDir(), name)
	for p, b := range l.files {
		fp := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.WriteFile(fp, b, 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	return dir
}

// tarEntries lists the layout as archive members (dirs first, then sorted
// files), each name prefixed with prefix.
func (l *layout) tarEntries(prefix string) []tarEnt {
	ents := []tarEnt{
		{name: prefix + "blobs/", typ: tar.TypeDir},
		{name: prefix + "blobs/sha256/", typ: tar.TypeDir},
	}
	names := make([]string, 0, len(l.files))
	for n := range l.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ents = append(ents, tarEnt{name: prefix + n, data: l.files[n]})
	}
	return ents
}

// openT opens ref and fails the test on error.
func openT(t *testing.T, ref string, o Options) *localImage {
	t.Helper()
	img, err := openLocal(context.Background(), ref, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", ref, err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// openErr opens ref, expecting an error wrapping kind whose text contains
// every string of want.
func openErr(t *testing.T, ref string, o Options, kind error, want ...string) error {
	t.Helper()
	img, err := openLocal(context.Background(), ref, o)
	if err == nil {
		img.Close()
		t.Fatalf("Open(%q) succeeded, want %v", ref, kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("Open(%q) = %v, want an error wrapping %v", ref, err, kind)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Open(%q) error %q does not mention %q", ref, err, w)
		}
	}
	return err
}

// readLayer reads a layer to EOF and returns its bytes and the final error.
func readLayer(t *testing.T, l *blobLayer) ([]byte, error) {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatalf("layer %s: Compressed: %v", l.digest, err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// checkLayers reads every layer, expecting success, and checks the DiffIDs
// of gzip and plain layers against the decompressed bytes.
func checkLayers(t *testing.T, img *localImage) {
	t.Helper()
	for i := range img.layers {
		l := img.layers[i]
		b, err := readLayer(t, l)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if l.size >= 0 && int64(len(b)) != l.size {
			t.Fatalf("layer %d: read %d bytes, Size %d", i, len(b), l.size)
		}
		if sha(b) != l.digest {
			t.Fatalf("layer %d: digest %s, want %s", i, sha(b), l.digest)
		}
		raw := b
		if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		} else if len(b) > 4 && bytes.Equal(b[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			continue // zstd: not decompressed here
		}
		if sha(raw) != l.diffID {
			t.Fatalf("layer %d: diff digest %s, DiffID %s", i, sha(raw), l.diffID)
		}
	}
}
