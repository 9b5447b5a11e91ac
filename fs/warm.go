package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// A walk that lists a directory usually reads its files next (tar, cp -a,
// a container's start), and on a cold disk each of those reads waits for
// its object file: the lookup of its name in objects/XX, its inode, its
// blocks, one after another, because the reader is serial. The warmer
// does that work ahead of the reader and in parallel: for the small
// regular files of a directory just listed, it opens each object file
// into the fd cache (the read then finds the descriptor ready) and asks
// the kernel to read it into the page cache in the background
// (posix_fadvise WILLNEED), so the read finds the data ready too.
//
// It is bounded everywhere: warmWorkers goroutines, a queue that drops
// work rather than wait when full, at most warmPerDir files of each
// listing, files of at most warmMaxSize bytes (larger ones get the
// readahead of sequential reads, file.go), and only objects the store
// already holds locally (a lazy remote store is never made to fetch).
type warmer struct {
	fs     *filesystem
	q      chan warmJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  sync.Once
	warmed atomic.Int64 // object files opened and read ahead
}

type warmJob struct {
	sum  repo.Checksum
	size int64
}

const (
	warmWorkers = 4
	warmQueue   = 512
	warmPerDir  = 128
	warmMaxSize = 256 << 10
)

// LocalObjects is implemented by Objects that may have to fetch an
// object to open it (a lazy remote store). Local reports whether the
// content object is held locally; the warmer opens only those.
type LocalObjects interface {
	Local(c repo.Checksum) bool
}

func newWarmer(f *filesystem) *warmer {
	ctx, cancel := context.WithCancel(context.Background())
	return &warmer{fs: f, q: make(chan warmJob, warmQueue), ctx: ctx, cancel: cancel}
}

// dir queues the small files of a directory listed from its start.
func (w *warmer) dir(d *compose.Dir) {
	if w == nil {
		return
	}
	// The workers start with the first listing, so a mount that lists
	// nothing runs none.
	w.start.Do(func() {
		if w.ctx.Err() != nil {
			return
		}
		for range warmWorkers {
			w.wg.Add(1)
			go w.run()
		}
	})
	n := 0
	for _, e := range d.Entries {
		if n == warmPerDir {
			return
		}
		if e.Mode&syscall.S_IFMT != syscall.S_IFREG || e.Size == 0 || e.Size > warmMaxSize {
			continue
		}
		select {
		case w.q <- warmJob{e.Object, e.Size}:
			n++
		default:
			return // the workers are behind: the reader has caught up
		}
	}
}

func (w *warmer) run() {
	defer w.wg.Done()
	local, _ := w.fs.objs.(LocalObjects)
	for {
		select {
		case <-w.ctx.Done():
			return
		case j := <-w.q:
			if local != nil && !local.Local(j.sum) {
				continue
			}
			e, err := w.fs.fds.get(w.ctx, j.sum)
			if err != nil {
				continue // the read that needs it reports it
			}
			_ = unix.Fadvise(int(e.f.Fd()), 0, j.size, unix.FADV_WILLNEED)
			w.fs.fds.put(e)
			w.warmed.Add(1)
		}
	}
}

// stop ends the workers; queued work is dropped.
func (w *warmer) stop() {
	if w == nil {
		return
	}
	w.cancel()
	w.start.Do(func() {}) // none start after this
	w.wg.Wait()
}
