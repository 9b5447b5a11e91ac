package image

import (
	"archive/tar"
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
		t.zw, _ = zstd.NewWriter(&t.out, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
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

// TarSplit is a decoded record.
type TarSplit struct {
	ops   []byte
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

// DecodeTarSplit decodes a compressed record.
func DecodeTarSplit(b []byte) (*TarSplit, error) {
	zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxTarSplit))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, maxTarSplit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTarSplit, err)
	}
	if len(raw) > maxTarSplit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadTarSplit, maxTarSplit)
	}
	rest, ok := bytes.CutPrefix(raw, []byte(tarSplitMagic))
	if !ok {
		return nil, fmt.Errorf("%w: bad magic", ErrBadTarSplit)
	}
	ts := &TarSplit{}
	nfiles := 0
	i := 0
	for {
		if i >= len(rest) {
			return nil, fmt.Errorf("%w: truncated operations", ErrBadTarSplit)
		}
		op := rest[i]
		i++
		if op == 'e' {
			break
		}
		n, w := binary.Uvarint(rest[i:])
		if w <= 0 {
			return nil, fmt.Errorf("%w: bad length", ErrBadTarSplit)
		}
		i += w
		switch op {
		case 'r':
			if n > uint64(len(rest)-i) {
				return nil, fmt.Errorf("%w: truncated raw bytes", ErrBadTarSplit)
			}
			i += int(n)
		case 'f':
			nfiles++
		default:
			return nil, fmt.Errorf("%w: unknown operation %q", ErrBadTarSplit, op)
		}
	}
	ts.ops = rest[:i]
	for range nfiles {
		if i >= len(rest) {
			return nil, fmt.Errorf("%w: truncated file table", ErrBadTarSplit)
		}
		kind := rest[i]
		i++
		switch kind {
		case 0:
			if len(rest)-i < 32 {
				return nil, fmt.Errorf("%w: truncated checksum", ErrBadTarSplit)
			}
			var f tarSplitFile
			copy(f.sum[:], rest[i:i+32])
			f.isSum = true
			ts.files = append(ts.files, f)
			i += 32
		case 1:
			n, w := binary.Uvarint(rest[i:])
			if w <= 0 || n > uint64(len(rest)-i-w) {
				return nil, fmt.Errorf("%w: bad inline file", ErrBadTarSplit)
			}
			i += w
			ts.files = append(ts.files, tarSplitFile{inline: rest[i : i+int(n)]})
			i += int(n)
		default:
			return nil, fmt.Errorf("%w: unknown file kind %d", ErrBadTarSplit, kind)
		}
	}
	if i != len(rest) {
		return nil, fmt.Errorf("%w: trailing bytes", ErrBadTarSplit)
	}
	return ts, nil
}

// WriteTo writes the layer tar that the record describes, reading the
// payloads from r's file objects.
func (ts *TarSplit) WriteTo(ctx context.Context, r *repo.Repo, w io.Writer) (int64, error) {
	var total int64
	ops := ts.ops
	file := 0
	for len(ops) > 0 {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		op := ops[0]
		if op == 'e' {
			break
		}
		n, k := binary.Uvarint(ops[1:])
		ops = ops[1+k:]
		switch op {
		case 'r':
			m, err := w.Write(ops[:n])
			total += int64(m)
			if err != nil {
				return total, err
			}
			ops = ops[n:]
		case 'f':
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
	return total, nil
}
