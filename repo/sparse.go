package repo

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sparseBlock is the unit in which runs of zeros are left as holes.
const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// copyContent copies a file object's content, size bytes, into f, a new
// empty file, and into the hashes ws. Every aligned block of zeros is
// skipped, so that it stays a hole: the holes of a sparse tar entry, which
// the tar reader fills with zeros, take no disk space in bare and
// bare-user repositories, whose objects are real files. The checksum
// covers the zeros all the same, and a hole reads as zeros.
//
// It copies in copyBufSize pieces: a large file takes an eighth of the
// write system calls io.Copy's 32 KiB would. A file of pipeMin bytes or
// more is hashed and written at once (copyPipelined); with writeback, its
// pages are also handed to the disk as they are written.
func copyContent(f *os.File, size int64, writeback bool, content io.Reader, ws ...io.Writer) error {
	if size >= pipeMin {
		return copyPipelined(f, writeback, content, ws...)
	}
	sw := &sparseWriter{f: f}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	if _, err := io.CopyBuffer(io.MultiWriter(append([]io.Writer{sw}, ws...)...), content, *buf); err != nil {
		return err
	}
	return sw.finish()
}

// Files of pipeMin bytes or more are written by copyPipelined, through
// pipeDepth buffers; with writeback, every writebackChunk bytes written
// are handed to the disk.
const (
	pipeMin        = 8 << 20
	pipeDepth      = 4
	writebackChunk = 8 << 20
)

// copyPipelined is copyContent for a large file: the caller's goroutine
// reads the content and hashes it while another writes the previous
// pieces, so that the hashing and the kernel's copy into the page cache
// take two cores. With writeback, the written ranges are handed to the
// disk every writebackChunk bytes (sync_file_range, which does not wait
// for them): the transaction's syncfs at Commit then finds most of the
// file on disk already, instead of starting the whole write then.
func copyPipelined(f *os.File, writeback bool, content io.Reader, ws ...io.Writer) error {
	type piece struct {
		b *[]byte
		n int
	}
	free := make(chan *[]byte, pipeDepth)
	for range pipeDepth {
		free <- copyBufs.Get().(*[]byte)
	}
	full := make(chan piece, pipeDepth)
	werr := make(chan error, 1)
	var failed atomic.Bool
	go func() {
		sw := &sparseWriter{f: f}
		var err error
		var kicked int64
		for p := range full {
			if err == nil {
				if _, err = sw.Write((*p.b)[:p.n]); err != nil {
					failed.Store(true)
				} else if writeback && sw.off-kicked >= writebackChunk {
					// Only a hint: an error here would show at syncfs.
					_ = unix.SyncFileRange(int(f.Fd()), kicked, sw.off-kicked, unix.SYNC_FILE_RANGE_WRITE)
					kicked = sw.off
				}
			}
			free <- p.b
		}
		if err == nil {
			err = sw.finish()
		}
		werr <- err
	}()
	hw := io.MultiWriter(ws...)
	var rerr error
	for !failed.Load() {
		b := <-free
		n, err := io.ReadFull(content, *b)
		if n > 0 {
			hw.Write((*b)[:n]) // hashes and counters do not fail
			full <- piece{b, n}
		} else {
			free <- b
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(full)
	err := <-werr
	for range pipeDepth {
		copyBufs.Put(<-free)
	}
	if rerr != nil {
		return rerr
	}
	return err
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
