package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// The tar-split record of a layer (compose.KeyTarSplit) is what OSTree
// drops from a layer tar: every byte of the tar stream except the
// payloads of regular files, whose bytes the file objects hold. Export
// replays it to give back the tar byte for byte (the same diff_id).
//
// Uncompressed, the record is tarSplitMagic, then operations:
//
//	'r' uvarint(n) n bytes   raw bytes of the stream (headers, PAX and GNU
//	                          long-name blocks, padding, end-of-archive
//	                          blocks, trailing bytes)
//	'f' uvarint(n)           n payload bytes: the next file of the table
//	'e'                      end of the operations
//
// then the file table, one item per 'f' in order: 0 and a 32-byte file
// object checksum (an object of the layer commit's tree, so kept and
// pruned with it), or 1, uvarint(n) and n bytes of content inlined (a
// file that a later entry of the same layer replaced, whose object the
// commit does not keep). The whole is one zstd frame.
const tarSplitMagic = "ostree-mount tar-split 1\n"

// maxTarSplit bounds a decompressed record at export.
const maxTarSplit = 1 << 30

// tarRecorder sits between the decompressed layer stream and the tar
// reader: it records what the reader reads, except the payloads of
// regular files announced with payload.
type tarRecorder struct {
	r     io.Reader
	out   bytes.Buffer  // the record so far, compressed
	zw    *zstd.Encoder // writes the operations into out as they come
	raw   bytes.Buffer  // raw bytes not yet appended to the operations
	left  int64         // payload bytes still to pass unrecorded
	files []*lnode      // the payloads' files, in order
	sizes []int64
}

func (t *tarRecorder) Read(p []byte) (int, error) {
	if t.left > 0 {
		if int64(len(p)) > t.left {
			p = p[:t.left]
		}
		n, err := t.r.Read(p)
		t.left -= int64(n)
		return n, err
	}
	n, err := t.r.Read(p)
	t.raw.Write(p[:n])
	if t.raw.Len() >= 1<<20 {
		t.flush()
	}
	return n, err
}

// op appends to the record's operations, compressing them as they come
// so that a layer of many entries costs its compressed record in memory.
func (t *tarRecorder) op(b []byte) {
	if t.zw == nil {
		// Errors of an encoder writing into a bytes.Buffer can only be
		// bad options: they come back from Close in finish.
		t.zw, _ = zstd.NewWriter(&t.out, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		t.zw.Write([]byte(tarSplitMagic))
	}
	t.zw.Write(b)
}

func (t *tarRecorder) flush() {
	if t.raw.Len() == 0 {
		return
	}
	t.op(binary.AppendUvarint([]byte{'r'}, uint64(t.raw.Len())))
	t.op(t.raw.Bytes())
	t.raw.Reset()
}

// payload announces, right after the tar reader returned hdr, that the
// entry's hdr.Size bytes of payload are file n's content. Sparse entries
// are left recorded raw: their stored bytes are not the file's content.
func (t *tarRecorder) payload(hdr *tar.Header, n *lnode) {
	if t == nil || hdr.Size <= 0 || hdr.Typeflag != tar.TypeReg || isSparse(hdr) {
		return
	}
	t.flush()
	t.op(binary.AppendUvarint([]byte{'f'}, uint64(hdr.Size)))
	t.left = hdr.Size
	t.files = append(t.files, n)
	t.sizes = append(t.sizes, hdr.Size)
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// finish encodes the record once every file object is written; live
// holds the file objects of the layer's tree.
func (t *tarRecorder) finish(tx *repo.Transaction, live map[repo.Checksum]bool) ([]byte, error) {
	t.flush()
	t.op([]byte{'e'})
	zw := t.zw
	for i, n := range t.files {
		sum := n.sum
		for o := n; o.same != nil; o = o.same {
			sum = o.same.sum
		}
		if live[sum] {
			zw.Write([]byte{0})
			zw.Write(sum[:])
			continue
		}
		// Replaced later in the layer: the commit will not keep it.
		f, err := tx.OpenFile(sum)
		if err != nil {
			zw.Close()
			return nil, fmt.Errorf("tar-split: replaced file: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f.Reader(), t.sizes[i]))
		f.Close()
		if err != nil {
			zw.Close()
			return nil, fmt.Errorf("tar-split: replaced file: %w", err)
		}
		zw.Write([]byte{1})
		zw.Write(binary.AppendUvarint(nil, uint64(len(b))))
		zw.Write(b)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return t.out.Bytes(), nil
}

// TarSplitVariant encodes a record as the ay value of compose.KeyTarSplit.
func TarSplitVariant(b []byte) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("ay"), Value: b}
}

// ErrNoTarSplit is wrapped when a layer commit has no tar-split record
// (imported before records existed).
var ErrNoTarSplit = errors.New("no tar-split record")

// ErrBadTarSplit is wrapped when a record cannot be decoded.
var ErrBadTarSplit = errors.New("invalid tar-split record")

// TarSplit is a checked record: its compressed bytes, replayed as a
// stream (so that a layer of many entries costs the compressed record in
// memory, not its operations), and its file table.
type TarSplit struct {
	rec   []byte
	files []tarSplitFile
}

type tarSplitFile struct {
	sum    repo.Checksum
	inline []byte
	isSum  bool
}

// ReadTarSplit reads the record of a layer commit from its detached
// metadata; ErrNoTarSplit if it has none.
func ReadTarSplit(r *repo.Repo, commit repo.Checksum) (*TarSplit, error) {
	md, err := r.ReadCommitMeta(commit)
	if err != nil {
		return nil, err
	}
	v, ok := md.Get(compose.KeyTarSplit)
	if !ok {
		return nil, fmt.Errorf("layer commit %s: %w", commit, ErrNoTarSplit)
	}
	b, ok := v.Value.([]byte)
	if !ok {
		return nil, fmt.Errorf("layer commit %s: %s of type %s: %w", commit, compose.KeyTarSplit, v.Type, ErrBadTarSplit)
	}
	ts, err := DecodeTarSplit(b)
	if err != nil {
		return nil, fmt.Errorf("layer commit %s: %w", commit, err)
	}
	return ts, nil
}

// DecodeTarSplit checks a compressed record and reads its file table,
// streaming through its operations. It keeps b.
func DecodeTarSplit(b []byte) (*TarSplit, error) {
	br, closeFn, err := openTarSplit(b)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	ts := &TarSplit{rec: b}
	nfiles := 0
	for {
		op, n, err := nextOp(br)
		if err != nil {
			return nil, err
		}
		if op == 'e' {
			break
		}
		switch op {
		case 'r':
			if m, err := io.CopyN(io.Discard, br, int64(n)); err != nil || uint64(m) != n {
				return nil, fmt.Errorf("%w: truncated raw bytes", ErrBadTarSplit)
			}
		case 'f':
			nfiles++
		}
	}
	for range nfiles {
		kind, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: truncated file table", ErrBadTarSplit)
		}
		switch kind {
		case 0:
			var f tarSplitFile
			if _, err := io.ReadFull(br, f.sum[:]); err != nil {
				return nil, fmt.Errorf("%w: truncated checksum", ErrBadTarSplit)
			}
			f.isSum = true
			ts.files = append(ts.files, f)
		case 1:
			n, err := binary.ReadUvarint(br)
			if err != nil || n > maxTarSplit {
				return nil, fmt.Errorf("%w: bad inline file", ErrBadTarSplit)
			}
			f := tarSplitFile{inline: make([]byte, n)}
			if _, err := io.ReadFull(br, f.inline); err != nil {
				return nil, fmt.Errorf("%w: truncated inline file", ErrBadTarSplit)
			}
			ts.files = append(ts.files, f)
		default:
			return nil, fmt.Errorf("%w: unknown file kind %d", ErrBadTarSplit, kind)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("%w: trailing bytes", ErrBadTarSplit)
		}
		return nil, fmt.Errorf("%w: %w", ErrBadTarSplit, err)
	}
	return ts, nil
}

// openTarSplit starts decompressing a record and checks its magic; the
// stream fails past maxTarSplit bytes.
func openTarSplit(b []byte) (*bufio.Reader, func(), error) {
	zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(maxTarSplit))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadTarSplit, err)
	}
	br := bufio.NewReaderSize(&capReader{r: zr, left: maxTarSplit}, 1<<16)
	magic := make([]byte, len(tarSplitMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != tarSplitMagic {
		zr.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBadTarSplit, err)
		}
		return nil, nil, fmt.Errorf("%w: bad magic", ErrBadTarSplit)
	}
	return br, zr.Close, nil
}

