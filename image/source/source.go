package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error kinds. Errors returned by this package wrap one of them (or, for
// plain I/O failures, the underlying error) and name the transport, file,
// digest and index path involved.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
	ErrInvalid        = errors.New("invalid image") // malformed/hostile metadata
	ErrNotFound       = errors.New("not found")     // tag, platform, blob, file
	ErrUnsupported    = errors.New("unsupported")   // e.g. unknown transport, schema1
)

// maxJSONSize caps every JSON document (oci-layout, index.json, manifests,
// configs, manifest.json) read into memory.
const maxJSONSize = 16 << 20

// Options for Open.
type Options struct {
	// Platform selects from an index: "os/arch" or "os/arch/variant"; ""
	// means the host (runtime.GOOS/GOARCH, plus the GOARM-derived variant on
	// arm: v6/v7, and "v8" for arm64 matching an entry with variant "v8" or
	// no variant).
	//
	// An explicit Platform is also checked against the selected image's
	// config, so a single-platform image of another platform is rejected
	// with ErrNotFound. With the default (host) platform, an image that is
	// not in an index (or is the only entry its tag names) is accepted
	// whatever its platform.
	Platform string
	// Registry configures the docker:// transport.
	Registry RegistryOptions
}

// Image is a container image: a manifest, a config and layers, base
// first. As in go-containerregistry's v1.Image, every accessor returns an
// error, so that an implementation may fetch or check what it returns
// only when it is asked for; the local transports of Open have read and
// verified all but the layer blobs by the time Open returns.
type Image interface {
	// Name is a suggested human name ("example/app:1", "layout:tag"),
	// "" if there is none. It is never used to build a path.
	Name() string
	// MediaType is the manifest's media type (OCI image manifest or
	// Docker v2s2 manifest).
	MediaType() (string, error)
	// RawManifest is the manifest as stored: its bytes hash to Digest.
	RawManifest() ([]byte, error)
	// Digest is the digest of RawManifest.
	Digest() (digest.Digest, error)
	// RawConfigFile is the config JSON as stored.
	RawConfigFile() ([]byte, error)
	// ConfigName is the digest of RawConfigFile.
	ConfigName() (digest.Digest, error)
	// Layers lists the layers, base first, their diff_ids taken from
	// the config's rootfs.diff_ids at the same index.
	Layers() ([]Layer, error)
	// Close releases what the image holds open; the streams of its
	// layers may become unusable.
	Close() error
}

// Layer is one layer of an image.
type Layer interface {
	// Digest is the digest of the blob as stored (usually compressed).
	Digest() (digest.Digest, error)
	// DiffID is the digest of the uncompressed tar.
	DiffID() (digest.Digest, error)
	// Size is the blob's size per the manifest; -1 if unknown.
	Size() (int64, error)
	// MediaType is the manifest's media type of the blob, "" if absent.
	MediaType() (string, error)
	// Compressed returns the blob as stored. Reading it to its end
	// verifies size and digest: on a mismatch Read returns an error
	// wrapping ErrDigestMismatch (or ErrSizeMismatch) instead of the
	// final io.EOF, and it never yields more than Size bytes (when Size
	// >= 0). A blob missing from the image gives an error wrapping
	// ErrNotFound. Checking the DiffID is the consumer's job.
	Compressed() (io.ReadCloser, error)
}

// blobLayer is a layer of a local image: a blob of its store.
type blobLayer struct {
	digest    digest.Digest
	diffID    digest.Digest
	mediaType string // "" if absent
	size      int64  // -1 if unknown

	open func() (io.ReadCloser, error)
}

func (l *blobLayer) Digest() (digest.Digest, error) { return l.digest, nil }
func (l *blobLayer) DiffID() (digest.Digest, error) { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)           { return l.size, nil }
func (l *blobLayer) MediaType() (string, error)     { return l.mediaType, nil }

// Compressed opens the blob; for archives, the stream reads from the
// archive file, so it must not be used after Image.Close.
func (l *blobLayer) Compressed() (io.ReadCloser, error) { return l.open() }

// localImage is an image opened by Open from a layout or an archive. Its
// metadata is read, checked and held in memory; its layers are opened on
// demand.
type localImage struct {
	transport         string // "oci", "oci-archive", "docker-archive"
	name              string
	manifestDigest    digest.Digest // digest of manifest
	manifest          []byte        // raw manifest JSON as stored (synthesized Docker v2s2 for docker-archive)
	manifestMediaType string        // OCI manifest or docker v2s2 manifest media type
	config            []byte        // raw config JSON
	configDigest      digest.Digest
	platform          v1.Platform  // from the config (os, architecture, variant)
	layers            []*blobLayer // base first

	closeOnce sync.Once
	closeFn   func() error
	closeErr  error
}

