package repo

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file is the seam between a fetcher (package remote) and the store:
// objects that come from elsewhere, in the form another repository keeps
// them, are verified against the checksum they were asked for and staged
// in a transaction in this repository's own mode. Nothing is staged unless
// the checksum matches.

// MaxFetchedMetaSize bounds a fetched metadata object (commit, dirtree,
// dirmeta, commitmeta). Real ones are kilobytes; a dirtree of a directory
// with 100 000 entries is about 10 MB.
const MaxFetchedMetaSize = 64 << 20

// HasObject reports whether an object is in the repository or already
// staged by this transaction.
func (tx *Transaction) HasObject(t ObjectType, c Checksum) (bool, error) {
	return tx.has(t, c)
}

// WriteFetchedMeta stages a metadata object (commit, dirtree, dirmeta)
// whose bytes came from elsewhere. It fails with ErrChecksumMismatch,
// staging nothing, unless the bytes hash to c, and with ErrCorrupt unless
// they parse as an object of type t.
func (tx *Transaction) WriteFetchedMeta(t ObjectType, c Checksum, data []byte) error {
	if !t.IsMeta() {
		return fmt.Errorf("%s %s: not a metadata object: %w", t, c, ErrUnsupported)
	}
	if SumBytes(data) != c {
		return fmt.Errorf("%s %s: fetched bytes hash to %s: %w", t, c, SumBytes(data), ErrChecksumMismatch)
	}
	var err error
	switch t {
	case ObjCommit:
		_, err = ParseCommit(data)
	case ObjDirTree:
		_, err = ParseDirTree(data)
	case ObjDirMeta:
		_, err = ParseDirMeta(data)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", t, c, err)
	}
	_, err = tx.WriteMeta(t, data)
	return err
}

// WriteFetchedArchive stages a content object given as an archive-mode
// .filez stream (header, then the raw deflate stream of the content). The
// header is parsed, the content inflated (at most the size the header
// states; trailing bytes are an error), and the object stored in this
// repository's mode with the header's metadata. It returns the content
// size. Unless the result hashes to c it fails with ErrChecksumMismatch
// and stages nothing; a stream that is not a .filez fails with ErrCorrupt.
// Errors reading r are returned wrapped as they are, so a caller can tell
// a broken transfer (a reader error wrapping ErrUnavailable) from damage.
// The compressed input may exceed the content by deflate's overhead and
// no more (maxDeflated), so a hostile stream cannot feed it endless empty
// blocks. A stream with bytes after the object fails after the
// (verified, hence sound) object was staged.
func (tx *Transaction) WriteFetchedArchive(c Checksum, r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var pre [8]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return 0, fmt.Errorf("file %s: archive header: %w", c, corruptEOF(err))
	}
	n := binary.BigEndian.Uint32(pre[:])
	if n > maxHeaderSize {
		return 0, fmt.Errorf("file %s: archive header length %d out of range: %w", c, n, ErrCorrupt)
	}
	hdr := make([]byte, 8+int(n))
	copy(hdr, pre[:])
	if _, err := io.ReadFull(br, hdr[8:]); err != nil {
		return 0, fmt.Errorf("file %s: archive header: %w", c, corruptEOF(err))
	}
	m, _, err := parseArchiveHeader(hdr)
	if err != nil {
		return 0, fmt.Errorf("file %s: %w", c, err)
	}
	var content io.Reader = strings.NewReader("")
	var zr io.ReadCloser
	if !m.IsSymlink() {
		// lr is an io.ByteReader, so flate reads no byte past its stream.
		lr := &boundedReader{r: br, n: maxDeflated(m.Size), c: c}
		zr = flate.NewReader(lr)
		content = &inflateReader{r: io.LimitReader(zr, m.Size), c: c}
	}
	if err := tx.WriteFileVerified(c, m, content); err != nil {
		return 0, err
	}
	if zr != nil {
		// The deflate stream must end exactly here, and nothing follow it.
		var one [1]byte
		if k, err := zr.Read(one[:]); k > 0 || (err != nil && err != io.EOF) {
			return 0, fmt.Errorf("file %s: content longer than its header's %d bytes: %w", c, m.Size, ErrCorrupt)
		}
		if k, _ := br.Read(one[:]); k > 0 {
			return 0, fmt.Errorf("file %s: bytes after the deflate stream: %w", c, ErrCorrupt)
		}
	}
	return m.Size, nil
}

