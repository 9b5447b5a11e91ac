package fs

import (
	"context"
	"slices"
	"strings"
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
// A listing alone warms nothing: find and ls -lR list every directory
// and read no file, and reading their files ahead would only compete for
// the disk. The first read of a file in a directory listed since (a
// reader that reads what it lists) warms the rest of that listing.
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

	mu      sync.Mutex
	pending map[string]*compose.Dir // listed, not warmed, by path
	order   []string                // of pending, oldest first
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
	warmPending = 64 // listings remembered until one of their files is read
)

// LocalObjects is implemented by Objects that may have to fetch an
// object to open it (a lazy remote store). LocalObject reports whether an
// object is held locally; the warmer opens only local content.
type LocalObjects interface {
	LocalObject(t repo.ObjectType, c repo.Checksum) bool
}

func newWarmer(f *filesystem) *warmer {
	ctx, cancel := context.WithCancel(context.Background())
	return &warmer{fs: f, q: make(chan warmJob, warmQueue), ctx: ctx, cancel: cancel, pending: map[string]*compose.Dir{}}
}

// listed remembers directory d at path p, listed from its start, for
// read to warm; the oldest of warmPending listings is forgotten.
func (w *warmer) listed(p string, d *compose.Dir) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.pending[p]; !ok {
		w.order = append(w.order, p)
	}
	w.pending[p] = d
	for len(w.order) > warmPending {
		delete(w.pending, w.order[0])
		w.order = w.order[1:]
	}
}

// read is told of a read at offset 0 of the file at path p: if its
// directory was listed and not warmed yet, it is warmed now.
func (w *warmer) read(p string) {
	if w == nil {
		return
	}
	parent := ""
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		parent = p[:i]
	}
	w.mu.Lock()
	d, ok := w.pending[parent]
	if ok {
		delete(w.pending, parent)
		w.order = slices.DeleteFunc(w.order, func(s string) bool { return s == parent })
	}
	w.mu.Unlock()
	if ok {
		w.dir(d)
	}
}

// dir queues the small files of a directory.
func (w *warmer) dir(d *compose.Dir) {
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
			if local != nil && !local.LocalObject(repo.ObjFile, j.sum) {
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
