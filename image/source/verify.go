package source

import (
	// Register the hash functions go-digest needs.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// parseDigest validates a digest string taken from metadata. Only sha256 and
// sha512 are accepted, with the canonical lowercase hex encoding, so a valid
// digest is safe to use as a path component.
func parseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	alg, _, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("%w: invalid digest %q: no algorithm", ErrInvalid, s)
	}
	switch digest.Algorithm(alg) {
	case digest.SHA256, digest.SHA512:
	default:
		return "", fmt.Errorf("%w: invalid digest %q: algorithm %q is not sha256 or sha512", ErrInvalid, s, alg)
	}
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: invalid digest %q: %v", ErrInvalid, s, err)
	}
	return d, nil
}

// blobPath is the layout path of a validated digest.
func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// checkDescriptor validates the digest and size of a descriptor.
func checkDescriptor(d v1.Descriptor) error {
	if _, err := parseDigest(string(d.Digest)); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: descriptor %s has negative size %d", ErrInvalid, d.Digest, d.Size)
	}
	return nil
}

// readBlob reads the blob of a JSON document descriptor into memory and
// verifies its size and digest. foreignMsg marks a blob known to be foreign.
func readBlob(st fileStore, d v1.Descriptor, foreignMsg bool) ([]byte, error) {
	if err := checkDescriptor(d); err != nil {
		return nil, err
	}
	if d.Size > maxJSONSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d-byte limit for JSON documents", ErrInvalid, d.Digest, d.Size, maxJSONSize)
	}
	rc, _, err := st.open(blobPath(d.Digest))
	if err != nil {
		if errNotExist(err) {
			return nil, notFoundBlob(d, foreignMsg)
		}
		return nil, fmt.Errorf("opening blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	// Read one byte more than expected to notice a longer blob.
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d.Digest, err)
	}
	if int64(len(b)) != d.Size {
		if int64(len(b)) > d.Size {
			return nil, fmt.Errorf("%w: blob %s is larger than the %d bytes its descriptor says", ErrSizeMismatch, d.Digest, d.Size)
		}
		return nil, fmt.Errorf("%w: blob %s is %d bytes, descriptor says %d", ErrSizeMismatch, d.Digest, len(b), d.Size)
	}
	if got := d.Digest.Algorithm().FromBytes(b); got != d.Digest {
		return nil, fmt.Errorf("%w: blob %s has digest %s", ErrDigestMismatch, d.Digest, got)
	}
	return b, nil
}

// notFoundBlob reports a blob missing from the layout.
func notFoundBlob(d v1.Descriptor, foreignMsg bool) error {
	if len(d.URLs) > 0 {
		return fmt.Errorf("%w: blob %s is not in the image; it is a foreign (non-distributable) layer with urls %q, and foreign layers are never fetched", ErrNotFound, d.Digest, d.URLs)
	}
	if foreignMsg {
		return fmt.Errorf("%w: blob %s is not in the image; it is a foreign (non-distributable) layer, and foreign layers are never fetched", ErrNotFound, d.Digest)
	}
	return fmt.Errorf("%w: blob %s is not in the image (%s missing)", ErrNotFound, d.Digest, blobPath(d.Digest))
}

// verifyingReader streams a blob, yielding at most size bytes, and checks
// its size and digest when the end is reached.
type verifyingReader struct {
	r     io.Reader
	c     io.Closer
	where string
	want  digest.Digest
	size  int64 // -1: unknown
	n     int64
	h     hash.Hash
	err   error // sticky; io.EOF once verified
}

func newVerifyingReader(rc io.ReadCloser, where string, want digest.Digest, size int64) *verifyingReader {
	return &verifyingReader{r: rc, c: rc, where: where, want: want, size: size, h: want.Algorithm().Hash()}
}

// newSizedReader is a verifyingReader whose source checks the digest
// itself, at its end, and fails with ErrDigestMismatch: the bytes are
// counted and bounded, not hashed a second time.
func newSizedReader(rc io.ReadCloser, where string, want digest.Digest, size int64) *verifyingReader {
	return &verifyingReader{r: rc, c: rc, where: where, want: want, size: size}
}

var errReadAfterClose = errors.New("read after close")

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if v.size >= 0 {
		if v.n == v.size {
			return 0, v.atExpectedEnd()
		}
		if rem := v.size - v.n; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	n, err := v.r.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	v.n += int64(n)
	switch {
	case err == io.EOF:
		if v.size >= 0 && v.n < v.size {
			v.err = fmt.Errorf("%s: %w: blob ended after %d of %d bytes (truncated)", v.where, ErrSizeMismatch, v.n, v.size)
		} else {
			v.err = v.verify()
		}
		return n, v.err
	case errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrSizeMismatch):
		v.err = fmt.Errorf("%s: %w", v.where, err)
		return n, v.err
	case err != nil:
		v.err = fmt.Errorf("%s: reading blob: %w", v.where, err)
		return n, v.err
	}
	return n, nil
}

// atExpectedEnd is called once size bytes were read: the blob must end here.
func (v *verifyingReader) atExpectedEnd() error {
	var b [1]byte
	for i := 0; i < 100; i++ {
		m, err := v.r.Read(b[:])
		if m > 0 {
			v.err = fmt.Errorf("%s: %w: blob is larger than the %d bytes its descriptor says", v.where, ErrSizeMismatch, v.size)
			return v.err
		}
		if err == io.EOF {
			v.err = v.verify()
			return v.err
		}
		if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrSizeMismatch) {
			v.err = fmt.Errorf("%s: %w", v.where, err)
			return v.err
		}
		if err != nil {
			v.err = fmt.Errorf("%s: reading blob: %w", v.where, err)
			return v.err
		}
	}
	v.err = fmt.Errorf("%s: reading blob: %w", v.where, io.ErrNoProgress)
	return v.err
}

func (v *verifyingReader) verify() error {
	if v.h == nil {
		return io.EOF // the source checked the digest before its EOF
	}
	got := digest.NewDigest(v.want.Algorithm(), v.h)
	if got != v.want {
		return fmt.Errorf("%s: %w: blob of %d bytes has digest %s", v.where, ErrDigestMismatch, v.n, got)
	}
	return io.EOF
}

func (v *verifyingReader) Close() error {
	if v.c == nil {
		return nil
	}
	err := v.c.Close()
	v.c = nil
	if v.err == nil || v.err == io.EOF {
		v.err = fmt.Errorf("%s: %w", v.where, errReadAfterClose)
	}
	return err
}
