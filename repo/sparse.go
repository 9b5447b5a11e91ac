package repo

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// sparseBlock is the unit in which runs of zeros are left as holes.
const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// copyContent copies a file object's content into f, a new empty file,
// and into the hashes ws. Every aligned block of zeros is skipped, so
// that it stays a hole: the holes of a sparse tar entry, which the tar
// reader fills with zeros, take no disk space in bare and bare-user
// repositories, whose objects are real files. The checksum covers the
// zeros all the same, and a hole reads as zeros.
//
// It copies in copyBufSize pieces: a large file takes an eighth of the
// write system calls io.Copy's 32 KiB would.
func copyContent(f *os.File, content io.Reader, ws ...io.Writer) error {
	sw := &sparseWriter{f: f}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	if _, err := io.CopyBuffer(io.MultiWriter(append([]io.Writer{sw}, ws...)...), content, *buf); err != nil {
		return err
	}
	return sw.finish()
}

const copyBufSize = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// sparseWriter writes at its offset with pwrite, skipping whole blocks of
// zeros.
type sparseWriter struct {
	f   *os.File
	off int64 // bytes of content so far
	end int64 // end of the last write
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		// The data up to the next zero block aligned in the file is
		// written in one call; the zero blocks are skipped.
		i := 0
		for i < len(p) {
			at := w.off + int64(i)
			skip := int(sparseBlock - at%sparseBlock)
			if skip == sparseBlock && len(p)-i >= sparseBlock && bytes.Equal(p[i:i+sparseBlock], zeroBlock[:]) {
				break
			}
			i += min(skip, len(p)-i)
		}
		if i > 0 {
			if _, err := w.f.WriteAt(p[:i], w.off); err != nil {
				return n - len(p), err
			}
			w.off += int64(i)
			w.end = w.off
			p = p[i:]
		}
		for len(p) >= sparseBlock && bytes.Equal(p[:sparseBlock], zeroBlock[:]) {
			w.off += sparseBlock
			p = p[sparseBlock:]
		}
	}
	return n, nil
}

// finish extends the file over a trailing hole.
func (w *sparseWriter) finish() error {
	if w.off > w.end {
		if err := w.f.Truncate(w.off); err != nil {
			return fmt.Errorf("truncate to %d bytes: %w", w.off, err)
		}
	}
	return nil
}
