package image

import (
	"errors"
	"io"
	"sync"
)

// readAhead reads r in a goroutine of its own, up to depth chunks ahead
// of its reader. A layer blob's digest check, its decompression and the
// diff_id hash then run on one core while the tar is parsed, and its
// files hashed and written, on another; read in one goroutine they left
// the second core idle during an import.
type readAhead struct {
	chunks chan *chunk // filled, in order; closed when the goroutine ends
	free   chan *chunk
	done   chan struct{}
	exited chan struct{}
	once   sync.Once

	cur *chunk
	off int
}

type chunk struct {
	b   []byte
	n   int
	err error // after b[:n]: io.EOF at the end, or the error reading r
}

// errReadAheadClosed is what Read returns after Close.
var errReadAheadClosed = errors.New("read ahead: closed")

func newReadAhead(r io.Reader, size, depth int) *readAhead {
	ra := &readAhead{
		chunks: make(chan *chunk, depth),
		free:   make(chan *chunk, depth+2),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for i := 0; i < depth+2; i++ {
		ra.free <- &chunk{b: make([]byte, size)}
	}
	go ra.run(r)
	return ra
}

func (ra *readAhead) run(r io.Reader) {
	defer close(ra.exited)
	defer close(ra.chunks)
	for {
		var c *chunk
		select {
		case c = <-ra.free:
		case <-ra.done:
			return
		}
		c.n, c.err = io.ReadFull(r, c.b)
		if c.err == io.ErrUnexpectedEOF { // ReadFull's own: r ended mid-chunk
			c.err = io.EOF // not an error of r's that wraps it (a truncated download)
		}
		select {
		case ra.chunks <- c:
		case <-ra.done:
			return
		}
		if c.err != nil {
			return
		}
	}
}

// Read returns r's bytes in order, then r's error (io.EOF at its end);
// after Close, errReadAheadClosed.
func (ra *readAhead) Read(p []byte) (int, error) {
	select {
	case <-ra.done:
		return 0, errReadAheadClosed
	default:
	}
	for ra.cur == nil || ra.off == ra.cur.n {
		if ra.cur != nil {
			if ra.cur.err != nil {
				return 0, ra.cur.err
			}
			ra.free <- ra.cur
			ra.cur = nil
		}
		c, ok := <-ra.chunks
		if !ok {
			return 0, errReadAheadClosed
		}
		ra.cur, ra.off = c, 0
	}
	n := copy(p, ra.cur.b[ra.off:ra.cur.n])
	ra.off += n
	return n, nil
}

// Close stops the goroutine and returns once it no longer reads r.
func (ra *readAhead) Close() {
	ra.once.Do(func() { close(ra.done) })
	<-ra.exited
}