// corruptEOF marks a short stream as corrupt, keeping transfer errors.
func corruptEOF(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrCorrupt, io.ErrUnexpectedEOF)
	}
	return err
}

// inflateReader marks deflate errors as corruption.
type inflateReader struct {
	r io.Reader
	c Checksum
}

func (i *inflateReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, ErrUnavailable) && isFlateError(err) {
		err = fmt.Errorf("file %s: deflate: %w: %w", i.c, ErrCorrupt, err)
	}
	return n, err
}

// WriteFileVerified stages a content object given its metadata and
// content, like WriteFile, but only if it hashes to c: otherwise it fails
// with ErrChecksumMismatch and stages nothing.
func (tx *Transaction) WriteFileVerified(c Checksum, m *FileMeta, content io.Reader) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("file %s: %w", c, err)
	}
	if m.Size < 0 {
		return fmt.Errorf("file %s: size %d: %w", c, m.Size, ErrCorrupt)
	}
	if ok, err := tx.has(ObjFile, c); err != nil || ok {
		return err
	}
	if tx.r.mode == ModeBareUserOnly {
		orig := *m
		canonicalize(m)
		if m.UID != orig.UID || m.GID != orig.GID || m.Mode != orig.Mode || len(m.Xattrs) != len(orig.Xattrs) {
			return fmt.Errorf("file %s: owner, mode or xattrs cannot be kept in a bare-user-only repository: %w", c, ErrUnsupported)
		}
	}
	if m.IsSymlink() {
		m.Size = 0
		got, err := FileChecksum(m, nil)
		if err != nil {
			return fmt.Errorf("file %s: %w", c, err)
		}
		if got != c {
			return fmt.Errorf("file %s: fetched symlink hashes to %s: %w", c, got, ErrChecksumMismatch)
		}
		if tx.r.mode == ModeBare || tx.r.mode == ModeBareUserOnly {
			_, err := tx.writeSymlink(m)
			return err
		}
		content = strings.NewReader("")
	}
	dfd := int(tx.dir.Fd())
	tf, err := tx.newTmpFile()
	if err != nil {
		return err
	}
	got, err := tx.fillFile(tf.f, m, content)
	if err != nil {
		tf.discard(dfd)
		return fmt.Errorf("file %s: %w", c, err)
	}
	if got != c {
		tf.discard(dfd)
		return fmt.Errorf("file %s: fetched content hashes to %s: %w", c, got, ErrChecksumMismatch)
	}
	rel, err := tx.stagePath(ObjFile, c)
	if err != nil {
		tf.discard(dfd)
		return err
	}
	if err := tf.link(dfd, rel); err != nil {
		return err
	}
	tx.markStaged(ObjFile, c)
	return nil
}

// maxDeflated bounds the deflate stream of size bytes: stored blocks cost
// 5 bytes per 64 KiB, and an encoder never does worse than storing.
func maxDeflated(size int64) int64 { return size + size/64 + 4096 }

// boundedReader fails, as corruption, once more than n bytes were read.
type boundedReader struct {
	r *bufio.Reader
	n int64
	c Checksum
}

func (b *boundedReader) err() error {
	return fmt.Errorf("file %s: deflate stream longer than its content allows: %w", b.c, ErrCorrupt)
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, b.err()
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *boundedReader) ReadByte() (byte, error) {
	if b.n <= 0 {
		return 0, b.err()
	}
	c, err := b.r.ReadByte()
	if err == nil {
		b.n--
	}
	return c, err
}