func (img *localImage) Name() string                       { return img.name }
func (img *localImage) MediaType() (string, error)         { return img.manifestMediaType, nil }
func (img *localImage) RawManifest() ([]byte, error)       { return img.manifest, nil }
func (img *localImage) Digest() (digest.Digest, error)     { return img.manifestDigest, nil }
func (img *localImage) RawConfigFile() ([]byte, error)     { return img.config, nil }
func (img *localImage) ConfigName() (digest.Digest, error) { return img.configDigest, nil }

func (img *localImage) Layers() ([]Layer, error) {
	ls := make([]Layer, len(img.layers))
	for i, l := range img.layers {
		ls[i] = l
	}
	return ls, nil
}

// Close releases the image's files. Layer streams of archives become unusable.
func (img *localImage) Close() error {
	img.closeOnce.Do(func() {
		if img.closeFn != nil {
			img.closeErr = img.closeFn()
		}
	})
	return img.closeErr
}

// tagRe is the syntax of an OCI tag accepted after the last ':' of a
// reference.
var tagRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`) })

// Open opens the image ref, given in skopeo's transport syntax:
// oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]
// (docker-archive:FILE:@N selects the N-th image of the archive) or
// docker://HOST[:PORT]/NAME[:TAG|@DIGEST] (a registry). It reads and
// verifies the metadata (index, manifest, config) but no layer: a
// registry's blobs are fetched only by Layer.Compressed.
func Open(ctx context.Context, ref string, o Options) (Image, error) {
	img, err := openLocal(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// openLocal is Open for the local transports.
func openLocal(ctx context.Context, ref string, o Options) (*localImage, error) {
	want, err := parsePlatform(o.Platform)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w", ref, err)
	}
	transport, rest, ok := strings.Cut(ref, ":")
	if !ok {
		return nil, fmt.Errorf("source: %q: %w: no transport (want oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG])", ref, ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("source: %s: %w", ref, err)
	}
	switch transport {
	case "oci":
		return openOCIDir(ctx, rest, want)
	case "oci-archive":
		return openOCIArchive(ctx, rest, want)
	case "docker-archive":
		return openDockerArchive(ctx, rest, want)
	case "docker":
		return openRegistry(ctx, rest, want, o.Registry)
	default:
		return nil, fmt.Errorf("source: %q: %w transport %q (supported: oci, oci-archive, docker-archive, docker)", ref, ErrUnsupported, transport)
	}
}

// splitTagged splits "PATH[:TAG]" on the last ':' when what follows is a
// valid tag and PATH exists with the wanted kind; otherwise the whole string
// is the path.
func splitTagged(s string, wantDir bool) (p, tag string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || !tagRe().MatchString(s[i+1:]) {
		return s, ""
	}
	if fi, err := os.Stat(s[:i]); err == nil && fi.IsDir() == wantDir && (wantDir || fi.Mode().IsRegular()) {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func openOCIDir(ctx context.Context, rest string, want platformWant) (*localImage, error) {
	dir, tag := splitTagged(rest, true)
	where := "oci:" + dir
	if dir == "" {
		return nil, fmt.Errorf("source: %s: %w: empty directory name", where, ErrInvalid)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fileErr(where, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source: %s: %w: not a directory", where, ErrInvalid)
	}
	st, err := openDirStore(dir)
	if err != nil {
		return nil, fileErr(where, err)
	}
	img, err := openOCI(ctx, st, "oci", where, tag, baseName(dir), want)
	if err != nil {
		st.close()
		return nil, err
	}
	return img, nil
}

func openOCIArchive(ctx context.Context, rest string, want platformWant) (*localImage, error) {
	file, tag := splitTagged(rest, false)
	where := "oci-archive:" + file
	st, err := openArchiveStore(ctx, file, where)
	if err != nil {
		return nil, err
	}
	img, err := openOCI(ctx, st, "oci-archive", where, tag, baseName(file), want)
	if err != nil {
		st.close()
		return nil, err
	}
	return img, nil
}

// baseName is the suggested image name for a directory or file.
func baseName(p string) string {
	b := filepath.Base(filepath.Clean(p))
	b = strings.TrimSuffix(b, ".tar")
	if b == "" || b == "." || b == string(filepath.Separator) {
		return "image"
	}
	return b
}

// fileErr reports a file-system error at where, wrapping ErrNotFound for a
// missing file and the error itself otherwise.
func fileErr(where string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("source: %s: %w: %v", where, ErrNotFound, err)
	}
	return fmt.Errorf("source: %s: %w", where, err)
}
