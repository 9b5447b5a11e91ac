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
}

// Layer is one layer of an image, base first.
type Layer struct {
	Digest    digest.Digest // digest of the blob as stored (compressed)
	DiffID    digest.Digest // from the config's rootfs.diff_ids, same index
	MediaType string        // as given by the manifest (docker or OCI layer types), "" if absent
	Size      int64         // blob size per the manifest; -1 if unknown

	open func() (io.ReadCloser, error)
}

// Open returns the raw blob stream. Reading it to EOF verifies size and
// digest: on mismatch, Read returns an error wrapping ErrDigestMismatch (or
// ErrSizeMismatch) instead of the final io.EOF. The reader never yields more
// than Size bytes (when Size >= 0). A blob missing from the image gives an
// error wrapping ErrNotFound. For archives, the stream reads from the
// archive file, so it must not be used after Image.Close.
func (l *Layer) Open() (io.ReadCloser, error) {
	if l.open == nil {
		return nil, fmt.Errorf("source: layer %s: %w: layer was not returned by source.Open", l.Digest, ErrInvalid)
	}
	return l.open()
}

// Image is an opened container image. Its metadata is read, checked and held
// in memory; its layers are opened on demand with Layer.Open.
type Image struct {
	Transport         string        // "oci", "oci-archive", "docker-archive"
	Name              string        // suggested human name; never used to build paths
	ManifestDigest    digest.Digest // digest of Manifest bytes
	Manifest          []byte        // raw manifest JSON as stored (synthesized Docker v2s2 for docker-archive)
	ManifestMediaType string        // OCI manifest or docker v2s2 manifest media type
	Config            []byte        // raw config JSON
	ConfigDigest      digest.Digest
	Platform          v1.Platform // from the config (os, architecture, variant)
	Layers            []Layer     // base first

	closeOnce sync.Once
	closeFn   func() error
	closeErr  error
}

// Close releases the image's files. Layer streams of archives become unusable.
func (img *Image) Close() error {
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
// oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]
// (docker-archive:FILE:@N selects the N-th image of the archive). It reads and
// verifies the metadata (index, manifest, config) but no layer.
func Open(ctx context.Context, ref string, o Options) (*Image, error) {
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
	default:
		return nil, fmt.Errorf("source: %q: %w transport %q (supported: oci, oci-archive, docker-archive; network transports are never used)", ref, ErrUnsupported, transport)
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

func openOCIDir(ctx context.Context, rest string, want platformWant) (*Image, error) {
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

func openOCIArchive(ctx context.Context, rest string, want platformWant) (*Image, error) {
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
