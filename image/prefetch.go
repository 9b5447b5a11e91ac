package image

import (
	"errors"
	"io"
	"sync"
)

// A layer's tree depends on the layers below it, so layers are imported
// one after the other; their blobs need not be fetched so. The
// prefetcher downloads the blobs of the layers an import will need
// (those the repository has no weak ref for) ahead of the layer being
// imported: at most `jobs` blobs in flight, each into a bounded
// in-memory pipe, so a blob is never stored whole and a slow import
// holds back its downloads instead of filling memory or disk.
type prefetcher struct {
	jobs   int
	limit  int // bytes a pipe buffers ahead of its reader
	open   func(i int) (io.ReadCloser, error)
	needed []int         // layer indexes, in order, that need their blob
	sem    chan struct{} // one token per download in flight
	mu     sync.Mutex
	pipes  map[int]*memPipe
}

// prefetchLimit is how far a download runs ahead of its import.
const prefetchLimit = 32 << 20

func newPrefetcher(jobs int, needed []int, open func(i int) (io.ReadCloser, error)) *prefetcher {
	return &prefetcher{
		jobs: jobs, limit: prefetchLimit, open: open, needed: needed,
		sem: make(chan struct{}, jobs), pipes: map[int]*memPipe{},
	}
}

// blob returns the stream of layer i's blob, and starts downloading the
// next needed layers, up to jobs-1 ahead of it.
func (p *prefetcher) blob(i int) (io.ReadCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pos := -1
	for k, n := range p.needed {
		if n == i {
			pos = k
		}
	}
	if pos < 0 {
		// Not foreseen (a weak ref that turned out unusable): fetch it
		// directly, without a token, so that the downloads ahead, which
		// hold the tokens, cannot keep it waiting.
		return p.open(i)
	}
	for k := pos; k < len(p.needed) && k < pos+p.jobs; k++ {
		if _, ok := p.pipes[p.needed[k]]; !ok {
			p.start(p.needed[k])
		}
	}
	mp := p.pipes[i]
	delete(p.pipes, i) // the caller owns it now
	return mp, nil
}

// start begins the download of layer i into a new pipe (p.mu held).
func (p *prefetcher) start(i int) *memPipe {
	mp := newMemPipe(p.limit)
	p.pipes[i] = mp
	go func() {
		select {
		case p.sem <- struct{}{}:
		case <-mp.closed:
			return
		}
		defer func() { <-p.sem }()
		rc, err := p.open(i)
		if err != nil {
			mp.closeWrite(err)
			return
		}
		defer rc.Close()
		mp.closeWrite(mp.fill(rc))
	}()
	return mp
}

// close abandons the downloads nobody took.
func (p *prefetcher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, mp := range p.pipes {
		mp.Close()
		delete(p.pipes, i)
	}
}

// memPipe is a pipe that buffers up to limit bytes ahead of its reader.
type memPipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []*[]byte // chunks from pipeChunks; buf[0] read from off on
	off    int
	n      int   // bytes buffered
	limit  int   //
	err    error // the writer's final error (io.EOF when done)
	closed chan struct{}
	once   sync.Once
}

var errPipeClosed = errors.New("prefetch: closed")

// pipeChunks recycles the pipes' 256 KiB chunks: a large blob no longer
// allocates (and clears) a new one for every 256 KiB.
var pipeChunks = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func newMemPipe(limit int) *memPipe {
	mp := &memPipe{limit: limit, closed: make(chan struct{})}
	mp.cond = sync.NewCond(&mp.mu)
	return mp
}

// fill copies r into the pipe; it returns r's final error (io.EOF at
// its end) or errPipeClosed once the reader has gone.
func (mp *memPipe) fill(r io.Reader) error {
	for {
		b := pipeChunks.Get().(*[]byte)
		*b = (*b)[:cap(*b)]
		n, err := io.ReadFull(r, *b)
		*b = (*b)[:n]
		if n == 0 {
			pipeChunks.Put(b)
		} else {
			mp.mu.Lock()
			for mp.n >= mp.limit && !mp.isClosed() {
				mp.cond.Wait()
			}
			if mp.isClosed() {
				mp.mu.Unlock()
				pipeChunks.Put(b)
				return errPipeClosed
			}
			mp.buf = append(mp.buf, b)
			mp.n += n
			mp.cond.Broadcast()
			mp.mu.Unlock()
		}
		switch {
		case err == io.ErrUnexpectedEOF:
			return io.EOF
		case err != nil:
			return err
		}
	}
}

func (mp *memPipe) isClosed() bool {
	select {
	case <-mp.closed:
		return true
	default:
		return false
	}
}

func (mp *memPipe) closeWrite(err error) {
	mp.mu.Lock()
	if mp.err == nil {
		mp.err = err
	}
	mp.cond.Broadcast()
	mp.mu.Unlock()
}

// Read returns the blob's bytes, then the download's final error.
func (mp *memPipe) Read(p []byte) (int, error) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	for len(mp.buf) == 0 && mp.err == nil && !mp.isClosed() {
		mp.cond.Wait()
	}
	if mp.isClosed() {
		return 0, errPipeClosed
	}
	if len(mp.buf) == 0 {
		return 0, mp.err
	}
	first := mp.buf[0]
	n := copy(p, (*first)[mp.off:])
	mp.off += n
	if mp.off == len(*first) {
		mp.buf[0] = nil
		mp.buf, mp.off = mp.buf[1:], 0
		pipeChunks.Put(first)
	}
	mp.n -= n
	mp.cond.Broadcast()
	return n, nil
}

// Close drops the buffer and stops the download at its next write.
func (mp *memPipe) Close() error {
	mp.once.Do(func() {
		mp.mu.Lock()
		close(mp.closed)
		mp.buf, mp.n = nil, 0
		mp.cond.Broadcast()
		mp.mu.Unlock()
	})
	return nil
}

// buffered is how many bytes wait in the pipe.
func (mp *memPipe) buffered() int {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	return mp.n
}
