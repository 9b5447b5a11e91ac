package export

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// pgzipBlock is the input bytes compressed on their own. Each block but
// the last is compressed with the 32 KiB before it as the dictionary and
// ends with a sync flush (a byte-aligned, non-final deflate block), so
// the compressed blocks, concatenated, are one deflate stream that any
// gzip reader decompresses; the output depends only on the input and
// the level, never on how many blocks were compressed at once.
const (
	pgzipBlock = 1 << 20
	pgzipDict  = 32 << 10
)

var errPgzipClosed = errors.New("gzip writer closed")

// pgzipWriter writes one gzip member, compressing blocks of its input on
// up to workers goroutines while the caller writes more; a goroutine of
// its own writes the compressed blocks in order. Memory is bounded by
// workers+1 blocks in flight, each with its output and a flate state.
type pgzipWriter struct {
	level int
	buf   []byte // the block being filled
	dict  []byte // the last pgzipDict bytes before buf
	crc   uint32
	size  uint32 // ISIZE: the input length modulo 2^32

	pending chan *pgzBlock // blocks in input order
	done    chan struct{}  // closed when the writing goroutine has ended
	mu      sync.Mutex
	err     error // the first write error
	closed  bool
	out     io.Writer
	// Free lists (not sync.Pools, which every GC empties: a new
	// megabyte buffer costs page faults), each holding at most the
	// blocks that can be in flight.
	flates chan *flate.Writer
	ins    chan []byte // capacity pgzipBlock
	outs   chan *bytes.Buffer
}

// get takes an item from a free list, or the zero value.
func get[T any](c chan T) (v T) {
	select {
	case v = <-c:
	default:
	}
	return v
}

// put returns an item to a free list, dropping it if the list is full.
func put[T any](c chan T, v T) {
	select {
	case c <- v:
	default:
	}
}

type pgzBlock struct {
	in    []byte
	dict  []byte
	last  bool
	out   *bytes.Buffer
	ready chan struct{}
	err   error
}

// newPgzipWriter writes the gzip header to w and returns the writer.
func newPgzipWriter(w io.Writer, level, workers int) (*pgzipWriter, error) {
	if _, err := flate.NewWriter(io.Discard, level); err != nil {
		return nil, err
	}
	// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown, as Go's gzip.
	if _, err := w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}); err != nil {
		return nil, err
	}
	n := max(1, workers)
	z := &pgzipWriter{level: level, out: w, pending: make(chan *pgzBlock, n), done: make(chan struct{}),
		flates: make(chan *flate.Writer, n+2), ins: make(chan []byte, n+2), outs: make(chan *bytes.Buffer, n+2)}
	z.buf = z.newBuf()
	go z.writeBlocks()
	return z, nil
}

func (z *pgzipWriter) writeBlocks() {
	defer close(z.done)
	for b := range z.pending {
		<-b.ready
		err := b.err
		if err == nil {
			_, err = z.out.Write(b.out.Bytes())
		}
		b.out.Reset()
		put(z.outs, b.out)
		if err != nil {
			z.mu.Lock()
			if z.err == nil {
				z.err = err
			}
			z.mu.Unlock()
		}
	}
}

func (z *pgzipWriter) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

// Write compresses p.
func (z *pgzipWriter) Write(p []byte) (int, error) {
	if z.closed {
		return 0, errPgzipClosed
	}
	if err := z.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(n)
	for len(p) > 0 {
		k := min(len(p), pgzipBlock-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == pgzipBlock {
			z.submit(false)
		}
	}
	return n, nil
}

// submit hands the current block to a compressing goroutine; it blocks
// while workers blocks are in flight.
func (z *pgzipWriter) submit(last bool) {
	b := &pgzBlock{in: z.buf, dict: z.dict, last: last, ready: make(chan struct{})}
	if !last {
		z.dict = append([]byte(nil), z.buf[len(z.buf)-pgzipDict:]...)
		z.buf = z.newBuf()
	}
	z.pending <- b
	go z.compress(b)
}

func (z *pgzipWriter) newBuf() []byte {
	if b := get(z.ins); b != nil {
		return b[:0]
	}
	return make([]byte, 0, pgzipBlock)
}

func (z *pgzipWriter) compress(b *pgzBlock) {
	defer close(b.ready)
	defer put(z.ins, b.in)
	if b.out = get(z.outs); b.out == nil {
		b.out = new(bytes.Buffer)
	}
	in := b.in
	fw := get(z.flates)
	if fw == nil {
		var err error
		if fw, err = flate.NewWriterDict(b.out, z.level, b.dict); err != nil {
			b.err = err
			return
		}
	} else {
		fw.ResetDict(b.out, b.dict)
	}
	b.out.Grow(len(in) + len(in)/64 + 64)
	if _, b.err = fw.Write(in); b.err != nil {
		return
	}
	if b.last {
		b.err = fw.Close()
	} else {
		b.err = fw.Flush()
	}
	fw.ResetDict(io.Discard, nil) // drop the references to b
	put(z.flates, fw)
}

// Close compresses what is left as the final block, waits for every
// block to be written and writes the gzip trailer.
func (z *pgzipWriter) Close() error {
	if z.closed {
		return z.failed()
	}
	z.closed = true
	z.submit(true)
	close(z.pending)
	<-z.done
	if err := z.failed(); err != nil {
		return err
	}
	var t [8]byte
	binary.LittleEndian.PutUint32(t[:4], z.crc)
	binary.LittleEndian.PutUint32(t[4:], z.size)
	_, err := z.out.Write(t[:])
	return err
}
