package imagetest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ostree-mount/ostree-mount/image/source"
)

// Layer is an in-memory layer blob.
type Layer struct {
	blob      []byte
	digest    digest.Digest
	diffID    digest.Digest
	mediaType string
	err       error // returned by Compressed, if set
	opens     atomic.Int64
}

// Plain stores tar uncompressed.
func Plain(tar []byte) *Layer {
	d := digest.FromBytes(tar)
	return &Layer{blob: tar, digest: d, diffID: d, mediaType: v1.MediaTypeImageLayer}
}

// Gzip stores tar gzip-compressed.
func Gzip(tar []byte) *Layer {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(tar); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return &Layer{blob: b.Bytes(), digest: digest.FromBytes(b.Bytes()), diffID: digest.FromBytes(tar), mediaType: v1.MediaTypeImageLayerGzip}
}

// Zstd stores tar zstd-compressed.
func Zstd(tar []byte) *Layer {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	blob := zw.EncodeAll(tar, nil)
	zw.Close()
	return &Layer{blob: blob, digest: digest.FromBytes(blob), diffID: digest.FromBytes(tar), mediaType: v1.MediaTypeImageLayerZstd}
}

// Failing is a layer whose metadata is that of Plain(tar) but whose blob
// cannot be opened: Compressed returns err.
func Failing(tar []byte, err error) *Layer {
	l := Plain(tar)
	l.err = err
	return l
}

// Opens is how many times the blob was opened.
func (l *Layer) Opens() int64 { return l.opens.Load() }

// Blob is the layer as stored.
func (l *Layer) Blob() []byte { return l.blob }

func (l *Layer) Digest() (digest.Digest, error) { return l.digest, nil }
func (l *Layer) DiffID() (digest.Digest, error) { return l.diffID, nil }
func (l *Layer) Size() (int64, error)           { return int64(len(l.blob)), nil }
func (l *Layer) MediaType() (string, error)     { return l.mediaType, nil }

// Compressed returns the blob and counts the open.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	l.opens.Add(1)
	if l.err != nil {
		return nil, fmt.Errorf("imagetest: layer %s: %w", l.digest, l.err)
	}
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}

// Image is an in-memory image.
type Image struct {
	name     string
	manifest []byte
	config   []byte
	layers   []*Layer
	closed   atomic.Bool
}

// New makes an image of name ("" for none) from layers, base first,
// with an OCI manifest and a linux/amd64 config whose rootfs.diff_ids
// are the layers'. Images of the same layers have the same digest.
func New(name string, layers ...*Layer) *Image {
	cfg := v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}}
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Layers: []v1.Descriptor{}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: l.mediaType, Digest: l.digest, Size: int64(len(l.blob))})
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	m.Config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return &Image{name: name, manifest: mb, config: cb, layers: layers}
}

func (img *Image) Name() string                       { return img.name }
func (img *Image) MediaType() (string, error)         { return v1.MediaTypeImageManifest, nil }
func (img *Image) RawManifest() ([]byte, error)       { return img.manifest, nil }
func (img *Image) Digest() (digest.Digest, error)     { return digest.FromBytes(img.manifest), nil }
func (img *Image) RawConfigFile() ([]byte, error)     { return img.config, nil }
func (img *Image) ConfigName() (digest.Digest, error) { return digest.FromBytes(img.config), nil }

// Layers returns the layers, base first.
func (img *Image) Layers() ([]source.Layer, error) {
	ls := make([]source.Layer, len(img.layers))
	for i, l := range img.layers {
		ls[i] = l
	}
	return ls, nil
}

// Close marks the image closed.
func (img *Image) Close() error { img.closed.Store(true); return nil }

// Closed reports whether Close was called.
func (img *Image) Closed() bool { return img.closed.Load() }

var (
	_ source.Image = (*Image)(nil)
	_ source.Layer = (*Layer)(nil)
)