// nextOp reads an operation: 'e', or 'r' or 'f' with its length.
func nextOp(br *bufio.Reader) (byte, uint64, error) {
	op, err := br.ReadByte()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: truncated operations", ErrBadTarSplit)
	}
	if op == 'e' {
		return op, 0, nil
	}
	if op != 'r' && op != 'f' {
		return 0, 0, fmt.Errorf("%w: unknown operation %q", ErrBadTarSplit, op)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: bad length", ErrBadTarSplit)
	}
	return op, n, nil
}

// capReader fails a decompressed record longer than left bytes.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.left -= int64(n); c.left < 0 {
		return n, fmt.Errorf("%w: larger than %d bytes", ErrBadTarSplit, maxTarSplit)
	}
	return n, err
}

// WriteTo writes the layer tar that the record describes, reading the
// payloads from r's file objects.
func (ts *TarSplit) WriteTo(ctx context.Context, r *repo.Repo, w io.Writer) (int64, error) {
	br, closeFn, err := openTarSplit(ts.rec)
	if err != nil {
		return 0, err
	}
	defer closeFn()
	var total int64
	file := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		op, n, err := nextOp(br)
		if err != nil {
			return total, err
		}
		switch op {
		case 'e':
			return total, nil
		case 'r':
			m, err := io.CopyN(w, br, int64(n))
			total += m
			if err != nil {
				return total, err
			}
		case 'f':
			if file >= len(ts.files) {
				return total, fmt.Errorf("%w: more files than the table holds", ErrBadTarSplit)
			}
			f := ts.files[file]
			file++
			if !f.isSum {
				if uint64(len(f.inline)) != n {
					return total, fmt.Errorf("%w: inline file of %d bytes, want %d", ErrBadTarSplit, len(f.inline), n)
				}
				m, err := w.Write(f.inline)
				total += int64(m)
				if err != nil {
					return total, err
				}
				continue
			}
			c, err := r.OpenContent(ctx, f.sum)
			if err != nil {
				return total, err
			}
			m, err := io.Copy(w, io.NewSectionReader(c, 0, int64(n)))
			c.Close()
			total += m
			if err != nil {
				return total, fmt.Errorf("file %s: %w", f.sum, err)
			}
			if uint64(m) != n {
				return total, fmt.Errorf("file %s: %d bytes, the record wants %d: %w", f.sum, m, n, ErrBadTarSplit)
			}
		}
	}
}
